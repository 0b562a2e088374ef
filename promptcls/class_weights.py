"""The one class-weight grammar of every family's `class_weights` (and the transformers `focal_alpha`).

`none` (every class 1), `balanced` (n / (k * count_c), sklearn's formula), or one finite weight > 0 per class of
`promptcls.LABELS`, comma-separated in label order ("1,2,4"). A zero weight would drop a class from the loss
(a model that never learns "malicious" is not what a typo should give), so weights must be > 0.
"""

from __future__ import annotations

import math

import numpy as np

from promptcls import LABELS


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
