"""The one training driver every family goes through.

load + validate data -> group-aware split -> MLflow run (the one `mlflow run` created, or a new one) ->
family.train(model) -> evaluate val / test / external through the contract wrapper -> log the pyfunc ->
measure the logged model's latency. `model=all` runs each model of the family as a nested child run.
"""

from __future__ import annotations

import logging
import os
import sys
import time
import warnings

import mlflow
import pandas as pd

from promptcls import LABELS
from promptcls.config import TrainArgs
from promptcls.contract import PromptClassifierModel, log_model, pip_requirements
from promptcls.data import DataError, Dataset, Splits, load_dataset, split_dataset, stratified_sample
from promptcls.evaluate import log_external_evaluation, log_latency, log_split_evaluation
from promptcls.families.base import Family
from promptcls.tracking import training_run

log = logging.getLogger(__name__)
RANK_METRIC = "val_custom_score"


def log_dataset(dataset: Dataset, splits: Splits) -> None:
    """Dataset inputs (one per split, with per-class row counts) plus digest and counts as params."""
    params = {"data_path": str(dataset.path), "data_digest": dataset.digest,
              "data_exact_duplicates_dropped": dataset.n_exact_duplicates}
    for split, frame in splits.items():
        counts = frame["label"].value_counts().reindex(range(len(LABELS)), fill_value=0)
        tags = {"rows": str(len(frame)), **{f"rows_{LABELS[c]}": str(n) for c, n in counts.items()}}
        with warnings.catch_warnings():  # a local path "can be interpreted" as two equivalent source types
            warnings.filterwarnings("ignore", message="The specified dataset source can be interpreted")
            source = mlflow.data.from_pandas(frame[["text", "label", "source"]], source=str(dataset.path),
                                             targets="label", name=f"{dataset.path.stem}-{split}")
        mlflow.log_input(source, context=split, tags=tags)
        params[f"n_{split}"] = len(frame)
        params.update({f"n_{split}_c{c}": int(n) for c, n in counts.items()})
    mlflow.log_params(params)
    mlflow.set_tag("promptcls.data_digest", dataset.digest)


def train_one(family: Family, model_name: str, splits: Splits, external: pd.DataFrame | None,
              args: TrainArgs) -> dict[str, float]:
    """Train, evaluate and log one model into the active run; returns its metrics."""
    mlflow.set_tags({"promptcls.family": family.name, "promptcls.model": model_name})
    log.info("training %s/%s on %d rows", family.name, model_name, len(splits.train))
    start = time.perf_counter()
    classifier = family.train(model_name, splits, args)
    metrics = {"train_seconds": time.perf_counter() - start}
    mlflow.log_metric("train_seconds", metrics["train_seconds"])
    predict_fn = PromptClassifierModel(classifier).as_predict_fn()
    step = getattr(classifier, "evaluation_step", 0)  # after any per-epoch points of the same metric names
    for prefix, frame in (("val", splits.val), ("test", splits.test)):
        metrics.update({f"{prefix}_{k}": v
                        for k, v in log_split_evaluation(predict_fn, frame, prefix, step).items()})
    if external is not None:
        metrics.update(log_external_evaluation(predict_fn, external))
    info = log_model(classifier, splits.val["text"].tolist(), pip_requirements(*family.requirements()))
    metrics.update(log_latency(info.model_uri, splits.val["text"].tolist()))
    log.info("%s/%s: val custom_score %.4f, test custom_score %.4f, p50 %.1f ms — model %s", family.name,
             model_name, metrics["val_custom_score"], metrics["test_custom_score"], metrics["latency_p50_ms"],
             info.model_uri)
    return metrics


def run(family: Family, args: TrainArgs) -> str:
    """Run one training entry point; returns the (parent) run id."""
    dataset = load_dataset(args.data)
    frame = stratified_sample(dataset.frame, args.sample, args.seed)
    splits = split_dataset(frame, args.val_size, args.test_size, args.seed)
    external = load_dataset(args.external).frame if args.external else None
    models = family.model_names() if args.model == "all" else [args.model]
    with training_run(args.experiment, run_name=f"{family.name}-{args.model}") as parent:
        mlflow.log_params(args.to_params())
        log_dataset(dataset, splits)
        if args.model != "all":
            train_one(family, args.model, splits, external, args)
            return parent.info.run_id
        mlflow.set_tags({"promptcls.family": family.name, "promptcls.model": "all"})
        results = {}
        for name in models:
            with mlflow.start_run(run_name=f"{family.name}-{name}", nested=True):
                mlflow.log_params(args.to_params() | {"model": name})
                log_dataset(dataset, splits)
                results[name] = train_one(family, name, splits, external, args)
        table = pd.DataFrame(results).T.sort_values(RANK_METRIC, ascending=False)
        mlflow.log_table(table.reset_index(names="model"), "summary.json")
        best = table.index[0]
        mlflow.set_tag("promptcls.best_model", best)
        mlflow.log_metric(f"best_{RANK_METRIC}", float(table.loc[best, RANK_METRIC]))
        log.info("summary (by %s):\n%s", RANK_METRIC,
                 table[[RANK_METRIC, "test_custom_score", "train_seconds", "latency_p50_ms"]].to_string())
        return parent.info.run_id


def main(family: Family, args: TrainArgs) -> None:
    """Entry-point wrapper: progress on stderr, bad input as a one-line error and exit code 2."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # one bar per latency load is noise
    try:
        run_id = run(family, args)
    except DataError as exc:
        log.error("bad input: %s", exc)
        sys.exit(2)
    print(f"run {run_id} finished; tracking URI {mlflow.get_tracking_uri()}")
