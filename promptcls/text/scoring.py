"""What the contract scores for each prompt, and how it decides among them.

Per canonical prompt: the prompt itself (`original`), each de-obfuscation view (`views.py`), and, for a prompt
longer than the classifier's window, its overlapping windows (`windows.py`; a window reports its own span). A view
of a long prompt is scored only as the windows that hold its decoded part (reporting the encoded span). An empty prompt is one `empty` candidate with the documented
verdict. The decision is the most severe candidate: highest label (malicious > suspicious > benign), then highest
P(malicious), then the earliest (the original first) -- so a view or window can raise a verdict, never lower it.
Windows take part only with P(malicious) >= `windows.min_malicious` (conf/robustness.yaml).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from promptcls.text.views import views
from promptcls.text.windows import windows


@dataclass(frozen=True)
class Candidate:
    row: int
    view: str
    text: str
    start: int  # span in the canonical prompt
    end: int
    window: bool = False  # a window of a long text: decides only when its P(malicious) reaches `min_malicious`


def candidates(canonical: list[str], window_chars: int) -> list[Candidate]:
    pool = []
    for row, text in enumerate(canonical):
        if not text:
            pool.append(Candidate(row, "empty", "", 0, 0))
            continue
        pool.append(Candidate(row, "original", text, 0, len(text)))
        pool += [Candidate(row, "original", text[a:b], a, b, window=True) for a, b in windows(text, window_chars)]
        for view in views(text):
            if len(view.text) <= window_chars:
                pool.append(Candidate(row, view.name, view.text, view.start, view.end))
                continue
            # a long text: only the windows that hold the decoded part (text before and after it is unchanged,
            # and the original's windows already cover it)
            first, last = view.start, len(view.text) - (len(text) - view.end)
            pool += [Candidate(row, view.name, view.text[a:b], view.start, view.end, window=True)
                     for a, b in windows(view.text, window_chars) if a < max(last, first + 1) and b > first]
    return pool


def most_severe(pool: list[Candidate], labels: np.ndarray, p_malicious: np.ndarray, n_rows: int,
                min_malicious: float = 0.0) -> list[int]:
    """Per prompt row, the index in `pool` of its deciding candidate. A window takes part only when its
    P(malicious) is at least `min_malicious`: a long document has many windows, and the plain decision rule
    applied to each would multiply its false-alarm rate by their number."""
    best: list[int | None] = [None] * n_rows
    for i, candidate in enumerate(pool):
        if candidate.window and p_malicious[i] < min_malicious:
            continue
        current = best[candidate.row]
        if current is None or (labels[i], p_malicious[i]) > (labels[current], p_malicious[current]):
            best[candidate.row] = i
    return best
