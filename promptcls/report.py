"""`report`: the final comparison of an experiment's model runs: `results.csv` plus comparison plots.

One row per run that logged a model (tag `promptcls.model_uri`), any status, ordered by `val_custom_score` (the
selection metric, so the order is the one `select` ranks by). The metric columns (precision_macro … per_class_f1)
are the **test** split's (`test_*`): this is the final report, and the test split is scored once per run for
exactly this; `val_custom_score` is included next to them so selection and report can be read side by side, and
the column `metrics_split` says `test`. `f1_external` is the blind external set's class-2 F1 (no split prefix).

Logged on a run tagged `promptcls.kind=report`: `report/results.csv`, `report/custom_score_ci.png` (test
custom_score with its 95% bootstrap interval per model), `report/radar_top5.png` (the first five rows) and, when
any run logged per-epoch histories, `report/training_curves.png`.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from promptcls import LABELS
from promptcls.config import UsageError, default_experiment, experiment_field
from promptcls.names import FAMILY_TAG, KIND_TAG, MODEL_TAG
from promptcls.tracking import MODEL_URI_TAG, entry_run, log_new_params, model_runs
from promptcls.train import RANK_METRIC

log = logging.getLogger(__name__)
SPLIT = "test"
TEST_COLUMNS = ["precision_macro", "recall_macro", "f1_macro", "roc_auc", "precision_c1", "recall_c2", "f1_c0",
                "custom_score", "false_alarm_rate", "missed_threat_rate"]
COLUMNS = ["model", "precision_macro", "recall_macro", "f1_macro", "roc_auc", "best_params", "status",
           "f1_external", "precision_c1", "recall_c2", "f1_c0", "custom_score", "false_alarm_rate",
           "missed_threat_rate", "per_class_f1", "custom_score_ci_low", "custom_score_ci_high", RANK_METRIC,
           "train_seconds", "latency_p50_ms", "latency_p95_ms", "latency_prompt_p95_ms", "metrics_split", "family",
           "run_name", "run_id"]
RADAR_AXES = {"recall_c2": "recall malicious", "precision_c1": "precision suspicious", "f1_c0": "F1 benign",
              "f1_macro": "F1 macro", "roc_auc": "ROC AUC", "custom_score": "custom score"}
CURVE_METRICS = ("val_custom_score", "val_loss", "train_loss")
"""Per-epoch histories (step = epoch) overlaid in training_curves.png, when runs logged them."""
TOP = 5


@dataclass
class ReportArgs:
    """Compare the model runs of an experiment: results.csv and comparison plots, logged to a report run."""

    experiment: str = experiment_field("experiment whose model runs are reported")
    out: str = field(default="outputs/results.csv", metadata={"help": "local path results.csv is also written to"})

    def __post_init__(self):
        self.experiment = self.experiment or default_experiment()


def results_table(runs: list[Run]) -> pd.DataFrame:
    """One row per run, columns `COLUMNS`, ordered by val_custom_score (runs without it last)."""
    rows = []
    for run in runs:
        m, tags, params = run.data.metrics, run.data.tags, run.data.params
        family, model = tags.get(FAMILY_TAG, ""), tags.get(MODEL_TAG, run.info.run_name)
        row = {"model": f"{family}/{model}" if family else model, "family": family, "status": run.info.status,
               "run_name": run.info.run_name, "run_id": run.info.run_id, "metrics_split": SPLIT,
               "best_params": json.dumps({k.removeprefix("hp_"): v for k, v in sorted(params.items())
                                          if k.startswith("hp_")}),
               "per_class_f1": json.dumps({name: m.get(f"{SPLIT}_f1_c{i}") for i, name in enumerate(LABELS)}),
               **{c: m.get(f"{SPLIT}_{c}", np.nan) for c in TEST_COLUMNS}}
        for name in ("custom_score_ci_low", "custom_score_ci_high"):
            row[name] = m.get(f"{SPLIT}_{name}", np.nan)
        for name in ("f1_external", RANK_METRIC, "train_seconds", "latency_p50_ms", "latency_p95_ms",
                     "latency_prompt_p95_ms"):
            row[name] = m.get(name, np.nan)
        rows.append(row)
    table = pd.DataFrame(rows, columns=COLUMNS)
    return table.sort_values(RANK_METRIC, ascending=False, na_position="last", kind="stable").reset_index(drop=True)


def _labels(table: pd.DataFrame) -> list[str]:
    """Model names, with a short run id where two runs share one."""
    dup = table["model"].duplicated(keep=False)
    return [f"{m} ({r[:6]})" if d else m for m, r, d in zip(table["model"], table["run_id"], dup)]


def ci_figure(table: pd.DataFrame) -> Figure:
    """Test custom_score per model with its 95% bootstrap interval, best (by val_custom_score) on top."""
    fig = Figure(figsize=(7, 1.2 + 0.45 * len(table)), dpi=110)
    ax = fig.add_subplot()
    y = np.arange(len(table))[::-1]
    score = table["custom_score"].to_numpy(dtype=float)
    low = np.nan_to_num(score - table["custom_score_ci_low"].to_numpy(dtype=float))
    high = np.nan_to_num(table["custom_score_ci_high"].to_numpy(dtype=float) - score)
    ax.errorbar(score, y, xerr=[low, high], fmt="o", capsize=4)
    ax.set_yticks(y, _labels(table))
    ax.set_xlabel(f"{SPLIT} custom_score (95% bootstrap CI)")
    ax.set_title("custom_score per model")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return fig


def radar_figure(table: pd.DataFrame, top: int = TOP) -> Figure:
    """Radar of the first `top` rows over `RADAR_AXES` (test split)."""
    head = table.head(top)
    angles = np.linspace(0, 2 * np.pi, len(RADAR_AXES), endpoint=False)
    fig = Figure(figsize=(8, 7.5), dpi=110)
    ax = fig.add_subplot(projection="polar")
    fig.subplots_adjust(left=0.16, right=0.84, top=0.88, bottom=0.2)
    for label, (_, row) in zip(_labels(head), head.iterrows()):
        values = np.nan_to_num(row[list(RADAR_AXES)].to_numpy(dtype=float))
        ax.plot(np.append(angles, angles[0]), np.append(values, values[0]), label=label)
        ax.fill(angles, values, alpha=0.08)
    ax.set_xticks(angles, list(RADAR_AXES.values()))
    ax.set_ylim(0, 1)
    ax.tick_params(axis="x", pad=12)
    ax.set_rlabel_position(180 / len(RADAR_AXES))  # radial labels between the first two axes
    ax.set_title(f"top {len(head)} by {RANK_METRIC} ({SPLIT} metrics)", pad=24)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=min(3, len(head)), fontsize=8)
    return fig


def curves(client: MlflowClient, table: pd.DataFrame) -> dict[str, dict[str, pd.Series]]:
    """{metric: {model label: values by step}} for runs whose history of the metric has two or more steps."""
    found: dict[str, dict[str, pd.Series]] = {}
    for label, run_id in zip(_labels(table), table["run_id"]):
        for key in CURVE_METRICS:
            history = client.get_metric_history(run_id, key)
            if len(history) > 1:
                series = pd.Series({h.step: h.value for h in history}).sort_index()
                found.setdefault(key, {})[label] = series
    return found


def curves_figure(found: dict[str, dict[str, pd.Series]]) -> Figure:
    fig = Figure(figsize=(5.5 * len(found), 4), dpi=110)
    for ax, (key, by_model) in zip(fig.subplots(1, len(found), squeeze=False)[0], found.items()):
        for label, series in by_model.items():
            ax.plot(series.index, series.to_numpy(), marker=".", label=label)
        ax.set_xlabel("epoch (step)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(key)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def run(args: ReportArgs) -> pd.DataFrame:
    """Build and log the report; returns the results table."""
    client = MlflowClient()
    experiment = client.get_experiment_by_name(args.experiment)
    if experiment is None:
        raise UsageError(f"experiment {args.experiment!r} not found at {mlflow.get_tracking_uri()}")
    runs = model_runs(client, experiment.experiment_id)
    if not runs:
        raise UsageError(f"no run in {args.experiment!r} logged a model (tag {MODEL_URI_TAG}); nothing to report")
    with entry_run(args.experiment, run_name="report"):
        mlflow.set_tag(KIND_TAG, "report")
        log_new_params({"experiment": args.experiment, "out": args.out, "metrics_split": SPLIT,
                        "n_model_runs": len(runs)})
        table = results_table(runs)
        csv = table.to_csv(index=False)
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(csv)
        mlflow.log_text(csv, "report/results.csv")
        mlflow.log_figure(ci_figure(table), "report/custom_score_ci.png")
        mlflow.log_figure(radar_figure(table), "report/radar_top5.png")
        found = curves(client, table)
        if found:
            mlflow.log_figure(curves_figure(found), "report/training_curves.png")
        else:
            log.info("no run logged per-epoch histories of %s: no training-curves plot", ", ".join(CURVE_METRICS))
        print(f"{len(table)} model run(s) in {args.experiment!r}, {SPLIT} metrics, ordered by {RANK_METRIC}:")
        print(table[["model", "status", "custom_score", "custom_score_ci_low", "custom_score_ci_high", RANK_METRIC,
                     "f1_macro", "train_seconds", "latency_p50_ms"]].to_string(index=False))
        print(f"results written to {out.resolve()}")
        return table
