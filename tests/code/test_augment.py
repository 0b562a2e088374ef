"""Training augmentation. Evasion: copies of every class, labels and groups kept, counts per kind and class, seeded.
Indirect: training injections planted inside training documents, windowed with clean twins for a truncating model."""

import pandas as pd
import pytest

from promptcls.config import DEFAULT_DATA, TrainArgs
from promptcls.data import load_dataset, stratified_sample
from promptcls.perturb import EVASIONS
from promptcls.text import augment
from promptcls.text.augment import INDIRECT_SOURCE, augment_frame, augmented_frame, indirect_frame


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
    for bad in ("yes", "", "evasion,evasion", "evasion,"):
        with pytest.raises(ValueError, match="augment must be none or evasion, indirect"):
            TrainArgs(model="logreg", augment=bad)
    assert TrainArgs(model="logreg", augment="indirect,evasion").augment == "indirect,evasion"
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


@pytest.fixture(scope="module")
def documents_and_injections():
    """Training-like rows: T0 documents (task, blank line, passage), injections, and rows of other genres."""
    frame = load_dataset(DEFAULT_DATA).frame
    parts = [frame[frame["source"] == "t0_instruct"].head(40), frame[frame["source"] == "deepset_pi"].head(120),
             frame[frame["source"] == "seed_benign"].head(50), frame[frame["source"] == "tensortrust_hijack"].head(5)]
    return pd.concat(parts, ignore_index=True)


def test_indirect_plants_short_injections_after_the_task_of_each_document(documents_and_injections):
    train = documents_and_injections
    copies, counts = indirect_frame(train, seed=3)
    documents = train[train["source"] == "t0_instruct"]
    payloads = [t for t in train.loc[train["label"] == 2, "text"] if len(t) <= 250]
    assert len(payloads) < (train["label"] == 2).sum()  # the long tensortrust injections are not planted
    assert counts == {"augment_indirect_c0": 0, "augment_indirect_c2": len(documents)} and len(copies) == len(documents)
    assert set(copies["source"]) == {INDIRECT_SOURCE} and set(copies["group"]) <= set(documents["group"])
    assert documents["text"].str.contains("\n\n").sum() > 10
    for copy, document in zip(copies["text"], documents["text"]):
        task, gap, _ = document.partition("\n\n")                  # task, blank line, passage (or a passage alone)
        planted = [p for p in payloads if p in copy]
        assert planted and copy.startswith(task + gap if gap else "")  # the task first, the injection in the passage
        assert copy.replace(max(planted, key=len), " ").split() == document.split()  # the document is otherwise whole
    pd.testing.assert_frame_equal(copies, indirect_frame(train, seed=3)[0])  # seeded
    assert indirect_frame(train[train["label"] != 2], seed=3)[0].empty     # no injection to plant: no copy


def test_indirect_for_a_truncating_model_adds_window_pairs_with_and_without_the_injection(documents_and_injections):
    copies, counts = indirect_frame(documents_and_injections, seed=3, window_chars=300)
    assert counts["augment_indirect_c0"] == counts["augment_indirect_c2"] == 40
    clean, injected = copies.iloc[0::2], copies.iloc[1::2]
    assert (clean["label"] == 0).all() and (injected["label"] == 2).all()
    payloads = [t for t in documents_and_injections.loc[documents_and_injections["label"] == 2, "text"]]
    for without, with_ in zip(clean["text"], injected["text"]):
        assert len(with_) <= 300
        planted = [p for p in payloads if p in with_]
        assert planted and with_.replace(max(planted, key=len), " ").split() == without.split()
    out, _ = augmented_frame(documents_and_injections, ["indirect"], seed=3, window_chars=300)
    assert len(out) == len(documents_and_injections) + 80 and (out["source"] == INDIRECT_SOURCE).sum() == 80


def test_indirect_refuses_a_genre_sources_yaml_does_not_have(documents_and_injections, monkeypatch):
    settings = {"augment": {"indirect": {"documents": ["document"], "payloads": ["injection"],
                                         "max_payload_chars": 250, "per_document": 1}}}
    monkeypatch.setattr(augment, "robustness", lambda: settings)
    with pytest.raises(ValueError, match=r"augment.indirect.documents: unknown genres \['document'\]"):
        indirect_frame(documents_and_injections, seed=3)


def test_family_args_values_may_hold_commas():
    from promptcls.config import UsageError, assignments
    from promptcls.families.traditional import TraditionalArgs

    assert assignments(TrainArgs, "augment=evasion,indirect,seed=3", "family_args") == {
        "augment": "evasion,indirect", "seed": 3}
    hp = '{"C":16,"penalty":"l2"}'
    assert assignments(TraditionalArgs, f"hp={hp},seed=1", "family_args")["hp"] == hp
    with pytest.raises(UsageError, match="family_args: 'indirect' is not field=value"):
        assignments(TrainArgs, "indirect,seed=3", "family_args")
    with pytest.raises(UsageError, match=r"family_args: unknown field\(s\) \['augmnt'\]"):
        assignments(TrainArgs, "augmnt=evasion,indirect", "family_args")
