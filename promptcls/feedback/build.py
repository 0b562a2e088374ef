"""`promptcls feedback build`: the reviewed decisions as a versioned feedback dataset.

Rows: text, label (the analyst's), source="feedback", trace_id, reviewer, reviewed_at, model_label. The file is
read back with the corpus loader (`load_dataset`: the same validation), named by its digest, and logged as an MLflow
dataset input of a `feedback-build` run in the decisions experiment. Not silently resolved, but reported (printed,
written to `<output stem>.conflicts.csv` and counted): a prompt the corpus holds under another label (same
`group_key`), and prompts reviewed under two labels (left out). Hashed prompts cannot become training rows: they
are skipped and counted.
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import mlflow
import pandas as pd

from promptcls import LABELS
from promptcls.config import DEFAULT_DATA, UsageError
from promptcls.data import group_key, load_dataset, normalize_text
from promptcls.feedback.decisions import experiment_id, read_decisions
from promptcls.tracking import log_input, provenance_tags
from promptcls.names import FEEDBACK_DIGEST_TAG, FEEDBACK_SOURCE, KIND_TAG

log = logging.getLogger(__name__)
DEFAULT_OUTPUT = "data/feedback-{digest}.jsonl"
FIELDS = ["text", "label", "source", "trace_id", "reviewer", "reviewed_at", "model_label"]


@dataclass(frozen=True)
class BuildResult:
    path: Path
    digest: str
    rows: int
    counts: dict[str, int]
    conflicts: pd.DataFrame


def _conflicts(rows: pd.DataFrame, corpus_path: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(rows without prompts reviewed under two labels, the conflict report)."""
    rows = rows.assign(group=rows["text"].map(lambda t: group_key(normalize_text(t))))
    two_labels = rows.groupby("group")["label"].transform("nunique") > 1
    internal = rows[two_labels].assign(conflict="reviewed under two labels (left out)", corpus_label=None,
                                       corpus_source=None)
    rows = rows[~two_labels]
    corpus = load_dataset(corpus_path).frame.drop_duplicates("group")[["group", "label", "source"]]
    merged = rows.merge(corpus.rename(columns={"label": "corpus_label", "source": "corpus_source"}), on="group")
    against = merged[merged["label"] != merged["corpus_label"]].assign(conflict="corpus has another label (kept)")
    report = pd.concat([internal, against], ignore_index=True)
    columns = ["conflict", "trace_id", "text", "label", "corpus_label", "corpus_source", "reviewer"]
    return rows.drop(columns="group"), report.reindex(columns=columns)


def build(experiment: str, output: str = DEFAULT_OUTPUT, corpus: str = str(DEFAULT_DATA)) -> BuildResult:
    frame = read_decisions(experiment)
    reviewed = frame[frame["review_label"].notna()]
    counts = {"decisions": len(frame), "reviewed": len(reviewed),
              "hashed_skipped": int((reviewed["prompt_storage"] == "hashed").sum()),
              "bad_review_labels": int((frame["review_error"] != "").sum())}
    if counts["hashed_skipped"]:
        log.warning("%d reviewed decision(s) were stored hashed: a hash cannot become a training row; skipped",
                    counts["hashed_skipped"])
    usable = reviewed[(reviewed["prompt_storage"] != "hashed") & (reviewed["text"].str.strip() != "")]
    rows = pd.DataFrame({"text": usable["text"], "label": usable["review_label"].astype(int), "source": FEEDBACK_SOURCE,
                         "trace_id": usable["trace_id"], "reviewer": usable["reviewer"],
                         "reviewed_at": usable["reviewed_at"], "model_label": usable["model_label"]})
    rows, conflicts = _conflicts(rows.drop_duplicates("trace_id"), corpus)
    counts.update(rows=len(rows), conflicts_corpus=int(conflicts["conflict"].str.startswith("corpus").sum()),
                  conflicts_two_labels=int(conflicts["conflict"].str.startswith("reviewed").sum()),
                  corrections=int((rows["label"] != rows["model_label"]).sum()))
    if rows.empty:
        raise UsageError(f"experiment {experiment!r}: no reviewed decision with a usable prompt "
                         f"({counts['reviewed']} reviewed, {counts['hashed_skipped']} hashed); nothing to build")
    fd, tmp = tempfile.mkstemp(suffix=".jsonl", prefix="feedback-")
    os.close(fd)
    rows[FIELDS].to_json(tmp, orient="records", lines=True, force_ascii=False)
    dataset = load_dataset(tmp)  # the corpus loader's rules, and its digest
    target = Path(output.replace("<digest>", "{digest}").format(digest=dataset.digest))
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, target)
    report = target.with_name(f"{target.stem}.conflicts.csv")
    if len(conflicts):
        conflicts.to_csv(report, index=False)
        print(f"{len(conflicts)} conflict(s), not resolved: see {report}")
        print(conflicts[["conflict", "trace_id", "label", "corpus_label"]].to_string(index=False))
    _log_run(experiment, target, dataset.digest, counts, report if len(conflicts) else None)
    return BuildResult(target, dataset.digest, len(rows), counts, conflicts)


def _log_run(experiment: str, path: Path, digest: str, counts: dict[str, int], report: Path | None) -> None:
    dataset = load_dataset(path)
    with mlflow.start_run(experiment_id=experiment_id(experiment), run_name=f"feedback-build-{digest}"):
        mlflow.set_tags({KIND_TAG: "feedback_build", FEEDBACK_DIGEST_TAG: digest,
                         **provenance_tags()})
        by_class = dataset.frame["label"].value_counts().reindex(range(len(LABELS)), fill_value=0)
        source = mlflow.data.from_pandas(dataset.frame[["text", "label", "source"]], source=str(path),
                                         targets="label", name=path.stem, digest=digest)
        log_input(source, context="feedback", tags={"rows": str(len(dataset.frame)),
                                                     **{f"rows_{LABELS[c]}": str(n) for c, n in by_class.items()}})
        mlflow.log_params({"feedback_path": str(path), "feedback_digest": digest})
        mlflow.log_metrics({f"feedback_{k}": v for k, v in counts.items()})
        if report:
            mlflow.log_artifact(str(report), "feedback")
