"""The loop end to end, against the real tracking server: train and select a champion, score 300 new prompts with
`promptcls score --record-traces`, review 50 recorded decisions with corrected labels (`review import`), build the
feedback dataset, retrain with `feedback=`, and run `select` again.

What select decides: it ranks by rank_score (validation + unseen sources) and replaces the champion only with a
winner that ranks higher *and* passes the paired McNemar test on the validation and OOD rows both runs scored; the
test prints the held-out feedback comparison beside it.
"""

from __future__ import annotations

import json
import sys
import time

import mlflow
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from promptcls import LABELS
from promptcls.cli import main
from promptcls.config import DEFAULT_DATA
from promptcls.data import load_dataset, stratified_sample
from promptcls.feedback.decisions import read_decisions

GATES = ("val_custom_score>=0.3,val_recall_c2>=0.5,val_false_alarm_rate<=0.2,val_missed_threat_rate<=0.5,"
         "latency_p95_ms<=2000,ood_recall_c2>=0.2,ood_benign_flag_rate<=0.9,val_evasion_flip_rate<=0.9")
"""A 1,500-row model: the gates of promptcls/registry/gates.yaml are for real trainings."""
TRAIN = {"model": "logreg", "sample": 1500, "seed": 42, "hp": '{"C": 4.0}', "explain_samples": 0, "external": ""}


T0 = time.perf_counter()


def phase(name: str) -> None:
    print(f"[loop {time.perf_counter() - T0:6.1f} s] {name}", file=sys.__stderr__, flush=True)


def cli(capsys, *args):
    """`promptcls ARGS` in this process (the installed command's `main`); returns (stdout, stderr)."""
    phase(f"promptcls {args[0]} {args[1]}")
    capsys.readouterr()
    try:
        code = main(list(args))
    except SystemExit as exc:
        code = exc.code
    out = capsys.readouterr()
    assert code == 0, f"promptcls {' '.join(args)} failed ({code}):\n{out.out[-2000:]}\n{out.err[-4000:]}"
    return out


def last_run(experiment: str, kind: str | None = None):
    client = MlflowClient()
    runs = client.search_runs([client.get_experiment_by_name(experiment).experiment_id], order_by=["start_time DESC"])
    return next(r for r in runs if kind is None or r.data.tags.get("promptcls.kind") == kind)


