"""Load, validate, de-duplicate and split a labelled prompt corpus.

Accepted inputs: JSONL, a JSON array, or CSV with `text` + `label` columns (or the seed schema `user_message` +
`classification`); labels as 0/1/2 or benign/suspicious/malicious; an optional `source` column is kept.
Every problem is reported with the file and the first offending lines before any training starts.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold

from promptcls import LABELS
from promptcls.config import UsageError
from promptcls.text.canonical import INVISIBLE, canonicalize  # noqa: F401  INVISIBLE: re-exported

log = logging.getLogger(__name__)

COLUMN_ALIASES = {"user_message": "text", "classification": "label"}
LABEL_BY_NAME = {name: i for i, name in enumerate(LABELS)}
MAX_REPORTED = 5  # offending lines quoted in an error


class DataError(UsageError):
    """The input file cannot be used for training; the message names the file and the offending lines."""


def normalize_text(text: str) -> str:
    """The text normalisation applied in training and inside every logged model (one function for both):
    `promptcls.text.canonical.canonicalize` -- invisible and format characters removed, diacritics folded where they
    decorate a whole Latin word, NFKC, UTS #39 confusables that disguise Latin words mapped to ASCII, outer
    whitespace stripped. Accents of ordinary words are kept: the corpus has German, French and Spanish text."""
    return canonicalize(text)


def group_key(text: str) -> str:
    """Near-duplicate key: lower-cased, every non-alphanumeric character removed. A text with no letter or digit
    ('?', '❤️', a Morse-code line) is its own key: an empty key would make all such texts one group, so that '?' and
    an injection written in dots and dashes counted as the same text."""
    return re.sub(r"[\W_]+", "", text.lower()) or text


@dataclass(frozen=True)
class Dataset:
    """A validated corpus: columns `text`, `label` (int), `source`, `line` (1-based line/row in the file)."""

    frame: pd.DataFrame
    path: Path
    digest: str
    n_exact_duplicates: int


def read_table(path: Path) -> tuple[pd.DataFrame, int]:
    """Read a .jsonl, .json or .csv table as is; returns it with the line number of its first row."""
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            text_columns = dict.fromkeys(["text", "label", *COLUMN_ALIASES], object)  # other columns: inferred
            return pd.read_csv(path, dtype=text_columns, keep_default_na=False, na_values=[]), 2
        if suffix == ".jsonl":
            rows = []
            with path.open(encoding="utf-8") as fh:
                for n, raw in enumerate(fh, start=1):
                    if raw.strip():
                        try:
                            rows.append({**json.loads(raw), "_line": n})
                        except json.JSONDecodeError as exc:
                            raise DataError(f"{path}:{n}: not valid JSON ({exc.msg})") from None
            return pd.DataFrame(rows), 1
        if suffix == ".json":
            rows = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(rows, list):
                raise DataError(f"{path}: expected a JSON array of objects, got {type(rows).__name__}")
            return pd.DataFrame(rows), 1
    except (UnicodeDecodeError, json.JSONDecodeError, pd.errors.ParserError) as exc:
        raise DataError(f"{path}: cannot be read as {suffix[1:].upper()}: {exc}") from None
    raise DataError(f"{path}: unsupported format {suffix!r}; use .jsonl, .json or .csv")


def _fail(path: Path, what: str, frame: pd.DataFrame, mask: pd.Series) -> None:
    bad = frame.loc[mask]
    examples = "; ".join(f"line {int(r.line)}: {str(r.raw)[:80]!r}" for r in bad.head(MAX_REPORTED).itertuples())
    raise DataError(f"{path}: {len(bad)} row(s) with {what}, first: {examples}")


def _parse_label(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, np.integer)) and int(value) in (0, 1, 2):
        return int(value)
    if isinstance(value, float) and value.is_integer() and int(value) in (0, 1, 2):
        return int(value)
    if isinstance(value, str):
        key = value.strip().lower()
        if key in LABEL_BY_NAME:
            return LABEL_BY_NAME[key]
        if key in ("0", "1", "2"):
            return int(key)
    return None


def load_dataset(path: str | Path) -> Dataset:
    """Read and validate a labelled file; drops exact duplicates (after normalisation) and counts them."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    raw, first_line = read_table(path)
    raw = raw.rename(columns={k: v for k, v in COLUMN_ALIASES.items() if v not in raw.columns})
    missing = [c for c in ("text", "label") if c not in raw.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {missing}; found {sorted(map(str, raw.columns))}. "
                        "Expected `text` and `label` (or `user_message` and `classification`).")
    line = raw.pop("_line") if "_line" in raw.columns else pd.Series(np.arange(len(raw)) + first_line)
    frame = pd.DataFrame({"line": line.to_numpy(), "raw": raw["text"].to_numpy(), "raw_label": raw["label"].to_numpy()})
    is_str = frame["raw"].map(lambda t: isinstance(t, str))
    if not is_str.all():
        _fail(path, "non-string text", frame, ~is_str)
    frame["text"] = frame["raw"].map(normalize_text)
    if (frame["text"] == "").any():
        _fail(path, "empty text", frame, frame["text"] == "")
    frame["label"] = frame["raw_label"].map(_parse_label)
    bad_label = frame["label"].isna()
    if bad_label.any():
        frame["raw"] = frame["raw_label"]
        _fail(path, f"a label outside {{0,1,2}} / {{{', '.join(LABELS)}}}", frame, bad_label)
    frame["label"] = frame["label"].astype(int)
    frame["source"] = raw["source"].astype(str).to_numpy() if "source" in raw.columns else path.stem
    frame["group"] = frame["text"].map(group_key)
    conflict = frame.groupby("group")["label"].transform("nunique") > 1
    if conflict.any():
        _fail(path, "the same normalised text under two labels", frame, conflict)
    duplicated = frame.duplicated("text")
    if duplicated.any():
        log.info("%s: dropped %d exact duplicate row(s)", path, int(duplicated.sum()))
    frame = frame.loc[~duplicated, ["text", "label", "source", "group", "line"]].reset_index(drop=True)
    digest = hashlib.sha256("\n".join(f"{t}\t{y}" for t, y in zip(frame.text, frame.label)).encode()).hexdigest()
    return Dataset(frame=frame, path=path, digest=digest[:16], n_exact_duplicates=int(duplicated.sum()))


