"""Where runs go: the experiment, the run `mlflow run` created, and the provenance every run carries."""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import re
import subprocess

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

import promptcls
from promptcls.config import PROJECT_ROOT
from promptcls.distributed import is_main_process, rank, require_single_process
from promptcls.names import (CODE_VERSION_TAG, HOLDOUT_TAG, MODEL_URI_TAG, RUN_NAME_TAG,  # noqa: F401  (re-exported)
                             experiment_url, run_url)

log = logging.getLogger(__name__)
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"  # the MLflow 3 UI opens such experiments on "Training runs"
WRITE_RACE_ATTEMPTS = 3  # retry_unique_clash: tries when another run writes the same new row at once
GENERATED_RUN_NAME = re.compile(r"^[a-z]+-[a-z]+-\d{1,4}$")  # MLflow's random run names (mlflow.utils.name_utils)


def ensure_experiment(name: str) -> str:
    """Create the experiment if needed and tag it for the training-runs view; returns its id."""
    client = MlflowClient()
    experiment = client.get_experiment_by_name(name)
    experiment_id = experiment.experiment_id if experiment else client.create_experiment(name)
    ensure_experiment_kind(experiment_id)
    return experiment_id


@functools.cache
def code_version() -> str:
    """Package version plus the git commit (with `-dirty` for uncommitted changes) when run from a checkout."""
    try:
        sha = subprocess.run(["git", "-C", str(PROJECT_ROOT), "describe", "--always", "--dirty", "--abbrev=12"],
                             capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        sha = "unknown"
    return f"{promptcls.__version__}+{sha}"


@contextlib.contextmanager
def entry_run(experiment: str, run_name: str, multi_process: bool = False):
    """The run to log into: a child of the active run (the main pipeline), else the run `mlflow run` created
    (MLFLOW_RUN_ID), else a new run in `experiment`.

    An exception inside the block marks the run FAILED, so a failed training never looks like a finished one.
    Under torchrun (WORLD_SIZE > 1) an entry point fails here on every rank, before any run exists, unless it
    declares `multi_process`; then only rank 0 may open the run (the other ranks log nothing).
    """
    if not multi_process:
        require_single_process(f"{run_name!r}")
    elif not is_main_process():
        raise RuntimeError(f"rank {rank()} tried to open an MLflow run: only rank 0 logs")
    top_level = not mlflow.active_run()
    if not top_level:
        run = child_run(run_name)
    elif "MLFLOW_RUN_ID" in os.environ:
        run = mlflow.start_run()
        ensure_experiment_kind(run.info.experiment_id)
        name_generated_run(run, run_name)
    else:
        run = mlflow.start_run(experiment_id=ensure_experiment(experiment), run_name=run_name)
    with run:
        mlflow.set_tags(provenance_tags())
        yield run
    if top_level:
        print_ui_links(run.info.experiment_id, run.info.run_id, run_name)


def print_ui_links(experiment_id: str, run_id: str, run_name: str) -> None:
    """Where a finished top-level run is in the UI, as links that open the training-runs view (names.py). They
    replace MLflow's own, which can open the GenAI overview (`config.run_cli` sets
    MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT; the `mlflow run` process itself still prints its link unless that
    variable is set where `mlflow run` is started)."""
    uri = mlflow.get_tracking_uri()
    if uri.startswith(("http://", "https://")):
        print(f"run {run_name}: {run_url(uri, experiment_id, run_id)}\n"
              f"experiment: {experiment_url(uri, experiment_id)}")


def name_generated_run(run, run_name: str) -> None:
    """`mlflow run` creates the run with a random name ("bald-rat-848") unless given --run-name: name it after the
    entry point (`main`, `select`, `traditional-all`, ...) so the runs list tells the runs apart."""
    if GENERATED_RUN_NAME.match(run.info.run_name or ""):
        mlflow.set_tag(RUN_NAME_TAG, run_name)


def provenance_tags() -> dict[str, str]:
    """Tags every run carries (the seed and data digest are logged with the params and dataset)."""
    return {CODE_VERSION_TAG: code_version()}


def ensure_experiment_kind(experiment_id: str) -> None:
    retry_unique_clash(lambda: MlflowClient().set_experiment_tag(experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND),
                       f"experiment tag {EXPERIMENT_KIND_TAG}")


def log_new_params(params: dict[str, object]) -> None:
    """Log params the active run does not have yet. `mlflow run` already logged the MLproject parameters as
    given ("600.0", "false"), and MLflow refuses to log a key twice with another spelling of the value."""
    run = mlflow.active_run()
    existing = MlflowClient().get_run(run.info.run_id).data.params
    mlflow.log_params({k: v for k, v in params.items() if k not in existing})


def retry_unique_clash(write, what: str):
    """`write()`, once more when the server reports a unique-constraint clash. MLflow's SQL store writes a new
    dataset or experiment tag in two steps (look the row up, insert it when missing): two runs writing the same new
    row at the same moment (tune workers started together) can both miss it, and the later insert fails (SQLite
    "UNIQUE constraint failed", PostgreSQL "violates unique constraint"). The failed request wrote nothing; the retry
    finds the other run's row."""
    for attempt in range(1, WRITE_RACE_ATTEMPTS + 1):
        try:
            return write()
        except MlflowException as exc:
            if attempt == WRITE_RACE_ATTEMPTS or "unique constraint" not in str(exc).lower():
                raise
            log.warning("%s was written by another run at the same moment; writing it again", what)


def log_input(dataset, context: str, tags: dict[str, str]) -> None:
    """`mlflow.log_input` of a dataset that other runs of the experiment may log at the same moment."""
    retry_unique_clash(lambda: mlflow.log_input(dataset, context=context, tags=tags), f"dataset {dataset.name}")


def child_run(run_name: str):
    """A nested run in the active run's experiment (a bare nested start_run would use the default experiment)."""
    return mlflow.start_run(experiment_id=mlflow.active_run().info.experiment_id, run_name=run_name, nested=True)


def final_step() -> int:
    """The active run's highest logged step (0 when it has no curves). Final evaluation metrics are logged at it:
    MLflow reports a metric's value at its highest step, so a restored best model's `val_custom_score` must not sit
    below the last epoch's curve point, or `select` would rank the last epoch instead."""
    client, run_id = MlflowClient(), mlflow.active_run().info.run_id
    keys = client.get_run(run_id).data.metrics
    return max((point.step for key in keys for point in client.get_metric_history(run_id, key)), default=0)


def model_runs(client: MlflowClient, experiment_id: str, where: str = "", order_by: list[str] | None = None):
    """Runs of the experiment that logged a contract model, minus leave-one-source-out diagnostics."""
    query = " and ".join(filter(None, [f"tags.`{MODEL_URI_TAG}` LIKE 'models:/%'", where]))
    runs = client.search_runs([experiment_id], query, order_by=order_by, max_results=5000)
    return [r for r in runs if HOLDOUT_TAG not in r.data.tags]
