"""Evasion augmentation (TrainArgs `augment=evasion`): perturbed copies of a share of the training rows of *every*
class (`conf/robustness.yaml` `augment.share`), so that a perturbation is not itself a cue for "malicious".

Each chosen row gets one evasion kind drawn uniformly from `promptcls.perturb.EVASIONS`; the copy is canonicalised
like every training text (`normalize_text`) and keeps its row's label, source and near-duplicate group; a copy that
canonicalisation turns back into its original (zero-width characters, homoglyphs, …) is dropped. Only the training
split is augmented: validation and test stay as drawn.

For a model that reads only the first `window_chars` characters (a truncating CNN or transformer), a copy that puts
benign text before its prompt (`benign_preamble`, `long_document`) is cut to the window that ends with the prompt
(`windows.last_window`): whole, such a copy would be truncated to its benign filler under the prompt's label, and
the contract shows that model long inputs as windows of that size anyway.
"""

from __future__ import annotations

import random

import pandas as pd

from promptcls.data import normalize_text
from promptcls.perturb import EVASIONS
from promptcls.text.settings import robustness
from promptcls.text.windows import last_window


def augment_frame(train: pd.DataFrame, seed: int,
                  window_chars: int | None = None) -> tuple[pd.DataFrame, dict[str, int]]:
    """`train` plus its perturbed copies (shuffled in), and the number of copies per kind and per class.
    `window_chars`: what the model reads of a text (None: all of it); see the module docstring."""
    rng = random.Random(seed)
    share = float(robustness()["augment"]["share"])
    chosen = train.groupby("label", group_keys=False).sample(frac=share, random_state=seed)
    kinds = [rng.choice(list(EVASIONS)) for _ in range(len(chosen))]
    copies = chosen.copy()
    copies["text"] = [normalize_text(EVASIONS[k](t, rng)) for k, t in zip(kinds, chosen["text"])]
    if window_chars:
        copies["text"] = [last_window(c, len(t), window_chars) if c.endswith(t) else c
                          for c, t in zip(copies["text"], chosen["text"])]
    keep = (copies["text"].str.len() > 0) & (copies["text"] != chosen["text"])  # undone by canonicalisation: no copy
    copies, kinds = copies[keep.to_numpy()], [k for k, ok in zip(kinds, keep) if ok]
    counts = {f"augment_rows_{k}": kinds.count(k) for k in EVASIONS}
    counts.update({f"augment_rows_c{c}": int((copies["label"] == c).sum()) for c in sorted(train["label"].unique())})
    counts["augment_rows"] = len(copies)
    out = pd.concat([train, copies], ignore_index=True).sample(frac=1.0, random_state=seed).reset_index(drop=True)
    return out, counts
