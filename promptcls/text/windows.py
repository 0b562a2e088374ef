"""Overlapping windows for long inputs, so that one malicious passage in a long benign document is found.

A text longer than the classifier's window (`window_chars`: a class attribute a `TextClassifier` may set, else
`DEFAULT_WINDOW_CHARS` from `conf/robustness.yaml`) is scored whole *and* as windows of `window_chars`
characters that overlap by half, their edges moved back to the nearest whitespace so no word is cut. The contract
decides on the most severe of them (highest label, then highest P(malicious)) and reports that window's span.
"""

from __future__ import annotations

from promptcls.text.settings import robustness


def window_size(classifier) -> int:
    """The classifier's window in characters (what it reads well: a transformer's token budget, ...)."""
    size = getattr(classifier, "window_chars", None)
    return int(size() if callable(size) else size or robustness()["windows"]["default_chars"])


def _back_to_space(text: str, position: int, floor: int) -> int:
    """`position` moved back to just after the nearest whitespace, not below `floor`."""
    if position >= len(text):
        return len(text)
    cut = text.rfind(" ", floor + 1, position + 1)
    return cut + 1 if cut > floor else position


def windows(text: str, size: int) -> list[tuple[int, int]]:
    """(start, end) spans of overlapping windows covering `text`; none when it fits in one window."""
    if len(text) <= size:
        return []
    stride, spans, start = max(1, size // 2), [], 0
    while True:
        end = _back_to_space(text, start + size, start + stride // 2)
        spans.append((start, end))
        if end >= len(text):
            return spans
        start = _back_to_space(text, start + stride, start)
