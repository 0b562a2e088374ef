"""How a prompt is stored in a decision trace: as is, redacted, or as its sha256 only."""

from __future__ import annotations

import hashlib
import re

STORAGE_MODES = ("raw", "redacted", "hashed")
_PATTERNS = [  # order matters: a URL holds digits, an e-mail holds a domain
    ("EMAIL", re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")),
    ("URL", re.compile(r"\b(?:https?|ftp)://\S+|\bwww\.\S+", re.IGNORECASE)),
    ("IP", re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}\b")),
    ("SECRET", re.compile(r"\b(?:sk|pk|ghp|xox[abp]|AKIA)[-_A-Za-z0-9]{12,}\b|\b[A-Za-z0-9+/_-]{32,}={0,2}")),
    ("NUMBER", re.compile(r"\+?\d[\d ()./-]{6,}\d")),  # phone, card and account numbers
]


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def redact(text: str) -> str:
    """`text` with e-mail addresses, URLs, IP addresses, key-like tokens and long numbers replaced by [KIND]."""
    for kind, pattern in _PATTERNS:
        text = pattern.sub(f"[{kind}]", text)
    return text


def stored_prompt(text: str, mode: str) -> dict[str, str]:
    """The trace's inputs for `text` under storage `mode`: {"text": ...} (raw or redacted) or {"text_sha256": ...}."""
    if mode == "raw":
        return {"text": text}
    if mode == "redacted":
        return {"text": redact(text)}
    if mode == "hashed":
        return {"text_sha256": sha256(text)}
    raise ValueError(f"prompt_storage must be one of {', '.join(STORAGE_MODES)}, got {mode!r}")
