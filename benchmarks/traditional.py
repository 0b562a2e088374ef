"""Traditional family on the full corpus: training time per model, and the logged pyfunc's single-prompt latency
and batch throughput next to the bare estimator's own predict_proba (same process, same prompts).

    python -m benchmarks.traditional [--models logreg,xgboost] [--sample 0]
"""

from __future__ import annotations

import argparse
import logging

import mlflow
import pandas as pd

from benchmarks.common import local_server, throughput
from promptcls.evaluate import latency_ms
from promptcls.families.traditional import TraditionalArgs, TraditionalFamily
from promptcls.train import run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", default="all", help="comma-separated model names, or all")
    parser.add_argument("--sample", type=int, default=0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    family = TraditionalFamily()
    models = family.model_names() if args.models == "all" else args.models.split(",")
    rows = []
    with local_server():
        for model in models:
            result = run(family, TraditionalArgs(model=model, sample=args.sample, experiment="benchmark"))[0]
            loaded = mlflow.pyfunc.load_model(f"runs:/{result.run_id}/model")
            bare = loaded.unwrap_python_model().classifier.pipeline.predict_proba
            pyfunc = lambda texts: loaded.predict(pd.DataFrame({"text": texts}))  # noqa: E731
            texts = pd.read_json("data/prompts.jsonl", lines=True)["text"].sample(2000, random_state=0).tolist()
            p50, p95 = latency_ms(lambda text: pyfunc([text]), texts, repeats=200)
            bare50, bare95 = latency_ms(lambda text: bare([text]), texts, repeats=200)
            rows.append({"model": model, "train_s (grid search + refit)": result.metrics["train_seconds"],
                         "val_custom_score": result.metrics["val_custom_score"],
                         "test_custom_score": result.metrics["test_custom_score"],
                         "pyfunc p50 ms": p50, "pyfunc p95 ms": p95, "bare p50 ms": bare50, "bare p95 ms": bare95,
                         "p50 ratio": p50 / bare50, "pyfunc rows/s": throughput(pyfunc, texts),
                         "bare rows/s": throughput(bare, texts)})
            print(pd.DataFrame(rows[-1:]).to_string(index=False, float_format="%.3f"), flush=True)
    print("\n" + pd.DataFrame(rows).to_string(index=False, float_format="%.3f"))


if __name__ == "__main__":
    main()
