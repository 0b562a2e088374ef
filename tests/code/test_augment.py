"""Evasion augmentation: copies of every class, labels and groups kept, counts per kind and class, seeded."""

import pandas as pd
import pytest

from promptcls.config import DEFAULT_DATA, TrainArgs
from promptcls.data import load_dataset, stratified_sample
from promptcls.perturb import EVASIONS
from promptcls.text.augment import augment_frame


def test_augment_adds_perturbed_copies_of_every_class():
    train = stratified_sample(load_dataset(DEFAULT_DATA).frame, 600, seed=0)
    out, counts = augment_frame(train, seed=3)
    copies = out[~out["text"].isin(set(train["text"]))]
    assert counts["augment_rows"] == len(out) - len(train) == len(copies) > 0.08 * len(train)
    for c in (0, 1, 2):  # every class, in proportion: the perturbation is not a malicious cue
        share = counts[f"augment_rows_c{c}"] / (train["label"] == c).sum()
        assert 0.08 < share <= 0.21, (c, share)
    assert counts["augment_rows_zero_width"] == 0  # undone by canonicalisation: no copy
    assert sum(counts[f"augment_rows_{k}"] for k in EVASIONS) == counts["augment_rows"]
    assert set(copies["group"]) <= set(train["group"])  # near-duplicate groups stay with their originals
    pd.testing.assert_frame_equal(out, augment_frame(train, seed=3)[0])


def test_augment_is_validated():
    with pytest.raises(ValueError, match="augment must be none or evasion"):
        TrainArgs(model="logreg", augment="yes")
    with pytest.raises(ValueError, match="max_input_chars must be >= 1"):
        TrainArgs(model="logreg", max_input_chars=0)
    assert TrainArgs(model="logreg").max_input_chars == 100_000


def test_copies_for_a_truncating_model_are_cut_to_its_window_ending_with_the_prompt():
    train = stratified_sample(load_dataset(DEFAULT_DATA).frame, 600, seed=0)
    short = train[train["text"].str.len() < 250]
    whole, _ = augment_frame(short, seed=3)
    cut, counts = augment_frame(short, seed=3, window_chars=300)
    assert counts["augment_rows_long_document"] > 0
    originals = set(short["text"])
    prefixed = [t for t in whole["text"] if t not in originals and any(t.endswith(o) for o in originals)]
    assert max(map(len, prefixed)) > 2000                                   # long documents, whole
    copies = cut[~cut["text"].isin(originals)]
    for text, label in zip(copies["text"], copies["label"]):
        ends = [o for o in originals if text.endswith(o)]
        if ends:                                                            # a preamble / document copy
            assert len(text) <= 300 and label in set(short.loc[short["text"].isin(ends), "label"])
    assert len(cut) == len(whole)
