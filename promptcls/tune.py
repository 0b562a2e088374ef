"""Hyper-parameter search with Optuna: one study, each trial a nested MLflow run, any number of workers.

`mlflow run . -e tune` creates (or joins) the study `study_name` in `storage` and runs trials until the study holds
`n_trials` COMPLETE trials, counted over every worker sharing it (Optuna's `MaxTrialsCallback`: a trial another
worker already started when the n-th completed still finishes, so W workers end with n to n + W - 1). A trial draws
one configuration from the family's `search_space` (`promptcls/conf/<family>.yaml`), trains it on the training
split and returns its `rank_score`: the mean of the validation and the held-out-source (`ood_*`) custom_score, the
rule `select` ranks by (`val_custom_score` when `ood_sources=none`). The splits and OOD rows are the ones the
family's entry point draws with the same arguments (`train.run_splits`), so the retrain command's test split holds
no row a trial was validated on; the test split is never scored here. The worker's own run (the
parent of its trials) logs the study's best value and params, all trials, the optimisation history and the
parameter importances, and the command that trains the best configuration with the family's entry point.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import random
import shlex
import socket
import time
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import mlflow
import optuna
import pandas as pd
import sqlalchemy
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.study import MaxTrialsCallback
from optuna.trial import TrialState

from promptcls.config import (DEFAULT_DATA, UsageError, assignments, default_experiment, defaults, experiment_field,
                              family_config)
from promptcls.data import Splits, load_dataset
from promptcls.families import FAMILIES, get_family
from promptcls.feedback.retrain import load_feedback
from promptcls.ood.scoring import RANK_SCORE, log_ood_rows
from promptcls.names import (BEST_RUN_ID_TAG, BEST_TRIAL_TAG, DATA_DIGEST_TAG, FAMILY_TAG, KIND_TAG, MODEL_TAG,
                             STUDY_TAG, TRIAL_TAG)
from promptcls.tracking import child_run, entry_run, log_new_params
from promptcls.train import RANK_METRIC, fit_validated, log_dataset, run_splits

log = logging.getLogger(__name__)
DISTRIBUTIONS = {"float": FloatDistribution, "int": IntDistribution, "categorical": CategoricalDistribution}
"""search_space `type` -> the Optuna distribution that validates it; a trial draws it with `trial.suggest_<type>`."""
CREATE_ATTEMPTS = 5
OBJECTIVE_ATTR = "objective"
"""Study user attribute naming the metric its trial values are: trials of two objectives are not compared."""


@dataclass
class TuneArgs:
    """Optuna search over a family's search_space; trials are nested runs, workers share a study via `storage`."""

    family: str = field(default="traditional", metadata={"help": f"one of {', '.join(FAMILIES)}"})
    model: str = field(default="logreg", metadata={"help": "model with a search_space in conf/<family>.yaml"})
    n_trials: int = field(default=20, metadata={"help": "COMPLETE trials the study should hold, all workers together"})
    storage: str = field(default="", metadata={"help": "Optuna RDB storage URL shared by the workers, e.g. "
                                                       "postgresql+psycopg://user@host:5432/optuna or "
                                                       "sqlite:///optuna.db; '' = in-memory study, this process only"})
    study_name: str = field(default="", metadata={"help": "study to create or join (default: <family>-<model>)"})
    timeout: float = field(default=0, metadata={"help": "seconds after which this worker starts no new trial (0 = "
                                                        "no limit)"})
    data: str = field(default=str(DEFAULT_DATA), metadata={"help": "labelled file"})
    sample: int = field(default=0, metadata={"help": "class-stratified subsample (0 = all rows)"})
    seed: int = field(default=42, metadata={"help": "seed of the splits, sampling and models (the same in every "
                                                    "trial) and of the sampler"})
    family_args: str = field(default="", metadata={"help": "fixed family arguments, e.g. 'max_epochs=5,policy=none'"})
    experiment: str = experiment_field("experiment when not under `mlflow run`")

    def __post_init__(self):
        self.experiment = self.experiment or default_experiment()
        if self.n_trials < 1:
            raise ValueError(f"n_trials must be >= 1, got {self.n_trials}")
        if self.timeout < 0:
            raise ValueError(f"timeout must be >= 0, got {self.timeout}")
        if self.model == "all":
            raise ValueError("model: tune one model at a time, not all")
        self.family_impl = get_family(self.family)
        extra = assignments(self.family_impl.args_class, self.family_args, "family_args")
        # trials score validation only: no external set, no explanations (those belong to the final training)
        self.train_args = self.family_impl.args_class(model=self.model, data=self.data, external="", seed=self.seed,
                                                      sample=self.sample, experiment=self.experiment,
                                                      **{"explain_samples": 0, **extra})
        self.space = search_space(self.family, self.model)
        for name, (kind, spec) in self.space.items():  # names and values the family accepts, before any trial
            try:
                self.family_impl.tuned_args(self.train_args, {name: first_value(kind, spec)})
            except (ValueError, TypeError) as exc:
                raise UsageError(f"{space_file(self.family)} search_space.{self.model}.{name}: {exc}") from None
        self.study_name = self.study_name or f"{self.family}-{self.model}"
        if self.storage:
            check_storage(self.storage)


