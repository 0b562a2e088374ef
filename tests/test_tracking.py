"""Tracking helpers against the real test server: runs that start together in a new experiment (tune workers) tag
the experiment and log the same new dataset at the same moment. Each write succeeds for every run, where MLflow's
plain calls lose the race on the experiment-tag and dataset tables for some of them."""

import threading
import uuid

import mlflow
import pandas as pd
from mlflow.tracking import MlflowClient

from promptcls.tracking import EXPERIMENT_KIND, EXPERIMENT_KIND_TAG, ensure_experiment_kind, log_input

RUNS = 6  # runs racing in each round
ROUNDS = 8  # without the retries, 4 rounds in 10 (dataset) and 3 in 20 (tag) lost a run on this machine


def test_runs_writing_the_same_new_rows_at_once_all_succeed(tracking_server):
    client = MlflowClient()
    frame = pd.DataFrame({"text": [f"prompt {i}" for i in range(30)], "label": [i % 3 for i in range(30)]})
    for _ in range(ROUNDS):
        experiment_id = client.create_experiment(f"test-dataset-race-{uuid.uuid4().hex[:8]}")
        run_ids = [client.create_run(experiment_id).info.run_id for _ in range(RUNS)]
        start, errors = threading.Barrier(RUNS), []

        def log(run_id):
            dataset = mlflow.data.from_pandas(frame, source="prompts.jsonl", targets="label", name="prompts-val")
            start.wait()
            try:
                ensure_experiment_kind(experiment_id)
                with mlflow.start_run(run_id=run_id):
                    log_input(dataset, context="val", tags={"rows": str(len(frame))})
            except Exception as exc:  # noqa: BLE001 - reported by the assertion below
                errors.append(f"{type(exc).__name__}: {str(exc)[:300]}")

        threads = [threading.Thread(target=log, args=(run_id,)) for run_id in run_ids]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert not errors, errors
        assert client.get_experiment(experiment_id).tags[EXPERIMENT_KIND_TAG] == EXPERIMENT_KIND
        inputs = [client.get_run(run_id).inputs.dataset_inputs for run_id in run_ids]
        assert all(len(found) == 1 and found[0].dataset.name == "prompts-val" for found in inputs)
        assert len({found[0].dataset.digest for found in inputs}) == 1


def test_server_start_refuses_a_port_another_server_holds(tracking_server, tmp_path):
    """A second root on the port of a running server: refused, not 'started' on the other server's /health (a fresh
    clone's `make run` once logged into a stale server whose database had been deleted)."""
    import subprocess
    import sys

    from promptcls import server

    proc = subprocess.run([sys.executable, "-m", "promptcls.cli", "server", "start", "--root", str(tmp_path),
                           "--port", str(tracking_server.port)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and f"port {tracking_server.port} on 127.0.0.1 is already in use" in proc.stderr
    assert server.running(tmp_path) is None and not proc.stdout
