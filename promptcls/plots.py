"""Figures logged with runs. Uses matplotlib's object API only: no pyplot state, no backend switching."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from promptcls import LABELS


def confusion_figure(cm: np.ndarray, title: str) -> Figure:
    """Confusion matrix with counts and row-normalised shares (rows = true class)."""
    fig = Figure(figsize=(5, 4.2), dpi=110)
    ax = fig.add_subplot()
    shares = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    for (i, j), count in np.ndenumerate(cm):
        ax.text(j, i, f"{count}\n{shares[i, j]:.1%}", ha="center", va="center",
                color="white" if shares[i, j] > 0.5 else "black", fontsize=9)
    ax.set_xticks(range(len(LABELS)), LABELS)
    ax.set_yticks(range(len(LABELS)), LABELS)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.tight_layout()
    return fig
