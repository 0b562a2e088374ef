"""Leave-one-source-out on a tiny three-source sample: three child runs and a summary table."""

import json

import mlflow
import pandas as pd
from mlflow.tracking import MlflowClient

from promptcls.config import DEFAULT_DATA


def test_three_sources_give_three_child_runs_and_a_summary(run_entry_point, tmp_path):
    corpus = pd.read_json(DEFAULT_DATA, lines=True)
    keep = ["seed_benign", "seed_suspicious", "harmfulqa", "deepset_pi"]   # 0 / 1 / 2 / 0+2
    small = corpus[corpus["source"].isin(keep)].groupby("source").head(150)
    data = tmp_path / "three_sources.jsonl"
    small.to_json(data, orient="records", lines=True)
    proc = run_entry_point("source_holdout", "test-lso", data=str(data), sources="harmfulqa,deepset_pi,seed_benign",
                           family_args="cv_folds=2,explain_samples=0")
    assert "lso_min_recall_c2" in proc.stdout
    client = MlflowClient()
    exp_id = client.get_experiment_by_name("test-lso").experiment_id
    parent = client.search_runs([exp_id], "tags.`promptcls.kind` = 'source_holdout'")[0]
    children = client.search_runs([exp_id], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    assert sorted(c.data.tags["promptcls.held_out_source"] for c in children) == \
        ["deepset_pi", "harmfulqa", "seed_benign"]
    for child in children:  # the held-out source is never trained on: its rows are exactly the test split
        source = child.data.tags["promptcls.held_out_source"]
        assert int(child.data.params["n_test"]) == (small["source"] == source).sum()
        by_source = json.loads(mlflow.artifacts.load_text(f"runs:/{child.info.run_id}/data/rows_by_source.json"))
        assert source not in by_source["train"] and source not in by_source["val"]
    table = pd.read_csv(mlflow.artifacts.download_artifacts(f"runs:/{parent.info.run_id}/source_holdout.csv"))
    assert set(table["source"]) == {"deepset_pi", "harmfulqa", "seed_benign"}
    harmful = table.set_index("source").loc["harmfulqa"]
    assert pd.isna(harmful["benign_flag_rate"]) and 0 <= harmful["malicious_detection_rate"] <= 1
    assert parent.data.metrics["lso_min_recall_c2"] == table["malicious_detection_rate"].min()
    assert parent.data.metrics["lso_max_benign_flag_rate"] == table["benign_flag_rate"].max()
    # the per-source models are diagnostics: never selection candidates
    from promptcls.tracking import model_runs
    assert not {c.info.run_id for c in children} & {r.info.run_id for r in model_runs(client, exp_id)}
