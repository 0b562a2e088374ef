"""The main entry point: the default experiment end to end, as one parent run with a child per family run, an
ensemble of the best run of each family, then `select`.

Budget (`make run` <= 30 min on 2 cores), in training order: the traditional models of `traditional_models`
(default logreg, trained with evasion and indirect augmentation; linear_svm and naive_bayes add ~3 minutes and ranked
below it, random_forest and xgboost ~10), MiniLM to early stopping (`transformer_evals_per_epoch` evaluations an epoch,
`transformer_patience`) under a wall-clock cap (`transformer_max_minutes`, most of the budget: on 2 cores MiniLM
gains most from each extra minute) and logged as ONNX int8 (`transformer_export_onnx`: evaluation, the ensembles
and serving all run the quantised model), one Keras model, then the voting and stacking ensembles. Every model
serves the threshold policy fitted on validation (`policy`); logreg and MiniLM train with balanced source weights,
their families' default (`source_weights`, promptcls/class_weights.py), and with training injections planted inside
training documents (`traditional_augment`, `transformer_augment`: the corpus' only document injections are OOD).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import mlflow
import pandas as pd
from mlflow.tracking import MlflowClient

from promptcls.config import DEFAULT_DATA, DEFAULT_EXTERNAL, TrainArgs, default_experiment, experiment_field
from promptcls.families import FAMILIES, get_family
from promptcls.names import (BEST_MODEL_TAG, CHAMPION_VERSION_TAG, PIPELINE_TAG, champion_uri, experiment_url,
                             model_version_url, run_url)
from promptcls.ood.scoring import RANK_SCORE
from promptcls.select import DEFAULT_GATES, SelectArgs, SelectionError, load_gates
from promptcls.select import run as select
from promptcls.tracking import entry_run, log_new_params
from promptcls.train import RANK_METRIC
from promptcls.train import run as train

SUMMARY_METRICS = (RANK_SCORE, RANK_METRIC, "ood_custom_score", "ood_recall_c2", "ood_benign_flag_rate",
                   "val_recall_c2", "val_false_alarm_rate", "test_custom_score", "latency_prompt_p95_ms",
                   "latency_p95_ms")


MAIN_JOB = {name: registration.main_job for name, registration in FAMILIES.items()}
"""What the main job trains of each family, besides the common arguments (registered in promptcls/families)."""


@dataclass
class MainArgs:
    """Run the default experiment: the fast traditional models, one deep-learning model and MiniLM to early stopping
    on the bundled corpus, an ensemble of the best of each, then `select`."""

    data: str = field(default=str(DEFAULT_DATA), metadata={"help": "labelled file: .jsonl, .json or .csv"})
    external: str = field(default=str(DEFAULT_EXTERNAL), metadata={"help": "blind set (all class 2); '' to skip"})
    sample: int = field(default=0, metadata={"help": "class-stratified subsample (0 = all rows)"})
    cv_folds: int = field(default=3, metadata={"help": "CV folds for the traditional grid searches"})
    seed: int = field(default=42, metadata={"help": "seed for splits, sampling and models"})
    experiment: str = experiment_field("experiment when not under `mlflow run`")
    gates: str = field(default=str(DEFAULT_GATES), metadata={"help": "gates YAML for the final `select`"})
    families: str = field(default="traditional,transformers,deep_learning", metadata={
        "help": "families to train, comma-separated, in this order. MiniLM before the CNN: after a Keras fit the "
                "process's TensorFlow threads slow torch (a MiniLM step took 0.50-0.57 s after the CNN, 0.33 s "
                "without it)"})
    traditional_models: str = field(default="logreg", metadata={
        "help": "traditional models to train, comma-separated. linear_svm and naive_bayes (rank_score 0.418 and "
                "0.386 against logreg's 0.438, neither an ensemble member) cost ~3 minutes that MiniLM's cap uses "
                "better (README, Main job budget)"})
    traditional_augment: str = field(default="evasion,indirect", metadata={
        "help": "training augmentation of the traditional models (promptcls/text/augment.py): evasion (perturbed "
                "copies of a share of the training rows of every class) and indirect (training injections planted "
                "inside training documents)"})
    transformer_augment: str = field(default="indirect", metadata={
        "help": "MiniLM's training augmentation: indirect (its OOD recall_c2 0.733 -> 0.786; README, Robust input "
                "handling). Not evasion, nor for the CNN: with it their OOD recall_c2 fell (CNN 0.503 -> 0.424, "
                "MiniLM under a 7-minute cap 0.508 -> 0.200)"})
    deep_learning_model: str = field(default="cnn", metadata={"help": "the deep-learning architecture to train"})
    transformer_epochs: int = field(default=3, metadata={"help": "most epochs of the MiniLM fine-tune"})
    transformer_evals_per_epoch: int = field(default=2, metadata={"help": "MiniLM validation evaluations an epoch"})
    transformer_patience: int = field(default=2, metadata={"help": "MiniLM: evaluations without improvement"})
    transformer_max_minutes: float = field(default=12.0, metadata={
        "help": "wall-clock cap on MiniLM training (on 2 cores it ends training at ~1.6 epochs, before early "
                "stopping can)"})
    transformer_max_steps: int = field(default=0, metadata={
        "help": "MiniLM's step budget (0 = none): its learning rate decays to zero there. 1800 steps (1.39 epochs, "
                "inside the cap) ranked 0.519 against 0.546 capped at epoch 1.57 (README, Main job budget)"})
    transformer_freeze_layers: int = field(default=0, metadata={
        "help": "MiniLM: embedding layer and lowest N of its 6 encoder layers kept fixed (faster steps)"})
    transformer_export_onnx: str = field(default="int8", metadata={
        "help": "the MiniLM the job logs: int8 (ONNX, dynamic quantisation: ~2.2x the torch model's throughput on "
                "2 cores, serves without torch), fp32 (ONNX) or none (torch)"})
    policy: str = field(default="threshold", metadata={"help": "decision policy of every model: threshold or none"})
    policy_benign_flag_target: float = field(default=TrainArgs.policy_benign_flag_target, metadata={
        "help": "threshold policy of every model: max validation benign->malicious rate (each run's "
                "evaluation/operating_points.csv and the card show what other targets give on unseen sources)"})
    ood_sources: str = field(default="default", metadata={"help": "held-out OOD sources: default, none or a,b,c"})
    ensemble: bool = field(default=True, metadata={"help": "build voting and stacking ensembles of the best runs"})
    feedback: str = field(default="", metadata={
        "help": "reviewed feedback rows (`promptcls feedback build`) added to the training of every model of the job, "
                "the same rows held out of each (scored as feedback_*, the ensembles too); '' = none"})
    feedback_weight: float = field(default=TrainArgs.feedback_weight, metadata={
        "help": "weight of a feedback training row (each family's feedback_weight)"})
    feedback_holdout: float = field(default=TrainArgs.feedback_holdout, metadata={
        "help": "share of the feedback held out of every model (each family's feedback_holdout)"})

    def __post_init__(self):
        self.experiment = self.experiment or default_experiment()
        unknown = set(self.families.split(",")) - set(FAMILIES)
        if unknown:
            raise ValueError(f"families: unknown {sorted(unknown)}; valid: {', '.join(FAMILIES)}")
        load_gates(self.gates)  # a bad gates file fails now, not after an hour of training
        from promptcls.families.traditional import load_config
        unknown = set(self.traditional_models.split(",")) - set(load_config()["models"])
        if unknown:
            raise ValueError(f"traditional_models: unknown {sorted(unknown)}; valid: "
                             f"{', '.join(load_config()['models'])}")


def log_summary(results: list, champion: str | None) -> None:
    """The parent run's own row in the runs list: the candidates table, the champion, the best key metrics."""
    table = pd.DataFrame([{"family": r.family, "model": r.model, "run_id": r.run_id,
                           **{k: r.metrics.get(k) for k in SUMMARY_METRICS}} for r in results])
    mlflow.log_table(table.sort_values(RANK_SCORE, ascending=False), "summary.json")
    best = max(results, key=rank)
    mlflow.log_metrics({f"best_{k}": best.metrics[k] for k in SUMMARY_METRICS if k in best.metrics}
                       | {"n_candidates": len(results)})
    mlflow.set_tag(BEST_MODEL_TAG, f"{best.family}/{best.model}")
    if champion:
        mlflow.set_tag(CHAMPION_VERSION_TAG, champion)
        mlflow.log_metric("champion_version", int(champion))


