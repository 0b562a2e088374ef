"""Record scoring decisions as MLflow traces, off the request path.

`DecisionRecorder.submit` samples (benign at `benign_sample_rate`, by prompt hash; suspicious, malicious and shadow
disagreements always), builds one small record per kept decision and puts it on a bounded queue without waiting:
a full queue drops the decision (`dropped_full`). One background thread writes each record as a one-span trace
(inputs: the prompt as stored; outputs: verdict and scores; duration: the model latency) into the decisions
experiment. While the tracking server fails its health probe, or when writing fails, records are dropped and
counted (`dropped_error`); nothing is raised to the caller. `stats()` gives the counters for `/metrics`.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Sequence

import mlflow
import pandas as pd
from mlflow.tracking import MlflowClient

from promptcls import server
from promptcls.contract import SCORE_COLUMNS
from promptcls.feedback.redact import STORAGE_MODES, sha256, stored_prompt
from promptcls.feedback.settings import load_settings
from promptcls.names import (LATENCY_KEY, PROMPT_CHARS_KEY, PROMPT_SHA256_KEY, PROMPT_STORAGE_TAG,
                             RECORDED_BECAUSE_TAG, RECORDER_TAG, SAMPLE_WEIGHT_KEY, SHADOW_DISAGREEMENT_TAG,
                             SHADOW_LABEL_TAG, TRACE_MODEL_VERSION_TAG, TRACE_NAME, VERDICT_TAG)

log = logging.getLogger(__name__)
OPTIONAL_COLUMNS = ("view", "trigger_start", "trigger_end")  # the contract's span columns, when the model has them
GENAI_KIND = {"mlflow.experimentKind": "genai_development"}  # the UI opens such an experiment on its Traces tab
_EXPORT_LOGGER = "mlflow.tracing.export.mlflow_v3"  # where MLflow reports a trace it could not write


def recorded_because(label_name: str, shadow_disagreement: bool, text_hash: str, rate: float) -> str | None:
    """Why a decision is recorded ('shadow_disagreement', 'suspicious', 'malicious', 'benign_sample'), or None."""
    if shadow_disagreement:
        return "shadow_disagreement"
    if label_name != "benign":  # anything not plainly benign, including an unknown label: fail closed, record it
        return label_name
    return "benign_sample" if int(text_hash[:8], 16) / 0x100000000 < rate else None


def _per_row(value, n: int, name: str) -> list:
    if value is None or isinstance(value, (bool, int, float, str)):
        return [value] * n
    values = list(value)
    if len(values) != n:
        raise ValueError(f"{name}: {len(values)} values for {n} rows")
    return values


class _ExportFailures(logging.Handler):
    """Counts the traces MLflow's exporter reports as not written (it logs instead of raising)."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if "trace" in record.getMessage().lower():
            self.count += 1


