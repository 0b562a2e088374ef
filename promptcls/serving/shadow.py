"""Shadow scoring: a challenger scores the prompts the served model answered, off the caller's path. Requests wait
in a bounded queue for one worker thread; when the queue is full a request is dropped from shadowing (counted),
never delayed. Agreement and per-label disagreement go to the metrics; the newest disagreements are kept in a
ring buffer for review (GET /shadow/disagreements)."""

from __future__ import annotations

import collections
import logging
import queue
import threading
import time

import pandas as pd

from promptcls.serving.metrics import ServingMetrics
from promptcls.serving.models import ModelHolder

log = logging.getLogger(__name__)


class Shadow:
    def __init__(self, holder: ModelHolder, metrics: ServingMetrics, queue_size: int, keep_disagreements: int,
                 recorder=None):
        self.holder, self.metrics, self.recorder = holder, metrics, recorder  # recorder: see promptcls.feedback
        self.queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self.disagreements: collections.deque = collections.deque(maxlen=keep_disagreements)
        self._thread = threading.Thread(target=self._work, name="promptcls-shadow", daemon=True)
        self._stopping = False

    def start(self) -> None:
        self.holder.start()
        self._thread.start()

    def stop(self) -> None:
        self._stopping = True
        self.holder.stop()
        try:
            self.queue.put_nowait(None)
        except queue.Full:
            pass
        self._thread.join(timeout=5)

    def submit(self, texts: list[str], served: pd.DataFrame, served_version: str, latency_ms: float) -> None:
        """Queue a served request for the shadow; with a recorder, its decisions are recorded once the shadow has
        scored them (with the shadow's labels), or at once when the shadow cannot take the request."""
        try:
            self.queue.put_nowait((texts, served, served_version, latency_ms))
        except queue.Full:
            self.metrics.shadow_requests.labels("dropped").inc()
            self._record(texts, served, served_version, latency_ms, None)

    def _record(self, texts, served, served_version, latency_ms, shadow_labels) -> None:
        if self.recorder is not None:
            self.recorder.submit(texts, served, model_version=served_version, latency_ms=latency_ms,
                                 shadow_labels=shadow_labels)

    def _work(self) -> None:
        while not self._stopping:
            item = self.queue.get()
            if item is None:
                return
            texts, served_frame, served_version, latency_ms = item
            served_labels = served_frame["label_name"].tolist()
            shadow = self.holder.current
            try:
                shadow_labels = shadow.predict(texts)["label_name"].tolist()
            except Exception as exc:  # the shadow's failure never reaches a caller
                log.error("shadow model %s v%s failed on a request: %s", shadow.uri, shadow.version, exc)
                self.metrics.shadow_requests.labels("error").inc()
                self._record(texts, served_frame, served_version, latency_ms, None)
                continue
            self._record(texts, served_frame, served_version, latency_ms, shadow_labels)
            self.metrics.shadow_requests.labels("scored").inc()
            disagree = 0
            for text, served, challenger in zip(texts, served_labels, shadow_labels):
                if served != challenger:
                    disagree += 1
                    self.metrics.shadow_disagreements.labels(served, challenger).inc()
                    self.disagreements.append({"time": time.time(), "text": text, "served_label": served,
                                               "served_version": served_version, "shadow_label": challenger,
                                               "shadow_version": shadow.version})
            self.metrics.observe_shadow(len(texts) - disagree, disagree)