@pytest.mark.slow
def test_record_review_feedback_retrain_select(tracking_server, run_entry_point, tmp_path, capsys):
    exp, name, decisions = "loop", "pc-loop", "loop-decisions"
    corpus = load_dataset(DEFAULT_DATA).frame
    sample = stratified_sample(corpus, TRAIN["sample"], TRAIN["seed"])  # the rows the trainings split
    traffic = corpus[~corpus["group"].isin(sample["group"])].sample(300, random_state=7)
    truth = traffic.set_index("text")["label"]
    (tmp_path / "traffic.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in traffic["text"]))

    phase("train champion")
    run_entry_point("traditional", exp, **TRAIN)
    champion_run = last_run(exp)
    run_entry_point("select", exp, experiment=exp, model_name=name, gates_override=GATES)
    assert MlflowClient().get_model_version_by_alias(name, "champion").run_id == champion_run.info.run_id

    (tmp_path / "traces.yaml").write_text(f"experiment: {decisions}\nbenign_sample_rate: 0.5\n")
    proc = cli(capsys, "score", "--input", str(tmp_path / "traffic.jsonl"), "--output",
               str(tmp_path / "scored.parquet"), "--model-uri", f"models:/{name}@champion", "--record-traces", "--trace-config",
               str(tmp_path / "traces.yaml"))
    scored = pd.read_parquet(tmp_path / "scored.parquet")
    recorded = read_decisions(decisions)
    assert len(recorded) >= 50 and "'dropped_error': 0" in proc.err and "'dropped_full': 0" in proc.err
    assert (recorded["verdict"] != "benign").sum() == (scored["label_name"] != "benign").sum()
    assert set(recorded["model_version"]) == {"1"}

    # drift from the traces (sampled benign ones count twice) against the corpus scored by the champion: the
    # traffic is drawn from the same corpus, so nothing may alarm
    cli(capsys, "monitor", "--from-traces", decisions, "--reference", str(DEFAULT_DATA), "--model-uri",
        f"models:/{name}@champion", "--reference-sample", "600", "--experiment", "loop-monitor")
    window = int(last_run("loop-monitor").data.params["n_window"])
    assert 240 <= window <= 360, window  # 300 decisions, reconstructed from the sample

    sheet = tmp_path / "review.csv"
    cli(capsys, "review", "export", "--experiment", decisions, "--output", str(sheet), "--only-unreviewed")
    rows = pd.read_csv(sheet, keep_default_na=False)
    rows["truth"] = rows["text"].map(truth)
    rows["wrong"] = rows["truth"] != rows["model_label"]
    chosen = rows.sort_values("wrong", ascending=False, kind="stable").head(50).index  # mistakes first
    rows.loc[chosen, "review_label"] = [LABELS[y] for y in rows.loc[chosen, "truth"]]
    rows.drop(columns=["truth", "wrong"]).to_csv(sheet, index=False)
    cli(capsys, "review", "import", str(sheet), "--reviewer", "dana")
    mistakes = int(rows.loc[chosen, "wrong"].sum())

    out = cli(capsys, "feedback", "build", "--experiment", decisions, "--output",
              str(tmp_path / "feedback-{digest}.jsonl"))
    (path,) = tmp_path.glob("feedback-*.jsonl")
    built = pd.read_json(path, lines=True)
    assert len(built) == 50 and (built["reviewer"] == "dana").all() and "'conflicts_corpus': 0" in out.out
    assert int((built["label"] != built["model_label"]).sum()) == mistakes

    phase("retrain with feedback")
    run_entry_point("traditional", exp, **TRAIN, feedback=str(path), feedback_weight=3, feedback_holdout=0.3)
    challenger = last_run(exp)
    params, metrics = challenger.data.params, challenger.data.metrics
    assert int(params["n_feedback_train"]) + int(params["n_feedback_holdout"]) == 50
    assert int(params["n_feedback_holdout"]) >= 10 and params["feedback_dropped_in_evaluation_splits"] == "0"
    assert {"feedback_custom_score", "feedback_accuracy", "feedback_recall_c2"} <= set(metrics)
    assert int(params["n_train"]) == int(champion_run.data.params["n_train"]) + int(params["n_feedback_train"])
    assert challenger.data.tags["promptcls.data_digest"] == champion_run.data.tags["promptcls.data_digest"]

    holdout = pd.DataFrame(mlflow.artifacts.load_dict(f"runs:/{challenger.info.run_id}/feedback/holdout.json"))
    old = mlflow.pyfunc.load_model(f"models:/{name}@champion").predict(holdout[["text"]])["label"]
    new = mlflow.pyfunc.load_model(f"runs:/{challenger.info.run_id}/model").predict(holdout[["text"]])["label"]
    print(f"held-out feedback rows: {len(holdout)}; champion right on {(old == holdout.label).sum()}, "
          f"challenger on {(new == holdout.label).sum()}; val_custom_score champion "
          f"{champion_run.data.metrics['val_custom_score']:.4f}, challenger {metrics['val_custom_score']:.4f}; "
          f"val_benign_flag_rate {champion_run.data.metrics['val_benign_flag_rate']:.4f} -> "
          f"{metrics['val_benign_flag_rate']:.4f}", file=sys.__stderr__)
    assert metrics["feedback_accuracy"] == (new == holdout.label).mean()

    phase("select")
    run_entry_point("select", exp, experiment=exp, model_name=name, gates_override=GATES)
    phase("done")
    select_run = last_run(exp, kind="select")
    decision = select_run.data.tags["promptcls.decision"]
    now = MlflowClient().get_model_version_by_alias(name, "champion").run_id
    ranks_higher = metrics["rank_score"] > champion_run.data.metrics["rank_score"]
    significant = select_run.data.metrics.get("paired_p_value", 1.0) < 0.05
    print(f"select: {decision}", file=sys.__stderr__)
    if ranks_higher and significant:  # promoted only through the gates and the paired test
        assert now == challenger.info.run_id, decision
    else:
        assert now == champion_run.info.run_id, decision
        assert ("ranks at least as high" in decision or "not significantly better" in decision
                or "already the champion" in decision), decision
    if ranks_higher:  # the paired test ran on the rows both scored
        assert select_run.data.metrics["paired_rows"] > 0, decision
