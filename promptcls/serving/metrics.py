"""Prometheus metrics of `promptcls serve` (prometheus-client, one registry per app), served at GET /metrics."""

from __future__ import annotations

import collections

import pandas as pd
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from promptcls import LABELS
from promptcls.serving.models import Served

LATENCY_BUCKETS = (.0005, .001, .002, .003, .005, .0075, .01, .015, .025, .05, .1, .25, .5, 1, 2.5, 5, 10)
SCORE_BUCKETS = tuple(i / 10 for i in range(1, 11))
ROWS_BUCKETS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000)


class ServingMetrics:
    def __init__(self):
        self.registry = r = CollectorRegistry()
        self.requests = Counter("promptcls_requests", "HTTP requests by route and status", ["route", "status"],
                                registry=r)
        self.latency = Histogram("promptcls_request_seconds", "HTTP request latency by route and status",
                                 ["route", "status"], buckets=LATENCY_BUCKETS, registry=r)
        self.rows = Histogram("promptcls_rows_per_request", "prompts per scored request", buckets=ROWS_BUCKETS,
                              registry=r)
        self.verdicts = Counter("promptcls_predictions", "verdicts served, by label", ["label"], registry=r)
        self.scores = Histogram("promptcls_score", "served class probabilities, by class", ["label"],
                                buckets=SCORE_BUCKETS, registry=r)
        self.model_info = Gauge("promptcls_model_info", "the model being served (value 1)",
                                ["role", "name", "version", "alias", "run_id"], registry=r)
        self.swaps = Counter("promptcls_model_swaps", "hot swaps by role and result (a failure keeps the old model)",
                             ["role", "result"], registry=r)
        self.shadow_requests = Counter("promptcls_shadow_requests",
                                       "requests given to the shadow model: scored, dropped (queue full) or error",
                                       ["result"], registry=r)
        self.shadow_rows = Counter("promptcls_shadow_rows", "shadow-scored prompts: agree or disagree with the "
                                   "served verdict", ["outcome"], registry=r)
        self.shadow_agreement = Gauge("promptcls_shadow_agreement_ratio",
                                      "share of shadow-scored prompts whose verdict matches the served one",
                                      registry=r)
        self.shadow_disagreements = Counter("promptcls_shadow_disagreements",
                                            "disagreements by served label and shadow label",
                                            ["served_label", "shadow_label"], registry=r)
        self._agree = self._disagree = 0
        for label in LABELS:  # every label appears from the start: a dashboard sees 0, not a missing series
            self.verdicts.labels(label)
        for result in ("success", "failure"):
            self.swaps.labels("champion", result)

    def watch_recorder(self, recorder) -> None:
        """Export a `DecisionRecorder`'s counts (promptcls.feedback.traces): decisions recorded as traces, sampled
        out, dropped because its queue was full or the tracking server failed, and the queue's length."""
        self.registry.register(_RecorderCollector(recorder))

    def set_model(self, role: str, served: Served) -> None:
        for labels in [s.labels for s in self.model_info.collect()[0].samples if s.labels.get("role") == role]:
            self.model_info.remove(*(labels[k] for k in ("role", "name", "version", "alias", "run_id")))
        self.model_info.labels(role, served.name, served.version, served.alias, served.run_id).set(1)

    def observe_predictions(self, frame: pd.DataFrame) -> None:
        self.rows.observe(len(frame))
        for name, count in collections.Counter(frame["label_name"].tolist()).items():  # cheaper than value_counts
            self.verdicts.labels(name).inc(count)
        for label in LABELS:
            column = f"score_{label}"
            if column in frame:
                histogram = self.scores.labels(label)
                for value in frame[column].tolist():
                    histogram.observe(value)

    def observe_shadow(self, agree: int, disagree: int) -> None:
        """Called by the one shadow worker thread only (the running totals are not locked)."""
        self.shadow_rows.labels("agree").inc(agree)
        self.shadow_rows.labels("disagree").inc(disagree)
        self._agree, self._disagree = self._agree + agree, self._disagree + disagree
        if self._agree + self._disagree:
            self.shadow_agreement.set(self._agree / (self._agree + self._disagree))


class _RecorderCollector:
    """Reads `recorder.stats()` at scrape time, so the request path never touches these series."""

    def __init__(self, recorder):
        self.recorder = recorder

    def collect(self):
        stats = self.recorder.stats()
        decisions = CounterMetricFamily("promptcls_trace_decisions", "decisions given to the trace recorder, by "
                                        "outcome (recorded, sampled_out, dropped_full, dropped_error)", labels=["outcome"])
        for outcome in ("recorded", "sampled_out", "dropped_full", "dropped_error"):
            decisions.add_metric([outcome], stats.get(outcome, 0))
        yield decisions
        yield GaugeMetricFamily("promptcls_trace_queue", "decisions waiting to be written as traces",
                                value=stats.get("queued", 0))