def space_file(family: str) -> str:
    return f"promptcls/conf/{family}.yaml"


def search_space(family: str, model: str) -> dict[str, tuple[str, dict]]:
    """The model's search space from the family's YAML (`'*'` covers models without their own entry), each
    entry checked by building its Optuna distribution: name -> (type, keyword arguments of `suggest_<type>`)."""
    spaces = family_config(family).get("search_space") or {}
    space = spaces.get(model, spaces.get("*"))
    if not space:
        raise UsageError(f"model: no search_space for {model!r} in {space_file(family)}; models with one: "
                         f"{', '.join(spaces) or 'none'}")
    checked = {}
    for name, spec in space.items():
        where = f"{space_file(family)} search_space.{model}.{name}"
        spec = dict(spec or {})
        kind = spec.pop("type", None)
        if kind not in DISTRIBUTIONS:
            raise UsageError(f"{where}: type must be one of {', '.join(DISTRIBUTIONS)}, got {kind!r}")
        try:
            DISTRIBUTIONS[kind](**spec)
        except (TypeError, ValueError) as exc:
            raise UsageError(f"{where}: {exc}") from None
        checked[name] = (kind, spec)
    return checked


def first_value(kind: str, spec: dict) -> object:
    return spec["choices"][0] if kind == "categorical" else spec["low"]


def suggest(trial: optuna.Trial, space: dict[str, tuple[str, dict]]) -> dict[str, object]:
    """One configuration drawn by the study's sampler: Optuna's own `trial.suggest_<type>` per entry."""
    return {name: getattr(trial, f"suggest_{kind}")(name, **spec) for name, (kind, spec) in space.items()}


def redact(storage: str) -> str:
    return sqlalchemy.engine.make_url(storage).render_as_string(hide_password=True) if storage else "memory"


def check_storage(storage: str) -> None:
    try:
        sqlalchemy.engine.make_url(storage).get_dialect()
    except (sqlalchemy.exc.SQLAlchemyError, ValueError) as exc:
        raise ValueError(f"storage: not a database URL SQLAlchemy can open ({exc}); e.g. sqlite:///optuna.db or "
                         "postgresql+psycopg://user@host:5432/optuna") from None


def sampler_seed(args: TuneArgs) -> int:
    """A lone in-memory study uses `seed`: the search is reproducible. Workers sharing a storage must not draw the
    same sequence (same seed = same proposals), so each mixes in its host and PID; the value is logged."""
    if not args.storage:
        return args.seed
    return zlib.crc32(f"{args.seed}:{socket.gethostname()}:{os.getpid()}".encode())


