"""`promptcls review export` / `import`: label recorded decisions outside the MLflow UI.

export writes the decisions (CSV or JSONL) with an empty `review_label` column for the unreviewed ones; an analyst
fills `review_label` (benign/suspicious/malicious or 0/1/2) and optionally `review_comment`; import stores each filled
row as an MLflow feedback assessment `label` on its trace, with the reviewer's name as a HUMAN source (the server
stamps the time). The whole file is checked first: a bad label or an unknown trace id names the file and line, and
nothing is written.
"""

from __future__ import annotations

from pathlib import Path

import mlflow
import pandas as pd
from mlflow.entities import AssessmentSource

from promptcls import LABELS
from promptcls.config import UsageError
from promptcls.data import MAX_REPORTED, _parse_label, read_table
from promptcls.feedback.decisions import LABEL_ASSESSMENT, read_decisions
from promptcls.predict import write_output
from promptcls.names import IMPORTED_FROM_KEY

FORMATS = (".csv", ".jsonl")


def export(experiment: str, output: str, only_unreviewed: bool = False, max_results: int | None = None) -> int:
    """Write the decisions of `experiment` to `output` (.csv or .jsonl); returns the number of rows."""
    out = Path(output)
    if out.suffix.lower() not in FORMATS:
        raise UsageError(f"{out}: use a .csv or .jsonl file")
    frame = read_decisions(experiment, max_results=max_results, only_unreviewed=only_unreviewed)
    frame["review_label"] = [LABELS[int(v)] if pd.notna(v) else "" for v in frame["review_label"]]
    out.parent.mkdir(parents=True, exist_ok=True)
    write_output(frame, out)
    return len(frame)


def _rows(path: Path) -> list[tuple[int, dict]]:
    if path.suffix.lower() not in FORMATS:
        raise UsageError(f"{path}: use a .csv or .jsonl file")
    if not path.is_file():
        raise UsageError(f"{path}: file not found")
    table, first_line = read_table(path)
    missing = [c for c in ("trace_id", "review_label") if c not in table.columns]
    if missing:
        raise UsageError(f"{path}: missing column(s) {missing}; found {sorted(map(str, table.columns))}")
    lines = table.pop("_line") if "_line" in table.columns else pd.Series(range(first_line, first_line + len(table)))
    return list(zip(lines.astype(int), table.to_dict(orient="records")))


def _blank(value) -> bool:
    return value is None or (isinstance(value, float) and pd.isna(value)) or str(value).strip() == ""


def import_labels(path: str, reviewer: str) -> int:
    """Store the filled `review_label`s of `path` as assessments by `reviewer`; returns how many were stored."""
    if not reviewer.strip():
        raise UsageError("--reviewer: give the reviewer's name (stored as the assessment's source)")
    path = Path(path)
    todo, errors = [], []
    for line, row in _rows(path):
        if _blank(row.get("review_label")):
            continue
        label, trace_id = _parse_label(row["review_label"]), str(row.get("trace_id") or "").strip()
        if label is None:
            errors.append(f"line {line}: bad label {row['review_label']!r} (use {', '.join(LABELS)} or 0, 1, 2)")
        elif not trace_id or mlflow.get_trace(trace_id, silent=True) is None:
            errors.append(f"line {line}: unknown trace id {trace_id!r} at {mlflow.get_tracking_uri()}")
        else:
            comment = row.get("review_comment")
            todo.append((trace_id, label, None if _blank(comment) else str(comment), line))
    if errors:
        raise UsageError(f"{path}: {len(errors)} bad row(s), nothing imported: {'; '.join(errors[:MAX_REPORTED])}")
    source = AssessmentSource(source_type="HUMAN", source_id=reviewer.strip())
    for trace_id, label, comment, line in todo:
        mlflow.log_feedback(trace_id=trace_id, name=LABEL_ASSESSMENT, value=LABELS[label], source=source,
                            rationale=comment, metadata={IMPORTED_FROM_KEY: f"{path.name}:{line}"})
    return len(todo)
