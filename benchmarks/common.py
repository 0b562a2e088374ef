"""Shared benchmark plumbing: a throw-away local tracking server and latency/throughput timers."""

from __future__ import annotations

import contextlib
import os
import tempfile
import time

import numpy as np

from promptcls import server


@contextlib.contextmanager
def local_server():
    """A real mlflow server in a temp folder for the benchmark's runs; MLFLOW_TRACKING_URI points at it."""
    with tempfile.TemporaryDirectory(prefix="promptcls-bench-") as root:
        srv = server.start(root)
        os.environ["MLFLOW_TRACKING_URI"] = srv.uri
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        try:
            yield srv
        finally:
            server.stop(root)


def single_latency_ms(predict, texts: list[str], repeats: int = 200) -> tuple[float, float]:
    """p50/p95 milliseconds of `predict([text])` over `repeats` calls (after 5 warm-up calls)."""
    for text in texts[:5]:
        predict([text])
    timings = []
    for i in range(repeats):
        start = time.perf_counter()
        predict([texts[i % len(texts)]])
        timings.append((time.perf_counter() - start) * 1000)
    return float(np.percentile(timings, 50)), float(np.percentile(timings, 95))


def throughput(predict, texts: list[str]) -> float:
    """Rows per second of one `predict(texts)` call."""
    start = time.perf_counter()
    predict(texts)
    return len(texts) / (time.perf_counter() - start)
