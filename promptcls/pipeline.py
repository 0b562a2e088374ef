"""The main entry point: the default experiment end to end, as one parent run with a child per family run."""

from __future__ import annotations

from dataclasses import dataclass, field

import mlflow
from mlflow.tracking import MlflowClient

from promptcls.config import DEFAULT_DATA, DEFAULT_EXTERNAL, default_experiment, experiment_field
from promptcls.families import FAMILIES, get_family
from promptcls.names import PIPELINE_TAG
from promptcls.select import DEFAULT_GATES, SelectArgs, SelectionError
from promptcls.select import run as select
from promptcls.tracking import entry_run, log_new_params
from promptcls.train import RANK_METRIC
from promptcls.train import run as train


MAIN_JOB = {  # what the main job trains of each family, besides the common arguments
    "traditional": lambda a: {"model": "all", "cv_folds": a.cv_folds},
    "deep_learning": lambda a: {"model": a.deep_learning_model},
    "transformers": lambda a: {"model": "minilm", "max_epochs": a.transformer_epochs},
}


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


def run(args: MainArgs) -> None:
    common = dict(data=args.data, external=args.external, sample=args.sample, seed=args.seed,
                  experiment=args.experiment)
    with entry_run(args.experiment, run_name="main") as pipeline:
        mlflow.set_tag(PIPELINE_TAG, "main")
        log_new_params({"sample": args.sample, "seed": args.seed, "cv_folds": args.cv_folds})
        results = []
        for name in args.families.split(","):  # lazily: the TF and torch families import their stacks here
            family = get_family(name)
            family_args = family.args_class(**common, **MAIN_JOB[name](args))
            results += train(family, family_args)
        experiment = MlflowClient().get_experiment(pipeline.info.experiment_id)
        selection = SelectArgs(experiment=experiment.name, gates=args.gates)
        try:
            champion = select(selection)
        except SelectionError as exc:
            champion = None
            print(f"no champion promoted: {exc}")
    best = max(results, key=lambda r: r.metrics[RANK_METRIC])
    uri = mlflow.get_tracking_uri()
    print(f"\nMLflow UI: {uri}/#/experiments/{experiment.experiment_id}")
    print(f"best run of this job by {RANK_METRIC}: {best.family}/{best.model} "
          f"{RANK_METRIC}={best.metrics[RANK_METRIC]:.4f} test_custom_score={best.metrics['test_custom_score']:.4f}"
          f" -> {uri}/#/experiments/{experiment.experiment_id}/runs/{best.run_id}")
    if champion:
        name = selection.model_name
        print(f"champion: models:/{name}@champion (version {champion}); its model card is the version's "
              f"description: {uri}/#/models/{name}/versions/{champion}")