def open_study(args: TuneArgs, sampler: optuna.samplers.BaseSampler) -> optuna.Study:
    """Create the study or join it. Workers starting together on an empty database race to create its schema and
    the loser fails: retry a few times after a random pause."""
    for attempt in range(1, CREATE_ATTEMPTS + 1):
        try:
            study = optuna.create_study(storage=args.storage or None, study_name=args.study_name, sampler=sampler,
                                        direction="maximize", load_if_exists=True)
            break
        except sqlalchemy.exc.SQLAlchemyError as exc:
            if attempt == CREATE_ATTEMPTS:
                raise UsageError(f"storage: cannot open {redact(args.storage)}: {exc}") from None
            log.warning("opening study %s in %s failed (%s); retrying", args.study_name, redact(args.storage),
                        str(exc).splitlines()[0])
            time.sleep(attempt * random.uniform(0.5, 1.5))
    if study.direction != optuna.study.StudyDirection.MAXIMIZE:
        raise UsageError(f"study_name: {args.study_name!r} exists in {redact(args.storage)} and minimises; "
                         "promptcls studies maximise val custom_score")
    return study


def complete_trials(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))


def objective_metric(ood: pd.DataFrame | None) -> str:
    """What a trial returns: `rank_score` (what `select` ranks by) when sources are held out, else val custom."""
    return RANK_METRIC if ood is None else RANK_SCORE


def check_objective(study: optuna.Study, metric: str) -> None:
    """Record the study's objective; refuse to add trials of another one (e.g. `ood_sources` changed)."""
    known = study.user_attrs.get(OBJECTIVE_ATTR)
    if known is None:
        study.set_user_attr(OBJECTIVE_ATTR, metric)
    elif known != metric:
        raise UsageError(f"study {study.study_name!r} maximises {known}, this worker's {metric} (ood_sources "
                         f"differ?): use another study_name or the same ood_sources")


def make_objective(args: TuneArgs, splits: Splits, ood: pd.DataFrame | None, data_digest: str):
    def objective(trial: optuna.Trial) -> float:
        params = suggest(trial, args.space)
        trial_args = args.family_impl.tuned_args(args.train_args, params)
        with child_run(run_name=f"trial-{trial.number}") as run:
            trial.set_user_attr("mlflow_run_id", run.info.run_id)
            mlflow.set_tags({KIND_TAG: "tune_trial", STUDY_TAG: args.study_name, TRIAL_TAG: str(trial.number),
                             DATA_DIGEST_TAG: data_digest})
            mlflow.log_params(trial_args.to_params() | params | {"data_digest": data_digest,
                                                                 "trial_number": trial.number})
            fitted = fit_validated(args.family_impl, args.model, splits, trial_args)
            if ood is not None:
                fitted.score_ood(ood)
        return fitted.metrics[objective_metric(ood)]
    return objective