def rank(result) -> float:
    return result.metrics.get(RANK_SCORE, result.metrics[RANK_METRIC])


def build_ensembles(results, common: dict, remembered: dict) -> list:
    """Voting and stacking over the best run of each family of this job (when there are two families or more);
    `remembered`: the members' classifier scores from their own runs, so MiniLM is not run twice on each text."""
    from promptcls.families.ensemble import EnsembleArgs, EnsembleFamily

    best = {}  # family -> its best result, families in the order the job trained them
    for result in results:
        if result.family not in best or rank(result) > rank(best[result.family]):
            best[result.family] = result
    if len(best) < 2:
        print(f"no ensemble: it needs runs of two families, this job trained {', '.join(best) or 'none'}")
        return []
    members = ",".join(r.run_id for r in best.values())
    return train(EnsembleFamily(remembered), EnsembleArgs(model="all", members=members, **common))


def run(args: MainArgs) -> None:
    common = dict(data=args.data, external=args.external, sample=args.sample, seed=args.seed,
                  experiment=args.experiment, policy=args.policy,
                  policy_benign_flag_target=args.policy_benign_flag_target, ood_sources=args.ood_sources,
                  feedback=args.feedback, feedback_weight=args.feedback_weight, feedback_holdout=args.feedback_holdout)
    # every family's arguments (and so its YAML) are validated before the parent run exists
    plan = [(family, family.args_class(**common, **MAIN_JOB[name](args)),
             args.traditional_models.split(",") if name == "traditional" else None)
            for name in args.families.split(",") for family in [get_family(name)]]
    with entry_run(args.experiment, run_name="main") as pipeline:
        mlflow.set_tag(PIPELINE_TAG, "main")
        log_new_params({"sample": args.sample, "seed": args.seed, "cv_folds": args.cv_folds, "policy": args.policy,
                        "policy_benign_flag_target": args.policy_benign_flag_target,
                        "ood_sources": args.ood_sources, "traditional_models": args.traditional_models,
                        "feedback": args.feedback})
        results, remembered = [], {}
        for family, family_args, only in plan:  # lazily: the TF and torch families import their stacks here
            results += train(family, family_args, only, remember=remembered if args.ensemble else None)
        if args.ensemble:
            results += build_ensembles(results, common, remembered)
        experiment = MlflowClient().get_experiment(pipeline.info.experiment_id)
        selection = SelectArgs(experiment=experiment.name, gates=args.gates)
        try:
            champion = select(selection)
        except SelectionError as exc:
            champion = None
            print(f"no champion promoted: {exc}")
        log_summary(results, champion)
    best = max(results, key=rank)
    uri = mlflow.get_tracking_uri()
    print(f"\nMLflow UI: {experiment_url(uri, experiment.experiment_id)}")
    print(f"best run of this job by {RANK_SCORE}: {best.family}/{best.model} {RANK_SCORE}={rank(best):.4f} "
          f"(val {best.metrics[RANK_METRIC]:.4f}, ood {best.metrics.get('ood_custom_score', float('nan')):.4f}) "
          f"test_custom_score={best.metrics['test_custom_score']:.4f}"
          f" -> {run_url(uri, experiment.experiment_id, best.run_id)}")
    if champion:
        name = selection.model_name
        print(f"champion: {champion_uri(name)} (version {champion}); its model card is the version's "
              f"description: {model_version_url(uri, name, champion)}")
