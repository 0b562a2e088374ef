"""Drift statistics between a window of scored traffic and a reference: verdict rates, score distributions (PSI,
two-sample KS from scipy), and the share of prompts written in scripts the reference barely has."""

from __future__ import annotations

import unicodedata
from collections import Counter

import numpy as np
import pandas as pd
from scipy.stats import ks_2samp

from promptcls import LABELS
from promptcls.contract import SCORE_COLUMNS

_SCRIPT_ALIASES = {"HIRAGANA": "CJK", "KATAKANA": "CJK", "CJK": "CJK", "HANGUL": "HANGUL"}


def script_of(char: str) -> str:
    """Unicode script of a letter by its character name's first word (LATIN, CYRILLIC, ARABIC, CJK, ...)."""
    try:
        first = unicodedata.name(char).split()[0]
    except ValueError:
        return "UNKNOWN"
    return _SCRIPT_ALIASES.get(first, first)


def main_script(text: str) -> str:
    """The script most of `text`'s letters are written in; NONE for a text without letters."""
    counts = Counter(script_of(c) for c in text if c.isalpha())
    return counts.most_common(1)[0][0] if counts else "NONE"


def script_shares(texts: pd.Series) -> pd.Series:
    return texts.astype(str).map(main_script).value_counts(normalize=True)


def verdict_rates(labels: pd.Series) -> pd.Series:
    return labels.astype(int).value_counts(normalize=True).reindex(range(len(LABELS)), fill_value=0.0)


def psi(reference: np.ndarray, window: np.ndarray, bins: int = 10) -> float:
    """Population stability index of `window` against `reference`, on the reference's quantile bins."""
    edges = np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1)))
    if len(edges) < 3:  # a (nearly) constant reference: one split at its value
        edges = np.array([-np.inf, float(np.median(reference)), np.inf])
    edges[0], edges[-1] = -np.inf, np.inf
    ref = np.histogram(reference, edges)[0] / len(reference)
    win = np.histogram(window, edges)[0] / len(window)
    ref, win = np.clip(ref, 1e-4, None), np.clip(win, 1e-4, None)
    return float(np.sum((win - ref) * np.log(win / ref)))


def compare(window: pd.DataFrame, reference: pd.DataFrame, settings: dict) -> dict[str, float]:
    """Drift metrics of `window` against `reference` (both with text, label and score_* columns)."""
    metrics: dict[str, float] = {}
    rates_w, rates_r = verdict_rates(window["label"]), verdict_rates(reference["label"])
    for c, name in enumerate(LABELS):
        metrics[f"verdict_rate_{name}"] = float(rates_w[c])
        metrics[f"verdict_rate_{name}_reference"] = float(rates_r[c])
    metrics["verdict_rate_max_diff"] = float((rates_w - rates_r).abs().max())
    for column in SCORE_COLUMNS:
        ref, win = reference[column].to_numpy(float), window[column].to_numpy(float)
        metrics[f"{column}_psi"] = psi(ref, win, settings["psi_bins"])
        ks = ks_2samp(ref, win)
        metrics[f"{column}_ks"], metrics[f"{column}_ks_pvalue"] = float(ks.statistic), float(ks.pvalue)
    metrics["score_psi_max"] = max(metrics[f"{c}_psi"] for c in SCORE_COLUMNS)
    metrics["score_ks_max"] = max(metrics[f"{c}_ks"] for c in SCORE_COLUMNS)
    ref_scripts, win_scripts = script_shares(reference["text"]), script_shares(window["text"])
    rare = [s for s in win_scripts.index if ref_scripts.get(s, 0.0) < settings["rare_script_reference_share"]]
    metrics["rare_script_share"] = float(win_scripts[rare].sum()) if rare else 0.0
    return metrics


THRESHOLDS = {"verdict_rate_max_diff": "verdict_rate_max_diff", "score_psi_max": "score_psi_max",
              "score_ks_max": "score_ks_max", "rare_script_share": "rare_script_share_max"}
"""metric -> the settings key of its upper bound."""


def alarms(metrics: dict[str, float], settings: dict, prefix: str = "") -> list[str]:
    """One line per metric over its threshold."""
    return [f"{prefix}{metric}={metrics[metric]:.4f} > {settings[key]}" for metric, key in THRESHOLDS.items()
            if metrics[metric] > settings[key]]
