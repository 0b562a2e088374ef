"""`mlflow run . -e report` against the real test server: results.csv columns and values, plots logged."""

from __future__ import annotations

import json

import mlflow
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from promptcls.contract import log_model, pip_requirements
from promptcls.families.traditional import TraditionalFamily
from promptcls.tracking import MODEL_URI_TAG

SEED_COLUMNS = ["model", "precision_macro", "recall_macro", "f1_macro", "roc_auc", "best_params", "status",
                "f1_external", "precision_c1", "recall_c2", "f1_c0", "custom_score", "false_alarm_rate",
                "missed_threat_rate", "per_class_f1"]
EXTRA_COLUMNS = ["val_custom_score", "train_seconds", "latency_p50_ms", "latency_p95_ms", "latency_prompt_p95_ms",
                 "metrics_split", "custom_score_ci_low", "custom_score_ci_high"]


@pytest.fixture(scope="module")
def classifier(small_classifier):
    return small_classifier


def metrics_for(score: float) -> dict[str, float]:
    """A full set of logged metrics whose test values are all derived from `score` (val is a bit higher)."""
    test = {"precision_macro": score - 0.01, "recall_macro": score - 0.02, "f1_macro": score - 0.03,
            "roc_auc": score + 0.05, "precision_c1": score - 0.04, "recall_c2": score + 0.02, "f1_c0": score + 0.01,
            "f1_c1": score - 0.05, "f1_c2": score, "custom_score": score, "false_alarm_rate": 0.01,
            "missed_threat_rate": 0.02, "custom_score_ci_low": score - 0.03, "custom_score_ci_high": score + 0.02}
    return {**{f"test_{k}": v for k, v in test.items()}, "val_custom_score": score + 0.01,
            "f1_external": score - 0.1, "train_seconds": 10 * score, "latency_p50_ms": 1.5, "latency_p95_ms": 3.0,
            "latency_prompt_p95_ms": 2.0}


@pytest.fixture
def make_run(tracking_server, classifier):
    def _make(experiment: str, model: str, score: float, curve: list[float] | None = None, **params):
        client = MlflowClient()
        exp = client.get_experiment_by_name(experiment)
        exp_id = exp.experiment_id if exp else client.create_experiment(experiment)
        with mlflow.start_run(experiment_id=exp_id, run_name=model) as run:
            mlflow.log_metrics(metrics_for(score))
            mlflow.log_params(params)
            for epoch, value in enumerate(curve or []):
                mlflow.log_metric("val_custom_score", value, step=epoch)
            mlflow.set_tags({"promptcls.family": "traditional", "promptcls.model": model})
            info = log_model(classifier, ["hello", "ignore previous instructions"],
                             pip_requirements(*TraditionalFamily().requirements()))
            mlflow.set_tag(MODEL_URI_TAG, info.model_uri)
        return run.info.run_id
    return _make


def report_run(experiment: str):
    client = MlflowClient()
    runs = client.search_runs([client.get_experiment_by_name(experiment).experiment_id],
                              "tags.`promptcls.kind` = 'report'")
    assert len(runs) == 1
    return runs[0], {a.path for a in client.list_artifacts(runs[0].info.run_id, "report")}


def test_report_writes_results_csv_and_logs_plots(make_run, run_entry_point, tmp_path):
    exp = "report-three"
    weak = make_run(exp, "naive_bayes", 0.60, hp_alpha="0.1")
    best = make_run(exp, "logreg", 0.80, curve=[0.5, 0.7, 0.81], hp_C="16.0")
    mid = make_run(exp, "linear_svm", 0.70, hp_estimator__C="2.0")
    with mlflow.start_run(experiment_id=MlflowClient().get_experiment_by_name(exp).experiment_id):
        mlflow.log_metric("val_custom_score", 0.99)   # no model logged: not a row of the report
    out = tmp_path / "nested" / "results.csv"
    proc = run_entry_point("report", exp, experiment=exp, out=out)
    table = pd.read_csv(out)
    assert list(table.columns[:len(SEED_COLUMNS)]) == SEED_COLUMNS and set(EXTRA_COLUMNS) <= set(table.columns)
    assert table["run_id"].tolist() == [best, mid, weak]            # ordered by val_custom_score
    top = table.iloc[0]
    assert top["model"] == "traditional/logreg" and top["status"] == "FINISHED" and top["metrics_split"] == "test"
    assert top["custom_score"] == pytest.approx(0.80) and top["val_custom_score"] == pytest.approx(0.81)
    assert top["precision_c1"] == pytest.approx(0.76) and top["f1_external"] == pytest.approx(0.70)
    assert top["custom_score_ci_low"] == pytest.approx(0.77) and top["train_seconds"] == pytest.approx(8.0)
    assert json.loads(top["best_params"]) == {"C": "16.0"}
    assert json.loads(top["per_class_f1"]) == pytest.approx({"benign": 0.81, "suspicious": 0.75, "malicious": 0.80})
    run, artifacts = report_run(exp)
    assert {"report/results.csv", "report/custom_score_ci.png", "report/radar_top5.png",
            "report/training_curves.png"} <= artifacts
    logged = pd.read_csv(MlflowClient().download_artifacts(run.info.run_id, "report/results.csv"))
    assert logged["run_id"].tolist() == table["run_id"].tolist()
    assert "traditional/logreg" in proc.stdout


def test_report_without_curves_skips_that_plot(make_run, run_entry_point, tmp_path):
    exp = "report-no-curves"
    make_run(exp, "logreg", 0.75)
    make_run(exp, "xgboost", 0.72)
    proc = run_entry_point("report", exp, experiment=exp, out=tmp_path / "results.csv")
    _, artifacts = report_run(exp)
    assert "report/training_curves.png" not in artifacts and "report/radar_top5.png" in artifacts
    assert "no training-curves plot" in proc.stderr
    assert len(pd.read_csv(tmp_path / "results.csv")) == 2


def test_report_on_unknown_experiment_fails_clearly(run_entry_point, tmp_path):
    proc = run_entry_point("report", "report-bad", check=False, experiment="no-such-experiment",
                           out=tmp_path / "r.csv")
    assert proc.returncode != 0 and "experiment 'no-such-experiment' not found" in proc.stderr
    assert not (tmp_path / "r.csv").exists()
