"""`ood_*` metrics of a trained model on the held-out OOD sources, the ranking score, and the per-row predictions
`select`'s paired test compares.

Metrics: every security metric as `ood_<name>` (recall_c2, benign_flag_rate, benign_review_rate, custom_score, ...),
`ood_benign_flag_rate_<genre>` per benign genre of `promptcls/conf/sources.yaml`, and a per-source table
(`evaluation/ood_per_source.csv`). `rank_score` = mean of `val_custom_score` and `ood_custom_score`: the
random-split and the unseen-source quality weigh the same. Under the threshold policy, `evaluation/operating_points.csv`
says what the policy refitted on validation at other benign-flag targets would give on validation and OOD rows.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import mlflow
import numpy as np
import pandas as pd

from promptcls import LABELS
from promptcls.evaluate import PredictFn, log_scored, predict
from promptcls.metrics import security_metrics
from promptcls.ood.sources import genre_of

RANK_SCORE = "rank_score"
RANK_PARTS = ("val_custom_score", "ood_custom_score")
PAIRED_ARTIFACT = "evaluation/paired_predictions.csv"
OPERATING_ARTIFACT = "evaluation/operating_points.csv"
OPERATING_TARGETS = (0.005, 0.01, 0.02, 0.05)
"""Validation benign-flag targets of the operating-point table, besides the run's own `policy_benign_flag_target`."""
OPERATING_METRICS = ("recall_c2", "benign_flag_rate", "benign_review_rate", "custom_score")


def rank_score(metrics: dict[str, float]) -> float | None:
    """The documented ranking rule; None when a part is missing (a run without OOD rows is not ranked by it)."""
    if not all(k in metrics for k in RANK_PARTS):
        return None
    return float(np.mean([metrics[k] for k in RANK_PARTS]))


def per_source(frame: pd.DataFrame, pred: np.ndarray) -> pd.DataFrame:
    """One row per source of `frame` (its genre, class counts, and the rates of its benign and malicious rows):
    `ood_per_source.csv` of every run, `eval_per_source.csv` of `evaluate`."""
    rows = []
    for source, part in frame.assign(pred=pred).groupby("source"):
        benign, malicious = part[part["label"] == 0], part[part["label"] == 2]
        rows.append({"source": source, "genre": genre_of(source), "rows": len(part), "benign": len(benign),
                     "suspicious": int((part["label"] == 1).sum()), "malicious": len(malicious),
                     "benign_flag_rate": (benign["pred"] == 2).mean() if len(benign) else None,
                     "benign_review_rate": (benign["pred"] == 1).mean() if len(benign) else None,
                     "malicious_detection_rate": (malicious["pred"] == 2).mean() if len(malicious) else None})
    return pd.DataFrame(rows)


def genre_flag_rates(frame: pd.DataFrame, pred: np.ndarray) -> dict[str, float]:
    """`ood_benign_flag_rate_<genre>`: P(pred 2 | true 0) over the OOD benign rows of each genre."""
    benign = frame.assign(pred=pred, genre=frame["source"].map(genre_of))[frame["label"] == 0]
    return {f"ood_benign_flag_rate_{genre}": float((part["pred"] == 2).mean())
            for genre, part in benign.groupby("genre")}


def log_ood_evaluation(predict_fn: PredictFn, ood: pd.DataFrame, step: int = 0) -> tuple[dict[str, float], np.ndarray]:
    """Score the OOD rows and log `ood_*`; returns the metrics (prefixed) and the predicted labels."""
    out = predict(predict_fn, ood["text"].tolist())
    pred = out["label"].to_numpy()
    metrics = {f"ood_{k}": v for k, v in log_scored(ood, out, "ood", step=step).items()}
    metrics.update(genre_flag_rates(ood, pred))
    metrics["ood_rows"] = float(len(ood))
    mlflow.log_metrics({k: v for k, v in metrics.items() if k.startswith("ood_benign_flag_rate_")} |
                       {"ood_rows": metrics["ood_rows"]}, step=step)
    table = per_source(ood, pred)
    mlflow.log_text(table.to_csv(index=False), "evaluation/ood_per_source.csv")
    return metrics, pred


def log_operating_points(predict_at: Callable[[float], PredictFn], served_target: float, val: pd.DataFrame,
                         ood: pd.DataFrame) -> pd.DataFrame:
    """The policy's operating curve: for each validation benign-flag target (OPERATING_TARGETS and the served one),
    `predict_at(target)` serves the policy refitted at it, scored on validation and OOD rows (OPERATING_METRICS, and
    the OOD benign flag rate per genre). Logged as OPERATING_ARTIFACT; the card shows it. It informs the choice of
    `policy_benign_flag_target`; nothing selects on it."""
    rows = []
    for target in sorted({*OPERATING_TARGETS, served_target}):
        predict_fn, row = predict_at(target), {"benign_flag_target": target, "served": target == served_target}
        for prefix, frame in (("val", val), ("ood", ood)):
            pred = predict(predict_fn, frame["text"].tolist())["label"].to_numpy()
            metrics = security_metrics(frame["label"].to_numpy(), pred)
            row |= {f"{prefix}_{name}": metrics[name] for name in OPERATING_METRICS}
        rows.append(row | genre_flag_rates(ood, pred))
    table = pd.DataFrame(rows)
    mlflow.log_text(table.to_csv(index=False, float_format="%.4f"), OPERATING_ARTIFACT)
    return table


def row_key(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:16]


def log_paired_predictions(scored: dict[str, tuple[pd.DataFrame, np.ndarray]]) -> None:
    """Per-row labels and predictions of the validation and OOD rows, keyed by a hash of the text, so `select`
    can compare two runs on the rows both were scored on (never test rows)."""
    parts = [pd.DataFrame({"key": frame["text"].map(row_key), "split": split, "label": frame["label"].to_numpy(),
                           "pred": pred}) for split, (frame, pred) in scored.items() if split != "test"]
    mlflow.log_text(pd.concat(parts, ignore_index=True).to_csv(index=False), PAIRED_ARTIFACT)


def log_ood_rows(dataset, ood: pd.DataFrame | None) -> None:
    """Params and dataset input of the OOD rows (`n_ood`, `n_ood_c*`, `ood_sources_used`)."""
    from promptcls.tracking import log_input

    if ood is None:
        mlflow.log_params({"n_ood": 0, "ood_sources_used": ""})
        return
    counts = ood["label"].value_counts().reindex(range(len(LABELS)), fill_value=0)
    mlflow.log_params({"n_ood": len(ood), "ood_sources_used": ",".join(sorted(ood["source"].unique())),
                       **{f"n_ood_c{c}": int(n) for c, n in counts.items()}})
    source = mlflow.data.from_pandas(ood[["text", "label", "source"]], source=str(dataset.path), targets="label",
                                     name=f"{dataset.path.stem}-ood")
    log_input(source, context="ood", tags={"rows": str(len(ood))})
