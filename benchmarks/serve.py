"""Serving benchmark (not a test), loopback only, bounded (a request count and a time limit per step; it stops by
itself): single-prompt HTTP latency of `mlflow models serve` vs `promptcls serve`, a load test at concurrency 1, 8
and 32 with malformed (null / non-string text) and oversized (over --max-text-chars) requests mixed in, and
batched throughput. TF-IDF logreg (trained here on a sample) always; MiniLM-ONNX when `--onnx-dir` holds the
classifiers benchmarks/onnx_export.py kept.

    PYTHONPATH=. python benchmarks/serve.py [--sample 8000] [--requests 300] [--onnx-dir /tmp/minilm-onnx]

Targets (issue 15): single-prompt p50 <= 3 ms TF-IDF, <= 6 ms MiniLM-ONNX-int8 on 2 cores; >= 1,000 prompts/s
batched TF-IDF; 0 failed valid requests. The load average is printed: other processes on the cores slow it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import mlflow  # noqa: E402
import pandas as pd  # noqa: E402
import requests  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402

from benchmarks.common import local_server  # noqa: E402
from benchmarks.http_load import load  # noqa: E402
from promptcls.config import DEFAULT_DATA  # noqa: E402
from promptcls.contract import log_model, pip_requirements  # noqa: E402
from promptcls.data import load_dataset, split_dataset, stratified_sample  # noqa: E402
from promptcls.server import free_port  # noqa: E402

MAX_TEXT = 4000


def register(classifier, name: str, requirements: list[str], texts: list[str]) -> str:
    with mlflow.start_run(run_name=name):
        info = log_model(classifier, texts, pip_requirements(*requirements))
    version = mlflow.register_model(info.model_uri, name)
    MlflowClient().set_registered_model_alias(name, "champion", version.version)
    return f"models:/{name}@champion"


def start(cmd: list[str], ready_path: str, port: int) -> subprocess.Popen:
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            if requests.get(f"http://127.0.0.1:{port}{ready_path}", timeout=2).status_code == 200:
                return proc
        except requests.ConnectionError:
            pass
        if proc.poll() is not None:
            break
        time.sleep(0.5)
    proc.kill()
    raise RuntimeError(f"{' '.join(cmd[:6])} did not come up")


def stop(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, 15)
    proc.wait(timeout=30)


def promptcls_serve(uri: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    cmd = [sys.executable, "-m", "promptcls.cli", "serve", "--model-uri", uri, "--port", str(port),
           "--max-text-chars", str(MAX_TEXT)]
    return start(cmd, "/ready", port), f"http://127.0.0.1:{port}"


def mlflow_serve(uri: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    cmd = [sys.executable, "-m", "mlflow", "models", "serve", "-m", uri, "--env-manager", "local", "-h", "127.0.0.1",
           "-p", str(port), "-w", "1"]
    return start(cmd, "/ping", port), f"http://127.0.0.1:{port}"


def bodies(texts: list[str], mixed: bool, batch: int = 1) -> list[tuple[bool, bytes]]:
    """Valid single-prompt (or `batch`-prompt) bodies; `mixed` adds per 20: 2 malformed and 1 oversized."""
    out = [(True, json.dumps({"dataframe_records": [{"text": t} for t in texts[i:i + batch]]}).encode())
           for i in range(0, min(len(texts), 400 * batch), batch)]
    if not mixed:
        return out
    bad = [json.dumps({"dataframe_records": [{"text": None}]}).encode(),
           json.dumps({"inputs": {"text": [7]}}).encode(),
           json.dumps({"inputs": ["x" * (MAX_TEXT + 1)]}).encode()]
    mixed_out = []
    for i, item in enumerate(out):
        mixed_out.append(item)
        if i % 17 in (5, 11, 16):  # 3 bad in every 20 requests
            mixed_out.append((False, bad[(i // 17 + (i % 17)) % 3]))
    return mixed_out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sample", type=int, default=8000, help="rows the TF-IDF model is trained on")
    parser.add_argument("--requests", type=int, default=300, help="requests per measurement (bounded)")
    parser.add_argument("--max-seconds", type=float, default=20.0, help="time limit per measurement")
    parser.add_argument("--onnx-dir", default="", help="benchmarks/onnx_export.py --out folder (MiniLM-ONNX)")
    opts = parser.parse_args()
    from promptcls.families.traditional import SklearnTextClassifier, build_pipeline, load_config

    print(f"uptime load before: {os.getloadavg()}", flush=True)
    frame = stratified_sample(load_dataset(DEFAULT_DATA).frame, opts.sample, 42)
    splits = split_dataset(frame, 0.15, 0.15, 42)
    texts = [t[:MAX_TEXT] for t in splits.val["text"].tolist()]
    config = load_config()
    pipeline = build_pipeline(config["models"]["logreg"], config["features"], seed=0)
    tfidf = SklearnTextClassifier(pipeline.fit(splits.train["text"].tolist(), splits.train["label"].to_numpy()))
    rows = []

    def record(model: str, server: str, what: str, result) -> None:
        rows.append({"model": model, "server": server, "measure": what, **result.summary()})
        print(rows[-1], flush=True)

    from promptcls.contract import PromptClassifierModel
    from promptcls.evaluate import latency_ms

    wrapper = PromptClassifierModel(tfidf)
    p50, p95 = latency_ms(lambda t: wrapper.predict_texts([t]), texts, opts.requests)
    print(f"tfidf-logreg in process (predict_texts, no HTTP): p50 {p50:.2f} ms, p95 {p95:.2f} ms", flush=True)
    with local_server():
        mlflow.set_experiment("bench-serve")
        models = {"tfidf-logreg": register(tfidf, "bench-tfidf", ["scikit-learn"], texts)}
        if opts.onnx_dir:
            from promptcls.families.hf_onnx import REQUIREMENTS, OnnxTextClassifier
            for precision in ("int8", "fp32"):
                classifier = OnnxTextClassifier.load(str(Path(opts.onnx_dir) / f"onnx-{precision}"))
                models[f"minilm-onnx-{precision}"] = register(classifier, f"bench-minilm-{precision}",
                                                              REQUIREMENTS, texts)
        single = bodies(texts, mixed=False)
        for model, uri in models.items():
            for server, launch in (("mlflow models serve", mlflow_serve), ("promptcls serve", promptcls_serve)):
                proc, url = launch(uri)
                try:
                    load(url, single[:20], 1, 20, opts.max_seconds)  # warm-up, not recorded
                    record(model, server, "single prompt, sequential", load(url, single, 1, opts.requests,
                                                                             opts.max_seconds))
                    if server != "promptcls serve" or model == "minilm-onnx-fp32":
                        continue
                    mixed = bodies(texts, mixed=True)
                    for concurrency in (1, 8, 32):
                        record(model, server, f"mixed load, concurrency {concurrency}",
                               load(url, mixed, concurrency, opts.requests, opts.max_seconds))
                    batched = bodies(texts * 4, mixed=False, batch=100)
                    result = load(url, batched, 2, max(opts.requests // 10, 10), opts.max_seconds)
                    record(model, server, "batches of 100, concurrency 2", result)
                    print(f"  batched: {len(result.latencies_ms) * 100 / result.elapsed_s:,.0f} prompts/s",
                          flush=True)
                finally:
                    stop(proc)
    table = pd.DataFrame(rows)
    print(f"\nuptime load after: {os.getloadavg()}\n{table.to_string(index=False)}")
    print(f"\nvalid requests failed: {int(table['errors'].sum())} (target 0)")


if __name__ == "__main__":
    main()
