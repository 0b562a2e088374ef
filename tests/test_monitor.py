"""`promptcls monitor` against the real tracking server: a window drawn from the validation split stays quiet, a
window of other-language prompts (the corpus's non-Latin and multilingual rows) is flagged with exit code 3."""

from __future__ import annotations

import subprocess
import sys

import pytest
from mlflow.tracking import MlflowClient

from promptcls.config import DEFAULT_DATA, UsageError
from promptcls.contract import PromptClassifierModel
from promptcls.data import load_dataset, split_dataset
from promptcls.feedback.drift import main_script
from promptcls.feedback.monitor import DRIFT_EXIT, monitor

ROOT = __import__("pathlib").Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def windows(small_classifier, tmp_path_factory):
    """Scored parquet files: reference (training split), quiet (validation split), shifted (other languages)."""
    frame = load_dataset(DEFAULT_DATA).frame
    splits = split_dataset(frame, 0.15, 0.15, seed=42)
    predict = PromptClassifierModel(small_classifier).predict_texts
    other = frame[(frame["text"].map(main_script) != "LATIN") | (frame["source"] == "cyberseceval_pi_multilingual")]
    folder = tmp_path_factory.mktemp("monitor")
    paths = {}
    for name, part in (("reference", splits.train.sample(2000, random_state=0)),
                       ("quiet", splits.val.sample(300, random_state=0)), ("shifted", other)):
        scored = predict(part["text"].tolist()).assign(text=part["text"].to_numpy())
        paths[name] = folder / f"{name}.parquet"
        scored.to_parquet(paths[name])
    assert len(other) >= 150
    return paths


def test_window_from_the_validation_split_stays_quiet(tracking_server, windows, capsys):
    assert monitor(str(windows["quiet"]), reference=str(windows["reference"]), experiment="mon-quiet") == 0
    assert "no drift: 300 window prompts" in capsys.readouterr().out
    (run,) = MlflowClient().search_runs([MlflowClient().get_experiment_by_name("mon-quiet").experiment_id])
    assert run.data.tags["promptcls.drift"] == "false" and run.data.metrics["drift_alarms"] == 0
    assert run.data.metrics["rare_script_share"] < 0.05 and run.data.metrics["score_psi_max"] < 0.25
    assert run.data.params["n_window"] == "300"


def test_other_language_window_is_flagged_with_exit_code_3(tracking_server, windows, tmp_path):
    cmd = [sys.executable, "-m", "promptcls.cli", "monitor", "--window", str(windows["shifted"]),
           "--reference", str(windows["reference"]), "--previous", str(windows["quiet"]),
           "--experiment", "mon-shift"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == DRIFT_EXIT, proc.stderr[-2000:]
    assert "DRIFT: " in proc.stdout and "rare_script_share=" in proc.stdout and "previous_rare_script_share" in proc.stdout
    client = MlflowClient()
    (run,) = client.search_runs([client.get_experiment_by_name("mon-shift").experiment_id])
    assert run.data.tags["promptcls.drift"] == "true" and run.data.metrics["rare_script_share"] > 0.4
    assert {a.path for a in client.list_artifacts(run.info.run_id, "monitor")} == \
        {"monitor/window_vs_reference.png", "monitor/alarms.txt"}
    bad = tmp_path / "thresholds.yaml"
    bad.write_text("score_psi_max: 0.3\npsi_max: 0.2\n")
    with pytest.raises(UsageError, match=r"thresholds.yaml: unknown key\(s\) \['psi_max'\]"):
        monitor(str(windows["shifted"]), reference=str(windows["reference"]), thresholds=str(bad))
    with pytest.raises(UsageError, match="no score columns"):
        monitor(str(windows["shifted"]), reference=str(DEFAULT_DATA))
