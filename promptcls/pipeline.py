"""The main entry point: the default experiment end to end, as one parent run with a child per family run."""

from __future__ import annotations

from dataclasses import dataclass, field

import mlflow
import pandas as pd
from mlflow.tracking import MlflowClient

from promptcls.config import DEFAULT_DATA, DEFAULT_EXTERNAL, default_experiment, experiment_field
from promptcls.families import FAMILIES, get_family
from promptcls.names import (BEST_MODEL_TAG, CHAMPION_VERSION_TAG, PIPELINE_TAG, champion_uri, experiment_url,
                             model_version_url, run_url)
from promptcls.select import DEFAULT_GATES, SelectArgs, SelectionError, load_gates
from promptcls.select import run as select
from promptcls.tracking import entry_run, log_new_params
from promptcls.train import RANK_METRIC
from promptcls.train import run as train

SUMMARY_METRICS = (RANK_METRIC, "val_recall_c2", "val_false_alarm_rate", "test_custom_score", "latency_p95_ms")


MAIN_JOB = {name: registration.main_job for name, registration in FAMILIES.items()}
"""What the main job trains of each family, besides the common arguments (registered in promptcls/families)."""


@dataclass
class MainArgs:
    """Run the default experiment: every traditional model, one deep-learning model and a short MiniLM fine-tune on
    the bundled corpus, then `select`."""

    data: str = field(default=str(DEFAULT_DATA), metadata={"help": "labelled file: .jsonl, .json or .csv"})
    external: str = field(default=str(DEFAULT_EXTERNAL), metadata={"help": "blind set (all class 2); '' to skip"})
    sample: int = field(default=0, metadata={"help": "class-stratified subsample (0 = all rows)"})
    cv_folds: int = field(default=3, metadata={"help": "CV folds for the traditional grid searches"})
    seed: int = field(default=42, metadata={"help": "seed for splits, sampling and models"})
    experiment: str = experiment_field("experiment when not under `mlflow run`")
    gates: str = field(default=str(DEFAULT_GATES), metadata={"help": "gates YAML for the final `select`"})
    families: str = field(default="traditional,deep_learning,transformers",
                          metadata={"help": "families to train, comma-separated"})
    deep_learning_model: str = field(default="cnn", metadata={"help": "the deep-learning architecture to train"})
    transformer_epochs: int = field(default=1, metadata={"help": "epochs of the MiniLM fine-tune"})

    def __post_init__(self):
        self.experiment = self.experiment or default_experiment()
        unknown = set(self.families.split(",")) - set(FAMILIES)
        if unknown:
            raise ValueError(f"families: unknown {sorted(unknown)}; valid: {', '.join(FAMILIES)}")
        load_gates(self.gates)  # a bad gates file fails now, not after an hour of training


def log_summary(results: list, champion: str | None) -> None:
    """The parent run's own row in the runs list: the candidates table, the champion, the best key metrics."""
    table = pd.DataFrame([{"family": r.family, "model": r.model, "run_id": r.run_id,
                           **{k: r.metrics.get(k) for k in SUMMARY_METRICS}} for r in results])
    mlflow.log_table(table.sort_values(RANK_METRIC, ascending=False), "summary.json")
    best = max(results, key=lambda r: r.metrics[RANK_METRIC])
    mlflow.log_metrics({f"best_{k}": best.metrics[k] for k in SUMMARY_METRICS if k in best.metrics}
                       | {"n_candidates": len(results)})
    mlflow.set_tag(BEST_MODEL_TAG, f"{best.family}/{best.model}")
    if champion:
        mlflow.set_tag(CHAMPION_VERSION_TAG, champion)
        mlflow.log_metric("champion_version", int(champion))


def run(args: MainArgs) -> None:
    common = dict(data=args.data, external=args.external, sample=args.sample, seed=args.seed,
                  experiment=args.experiment)
    # every family's arguments (and so its YAML) are validated before the parent run exists
    plan = [(family, family.args_class(**common, **MAIN_JOB[name](args)))
            for name in args.families.split(",") for family in [get_family(name)]]
    with entry_run(args.experiment, run_name="main") as pipeline:
        mlflow.set_tag(PIPELINE_TAG, "main")
        log_new_params({"sample": args.sample, "seed": args.seed, "cv_folds": args.cv_folds})
        results = []
        for family, family_args in plan:  # lazily: the TF and torch families import their stacks here
            results += train(family, family_args)
        experiment = MlflowClient().get_experiment(pipeline.info.experiment_id)
        selection = SelectArgs(experiment=experiment.name, gates=args.gates)
        try:
            champion = select(selection)
        except SelectionError as exc:
            champion = None
            print(f"no champion promoted: {exc}")
        log_summary(results, champion)
    best = max(results, key=lambda r: r.metrics[RANK_METRIC])
    uri = mlflow.get_tracking_uri()
    print(f"\nMLflow UI: {experiment_url(uri, experiment.experiment_id)}")
    print(f"best run of this job by {RANK_METRIC}: {best.family}/{best.model} "
          f"{RANK_METRIC}={best.metrics[RANK_METRIC]:.4f} test_custom_score={best.metrics['test_custom_score']:.4f}"
          f" -> {run_url(uri, experiment.experiment_id, best.run_id)}")
    if champion:
        name = selection.model_name
        print(f"champion: {champion_uri(name)} (version {champion}); its model card is the version's "
              f"description: {model_version_url(uri, name, champion)}")
