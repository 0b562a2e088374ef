"""Read recorded decision traces back as a table, with the latest analyst label of each.

A review label is an MLflow feedback assessment named `label` from a HUMAN source (what `promptcls review import`
writes, and what an analyst adds in the UI's trace view: name `label`, value benign/suspicious/malicious or 0/1/2).
The latest valid one wins; an unparseable value is reported as `review_error`, never read as benign.
"""

from __future__ import annotations

import datetime as dt

import mlflow
import pandas as pd
from mlflow.tracking import MlflowClient

from promptcls import LABELS
from promptcls.config import UsageError
from promptcls.contract import SCORE_COLUMNS
from promptcls.data import _parse_label  # the loader's own label rules
from promptcls.feedback.traces import OPTIONAL_COLUMNS, TRACE_NAME
from promptcls.names import (PROMPT_SHA256_KEY, PROMPT_STORAGE_TAG, RECORDED_BECAUSE_TAG, SAMPLE_WEIGHT_KEY,
                             SHADOW_LABEL_TAG, TRACE_MODEL_VERSION_TAG, VERDICT_TAG)

LABEL_ASSESSMENT = "label"
COLUMNS = ["trace_id", "time", "verdict", "model_label", *SCORE_COLUMNS, *OPTIONAL_COLUMNS, "model_version",
           "recorded_because", "shadow_label", "sample_weight", "prompt_storage", "prompt_sha256", "text",
           "review_label", "reviewer", "reviewed_at", "review_comment", "review_error"]


def experiment_id(name: str) -> str:
    found = MlflowClient().get_experiment_by_name(name)
    if found is None:
        raise UsageError(f"experiment {name!r} not found at {mlflow.get_tracking_uri()}: no decisions recorded yet")
    return found.experiment_id


def _iso(ms: int | None) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).isoformat(timespec="seconds") if ms else ""


def human_label(trace) -> dict[str, object]:
    """review_label (int or None), reviewer, reviewed_at, review_comment, review_error of the latest label."""
    labels = [a for a in trace.info.assessments or []
              if a.name == LABEL_ASSESSMENT and a.valid is not False and a.feedback is not None
              and a.source and a.source.source_type == "HUMAN"]
    if not labels:
        return {"review_label": None, "reviewer": "", "reviewed_at": "", "review_comment": "", "review_error": ""}
    latest = max(labels, key=lambda a: a.last_update_time_ms or a.create_time_ms or 0)
    value = _parse_label(latest.feedback.value)
    return {"review_label": value, "reviewer": latest.source.source_id or "",
            "reviewed_at": _iso(latest.last_update_time_ms or latest.create_time_ms),
            "review_comment": latest.rationale or "",
            "review_error": "" if value is not None else f"label value {latest.feedback.value!r} is not one of "
                                                         f"{', '.join(LABELS)} / 0, 1, 2"}


def decision_row(trace) -> dict[str, object] | None:
    """One table row of a decision trace (None for other traces in the experiment)."""
    tags, meta = trace.info.tags, trace.info.trace_metadata
    if VERDICT_TAG not in tags:
        return None
    span = trace.data.spans[0] if trace.data.spans else None
    inputs, outputs = (span.inputs or {}) if span else {}, (span.outputs or {}) if span else {}
    row = {"trace_id": trace.info.trace_id, "time": _iso(trace.info.request_time), "verdict": tags[VERDICT_TAG],
           "model_label": outputs.get("label"), **{c: outputs.get(c) for c in (*SCORE_COLUMNS, *OPTIONAL_COLUMNS)},
           "model_version": tags.get(TRACE_MODEL_VERSION_TAG, ""),
           "recorded_because": tags.get(RECORDED_BECAUSE_TAG, ""),
           "shadow_label": tags.get(SHADOW_LABEL_TAG, ""),
           "sample_weight": float(meta.get(SAMPLE_WEIGHT_KEY, 1.0)),
           "prompt_storage": tags.get(PROMPT_STORAGE_TAG, ""),
           "prompt_sha256": meta.get(PROMPT_SHA256_KEY, inputs.get("text_sha256", "")),
           "text": inputs.get("text", "")}
    return row | human_label(trace)


def read_decisions(experiment: str, max_results: int | None = None, only_unreviewed: bool = False) -> pd.DataFrame:
    """The decision traces of `experiment`, newest first, as a table with the `COLUMNS` above."""
    traces = mlflow.search_traces(locations=[experiment_id(experiment)], return_type="list", max_results=max_results,
                                  filter_string=f"trace.name = '{TRACE_NAME}'", order_by=["timestamp_ms DESC"])
    rows = [r for r in map(decision_row, traces) if r is not None]
    frame = pd.DataFrame(rows, columns=COLUMNS)
    frame["review_label"] = frame["review_label"].astype("Int64")
    if only_unreviewed:
        frame = frame[frame["review_label"].isna() & (frame["review_error"] == "")]
    return frame.reset_index(drop=True)
