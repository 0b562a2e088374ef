"""Shared benchmark plumbing: a throw-away local tracking server and a throughput timer (latency:
`promptcls.evaluate.latency_ms`, the one the runs log)."""

from __future__ import annotations

import contextlib
import os
import tempfile
import time


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


def throughput(predict, texts: list[str]) -> float:
    """Rows per second of one `predict(texts)` call."""
    start = time.perf_counter()
    predict(texts)
    return len(texts) / (time.perf_counter() - start)
