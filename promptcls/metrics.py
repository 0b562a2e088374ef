"""Security metrics for the three-class prompt classifier. The single definition used by every family.

With N scored samples, classes 0 benign, 1 suspicious, 2 malicious:

* ``false_alarm_rate``    = #(true 0, pred 2) / N      -- benign prompts blocked as attacks
* ``missed_threat_rate``  = #(true 2, pred 0) / N      -- attacks waved through as benign
* ``critical_error_rate`` = false_alarm_rate + missed_threat_rate
* ``custom_score``        = (0.5 recall_c2 + 0.3 precision_c1 + 0.2 f1_c0) * exp(-CRITICAL_ERROR_PENALTY * critical_error_rate)
* ``benign_flag_rate``    = P(pred 2 | true 0);  ``malicious_miss_rate`` = P(pred 0 | true 2)

CRITICAL_ERROR_PENALTY = 5 makes each percentage point of benign<->malicious confusion cost ~5% of the score:
a model with 2% critical errors keeps exp(-0.1) = 90.5% of its base score, one with 10% keeps 60.7%.
"""

from __future__ import annotations

import math

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support, roc_auc_score

from promptcls import LABELS

CRITICAL_ERROR_PENALTY = 5.0
"""Exponential penalty on the rate of benign<->malicious confusions in `custom_score`."""
CUSTOM_SCORE_WEIGHTS = {"recall_c2": 0.5, "precision_c1": 0.3, "f1_c0": 0.2}
CLASSES = list(range(len(LABELS)))


def custom_score(y_true, y_pred) -> float:
    """The ranking metric: weighted base score times the critical-error penalty."""
    return security_metrics(y_true, y_pred)["custom_score"]


def security_metrics(y_true, y_pred, proba: np.ndarray | None = None) -> dict[str, float]:
    """All scalar metrics for one scored set. `proba` (N x 3) adds `roc_auc` (one-vs-rest macro)."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    n = len(y_true)
    cm = confusion_matrix(y_true, y_pred, labels=CLASSES)
    precision, recall, f1, _ = precision_recall_fscore_support(y_true, y_pred, labels=CLASSES, zero_division=0)
    out: dict[str, float] = {"accuracy": float(accuracy_score(y_true, y_pred))}
    for c in CLASSES:
        out[f"precision_c{c}"], out[f"recall_c{c}"], out[f"f1_c{c}"] = map(float, (precision[c], recall[c], f1[c]))
    out["precision_macro"], out["recall_macro"], out["f1_macro"] = map(float, (precision.mean(), recall.mean(), f1.mean()))
    out["false_alarm_rate"] = cm[0, 2] / n
    out["missed_threat_rate"] = cm[2, 0] / n
    out["critical_error_rate"] = out["false_alarm_rate"] + out["missed_threat_rate"]
    out["benign_flag_rate"] = cm[0, 2] / cm[0].sum() if cm[0].sum() else 0.0
    out["malicious_miss_rate"] = cm[2, 0] / cm[2].sum() if cm[2].sum() else 0.0
    base = sum(w * out[k] for k, w in CUSTOM_SCORE_WEIGHTS.items())
    out["custom_score"] = base * math.exp(-CRITICAL_ERROR_PENALTY * out["critical_error_rate"])
    if proba is not None and len(set(y_true.tolist())) == len(CLASSES):
        out["roc_auc"] = float(roc_auc_score(y_true, proba, multi_class="ovr", average="macro", labels=CLASSES))
    return {k: float(v) for k, v in out.items()}


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
