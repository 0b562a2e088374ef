"""Deep-learning family on the full corpus: seconds per epoch, epochs to early stopping, total training time, peak
memory, the logged pyfunc's single-prompt latency and the test custom_score, one architecture per process.

    python -m benchmarks.deep_learning [--models cnn,lstm] [--sample 0] [--max-length 256] [--tracking-uri URI]

Each architecture trains in its own `python -m entrypoints.deep_learning` process (the same driver `mlflow run`
calls), so its peak RSS is its own. Runs go to a throw-away SQLite store unless --tracking-uri is given. Prints a
table; not a test.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from mlflow.tracking import MlflowClient

ROOT = Path(__file__).resolve().parent.parent
EXPERIMENT = "benchmark-deep-learning"


def train(model: str, args, env: dict) -> tuple[float, float]:
    """Train one architecture in a child process; returns (wall seconds, peak RSS in MiB)."""
    cmd = [sys.executable, "-m", "entrypoints.deep_learning", "--model", model, "--sample", str(args.sample),
           "--max-length", str(args.max_length), "--experiment", EXPERIMENT]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"{model}: training failed with exit code {proc.returncode}")
    return time.perf_counter() - start, usage.ru_maxrss / 1024  # Linux: KiB


def summarize(model: str, wall: float, peak_mib: float) -> dict:
    client = MlflowClient()
    experiment = client.get_experiment_by_name(EXPERIMENT)
    run = client.search_runs([experiment.experiment_id], f"tags.`promptcls.model` = '{model}'",
                             order_by=["attributes.start_time DESC"], max_results=1)[0]
    m = run.data.metrics
    epochs = [p.value for p in client.get_metric_history(run.info.run_id, "epoch_seconds")]
    return {"model": model, "s/epoch (mean)": np.mean(epochs), "s/epoch (max)": np.max(epochs),
            "epochs": int(m["epochs_trained"]), "best epoch": int(m["best_epoch"]) + 1,
            "train s": m["train_seconds"], "process s": wall, "peak RSS MiB": peak_mib,
            "params": int(run.data.params["trainable_params"]),
            "pyfunc p50 ms": m["latency_p50_ms"], "pyfunc p95 ms": m["latency_p95_ms"],
            "val custom_score": m["val_custom_score"], "test custom_score": m["test_custom_score"],
            "test recall c0/c1/c2": "/".join(f"{m[f'test_recall_c{c}']:.2f}" for c in range(3)),
            "run": run.info.run_id}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="cnn,lstm,bilstm,hybrid,transformer")
    parser.add_argument("--sample", type=int, default=0, help="0 = the full corpus")
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--tracking-uri", default=None, help="default: a SQLite store in a temp folder")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="promptcls-bench-dl-") as tmp:
        uri = args.tracking_uri or f"sqlite:///{tmp}/mlflow.db"
        mlflow.set_tracking_uri(uri)
        if not args.tracking_uri:  # keep the throw-away store's artifacts in the temp folder too
            MlflowClient().create_experiment(EXPERIMENT, artifact_location=Path(tmp, "artifacts").as_uri())
        env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}
        rows = []
        for model in args.models.split(","):
            rows.append(summarize(model, *train(model, args, env)))
            print(pd.DataFrame(rows[-1:]).to_string(index=False, float_format="{:.3g}".format), flush=True)
        print(f"\n## deep_learning on {args.sample or 'all'} rows, max_length {args.max_length}, "
              f"{os.cpu_count()} CPUs\n")
        print(pd.DataFrame(rows).drop(columns="run").to_string(index=False, float_format="{:.3g}".format))


if __name__ == "__main__":
    main()
