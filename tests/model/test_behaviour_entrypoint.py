"""`mlflow run . -e behaviour` against a small real model on the test server: metrics and the cases CSV."""

from __future__ import annotations


import pandas as pd
from mlflow.tracking import MlflowClient

from promptcls.behaviour import TEST_TYPES
from promptcls.perturb import EVASIONS


def test_behaviour_entry_point_logs_pass_rates_flip_rates_and_cases(small_model_uri, run_entry_point):
    exp = "behaviour-entry"
    run_entry_point("behaviour", exp, model_uri=small_model_uri)
    client = MlflowClient()
    runs = client.search_runs([client.get_experiment_by_name(exp).experiment_id],
                              "tags.`promptcls.kind` = 'behaviour'")
    assert len(runs) == 1
    run = runs[0]
    metrics = run.data.metrics
    for test_type in TEST_TYPES:
        assert 0.0 <= metrics[f"behaviour_{test_type}_pass_rate"] <= 1.0
    assert {"evasion_flip_rate", "evasion_flip_rate_without_normalizer"} <= set(metrics)
    assert metrics["evasion_flip_rate"] == 1 - metrics["behaviour_evasion_pass_rate"]
    assert metrics["evasion_flip_rate_zero_width"] == 0.0
    assert run.data.params["model_uri"] == small_model_uri
    assert run.data.tags["promptcls.behaviour.normalizer_matches_model"] == "true"
    csv = client.download_artifacts(run.info.run_id, "behaviour/cases.csv")
    table = pd.read_csv(csv)
    assert {"test_type", "group", "path", "original", "text", "label", "passed"} <= set(table.columns)
    assert set(table["test_type"]) == set(TEST_TYPES)
    assert set(EVASIONS) <= set(table["group"]) and set(table["path"]) == {"model", "without_normalizer"}
    zero_width = table[(table["group"] == "zero_width") & (table["path"] == "model")]
    assert zero_width["text"].str.contains("\u200b").all()


def test_behaviour_entry_point_fails_clearly_on_a_bad_uri(tracking_server, run_entry_point):
    proc = run_entry_point("behaviour", "behaviour-entry-bad", check=False, model_uri="runs:/0123456789abcdef/model")
    assert proc.returncode != 0 and "cannot load runs:/0123456789abcdef/model" in proc.stderr
