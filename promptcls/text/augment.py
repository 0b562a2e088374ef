"""Evasion augmentation (TrainArgs `augment=evasion`): perturbed copies of a share of the training rows of *every*
class (`conf/robustness.yaml` `augment.share`), so that a perturbation is not itself a cue for "malicious".

Each chosen row gets one evasion kind drawn uniformly from `promptcls.perturb.EVASIONS`; the copy is canonicalised
like every training text (`normalize_text`) and keeps its row's label, source and near-duplicate group; a copy that
canonicalisation turns back into its original (zero-width characters, homoglyphs, …) is dropped. Only the training
split is augmented: validation and test stay as drawn.
"""

from __future__ import annotations

import random

import pandas as pd

from promptcls.data import normalize_text
from promptcls.perturb import EVASIONS
from promptcls.text.settings import robustness

AUGMENT_CHOICES = ("none", "evasion")


def augment_frame(train: pd.DataFrame, seed: int) -> tuple[pd.DataFrame, dict[str, int]]:
    """`train` plus its perturbed copies (shuffled in), and the number of copies per kind and per class."""
    rng = random.Random(seed)
    share = float(robustness()["augment"]["share"])
    chosen = train.groupby("label", group_keys=False).sample(frac=share, random_state=seed)
    kinds = [rng.choice(list(EVASIONS)) for _ in range(len(chosen))]
    copies = chosen.copy()
    copies["text"] = [normalize_text(EVASIONS[k](t, rng)) for k, t in zip(kinds, chosen["text"])]
    keep = (copies["text"].str.len() > 0) & (copies["text"] != chosen["text"])  # undone by canonicalisation: no copy
    copies, kinds = copies[keep.to_numpy()], [k for k, ok in zip(kinds, keep) if ok]
    counts = {f"augment_rows_{k}": kinds.count(k) for k in EVASIONS}
    counts.update({f"augment_rows_c{c}": int((copies["label"] == c).sum()) for c in sorted(train["label"].unique())})
    counts["augment_rows"] = len(copies)
    out = pd.concat([train, copies], ignore_index=True).sample(frac=1.0, random_state=seed).reset_index(drop=True)
    return out, counts
