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
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold

from promptcls import LABELS
from promptcls.config import UsageError

log = logging.getLogger(__name__)

COLUMN_ALIASES = {"user_message": "text", "classification": "label"}
LABEL_BY_NAME = {name: i for i, name in enumerate(LABELS)}
MAX_REPORTED = 5  # offending lines quoted in an error


class DataError(UsageError):
    """The input file cannot be used for training; the message names the file and the offending lines."""


INVISIBLE = (
    "\u00ad"                      # soft hyphen
    "\u034f"                      # combining grapheme joiner
    "\u061c"                      # Arabic letter mark
    "\u115f\u1160\u3164\uffa0"    # Hangul fillers (render as nothing)
    "\u180e"                      # Mongolian vowel separator
    "\u200b\u200c\u200d"          # zero-width space / non-joiner / joiner
    "\u200e\u200f"                # left-to-right / right-to-left mark
    "\u202a\u202b\u202c\u202d\u202e"  # bidi embeddings and overrides
    "\u2060\u2061\u2062\u2063\u2064"  # word joiner, invisible operators
    "\u2066\u2067\u2068\u2069"      # bidi isolates
    "\ufeff"                      # byte-order mark / zero-width no-break space
)
"""Characters that render as nothing; attackers insert them to split the tokens a prompt guard looks for."""
_INVISIBLE = re.compile(f"[{INVISIBLE}\U000e0000-\U000e007f]")  # + Unicode tag characters (ASCII smuggling)

HOMOGLYPHS = str.maketrans(
    "\u0430\u0441\u0435\u043e\u0440\u0445\u0443\u0455\u0456\u0458\u04bb\u0501\u051b\u051d"   # Cyrillic lower
    "\u0410\u0412\u0421\u0415\u041d\u0406\u0408\u041a\u041c\u041e\u0420\u0405\u0422\u0425\u0423"  # Cyrillic upper
    "\u03bf\u03bd\u03b9\u03c1"                                           # Greek lower: o v i p
    "\u0391\u0392\u0395\u0396\u0397\u0399\u039a\u039c\u039d\u039f\u03a1\u03a4\u03a5\u03a7",  # Greek upper
    "aceopxysijhdqw"
    "ABCEHIJKMOPSTXY"
    "ovip"
    "ABEZHIKMNOPTYX",
)
"""Cyrillic and Greek letters drawn like ASCII letters (the confusables attackers use), mapped to those letters."""
_WORD = re.compile(r"[^\W\d_]+")
_LATIN = re.compile(r"[A-Za-z]")
_CONFUSABLE = frozenset(chr(c) for c in HOMOGLYPHS)


def _fold_homoglyphs(text: str) -> str:
    """Map look-alikes to ASCII only where they disguise Latin text, never in genuine Cyrillic or Greek:
    in a word that mixes them with ASCII letters ("іgnоrе"), or in a word made only of look-alikes ("а") when the
    text has more ASCII letters than Cyrillic/Greek ones. Accented Latin letters are never touched."""
    if not any(c in _CONFUSABLE for c in text):
        return text
    latin = len(_LATIN.findall(text))
    other = sum(1 for c in text if "\u0370" <= c <= "\u052f")
    def fold(match: re.Match) -> str:
        word = match.group()
        if not any(c in _CONFUSABLE for c in word):
            return word
        if _LATIN.search(word) or (latin > other and all(c in _CONFUSABLE for c in word)):
            return word.translate(HOMOGLYPHS)
        return word
    return _WORD.sub(fold, text)


def normalize_text(text: str) -> str:
    """The text normalisation applied in training and inside every logged model (one function for both):
    NFKC (folds full-width and other compatibility forms), invisible characters removed (`INVISIBLE`, Unicode tag
    characters), Cyrillic/Greek homoglyphs that disguise Latin words mapped to ASCII (`_fold_homoglyphs`), outer
    whitespace stripped. Accents are kept: the corpus has German, French and Spanish text."""
    text = unicodedata.normalize("NFKC", _INVISIBLE.sub("", text))  # removal first: a combining mark can compose
    return _fold_homoglyphs(text).strip()


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


def hold_out(frame: pd.DataFrame, fraction: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split off ~`fraction` of rows, stratified by label, never splitting a near-duplicate group."""
    n_splits = max(2, round(1 / fraction))
    splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    keep, held = next(splitter.split(frame, frame["label"], groups=frame["group"]))
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
