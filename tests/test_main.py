"""The main entry point end to end on a small sample: trainings nested under one run, then select."""

import json

from mlflow.tracking import MlflowClient


def test_main_trains_families_then_selects_a_champion(run_entry_point, tmp_path):
    # a small sample cannot meet production gates; these it can (600 rows, OOD twins held out: val custom_score
    # 0.11-0.26 for the five candidates, logreg 0.25)
    gates = tmp_path / "gates.yaml"
    gates.write_text("metric: val_custom_score\nregistered_model: pc-main\ngates:\n"
                     "  - {metric: val_custom_score, min: 0.15}\n  - {metric: latency_p95_ms, max: 1000}\n")
    feedback = tmp_path / "feedback.jsonl"  # reviewed false alarms of one genre, as `promptcls feedback build` writes
    feedback.write_text("".join(json.dumps({"text": f"Write a Rust function number {i} that parses a {kind} file "
                                                    "safely. Only return the code.", "label": 0, "source": "feedback"})
                                + "\n" for i in range(12) for kind in ("TOML", "YAML")))
    proc = run_entry_point("main", "test-main", sample=600, cv_folds=2, gates=str(gates),
                           families="traditional,deep_learning", traditional_models="logreg,naive_bayes",
                           feedback=str(feedback), feedback_holdout=0.25, policy_benign_flag_target=0.03)
    assert "MLflow UI: http://127.0.0.1:" in proc.stdout and "champion: models:/pc-main@champion" in proc.stdout
    client = MlflowClient()
    exp_id = client.get_experiment_by_name("test-main").experiment_id
    main = client.search_runs([exp_id], "tags.`promptcls.pipeline` = 'main'")[0]
    kids = client.search_runs([exp_id], f"tags.`mlflow.parentRunId` = '{main.info.run_id}'")
    by_kind = {r.data.tags.get("promptcls.family", r.data.tags.get("promptcls.kind")): r for r in kids}
    assert set(by_kind) == {"traditional", "deep_learning", "ensemble", "select"}
    assert by_kind["deep_learning"].data.tags["promptcls.model"] == "cnn"
    family_children = client.search_runs([exp_id], f"tags.`mlflow.parentRunId` = '{by_kind['traditional'].info.run_id}'")
    assert sorted(r.data.tags["promptcls.model"] for r in family_children) == ["logreg", "naive_bayes"]
    ensembles = client.search_runs([exp_id], f"tags.`mlflow.parentRunId` = '{by_kind['ensemble'].info.run_id}'")
    assert sorted(r.data.tags["promptcls.model"] for r in ensembles) == ["stacking", "voting"]
    best_traditional = max(family_children, key=lambda r: r.data.metrics["rank_score"]).info.run_id
    assert ensembles[0].data.params["ensemble_members"] == f"{best_traditional},{by_kind['deep_learning'].info.run_id}"
    for run in [*family_children, by_kind["deep_learning"], *ensembles]:  # the policy is on by default
        assert run.data.params["policy"] == "threshold" and "policy_malicious_threshold" in run.data.params
        assert run.data.params["policy_benign_flag_target"] == "0.03"  # the job's operating point reaches every model
        assert "ood_custom_score" in run.data.metrics
        # every model, the ensembles too, trained on the same feedback rows and scored the same held-out ones
        assert (run.data.params["n_feedback_train"], run.data.params["n_feedback_holdout"]) == ("18", "6")
        assert "feedback_benign_flag_rate" in run.data.metrics
    assert main.data.params["feedback"] == str(feedback)
    champion = client.get_model_version_by_alias("pc-main", "champion")
    assert champion.run_id == by_kind["select"].data.tags["promptcls.selected_run"]
    # the card shows the operating curve on unseen sources, the served target in bold
    assert "| **0.03** |" in champion.description and "| 0.005 |" in champion.description
    assert champion.run_id in ({r.info.run_id for r in [*family_children, *ensembles]}
                               | {by_kind["deep_learning"].info.run_id})
    # the parent run is named `main` (not mlflow run's random name) and carries the job's summary
    assert main.info.run_name == "main"
    assert main.data.tags["promptcls.champion_version"] == champion.version
    candidates = [*family_children, by_kind["deep_learning"], *ensembles]
    assert main.data.metrics["n_candidates"] == 5 and main.data.metrics["champion_version"] == int(champion.version)
    best = max(candidates, key=lambda r: r.data.metrics["rank_score"])  # the job's best by the ranking rule
    assert main.data.metrics["best_rank_score"] == best.data.metrics["rank_score"]
    assert main.data.metrics["best_val_custom_score"] == best.data.metrics["val_custom_score"]
    assert "summary.json" in {a.path for a in client.list_artifacts(main.info.run_id)}
    assert f"/#/experiments/{exp_id}?workflowType=machine_learning" in proc.stdout  # opens the training runs
