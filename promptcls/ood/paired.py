"""Champion vs challenger on the same rows: an exact McNemar test on benign <-> malicious errors.

Both runs logged `evaluation/paired_predictions.csv` (validation and OOD rows, keyed by a hash of the text; never
test rows). On the rows both were scored on, b = rows the champion gets critically wrong (benign called malicious
or malicious called benign) and the challenger does not, c = the reverse. Under "no difference" b ~ Binomial(b + c,
1/2); the one-sided p-value is P(B >= b). `effect` = (b - c) / n, the drop in the critical-error rate.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import mlflow
import numpy as np
import pandas as pd
from scipy.stats import binomtest

from promptcls.ood.scoring import PAIRED_ARTIFACT


@dataclass(frozen=True)
class PairedResult:
    n: int
    champion_errors: int
    challenger_errors: int
    b: int        # champion wrong, challenger right
    c: int        # champion right, challenger wrong
    p_value: float
    effect: float

    def describe(self) -> str:
        return (f"McNemar on {self.n} shared val/OOD rows: critical errors {self.champion_errors} (champion) -> "
                f"{self.challenger_errors} (challenger), b={self.b} c={self.c}, one-sided p={self.p_value:.4g}, "
                f"effect {self.effect:+.4f} critical-error rate")


def critical_errors(label: np.ndarray, pred: np.ndarray) -> np.ndarray:
    return ((label == 0) & (pred == 2)) | ((label == 2) & (pred == 0))


def mcnemar(label: np.ndarray, champion: np.ndarray, challenger: np.ndarray) -> PairedResult:
    """The exact one-sided McNemar test that the challenger makes fewer critical errors than the champion."""
    label, champion, challenger = map(np.asarray, (label, champion, challenger))
    old, new = critical_errors(label, champion), critical_errors(label, challenger)
    b, c = int((old & ~new).sum()), int((~old & new).sum())
    p = binomtest(b, b + c, 0.5, alternative="greater").pvalue if b + c else 1.0
    n = len(label)
    return PairedResult(n, int(old.sum()), int(new.sum()), b, c, float(p), (b - c) / n if n else 0.0)


def load_predictions(run_id: str) -> pd.DataFrame | None:
    try:
        text = mlflow.artifacts.load_text(f"runs:/{run_id}/{PAIRED_ARTIFACT}")
    except Exception:  # noqa: BLE001 - a run from before paired predictions, or a hand-made one
        return None
    return pd.read_csv(io.StringIO(text))


def compare_runs(champion_run_id: str, challenger_run_id: str) -> PairedResult | str:
    """The paired test of two runs on their shared rows, or why it cannot be run."""
    old, new = load_predictions(champion_run_id), load_predictions(challenger_run_id)
    for run_id, frame in ((champion_run_id, old), (challenger_run_id, new)):
        if frame is None:
            return f"run {run_id} has no {PAIRED_ARTIFACT}"
    shared = old.drop_duplicates("key").merge(new.drop_duplicates("key"), on="key", suffixes=("_old", "_new"))
    if shared.empty:
        return "the two runs share no scored validation/OOD rows"
    if (shared["label_old"] != shared["label_new"]).any():
        return "the two runs label the same rows differently (different corpora)"
    return mcnemar(shared["label_old"].to_numpy(), shared["pred_old"].to_numpy(), shared["pred_new"].to_numpy())
