"""Score a model on a labelled split and log the security metrics, confusion matrix and report to MLflow."""

from __future__ import annotations

import time
from collections.abc import Callable

import mlflow
import numpy as np
import pandas as pd
from sklearn.metrics import classification_report

from promptcls import LABELS
from promptcls.contract import SCORE_COLUMNS
from promptcls.metrics import bootstrap_ci, confusion, external_metrics, security_metrics
from promptcls.plots import confusion_figure
from promptcls.text.settings import robustness


PredictFn = Callable[[pd.DataFrame], pd.DataFrame]
"""A contract predictor: a loaded pyfunc's `predict`, or `PromptClassifierModel.as_predict_fn()` in training."""


def predict(predict_fn: PredictFn, texts: list[str], batch_size: int = 512) -> pd.DataFrame:
    """Contract predictions for `texts`, in batches."""
    parts = [predict_fn(pd.DataFrame({"text": texts[i:i + batch_size]})) for i in range(0, len(texts), batch_size)]
    return pd.concat(parts, ignore_index=True)


def split_metrics(predict_fn: PredictFn, frame: pd.DataFrame) -> dict[str, float]:
    """Security metrics of `predict_fn` on `frame` (text, label), logging nothing."""
    out = predict(predict_fn, frame["text"].tolist())
    return security_metrics(frame["label"].to_numpy(), out["label"].to_numpy(), out[SCORE_COLUMNS].to_numpy())


def log_scored(frame: pd.DataFrame, out: pd.DataFrame, prefix: str, with_ci: bool = False,
               step: int = 0) -> dict[str, float]:
    """Log `{prefix}_*` metrics, confusion matrix (PNG + JSON) and a report for contract predictions `out` of
    `frame`; `with_ci` adds 95% bootstrap intervals (`{prefix}_custom_score_ci_low`, ...)."""
    y_true, y_pred = frame["label"].to_numpy(), out["label"].to_numpy()
    metrics = security_metrics(y_true, y_pred, out[SCORE_COLUMNS].to_numpy())
    if with_ci:
        metrics.update(bootstrap_ci(y_true, y_pred))
    mlflow.log_metrics({f"{prefix}_{k}": v for k, v in metrics.items()}, step=step)
    cm = confusion(y_true, y_pred)
    mlflow.log_figure(confusion_figure(cm, f"{prefix}: confusion matrix (n={len(frame)})"),
                      f"evaluation/{prefix}_confusion_matrix.png")
    mlflow.log_dict({"labels": list(LABELS), "rows_true_cols_pred": cm.tolist()},
                    f"evaluation/{prefix}_confusion_matrix.json")
    mlflow.log_text(classification_report(y_true, y_pred, labels=[0, 1, 2], target_names=list(LABELS),
                                          digits=4, zero_division=0),
                    f"evaluation/{prefix}_classification_report.txt")
    return metrics


def log_external_evaluation(predict_fn: PredictFn, frame: pd.DataFrame) -> dict[str, float]:
    """Score the blind external set (all class 2): logs `external_recall_c2` and `f1_external`."""
    if (frame["label"] != 2).any():
        raise ValueError("the external set must contain class 2 (malicious) rows only")
    scores = external_metrics(predict(predict_fn, frame["text"].tolist())["label"].to_numpy())
    metrics = {"external_recall_c2": scores["recall_c2"], "f1_external": scores["f1"]}
    mlflow.log_metrics(metrics)
    return metrics


def latency_ms(predict_one: Callable[[str], object], texts: list[str], repeats: int = 100) -> tuple[float, float]:
    """p50/p95 milliseconds of `predict_one(text)` over `repeats` calls, after 5 untimed warm-up calls."""
    for i in range(5):
        predict_one(texts[i % len(texts)])
    timings = []
    for i in range(repeats):
        start = time.perf_counter()
        predict_one(texts[i % len(texts)])
        timings.append((time.perf_counter() - start) * 1000)
    return float(np.percentile(timings, 50)), float(np.percentile(timings, 95))


def ordinary_prompts(texts: list[str]) -> list[str]:
    """The texts a model scores whole: shorter than the contract's default window (`windows.default_chars` in
    `conf/robustness.yaml`, 300), i.e. a chat prompt rather than a document the contract cuts into windows."""
    size = robustness()["windows"]["default_chars"]
    return [text for text in texts if len(text) < size]


def log_latency(model_uri: str, texts: list[str], repeats: int = 100) -> dict[str, float]:
    """Single-prompt latency of the *logged* pyfunc, loaded back from `model_uri`, as p50/p95 in ms: over `texts` as
    they come (`latency_p50_ms`, `latency_p95_ms`: documents included, which a model reads in windows) and over the
    ordinary prompts among them (`latency_prompt_p50_ms`, `latency_prompt_p95_ms`: what a gateway pays per chat
    prompt). Two figures because one mixed percentile is neither: on validation, about one text in eight is a
    document, so the mixed p95 lands on a document."""
    model = mlflow.pyfunc.load_model(model_uri)

    def one(text: str) -> object:
        return model.predict(pd.DataFrame({"text": [text]}))

    metrics = dict(zip(("latency_p50_ms", "latency_p95_ms"), latency_ms(one, texts, repeats)))
    ordinary = ordinary_prompts(texts)
    if ordinary:
        metrics |= dict(zip(("latency_prompt_p50_ms", "latency_prompt_p95_ms"), latency_ms(one, ordinary, repeats)))
    mlflow.log_metrics(metrics)
    return metrics
