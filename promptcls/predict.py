"""Score prompts with a registered or logged model (the champion by default): one string, stdin, or a file."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import mlflow
import pandas as pd
from tqdm import tqdm

from promptcls.config import UsageError
from promptcls.data import read_table

CHAMPION_URI = "models:/promptcls@champion"


def load(model_uri: str = CHAMPION_URI):
    try:
        return mlflow.pyfunc.load_model(model_uri)
    except Exception as exc:  # noqa: BLE001 - MLflow raises several types for a missing model or server
        raise UsageError(f"cannot load {model_uri} from {mlflow.get_tracking_uri()}: {exc}") from None


def predict_texts(model, texts: list[str]) -> pd.DataFrame:
    return model.predict(pd.DataFrame({"text": texts}))


def predict_file(model, path: Path, out: Path, batch_size: int = 256) -> int:
    """Score a .jsonl/.json/.csv file with a `text` column; writes its columns plus the predictions to `out`."""
    table, _ = read_table(path)
    if "text" not in table.columns:
        raise UsageError(f"{path}: no `text` column; found {list(table.columns)}")
    table = table.drop(columns=[c for c in table.columns if c == "_line"])
    texts = table["text"].astype(str).tolist()
    parts = [predict_texts(model, texts[i:i + batch_size])
             for i in tqdm(range(0, len(texts), batch_size), desc=f"scoring {path.name}", unit="batch",
                           disable=len(texts) <= batch_size)]
    scored = pd.concat([table.reset_index(drop=True), pd.concat(parts, ignore_index=True)], axis=1)
    if out.suffix.lower() == ".csv":
        scored.to_csv(out, index=False)
    else:
        scored.to_json(out, orient="records", lines=True, force_ascii=False)
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
