"""Score prompts with a registered or logged model (the champion by default): one string, stdin, or a file.

`load`, `read_input`, `score_frame` and `write_output` are the one way to load a model and score a table in
process; `promptcls score` (promptcls/score.py) uses them for its default engine."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import mlflow
import pandas as pd
from tqdm import tqdm

from promptcls.config import UsageError
from promptcls.contract import OUTPUT_COLUMNS
from promptcls.data import read_table
from promptcls.names import CHAMPION_URI  # noqa: F401  (re-exported)



def load(model_uri: str = CHAMPION_URI):
    try:
        return mlflow.pyfunc.load_model(model_uri)
    except Exception as exc:  # noqa: BLE001 - MLflow raises several types for a missing model or server
        raise UsageError(f"cannot load {model_uri} from {mlflow.get_tracking_uri()}: {exc}") from None


def predict_texts(model, texts: list[str]) -> pd.DataFrame:
    return model.predict(pd.DataFrame({"text": texts}))


def read_input(path: Path) -> pd.DataFrame:
    """A table of prompts: .parquet (a file or a folder of part files), .jsonl, .json or .csv."""
    if not path.exists():
        raise UsageError(f"{path}: file not found")
    if path.is_dir() or path.suffix.lower() == ".parquet":
        return pd.read_parquet(path)
    table, _ = read_table(path)
    return table.drop(columns=[c for c in table.columns if c == "_line"])


def output_columns(columns: list[str], text_column: str = "text", keep_columns: list[str] | None = None) -> list[str]:
    """The input columns that pass through to the scored output (all by default); checks names and clashes."""
    if text_column not in columns:
        raise UsageError(f"no `{text_column}` column to score; the input has {list(columns)}")
    keep = list(columns) if keep_columns is None else keep_columns
    unknown = [c for c in keep if c not in columns]
    if unknown:
        raise UsageError(f"--keep-columns {unknown} not in the input; it has {list(columns)}")
    clash = [c for c in keep if c in OUTPUT_COLUMNS]
    if clash:
        raise UsageError(f"input column(s) {clash} would clash with the model's output columns {OUTPUT_COLUMNS}; "
                         "rename them or leave them out with --keep-columns")
    return keep


def score_frame(model, table: pd.DataFrame, text_column: str = "text", batch_size: int = 256,
                keep_columns: list[str] | None = None, desc: str = "scoring") -> pd.DataFrame:
    """The kept input columns followed by the contract's output columns, scored in batches with a progress bar.
    A missing (null) text is scored as the empty string (verdict: suspicious, view `empty`)."""
    keep = output_columns(list(table.columns), text_column, keep_columns)
    texts = table[text_column].fillna("").astype(str).tolist()
    parts = [predict_texts(model, texts[i:i + batch_size])
             for i in tqdm(range(0, len(texts), batch_size), desc=desc, unit="batch",
                           disable=len(texts) <= batch_size)]
    predictions = pd.concat(parts, ignore_index=True) if parts else predict_texts(model, [])
    return pd.concat([table[keep].reset_index(drop=True), predictions[OUTPUT_COLUMNS]], axis=1)


def write_output(scored: pd.DataFrame, out: Path) -> None:
    """One file: .parquet, .csv, or JSON lines for anything else."""
    suffix = out.suffix.lower()
    if suffix == ".parquet":
        scored.to_parquet(out, index=False)
    elif suffix == ".csv":
        scored.to_csv(out, index=False)
    else:
        scored.to_json(out, orient="records", lines=True, force_ascii=False)


def predict_file(model, path: Path, out: Path, batch_size: int = 256) -> int:
    """Score a .jsonl/.json/.csv/.parquet file with a `text` column; writes its columns plus the predictions."""
    scored = score_frame(model, read_input(path), batch_size=batch_size, desc=f"scoring {path.name}")
    write_output(scored, out)
    return len(scored)


def main(text: str | None, file: str | None, out: str | None, model_uri: str) -> None:
    model = load(model_uri)
    if file:
        if not Path(file).is_file():
            raise UsageError(f"{file}: file not found")
        target = Path(out or Path(file).with_suffix(".scored.jsonl"))
        n = predict_file(model, Path(file), target)
        print(f"scored {n} prompts -> {target}", file=sys.stderr)
        return
    texts = [text] if text is not None else [line.rstrip("\n") for line in sys.stdin if line.strip()]
    for record in predict_texts(model, texts).to_dict(orient="records"):
        print(json.dumps(record))
