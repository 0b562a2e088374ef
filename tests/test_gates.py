"""The gates file is validated before anything runs; an optional gate that checked nothing is reported loudly;
runs created by `mlflow run` get the entry point's name (real server, real `mlflow run`)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from mlflow.tracking import MlflowClient

from promptcls.names import RUN_NAME_TAG, UNCHECKED_GATES_TAG
from promptcls.ood.scoring import RANK_SCORE
from promptcls.select import SelectArgs, SelectionError
from tests.conftest import ROOT
from tests.test_select import classifier, make_run  # noqa: F401  (fixtures)

GATES = "metric: val_custom_score\nregistered_model: {name}\n"


@pytest.mark.parametrize("body, where", [
    ("gate:\n  - {metric: val_recall_c2, min: 0.85}\n", r"gates: Field required; gate: unknown key \(misspelt\?\)"),
    ("gates: []\n", r"gates: List should have at least 1 item"),
    ("gates:\n  - {metric: val_recall_c2}\n", r"gates\.0: .*neither min nor max"),
    ("gates:\n  - {metric: val_recall_c2, minimum: 0.85}\n", r"gates\.0\.minimum: unknown key"),
    ("gates:\n  - {metric: val_recall_c2, min: 0.9, max: 0.5}\n", r"gates\.0: .*min 0.9 > max 0.5"),
    ("gates:\n  - {metric: val_recall_c2, min: 0.9}\n  - {metric: val_recall_c2, max: 0.99}\n", "more than once"),
    ("gates:\n  - {metric: val_recall_c2, min: high}\n", r"gates\.0\.min: Input should be a valid number"),
    ("gates:\n  - {metric: val_recall_c2, min: 0.9, required: maybe}\n", r"gates\.0\.required"),
])
def test_bad_gates_file_is_refused_naming_file_and_key(tmp_path, body, where):
    path = tmp_path / "gates.yaml"
    path.write_text(GATES.format(name="x") + body)
    with pytest.raises(SelectionError, match=rf"{path}: .*{where}"):
        SelectArgs(gates=str(path))


def test_packaged_gates_file_is_valid():
    args = SelectArgs()
    assert args.metric == RANK_SCORE and args.model_name == "promptcls"
    assert {g.metric for g in args.gate_list} >= {"val_recall_c2", "val_false_alarm_rate"}


def test_bad_gates_fail_before_any_run_or_registration(make_run, tmp_path):
    exp, name = "gates-bad", "pc-gates-bad"
    make_run(exp, "passing")
    path = tmp_path / "gates.yaml"
    path.write_text(GATES.format(name=name) + "gate:\n  - {metric: val_false_alarm_rate, max: 0.0}\n")
    proc = subprocess.run([sys.executable, "-m", "entrypoints.select", "--experiment", exp, "--gates", str(path)],
                          capture_output=True, text=True, timeout=120, cwd=ROOT, env={**os.environ,
                                                                                     "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 2 and f"{path}: gates: Field required; gate: unknown key" in proc.stderr
    client = MlflowClient()
    runs = client.search_runs([client.get_experiment_by_name(exp).experiment_id])
    assert [r.info.run_name for r in runs] == ["passing"]  # no select run was created
    assert client.search_registered_models(f"name = '{name}'") == []


def test_optional_gate_nobody_logged_is_warned_and_tagged(make_run, run_entry_point, tmp_path, tracking_server):
    exp, name = "gates-optional", "pc-gates-optional"
    winner = make_run(exp, "passing")
    path = tmp_path / "gates.yaml"
    path.write_text(GATES.format(name=name) + "gates:\n  - {metric: val_recall_c2, min: 0.5}\n"
                    "  - {metric: cv_custom_score_stdd, max: 0.05, required: false}\n")  # misspelt metric
    proc = run_entry_point("select", exp, experiment=exp, gates=str(path))
    assert ("WARNING: optional gate cv_custom_score_stdd <= 0.05 (optional) checked nothing: none of the 1 "
            "candidates logged 'cv_custom_score_stdd'") in proc.stdout
    client = MlflowClient()
    assert client.get_model_version_by_alias(name, "champion").run_id == winner
    (select_run,) = [r for r in client.search_runs([client.get_experiment_by_name(exp).experiment_id])
                     if r.info.run_id != winner]
    assert select_run.data.tags[UNCHECKED_GATES_TAG] == "cv_custom_score_stdd"
    # the run `mlflow run` created (random name) is named after the entry point
    assert select_run.info.run_name == "select" == select_run.data.tags[RUN_NAME_TAG]
    # its printed links open the training-runs view (the `mlflow run` process itself still prints MLflow's own)
    exp_id = select_run.info.experiment_id
    assert f"/#/experiments/{exp_id}/runs/{select_run.info.run_id}?workflowType=machine_learning" in proc.stdout
    assert f"experiment: {tracking_server.uri}/#/experiments/{exp_id}?workflowType=machine_learning" in proc.stdout
