"""Shared fixtures: an isolated HOME/TMPDIR and a real `mlflow server` (SQLite + local artifacts) on a free
loopback port for the whole session, stopped by its PID at the end."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest

from promptcls import server
from promptcls.config import DEFAULT_DATA
from promptcls.data import load_dataset, stratified_sample
from promptcls.families.traditional import SklearnTextClassifier, build_pipeline, load_config

ROOT = Path(__file__).resolve().parent.parent


# The longest test files, longest first (CI's --durations, 2026-12-07): pytest-xdist's `--dist loadfile` hands files
# to its two workers in collection order, so a long file collected last ran alone for minutes at the end.
SLOW_FIRST = ("test_transformers", "test_deep_learning", "test_select", "test_traditional", "test_ensemble",
              "test_main", "test_notebook", "test_feedback_loop", "test_team_server", "test_score",
              "test_source_holdout")


def pytest_collection_modifyitems(items):
    order = {name: i for i, name in enumerate(SLOW_FIRST)}
    items.sort(key=lambda item: order.get(item.path.stem, len(order)))  # stable: a file's own order is kept


@pytest.fixture(scope="session", autouse=True)
def isolated_home(tmp_path_factory):
    """Libraries write under $HOME (~/.keras, ~/.cache, ~/.config/mlflow): keep that inside the test temp dir."""
    home = tmp_path_factory.mktemp("home")
    saved = {k: os.environ.get(k) for k in ("HOME", "MPLCONFIGDIR", "KERAS_HOME", "HF_HOME")}
    os.environ.update(HOME=str(home), MPLCONFIGDIR=str(home / "mpl"), KERAS_HOME=str(home / "keras"),
                      HF_HOME=str(home / "hf"), MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR="false",
                      TF_CPP_MIN_LOG_LEVEL="2")
    yield home
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def tracking_server(tmp_path_factory):
    """A real tracking server for the session; MLFLOW_TRACKING_URI points at it."""
    root = tmp_path_factory.mktemp("mlflow-server")
    srv = server.start(root)
    os.environ["MLFLOW_TRACKING_URI"] = srv.uri
    mlflow.set_tracking_uri(srv.uri)
    yield srv
    assert server.stop(root), "the tracking server was not running at the end of the session"


@pytest.fixture(scope="session")
def postgres():
    """A throw-away PostgreSQL cluster for the session (started on first use); yields its URL prefix."""
    from tests.services import postgres_cluster

    with postgres_cluster() as prefix:
        yield prefix


def mlflow_run_command(entry_point: str, experiment: str, params: dict[str, object],
                       env: dict[str, str] | None = None) -> tuple[list[str], dict]:
    """The command line and environment of `mlflow run . -e ENTRY --env-manager local` against the test server
    (or the MLFLOW_TRACKING_URI in `env`)."""
    cmd = [sys.executable, "-m", "mlflow", "run", str(ROOT), "-e", entry_point, "--env-manager", "local",
           "--experiment-name", experiment]
    for key, value in params.items():
        cmd += ["-P", f"{key}={value}"]
    # the entry point's `python` must be this interpreter, whatever PATH the tests were started with
    # --experiment-name names the experiment: an inherited MLFLOW_EXPERIMENT_ID would clash with it
    inherited = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_EXPERIMENT_ID", "MLFLOW_RUN_ID")}
    env = {**inherited, **(env or {}), "PYTHONPATH": str(ROOT),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    return cmd, env


def mlflow_run(entry_point: str, experiment: str, params: dict[str, object], timeout: int = 900,
               env: dict[str, str] | None = None):
    """`mlflow run . -e ENTRY --env-manager local`; returns the CompletedProcess."""
    cmd, env = mlflow_run_command(entry_point, experiment, params, env)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)


@pytest.fixture(scope="session")
def run_entry_point(tracking_server):
    """Callable running an entry point through `mlflow run`; fails the test with the output if it fails."""

    def _run(entry_point: str, run_experiment: str, /, check: bool = True, env: dict[str, str] | None = None,
             **params):
        proc = mlflow_run(entry_point, run_experiment, params, env=env)
        if check and proc.returncode != 0:
            pytest.fail(f"mlflow run -e {entry_point} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n"
                        f"{proc.stderr[-6000:]}")
        return proc

    return _run


@pytest.fixture(scope="session")
def small_classifier():
    """A real (small) TF-IDF + logistic regression on 400 corpus rows, for tests that need a model, not a training."""
    frame = stratified_sample(load_dataset(DEFAULT_DATA).frame, 400, seed=0)
    config = load_config()
    pipeline = build_pipeline(config["models"]["logreg"], config["features"], seed=0)
    return SklearnTextClassifier(pipeline.fit(frame["text"].tolist(), frame["label"].to_numpy()))
