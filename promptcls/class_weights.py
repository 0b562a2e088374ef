"""The one class-weight grammar of every family's `class_weights` (and the transformers `focal_alpha`), and every
family's `source_weights`.

`none` (every class 1), `balanced` (n / (k * count_c), sklearn's formula), or one finite weight > 0 per class of
`promptcls.LABELS`, comma-separated in label order ("1,2,4"). A zero weight would drop a class from the loss
(a model that never learns "malicious" is not what a typo should give), so weights must be > 0.

`source_weights`: `none`; `balanced`: within each class every source of the corpus carries the same total weight,
the class's total unchanged, so a source of 4,000 rows in one style no longer outweighs ten sources of 100; or
`sqrt`, halfway: a source of n rows carries a total weight in proportion to sqrt(n) (4,000 rows weigh as much as
about six sources of 100). Reviewed
feedback rows are left as they are: each still weighs `feedback_weight` times an average row of its class. A trainer
without per-row weights (the transformers family) draws the rows that often instead (`source_repeats`).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from promptcls import LABELS
from promptcls.names import FEEDBACK_SOURCE


def parse_class_weights(spec: str, name: str = "class_weights") -> str | list[float]:
    """`"none"`, `"balanced"` or the explicit weights; a ValueError names the argument and the grammar."""
    if spec in ("none", "balanced"):
        return spec
    try:
        weights = [float(w) for w in spec.strip("[]() ").split(",")]
    except ValueError:
        weights = []
    if len(weights) != len(LABELS) or not all(math.isfinite(w) and w > 0 for w in weights):
        raise ValueError(f"{name} must be none, balanced or {len(LABELS)} comma-separated weights > 0 "
                         f"({', '.join(LABELS)}), e.g. 1,2,4; got {spec!r}")
    return weights


def class_weight_vector(spec: str, labels: np.ndarray, name: str = "class_weights") -> np.ndarray | None:
    """Per-class weights for training labels `labels` (None for `none`); a class absent from `labels` counts once
    for `balanced`, so its weight stays finite."""
    parsed = parse_class_weights(spec, name)
    if parsed == "none":
        return None
    if parsed == "balanced":
        counts = np.bincount(np.asarray(labels), minlength=len(LABELS)).astype(float)
        return len(labels) / (len(LABELS) * np.maximum(counts, 1))
    return np.asarray(parsed, dtype=float)


def sample_weights(spec: str, labels: np.ndarray, name: str = "class_weights") -> np.ndarray | None:
    """Each row's weight: its class's weight (None for `none`)."""
    weights = class_weight_vector(spec, labels, name)
    return None if weights is None else weights[np.asarray(labels)]


SOURCE_WEIGHTS = {"none": 0.0, "sqrt": 0.5, "balanced": 1.0}
"""Each spec's power a: a corpus row of a (class, source) group of n rows weighs n^-a before the class rescale."""


def check_source_weights(spec: str) -> None:
    if spec not in SOURCE_WEIGHTS:
        raise ValueError(f"source_weights must be one of {', '.join(SOURCE_WEIGHTS)}, got {spec!r}")


def source_balanced(weights: np.ndarray | None, train: pd.DataFrame, spec: str) -> np.ndarray | None:
    """The rows' weights (None = all 1) with `source_weights=spec` applied: each corpus row of a (class, source)
    group of n rows is scaled by n^-a (a = 1 for `balanced`, 0.5 for `sqrt`), then the corpus rows of each class are
    rescaled to their former total weight; feedback rows keep theirs."""
    check_source_weights(spec)
    if spec == "none":
        return weights
    labels = train["label"].to_numpy()
    weights = np.ones(len(train)) if weights is None else np.asarray(weights, dtype=float)
    size = train.groupby(["label", "source"])["label"].transform("size").to_numpy()
    corpus = (train["source"] != FEEDBACK_SOURCE).to_numpy()
    balanced = np.where(corpus, weights / size ** SOURCE_WEIGHTS[spec], weights)
    for label in np.unique(labels):
        rows = corpus & (labels == label)
        balanced[rows] *= weights[rows].sum() / balanced[rows].sum()
    return balanced


def source_repeats(train: pd.DataFrame, spec: str, seed: int) -> pd.DataFrame:
    """The training rows as `source_weights=spec` weighs them, for a trainer without per-row weights: a row of weight
    w (`source_balanced`, mean 1 within its class) appears floor(w) or ceil(w) times, the extra one with probability
    w - floor(w) (seeded), so a large source's rows are subsampled without repeats and a small one's repeated evenly."""
    weights = source_balanced(None, train, spec)
    if weights is None:
        return train
    extra = np.random.default_rng(seed).random(len(train)) < weights % 1
    counts = np.floor(weights).astype(int) + extra
    return train.iloc[np.repeat(np.arange(len(train)), counts)].reset_index(drop=True)