def report_trial(n_trials: int, metric: str):
    def callback(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        best = study.best_trial
        value = float("nan") if trial.value is None else trial.value
        log.info("trial %d %s: %s %.4f in %.1f s %s | best %.4f (trial %d) | %d/%d complete in the study",
                 trial.number, trial.state.name, metric, value, trial.duration.total_seconds(),
                 trial.params, best.value, best.number, len(complete_trials(study)), n_trials)
    return callback


def log_plots(study: optuna.Study, metric: str) -> None:
    """Optimisation history and parameter importances (matplotlib), as artifacts of the active run."""
    from matplotlib import pyplot as plt
    from optuna.visualization.matplotlib import plot_optimization_history, plot_param_importances

    for name, plot in (("optimization_history", plot_optimization_history),
                       ("param_importances", plot_param_importances)):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                figure = plot(study, target_name=metric).figure
        except (ValueError, RuntimeError, ZeroDivisionError) as exc:  # e.g. importances of < 2 distinct trials
            log.warning("no %s plot: %s", name, exc)
            continue
        figure.set_size_inches(8, 5)
        figure.tight_layout()
        mlflow.log_figure(figure, f"tune/{name}.png")
        plt.close(figure)


def retrain_command(args: TuneArgs, params: dict[str, object]) -> str:
    """`mlflow run` of the family's entry point that trains `params` (and the fixed arguments) on all splits."""
    best = dataclasses.asdict(args.family_impl.tuned_args(args.train_args, params))
    default = defaults(args.family_impl.args_class)
    given = {k: v for k, v in best.items()
             if k not in ("external", "experiment", "explain_samples") and v != default.get(k)
             and not (k == "data" and Path(v).resolve() == Path(default["data"]).resolve())}
    options = " ".join(f"-P {k}={shlex.quote(str(v))}" for k, v in {"model": args.model, **given}.items())
    return f"mlflow run . -e {args.family} {options} --env-manager local"


def log_best(study: optuna.Study, args: TuneArgs, metric: str) -> dict | None:
    """The study's best trial so far (all workers) on the active run; None when no trial completed."""
    complete = complete_trials(study)
    mlflow.log_metric("n_trials_complete", len(complete))
    mlflow.log_text(study.trials_dataframe().to_csv(index=False), "tune/trials.csv")
    if not complete:
        log.warning("study %s has no complete trial", args.study_name)
        return None
    best = study.best_trial
    summary = {"study_name": args.study_name, "best_value": best.value, "metric": metric,
               "best_params": best.params, "best_trial": best.number,
               "best_run_id": best.user_attrs.get("mlflow_run_id"), "n_trials_complete": len(complete),
               "retrain": retrain_command(args, best.params)}
    mlflow.log_metric("best_value", best.value)
    mlflow.log_params({f"best_{k}": v for k, v in best.params.items()} | {"best_trial": best.number})
    mlflow.set_tags({BEST_TRIAL_TAG: str(best.number), BEST_RUN_ID_TAG: summary["best_run_id"]})
    mlflow.log_dict(summary, "tune/best_params.json")
    log_plots(study, metric)
    return summary


def run(args: TuneArgs) -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # report_trial prints one line per trial instead
    dataset = load_dataset(args.data)
    splits, ood = run_splits(dataset.frame, args.train_args)
    metric = objective_metric(ood)
    feedback = None
    if args.train_args.feedback:  # family_args feedback=...: trials train on corpus + feedback, score validation
        a = args.train_args
        feedback = load_feedback(a.feedback, splits, a.feedback_holdout, a.feedback_weight, args.seed, ood)
        splits = feedback.training_splits(splits, args.family_impl.supports_sample_weights)
    seed = sampler_seed(args)
    study = open_study(args, optuna.samplers.TPESampler(seed=seed))
    check_objective(study, metric)
    with entry_run(args.experiment, run_name=f"tune-{args.study_name}"):
        mlflow.set_tags({KIND_TAG: "tune", STUDY_TAG: args.study_name, FAMILY_TAG: args.family,
                         MODEL_TAG: args.model})
        log_new_params(dataclasses.asdict(args) | {"storage": redact(args.storage), "sampler_seed": seed,
                                                   "search_space": json.dumps(args.space), "objective": metric})
        log_dataset(dataset, splits)
        log_ood_rows(dataset, ood)
        if feedback is not None:
            feedback.log()
        remaining = args.n_trials - len(complete_trials(study))
        log.info("study %s in %s: %d more complete trial(s) wanted (all workers together), sampler seed %d",
                 args.study_name, redact(args.storage), max(remaining, 0), seed)
        if remaining > 0:
            study.optimize(make_objective(args, splits, ood, dataset.digest), n_trials=remaining,
                           timeout=args.timeout or None,
                           callbacks=[report_trial(args.n_trials, metric),
                                      MaxTrialsCallback(args.n_trials, states=(TrialState.COMPLETE,))])
        summary = log_best(study, args, metric)
    if summary:
        print(f"study {args.study_name}: {summary['n_trials_complete']} complete trials; best {metric} "
              f"{summary['best_value']:.4f} (trial {summary['best_trial']}) with {summary['best_params']}")
        print(f"train it with the family entry point (test scored once there): {summary['retrain']}")
    return study
