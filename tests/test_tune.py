"""`mlflow run . -e tune`: two workers on one machine share an Optuna study through a real PostgreSQL storage (as
workers on several machines would) and finish n trials together, each a nested run; the test split is never scored,
and the splits are the ones the family's entry point draws."""

import json
import subprocess

import mlflow
import optuna
import pytest
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from promptcls.data import load_dataset
from promptcls.families import get_family
from promptcls.train import run_splits
from tests.conftest import ROOT, mlflow_run_command
from tests.services import create_database

EXPERIMENT = "test-tune"
N_TRIALS = 6
WORKERS = 2


@pytest.fixture(scope="module")
def shared_study(tracking_server, postgres):
    storage = create_database(postgres, "optuna")
    params = {"family": "traditional", "model": "logreg", "n_trials": N_TRIALS, "storage": storage,
              "study_name": "shared", "sample": 600}
    # the README's first steps: create the experiment and the study once (two `mlflow run`s creating a new experiment
    # at the same moment race, and so do two Optuna workers on an empty database), then start the workers
    MlflowClient().create_experiment(EXPERIMENT)  # as `mlflow experiments create`: untagged, the workers tag it
    optuna.create_study(storage=storage, study_name="shared", direction="maximize", load_if_exists=True)
    cmd, env = mlflow_run_command("tune", EXPERIMENT, params)
    workers = [subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for _ in range(WORKERS)]
    outputs = [w.communicate(timeout=600) for w in workers]
    for worker, (out, err) in zip(workers, outputs):
        if worker.returncode:
            pytest.fail(f"worker failed ({worker.returncode}):\n{out[-3000:]}\n{err[-6000:]}")
    study = optuna.load_study(study_name="shared", storage=storage)
    client = MlflowClient()
    experiment = client.get_experiment_by_name(EXPERIMENT)
    runs = client.search_runs([experiment.experiment_id], "tags.`promptcls.study_name` = 'shared'")
    parents = [r for r in runs if r.data.tags["promptcls.kind"] == "tune"]
    trials = [r for r in runs if r.data.tags["promptcls.kind"] == "tune_trial"]
    return study, parents, trials, [out for out, _ in outputs]


def test_workers_complete_n_trials_together(shared_study):
    study, parents, trials, _ = shared_study
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    # MaxTrialsCallback stops a worker once the study holds n COMPLETE trials; the other worker's trial already
    # running at that moment still completes, so 2 workers end with n or n + 1, never more, and nothing else
    assert N_TRIALS <= len(complete) <= N_TRIALS + WORKERS - 1
    assert len(study.trials) == len(complete)
    numbers = [t.number for t in study.trials]
    assert sorted(numbers) == list(range(len(numbers)))            # unique, no gaps
    assert len(parents) == WORKERS and all(p.info.status == "FINISHED" for p in parents)
    parent_ids = {p.info.run_id for p in parents}
    by_parent = {pid: [t for t in trials if t.data.tags["mlflow.parentRunId"] == pid] for pid in parent_ids}
    assert all(by_parent.values()), "each worker ran at least one trial"
    assert sum(map(len, by_parent.values())) == len(trials)        # every trial run is a child of a worker
    assert sorted(int(t.data.tags["promptcls.trial_number"]) for t in trials) == numbers
    run_ids = {t.info.run_id: t for t in trials}
    for trial in complete:
        run = run_ids[trial.user_attrs["mlflow_run_id"]]
        assert int(run.data.tags["promptcls.trial_number"]) == trial.number
        assert run.data.metrics["rank_score"] == pytest.approx(trial.value)  # what `select` ranks by
        assert json.loads(run.data.params["hp"]) == pytest.approx(trial.params)


def test_trials_score_validation_only_and_carry_provenance(shared_study):
    _, _, trials, _ = shared_study
    for run in trials:
        metrics, params, tags = run.data.metrics, run.data.params, run.data.tags
        assert "val_custom_score" in metrics and "train_seconds" in metrics
        # held-out sources scored, never trained on: the objective weighs them as `select` does
        assert metrics["rank_score"] == pytest.approx((metrics["val_custom_score"] + metrics["ood_custom_score"]) / 2)
        assert metrics["ood_rows"] > 0 and "ood_recall_c2" in metrics
        assert not [k for k in metrics if k.startswith(("test_", "external_", "cv_"))], sorted(metrics)
        assert "promptcls.model_uri" not in tags                   # no model per trial: never a `select` candidate
        assert params["seed"] == "42" and params["C"] == params["hp_C"]
        assert len(tags["promptcls.data_digest"]) == 16 and tags["promptcls.code_version"].startswith("0.")


def test_trials_use_the_entry_points_splits(shared_study):
    """The retrain command's test split holds no row a trial was validated on, and no trial trained on OOD rows:
    tune draws the sample, OOD rows and splits exactly as `mlflow run . -e traditional` with the same arguments."""
    _, parents, _, _ = shared_study
    args = get_family("traditional").args_class(model="logreg", sample=600, external="")
    splits, ood = run_splits(load_dataset(args.data).frame, args)
    for parent in parents:
        params = parent.data.params
        assert params["objective"] == "rank_score"
        assert [int(params[f"n_{s}"]) for s in ("train", "val", "test", "ood")] == \
            [len(splits.train), len(splits.val), len(splits.test), len(ood)]
        logged = {tag.value: i.dataset.digest for i in parent.inputs.dataset_inputs for tag in i.tags
                  if tag.key == "mlflow.data.context"}
        for split, frame in (*splits.items(), ("ood", ood)):
            expected = mlflow.data.from_pandas(frame[["text", "label", "source"]], targets="label").digest
            assert logged[split] == expected, split


def test_parents_hold_the_best(shared_study):
    study, parents, _, outputs = shared_study
    client = MlflowClient()
    trials = {t.number: t for t in study.trials}
    for parent in parents:
        best = trials[int(parent.data.params["best_trial"])]
        assert parent.data.metrics["best_value"] == pytest.approx(best.value)
        assert float(parent.data.params["best_C"]) == pytest.approx(best.params["C"])
        summary = json.loads(mlflow.artifacts.load_text(f"runs:/{parent.info.run_id}/tune/best_params.json"))
        assert summary["best_params"] == pytest.approx(best.params) and summary["best_trial"] == best.number
        artifacts = {a.path for a in client.list_artifacts(parent.info.run_id, "tune")}
        assert {"tune/optimization_history.png", "tune/param_importances.png", "tune/trials.csv"} <= artifacts
    # the worker that read the study last saw every trial: it holds the study's best
    assert max(p.data.metrics["best_value"] for p in parents) == pytest.approx(study.best_value)
    assert any(json.dumps({"C": study.best_params["C"]}) in out and "mlflow run . -e traditional" in out
               for out in outputs)


def test_bad_input_fails_before_any_trial(run_entry_point):
    proc = run_entry_point("tune", "test-tune-bad", check=False, model="gradient_magic")
    assert proc.returncode != 0 and "unknown model 'gradient_magic'" in proc.stderr  # more cases: code/test_search_space
