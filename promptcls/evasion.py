"""Evasion flip rates: the one computation the behaviour suite and every training run share.

A (prompt, perturbation) pair counts when the scoring path flags the unperturbed prompt as malicious; it flips when
the perturbed prompt's label drops below malicious. `evasion_flip_rate` is the share of counted pairs that flip,
overall and per kind (`evasion_flip_rate_<kind>`). Training logs it as `val_evasion_flip_rate*` on a seeded
sample of the validation split's malicious rows (`conf/robustness.yaml` `val_evasion.max_rows`): the gate in
`registry/gates.yaml` reads it.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import numpy as np
import pandas as pd

from promptcls import LABELS
from promptcls.perturb import EVASIONS
from promptcls.text.settings import robustness

MALICIOUS = LABELS.index("malicious")
Score = Callable[[list[str]], pd.DataFrame]  # texts -> contract output (`label`, `score_malicious`, …)


def perturb_all(texts: list[str], rng: random.Random) -> dict[str, list[str]]:
    """Every evasion kind applied to every text, in `EVASIONS` order (one seeded stream)."""
    return {name: [perturb(t, rng) for t in texts] for name, perturb in EVASIONS.items()}


def evasion_outcomes(score: Score, texts: list[str], perturbed: dict[str, list[str]]) -> tuple[pd.DataFrame, dict]:
    """The base output of `texts` and, per kind, the perturbed output and `kept` (1.0 label stays malicious,
    0.0 flipped, NaN when the base was not flagged). All perturbed texts are scored in one call."""
    base = score(list(texts))
    flagged = base["label"].to_numpy() == MALICIOUS
    names = list(perturbed)
    out = score([t for name in names for t in perturbed[name]]) if names and len(texts) else None
    results = {}
    for k, name in enumerate(names):
        part = out.iloc[k * len(texts):(k + 1) * len(texts)].reset_index(drop=True)
        kept = (part["label"].to_numpy() == MALICIOUS).astype(float)
        results[name] = (part, np.where(flagged, kept, np.nan))
    return base, results


def flip_rates(kept_by_kind: dict[str, np.ndarray], prefix: str = "") -> dict[str, float]:
    """`{prefix}evasion_flip_rate` overall, per kind, and the number of counted pairs."""
    metrics, all_kept = {}, []
    for name, kept in kept_by_kind.items():
        counted = kept[~np.isnan(kept)]
        all_kept.append(counted)
        if len(counted):
            metrics[f"{prefix}evasion_flip_rate_{name}"] = float(1 - counted.mean())
    counted = np.concatenate(all_kept) if all_kept else np.empty(0)
    if len(counted):
        metrics[f"{prefix}evasion_flip_rate"] = float(1 - counted.mean())
        metrics[f"{prefix}evasion_pairs"] = float(len(counted))
    return metrics


def split_flip_rates(score: Score, frame: pd.DataFrame, seed: int, prefix: str = "val_") -> dict[str, float]:
    """Flip rates on a seeded sample of `frame`'s malicious rows (at most `max_rows`; pairs count where `score`
    flags the row)."""
    malicious = frame.loc[frame["label"] == MALICIOUS, "text"].tolist()
    rng = random.Random(seed)
    sample = rng.sample(malicious, min(len(malicious), int(robustness()["val_evasion"]["max_rows"])))
    _, results = evasion_outcomes(score, sample, perturb_all(sample, rng))
    return flip_rates({name: kept for name, (_, kept) in results.items()}, prefix)
