"""Request bodies of the MLflow scoring server (`dataframe_records`, `dataframe_split`, `inputs`, `instances`) turned
into the prompts to score, failing closed: anything that is not a list of strings under `text`, within the limits,
is refused with a message naming the row, never scored as some default."""

from __future__ import annotations

import json
from dataclasses import dataclass

from promptcls.serving.settings import serving_defaults

FORMATS = ("dataframe_records", "dataframe_split", "inputs", "instances")


class BadRequest(ValueError):
    """The request is refused; `status` is the HTTP status (400 malformed, 413 over a limit, 415 not JSON)."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Limits:
    max_body_bytes: int
    max_rows: int
    max_text_chars: int
    timeout_s: float

    @classmethod
    def defaults(cls) -> "Limits":
        return cls(**serving_defaults()["limits"])

    def __post_init__(self):
        for name in ("max_body_bytes", "max_rows", "max_text_chars", "timeout_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"limit {name} must be > 0, got {getattr(self, name)}")


def _text_of(row, where: str):
    if isinstance(row, dict):
        if "text" not in row:
            raise BadRequest(f"{where}: no `text` field (got {sorted(row)[:5]})")
        return row["text"]
    return row


def _column(values, where: str) -> list:
    if isinstance(values, str):
        return [values]
    if not isinstance(values, list):
        raise BadRequest(f"{where}: `text` must be a string or a list of strings, got {type(values).__name__}")
    return values


def _records(rows, key: str) -> list:
    if isinstance(rows, dict):  # column format: {"text": [...]} or {"text": "one"}
        if set(rows) != {"text"}:
            raise BadRequest(f"{key}: expected only a `text` column, got {sorted(rows)}")
        return _column(rows["text"], f"{key}.text")
    if not isinstance(rows, list):
        raise BadRequest(f"{key}: expected a list of records or {{\"text\": [...]}}, got {type(rows).__name__}")
    return [_text_of(row, f"{key} row {i}") for i, row in enumerate(rows)]


def _split(split) -> list:
    if not isinstance(split, dict) or not isinstance(split.get("columns"), list) or \
            not isinstance(split.get("data"), list):
        raise BadRequest("dataframe_split: expected {\"columns\": [...], \"data\": [[...], ...]}")
    columns = split["columns"]
    if "text" not in columns:
        raise BadRequest(f"dataframe_split: no `text` column (got {columns[:5]})")
    at = columns.index("text")
    texts = []
    for i, row in enumerate(split["data"]):
        if not isinstance(row, list) or len(row) != len(columns):
            raise BadRequest(f"dataframe_split row {i}: expected a list of {len(columns)} values")
        texts.append(row[at])
    return texts


def parse(body: bytes, content_type: str, limits: Limits) -> list[str]:
    """The prompts in a scoring request, in order; raises BadRequest naming what is wrong."""
    if len(body) > limits.max_body_bytes:
        raise BadRequest(f"request body of {len(body)} bytes is over the limit of {limits.max_body_bytes}", 413)
    if content_type.split(";")[0].strip().lower() != "application/json":
        raise BadRequest(f"Content-Type must be application/json, got {content_type or 'none'!r}", 415)
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadRequest(f"body is not valid JSON: {exc}") from None
    keys = sorted(payload) if isinstance(payload, dict) else []
    if len(keys) != 1 or keys[0] not in FORMATS:
        raise BadRequest(f"body must be a JSON object with exactly one of {', '.join(FORMATS)}; got "
                         f"{keys if isinstance(payload, dict) else type(payload).__name__}")
    key = keys[0]
    texts = _split(payload[key]) if key == "dataframe_split" else _records(payload[key], key)
    if not texts:
        raise BadRequest(f"{key}: no rows to score")
    if len(texts) > limits.max_rows:
        raise BadRequest(f"{len(texts)} rows is over the limit of {limits.max_rows} per request", 413)
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise BadRequest(f"row {i}: `text` must be a string, got "
                             f"{'null' if text is None else type(text).__name__}")
        if len(text) > limits.max_text_chars:
            raise BadRequest(f"row {i}: text of {len(text)} characters is over the limit of "
                             f"{limits.max_text_chars}", 413)
    return texts