class DecisionRecorder:
    """Buffered, sampled decision traces. Thread-safe `submit`; call `close()` at shutdown (or use `with`)."""

    def __init__(self, config: str | None = None, source: str = "server", **overrides):
        """`config`: a YAML file overriding keys of promptcls/conf/feedback.yaml; `overrides`: single keys
        (benign_sample_rate=..., prompt_storage=..., experiment=..., queue_size=...). Traces go where this
        process's MLflow tracking URI points at construction; `source` is tagged (server, score, ...)."""
        self.settings = load_settings("feedback", config, **overrides)
        if self.settings["prompt_storage"] not in STORAGE_MODES:
            raise ValueError(f"prompt_storage must be one of {', '.join(STORAGE_MODES)}, "
                             f"got {self.settings['prompt_storage']!r}")
        if not 0.0 <= self.settings["benign_sample_rate"] <= 1.0:
            raise ValueError(f"benign_sample_rate must be in [0, 1], got {self.settings['benign_sample_rate']}")
        self.tracking_uri = mlflow.get_tracking_uri()
        self.source = source
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, self.settings["queue_size"]))
        self._lock = threading.Lock()
        self._counts = dict.fromkeys(("submitted", "sampled_out", "recorded", "dropped_full", "dropped_error"), 0)
        self._healthy_until = self._down_until = 0.0
        self._experiment_id: str | None = None
        self._failures = _ExportFailures()
        logging.getLogger(_EXPORT_LOGGER).addHandler(self._failures)
        os.environ.setdefault("MLFLOW_ENABLE_ASYNC_TRACE_LOGGING", "false")  # write in our thread, so we can count
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._work, name="promptcls-trace-recorder", daemon=True)
        self._thread.start()

    def _count(self, key: str, n: int = 1) -> None:
        with self._lock:
            self._counts[key] += n

    def stats(self) -> dict[str, int]:
        """submitted, sampled_out, recorded, dropped_full, dropped_error, queued (decisions, since start)."""
        with self._lock:
            return {**self._counts, "queued": self._queue.qsize()}

    def submit(self, texts: Sequence[str], predictions: pd.DataFrame, *, model_version: str = "",
               latency_ms: float | Sequence[float] | None = None,
               shadow_disagreement: bool | Sequence[bool] | None = None,
               shadow_labels: Sequence[str] | None = None) -> int:
        """Queue the decisions worth recording; never blocks, never raises. `predictions` is the contract's output
        for `texts` (label_name, score_*, and view/trigger_start/trigger_end when present); `latency_ms` and
        `shadow_disagreement` are one value for the batch or one per row. `shadow_labels` (one per row): the shadow
        model's label_name, tagged on the trace; a disagreement with it is then a shadow disagreement unless
        `shadow_disagreement` says otherwise. Returns how many were queued."""
        try:
            if shadow_labels is not None:
                shadow_labels = [str(v) for v in shadow_labels]
                if shadow_disagreement is None:
                    shadow_disagreement = [a != b for a, b in zip(predictions["label_name"], shadow_labels)]
            return self._submit(list(texts), predictions, model_version, latency_ms, shadow_disagreement,
                                shadow_labels)
        except Exception as exc:  # noqa: BLE001 - recording must never break a request
            self._count("dropped_error", len(texts))
            log.warning("decision traces not recorded: %s", exc)
            return 0

    def _submit(self, texts, predictions, model_version, latency_ms, shadow_disagreement, shadow_labels) -> int:
        n = len(texts)
        if len(predictions) != n:
            raise ValueError(f"{len(predictions)} predictions for {n} texts")
        latencies, shadows = _per_row(latency_ms, n, "latency_ms"), _per_row(shadow_disagreement, n, "shadow")
        challengers = _per_row(shadow_labels, n, "shadow_labels")
        extra = [c for c in OPTIONAL_COLUMNS if c in predictions.columns]
        rows = predictions[["label", "label_name", *SCORE_COLUMNS, *extra]].to_dict(orient="records")
        queued = 0
        self._count("submitted", n)
        for text, row, latency, shadow, challenger in zip(texts, rows, latencies, shadows, challengers):
            digest = sha256(text)
            why = recorded_because(str(row["label_name"]), bool(shadow), digest, self.settings["benign_sample_rate"])
            if why is None:
                self._count("sampled_out")
                continue
            record = {"text": text, "sha256": digest, "why": why, "row": row, "latency_ms": latency,
                      "model_version": str(model_version), "shadow": bool(shadow), "shadow_label": challenger,
                      "end_ns": time.time_ns()}
            try:
                self._queue.put_nowait(record)
                queued += 1
            except queue.Full:
                self._count("dropped_full")
        return queued

    def _server_up(self) -> bool:
        now = time.monotonic()
        if now < self._healthy_until:
            return True
        if now < self._down_until:
            return False
        up = not self.tracking_uri.startswith("http") or server.healthy(self.tracking_uri)
        ttl = self.settings["health_check_seconds"]
        self._healthy_until, self._down_until = (now + ttl, 0.0) if up else (0.0, now + ttl)
        return up

    def _experiment(self) -> str:
        if self._experiment_id is None:
            client, name = MlflowClient(self.tracking_uri), self.settings["experiment"]
            found = client.get_experiment_by_name(name)
            self._experiment_id = found.experiment_id if found else client.create_experiment(name, tags=GENAI_KIND)
        return self._experiment_id

    def _write(self, record: dict) -> None:
        row, latency = record["row"], record["latency_ms"]
        outputs = {k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()}
        duration_ns = int(float(latency) * 1e6) if latency is not None else 0
        tags = {VERDICT_TAG: str(row["label_name"]), RECORDED_BECAUSE_TAG: record["why"],
                TRACE_MODEL_VERSION_TAG: record["model_version"], RECORDER_TAG: self.source,
                PROMPT_STORAGE_TAG: self.settings["prompt_storage"],
                SHADOW_DISAGREEMENT_TAG: str(record["shadow"]).lower(),
                **({SHADOW_LABEL_TAG: record["shadow_label"]} if record["shadow_label"] else {})}
        weight = 1.0 / self.settings["benign_sample_rate"] if record["why"] == "benign_sample" else 1.0
        metadata = {PROMPT_SHA256_KEY: record["sha256"], PROMPT_CHARS_KEY: str(len(record["text"])),
                    SAMPLE_WEIGHT_KEY: f"{weight:g}",  # decisions this trace stands for (drift monitor)
                    **({LATENCY_KEY: f"{float(latency):.3f}"} if latency is not None else {})}
        before = self._failures.count
        span = mlflow.start_span_no_context(
            TRACE_NAME, span_type="CLASSIFIER", inputs=stored_prompt(record["text"], self.settings["prompt_storage"]),
            attributes={k: str(v) for k, v in outputs.items()}, tags=tags, metadata=metadata,
            experiment_id=self._experiment(), start_time_ns=record["end_ns"] - duration_ns)
        span.set_outputs(outputs)
        span.end(end_time_ns=record["end_ns"])
        mlflow.flush_trace_async_logging()  # a no-op when export is synchronous
        self._count("dropped_error" if self._failures.count > before else "recorded")

    def _work(self) -> None:
        while not (self._stop.is_set() and self._queue.empty()):
            try:
                record = self._queue.get(timeout=0.2)
            except queue.Empty:
                continue
            try:
                if self._server_up():
                    self._write(record)
                else:
                    self._count("dropped_error")
            except Exception as exc:  # noqa: BLE001 - a tracking outage drops traces, it never stops the thread
                self._count("dropped_error")
                self._healthy_until = 0.0  # probe again before the next write
                log.debug("decision trace dropped: %s", exc)
            finally:
                self._queue.task_done()

    def flush(self, timeout: float = 60.0) -> bool:
        """Wait until every queued decision is written or dropped; False when `timeout` passed first."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.05)
        return not self._queue.unfinished_tasks

    def close(self, timeout: float = 60.0) -> dict[str, int]:
        """Write what is queued (up to `timeout`), stop the thread; returns the final `stats()`."""
        self.flush(timeout)
        self._stop.set()
        self._thread.join(timeout=5)
        logging.getLogger(_EXPORT_LOGGER).removeHandler(self._failures)
        return self.stats()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def model_version(model_uri: str) -> str:
    """The registry version behind `models:/name@alias` or `models:/name/N`, else the URI itself."""
    if model_uri.startswith("models:/"):
        name, _, ref = model_uri.removeprefix("models:/").partition("@")
        try:
            if ref:
                return MlflowClient().get_model_version_by_alias(name, ref).version
        except Exception:  # noqa: BLE001 - the version is a label on the trace, not worth failing for
            return model_uri
    return model_uri


def record_scored(texts: pd.Series, scored: pd.DataFrame, model_uri: str, latency_ms: float,
                  config: str | None = None) -> dict[str, int]:
    """Record the decisions of a scored table (`promptcls score --record-traces`), waiting until all are written:
    the queue holds the whole batch (a batch job is not a request). Returns the final stats."""
    queue_size = max(len(scored), load_settings("feedback", config)["queue_size"])
    with DecisionRecorder(config, source="score", queue_size=queue_size) as recorder:
        recorder.submit(texts.fillna("").astype(str).tolist(), scored.reset_index(drop=True),
                        model_version=model_version(model_uri), latency_ms=latency_ms)
    return recorder.stats()
