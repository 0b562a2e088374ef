"""`promptcls score` on a large prompt log: rows/s of the in-process pandas engine and of the Spark engine (local
mode), each end to end (read parquet -> score -> write parquet); Spark's session start is timed on its own.

    python -m benchmarks.score [--rows 100000] [--model-uri URI] [--spark-master 'local[*]'] [--engines pandas,spark]

Without --model-uri it fits a TF-IDF + logistic regression on the corpus (no grid search) and logs it to a throw-away
local server. The log is the corpus repeated up to --rows, with an `id` column.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import tempfile
import time
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd

from benchmarks.common import local_server
from promptcls.config import DEFAULT_DATA
from promptcls.contract import log_model, pip_requirements
from promptcls.data import load_dataset
from promptcls.families.traditional import SklearnTextClassifier, TraditionalFamily, build_pipeline, load_config
from promptcls.score import score, spark_session


def quick_model(frame: pd.DataFrame) -> str:
    config = load_config()
    pipeline = build_pipeline(config["models"]["logreg"], config["features"], seed=0)
    classifier = SklearnTextClassifier(pipeline.fit(frame["text"].tolist(), frame["label"].to_numpy()))
    mlflow.set_experiment("benchmark-score")
    with mlflow.start_run():
        return log_model(classifier, ["hello"], pip_requirements(*TraditionalFamily().requirements())).model_uri


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--model-uri", help="model to score with (default: a quick logreg on a throw-away server)")
    parser.add_argument("--engines", default="pandas,spark")
    parser.add_argument("--spark-master", default="local[*]")
    parser.add_argument("--batch-size", type=int, default=1024)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    frame = load_dataset(DEFAULT_DATA).frame
    results = []
    with contextlib.ExitStack() as stack:
        model_uri = args.model_uri
        if not model_uri:
            stack.enter_context(local_server())
            model_uri = quick_model(frame)
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="promptcls-bench-score-")))
        texts = np.resize(frame["text"].to_numpy(dtype=object), args.rows)
        logs = tmp / "logs.parquet"
        pd.DataFrame({"id": np.arange(args.rows), "text": texts}).to_parquet(logs, index=False)
        print(f"{args.rows} prompts ({len(frame)} distinct, repeated) in {logs}; model {model_uri}", flush=True)
        for engine in args.engines.split(","):
            startup = 0.0
            if engine == "spark":
                start = time.perf_counter()
                spark_session(args.spark_master, args.batch_size)
                startup = time.perf_counter() - start
            start = time.perf_counter()
            rows = score(str(logs), str(tmp / f"scored-{engine}.parquet"), model_uri, engine,
                         batch_size=args.batch_size, spark_master=args.spark_master)
            seconds = time.perf_counter() - start
            results.append({"engine": engine, "rows": rows, "session start s": startup, "score s": seconds,
                            "rows/s": rows / seconds, "rows/s incl. start": rows / (seconds + startup)})
            print(pd.DataFrame(results[-1:]).to_string(index=False, float_format="%.1f"), flush=True)
    load = os.getloadavg()
    print(f"\n{pd.DataFrame(results).to_string(index=False, float_format='%.1f')}\n"
          f"{os.cpu_count()} CPUs, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


if __name__ == "__main__":
    main()