def stratified_sample(frame: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    """A class-stratified random subset of `n` rows (all rows when n is 0 or larger than the frame)."""
    if not n or n >= len(frame):
        return frame
    frac = n / len(frame)
    return (frame.groupby("label", group_keys=False).sample(frac=frac, random_state=seed)
            .sample(frac=1.0, random_state=seed).reset_index(drop=True))


def hold_out_folds(fraction: float) -> int:
    """The folds `hold_out` cuts for `fraction`: one of k folds is the smaller part (1/k of the rows)."""
    return max(2, round(1 / min(fraction, 1 - fraction)))


def hold_out(frame: pd.DataFrame, fraction: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split off ~`fraction` of rows, stratified by label, never splitting a near-duplicate group: one fold of
    `hold_out_folds(fraction)` (1/k, e.g. 0.15 -> 1/7), or all folds but one above 0.5 (0.9 -> 9/10)."""
    splitter = StratifiedGroupKFold(n_splits=hold_out_folds(fraction), shuffle=True, random_state=seed)
    rest, fold = next(splitter.split(frame, frame["label"], groups=frame["group"]))
    keep, held = (fold, rest) if fraction > 0.5 else (rest, fold)
    return frame.iloc[keep].reset_index(drop=True), frame.iloc[held].reset_index(drop=True)


@dataclass(frozen=True)
class Splits:
    train: pd.DataFrame
    val: pd.DataFrame
    test: pd.DataFrame

    def items(self):
        return (("train", self.train), ("val", self.val), ("test", self.test))


def split_dataset(frame: pd.DataFrame, val_size: float, test_size: float, seed: int) -> Splits:
    """Stratified, group-aware train/validation/test split. The test split is for the final report only."""
    rest, test = hold_out(frame, test_size, seed)
    train, val = hold_out(rest, val_size / (1 - test_size), seed)
    for name, part in (("train", train), ("validation", val), ("test", test)):
        missing = set(range(len(LABELS))) - set(part["label"])
        if missing:
            raise DataError(f"the {name} split has no rows of class(es) {sorted(missing)}: "
                            f"{len(frame)} rows are too few; use more data or a larger sample")
    return Splits(train=train, val=val, test=test)
