"""Overlapping windows for long inputs, so that one malicious passage in a long benign document is found.

A text longer than the classifier's window (`window_chars`: an attribute a `TextClassifier` may set, else
`windows.default_chars` in `conf/robustness.yaml`) is scored whole *and* as windows of at most `window_chars`
characters made of whole sentences (a longer sentence is cut at spaces), each starting half-way into the one
before, so every sentence is seen whole and with its neighbours. The contract
decides on the most severe of them (highest label, then highest P(malicious)) and reports that window's span.
"""

from __future__ import annotations

import re

from promptcls.text.settings import robustness


def window_size(classifier) -> int:
    """The classifier's window in characters (what it reads well: a transformer's token budget, ...)."""
    size = getattr(classifier, "window_chars", None)
    return int(size() if callable(size) else size or robustness()["windows"]["default_chars"])


def token_window_chars(max_length: int) -> int:
    """The window of a model that reads `max_length` tokens (a transformer, torch or ONNX alike): the default window,
    or what its tokens hold (~4 characters a token) when that is less. Not more: measured on the main job's MiniLM
    (int8, 128 tokens), 512-character windows instead of 300 raised its long_document flip rate 0.596 -> 0.684 and
    lowered its OOD recall_c2 0.563 -> 0.550."""
    return min(4 * max_length, int(robustness()["windows"]["default_chars"]))


_SENTENCE_END = re.compile(r"(?<=[.!?:;\n])\s+|\n")


def cuts(text: str, size: int) -> list[int]:
    """Start offsets of the sentences of `text`; a sentence longer than `size` is cut at spaces as well."""
    starts = [0, *(m.end() for m in _SENTENCE_END.finditer(text) if m.end() < len(text))]
    found = []
    for start, end in zip(starts, [*starts[1:], len(text)]):
        found.append(start)
        position = start
        while end - position > size // 2:  # long sentences: cut points every half window, at a space
            space = text.rfind(" ", position + 1, position + size // 2 + 1)
            position = space + 1 if space > position else position + size // 2
            if position < end:
                found.append(position)
    return sorted(set(found))


def last_window(text: str, tail: int, size: int) -> str:
    """The end of `text` as a window shows it: at most `size` characters, from the earliest cut that keeps them
    (never later than where the last `tail` characters begin, so those stay whole). For training copies that put
    benign text before a prompt: a model that reads `size` characters then learns from what its windows show."""
    if len(text) <= size:
        return text
    keep = len(text) - min(tail, len(text))
    start = min([c for c in cuts(text, size) if c >= len(text) - size] + [keep])
    return text[start:]


def windows(text: str, size: int) -> list[tuple[int, int]]:
    """(start, end) spans of overlapping windows covering `text`, made of whole sentences where they fit; none
    when the text fits in one window. Each window starts where its predecessor's second half begins."""
    if len(text) <= size:
        return []
    spans, i = [], 0
    bounds = [*cuts(text, size), len(text)]
    while True:
        start, j = bounds[i], i + 1
        while j < len(bounds) - 1 and bounds[j + 1] - start <= size:
            j += 1
        spans.append((start, bounds[j]))
        if bounds[j] >= len(text):
            return spans
        middle = start + (bounds[j] - start) // 2
        i = max(i + 1, max(k for k in range(i, j + 1) if bounds[k] <= middle))
