"""Where runs go: the experiment, the run `mlflow run` created, and the provenance every run carries."""

from __future__ import annotations

import contextlib
import os
import subprocess

import mlflow
from mlflow.tracking import MlflowClient

import promptcls
from promptcls.config import PROJECT_ROOT

EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"  # the MLflow 3 UI opens such experiments on "Training runs"


def ensure_experiment(name: str) -> str:
    """Create the experiment if needed and tag it for the training-runs view; returns its id."""
    client = MlflowClient()
    experiment = client.get_experiment_by_name(name)
    experiment_id = experiment.experiment_id if experiment else client.create_experiment(name)
    ensure_experiment_kind(experiment_id)
    return experiment_id


def code_version() -> str:
    """Package version plus the git commit (with `-dirty` for uncommitted changes) when run from a checkout."""
    try:
        sha = subprocess.run(["git", "-C", str(PROJECT_ROOT), "describe", "--always", "--dirty", "--abbrev=12"],
                             capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        sha = "unknown"
    return f"{promptcls.__version__}+{sha}"


@contextlib.contextmanager
def training_run(experiment: str, run_name: str):
    """The run to log into: the one `mlflow run` created (MLFLOW_RUN_ID), else a new run in `experiment`.

    An exception inside the block marks the run FAILED, so a failed training never looks like a finished one.
    """
    if "MLFLOW_RUN_ID" in os.environ:
        run = mlflow.start_run()
        ensure_experiment_kind(run.info.experiment_id)
    else:
        run = mlflow.start_run(experiment_id=ensure_experiment(experiment), run_name=run_name)
    with run:
        mlflow.set_tags({"promptcls.code_version": code_version()})
        yield run


def ensure_experiment_kind(experiment_id: str) -> None:
    MlflowClient().set_experiment_tag(experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
