"""`promptcls monitor`: does recent traffic still look like the training data, and like the previous window?

The window is a scored file (`promptcls score` output: text, label, score_*) or the recorded decision traces
(`--from-traces EXPERIMENT`; benign traces are sampled, so each counts 1/sample-rate times). The reference is a
scored file, or a labelled corpus that `--model-uri` scores (a `reference_sample` of it). Metrics (drift.py) are
logged as an MLflow run with plots; any threshold of `promptcls/conf/monitor.yaml` exceeded -> exit code 3.
"""

from __future__ import annotations

import logging
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from promptcls import LABELS
from promptcls.config import DEFAULT_DATA, UsageError
from promptcls.contract import SCORE_COLUMNS
from promptcls.data import stratified_sample
from promptcls.feedback import MONITOR_EXPERIMENT
from promptcls.feedback.decisions import read_decisions
from promptcls.feedback.drift import alarms, compare, script_shares, verdict_rates
from promptcls.feedback.settings import load_settings
from promptcls.predict import load, read_input, score_frame
from promptcls.tracking import entry_run, log_new_params
from promptcls.names import DRIFT_TAG, KIND_TAG

log = logging.getLogger(__name__)
DRIFT_EXIT = 3


def scored_table(path: str, model_uri: str | None, sample: int, seed: int) -> pd.DataFrame:
    """text, label, score_* of `path`; a file without score columns is scored with `model_uri` (a sample)."""
    table = read_input(Path(path))
    if "text" not in table.columns:
        raise UsageError(f"{path}: no `text` column; found {list(table.columns)}")
    if all(c in table.columns for c in ("label", *SCORE_COLUMNS)):
        return table[["text", "label", *SCORE_COLUMNS]].dropna(subset=SCORE_COLUMNS)
    if not model_uri:
        raise UsageError(f"{path} has no score columns {SCORE_COLUMNS}: pass --model-uri to score it, or give a "
                         "file written by `promptcls score`")
    if "label" in table.columns and sample:
        table = stratified_sample(table.assign(label=table["label"].astype(str)), sample, seed)
    elif sample and len(table) > sample:
        table = table.sample(n=sample, random_state=seed)
    return score_frame(load(model_uri), table[["text"]], desc=f"scoring {path}")


def traces_table(experiment: str, max_traces: int) -> pd.DataFrame:
    """The recorded decisions as a window; a sampled benign trace counts 1/sample-rate times."""
    frame = read_decisions(experiment, max_results=max_traces)
    frame = frame.dropna(subset=["model_label", *SCORE_COLUMNS]).rename(columns={"model_label": "label"})
    weight = frame["sample_weight"].astype(float).round().clip(lower=1).astype(int)
    return frame.loc[frame.index.repeat(weight), ["text", "label", *SCORE_COLUMNS]].reset_index(drop=True)


def figure(window: pd.DataFrame, reference: pd.DataFrame, title: str) -> Figure:
    fig = Figure(figsize=(14, 7), dpi=100)
    axes = fig.subplots(2, 3)
    for ax, column in zip(axes[0], SCORE_COLUMNS):
        bins = np.linspace(0, 1, 21)
        ax.hist(reference[column], bins, density=True, alpha=0.5, label=f"reference (n={len(reference)})")
        ax.hist(window[column], bins, density=True, alpha=0.5, label=f"window (n={len(window)})")
        ax.set_title(column)
        ax.legend(fontsize=8)
    rates = pd.DataFrame({"reference": verdict_rates(reference["label"]), "window": verdict_rates(window["label"])})
    rates.index = list(LABELS)
    rates.plot.bar(ax=axes[1][0], rot=0, title="verdict rates")
    scripts = pd.DataFrame({"reference": script_shares(reference["text"]),
                            "window": script_shares(window["text"])}).fillna(0.0)
    scripts.sort_values("window", ascending=False).head(10).plot.bar(ax=axes[1][1], title="main script of prompts")
    axes[1][2].axis("off")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def monitor(window: str | None = None, from_traces: str | None = None, reference: str = str(DEFAULT_DATA),
            previous: str | None = None, model_uri: str | None = None, thresholds: str | None = None,
            experiment: str = MONITOR_EXPERIMENT, max_traces: int = 10000, reference_sample: int = 3000,
            seed: int = 0) -> int:
    """Compare, log the run, print the verdict; returns 0 (no drift) or DRIFT_EXIT."""
    if bool(window) == bool(from_traces):
        raise UsageError("give exactly one of --window (a scored file) or --from-traces (an experiment)")
    settings = load_settings("monitor", thresholds)
    current = scored_table(window, model_uri, 0, seed) if window else traces_table(from_traces, max_traces)
    if len(current) < settings["min_window"]:
        raise UsageError(f"the window has {len(current)} scored prompts, fewer than min_window="
                         f"{settings['min_window']}: too few to judge drift")
    ref = scored_table(reference, model_uri, reference_sample, seed)
    metrics = compare(current, ref, settings)
    found = alarms(metrics, settings)
    if previous:
        before = compare(current, scored_table(previous, model_uri, 0, seed), settings)
        metrics |= {f"previous_{k}": v for k, v in before.items()}
        found += alarms(before, settings, prefix="previous_")
    with entry_run(experiment, run_name="monitor"):
        mlflow.set_tags({KIND_TAG: "monitor", DRIFT_TAG: str(bool(found)).lower()})
        log_new_params({"window": window or f"traces:{from_traces}", "reference": reference,
                        "previous": previous or "", "model_uri": model_uri or "", "n_window": len(current),
                        "n_reference": len(ref), **{f"threshold_{k}": v for k, v in settings.items()}})
        mlflow.log_metrics(metrics | {"drift_alarms": len(found)})
        mlflow.log_figure(figure(current, ref, f"window vs reference: {'DRIFT' if found else 'no drift'}"),
                          "monitor/window_vs_reference.png")
        mlflow.log_text("\n".join(found) or "no threshold exceeded", "monitor/alarms.txt")
    for key in ("verdict_rate_max_diff", "score_psi_max", "score_ks_max", "rare_script_share"):
        print(f"{key}: {metrics[key]:.4f}")
    if found:
        print("DRIFT: " + "; ".join(found))
        return DRIFT_EXIT
    print(f"no drift: {len(current)} window prompts within every threshold")
    return 0
