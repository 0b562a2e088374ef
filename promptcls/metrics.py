"""Security metrics for the three-class prompt classifier. The single definition used by every family.

With N scored samples, classes 0 benign, 1 suspicious, 2 malicious:

* ``false_alarm_rate``    = #(true 0, pred 2) / N      -- benign prompts blocked as attacks
* ``missed_threat_rate``  = #(true 2, pred 0) / N      -- attacks waved through as benign
* ``critical_error_rate`` = false_alarm_rate + missed_threat_rate
* ``custom_score``        = (0.5 recall_c2 + 0.3 precision_c1 + 0.2 f1_c0) * exp(-CRITICAL_ERROR_PENALTY * critical_error_rate)
* ``benign_flag_rate``    = P(pred 2 | true 0);  ``malicious_miss_rate`` = P(pred 0 | true 2)
* ``benign_review_rate``  = P(pred 1 | true 0)     -- benign prompts sent to the analyst queue (suspicious)

CRITICAL_ERROR_PENALTY = 5 makes each percentage point of benign<->malicious confusion cost ~5% of the score:
a model with 2% critical errors keeps exp(-0.1) = 90.5% of its base score, one with 10% keeps 60.7%.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import bootstrap
from sklearn.metrics import confusion_matrix, roc_auc_score

from promptcls import LABELS

CRITICAL_ERROR_PENALTY = 5.0
"""Exponential penalty on the rate of benign<->malicious confusions in `custom_score`."""
CUSTOM_SCORE_WEIGHTS = {"recall_c2": 0.5, "precision_c1": 0.3, "f1_c0": 0.2}
CLASSES = list(range(len(LABELS)))


def custom_score(y_true, y_pred) -> float:
    """The ranking metric: weighted base score times the critical-error penalty."""
    return security_metrics(y_true, y_pred)["custom_score"]


def scores_from_confusion(cm: np.ndarray) -> dict[str, float]:
    """Every label-based metric from a 3x3 confusion matrix (rows true, columns predicted; zero_division=0)."""
    cm = np.asarray(cm, dtype=float)
    n, tp = cm.sum(), np.diag(cm)
    predicted, actual = cm.sum(axis=0), cm.sum(axis=1)
    precision = np.divide(tp, predicted, out=np.zeros(3), where=predicted > 0)
    recall = np.divide(tp, actual, out=np.zeros(3), where=actual > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros(3), where=denom > 0)
    out = {"accuracy": tp.sum() / n if n else 0.0}
    for c in CLASSES:
        out[f"precision_c{c}"], out[f"recall_c{c}"], out[f"f1_c{c}"] = precision[c], recall[c], f1[c]
    out["precision_macro"], out["recall_macro"], out["f1_macro"] = precision.mean(), recall.mean(), f1.mean()
    out["false_alarm_rate"] = cm[0, 2] / n if n else 0.0
    out["missed_threat_rate"] = cm[2, 0] / n if n else 0.0
    out["critical_error_rate"] = out["false_alarm_rate"] + out["missed_threat_rate"]
    out["benign_flag_rate"] = cm[0, 2] / actual[0] if actual[0] else 0.0
    out["malicious_miss_rate"] = cm[2, 0] / actual[2] if actual[2] else 0.0
    out["benign_review_rate"] = cm[0, 1] / actual[0] if actual[0] else 0.0
    base = sum(w * out[k] for k, w in CUSTOM_SCORE_WEIGHTS.items())
    out["custom_score"] = base * math.exp(-CRITICAL_ERROR_PENALTY * out["critical_error_rate"])
    return {k: float(v) for k, v in out.items()}


def security_metrics(y_true, y_pred, proba: np.ndarray | None = None) -> dict[str, float]:
    """All scalar metrics for one scored set. `proba` (N x 3) adds `roc_auc` (one-vs-rest macro)."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    out = scores_from_confusion(confusion(y_true, y_pred))
    if proba is not None and len(set(y_true.tolist())) == len(CLASSES):
        out["roc_auc"] = float(roc_auc_score(y_true, proba, multi_class="ovr", average="macro", labels=CLASSES))
    return out


CI_METRICS = ("custom_score", "recall_c2", "false_alarm_rate")


def bootstrap_ci(y_true, y_pred, names=CI_METRICS, confidence: float = 0.95, n_resamples: int = 1000,
                 seed: int = 0) -> dict[str, float]:
    """Percentile bootstrap confidence intervals (rows resampled in pairs) as `{name}_ci_low` / `{name}_ci_high`."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    out = {}
    for name in names:
        def statistic(t, p, axis=-1, name=name):  # vectorised over resamples: one confusion matrix per row
            codes = 3 * np.atleast_2d(t) + np.atleast_2d(p)
            return np.array([scores_from_confusion(np.bincount(c, minlength=9).reshape(3, 3))[name] for c in codes])
        result = bootstrap((y_true, y_pred), statistic, paired=True, vectorized=True, n_resamples=n_resamples,
                           confidence_level=confidence, method="percentile", random_state=seed)
        out[f"{name}_ci_low"] = float(result.confidence_interval.low)
        out[f"{name}_ci_high"] = float(result.confidence_interval.high)
    return out


def external_metrics(y_pred) -> dict[str, float]:
    """Metrics for a blind set whose rows are all class 2 (malicious).

    Only class-2 recall and F1 mean anything there: with no benign or suspicious rows, precision of class 2 is 1
    whenever anything is flagged, and the other classes' F1 is 0 by construction, so a macro F1 would be capped at
    1/3 and measure the absence of the other classes rather than the model.
    """
    y_pred = np.asarray(y_pred)
    recall = float((y_pred == 2).mean()) if len(y_pred) else 0.0
    precision = 1.0 if recall > 0 else 0.0
    f1 = 2 * precision * recall / (precision + recall) if recall else 0.0
    return {"recall_c2": recall, "f1": f1}


def confusion(y_true, y_pred) -> np.ndarray:
    """3x3 confusion matrix, rows = true class, columns = predicted class."""
    return confusion_matrix(np.asarray(y_true), np.asarray(y_pred), labels=CLASSES)
