"""`evaluate`: score any model URI on any labelled file with the training loader, metrics and plots.

Logs `eval_*` security metrics with 95% bootstrap intervals, the confusion matrix, one-vs-rest precision-recall
curves per class, and, when the file has a `source` column, a per-source breakdown (detection rate on class-2 rows,
flag rate on class-0 rows).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import mlflow
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from sklearn.metrics import average_precision_score, precision_recall_curve

from promptcls import LABELS
from promptcls.config import DEFAULT_EXTERNAL, UsageError, default_experiment, experiment_field
from promptcls.contract import SCORE_COLUMNS
from promptcls.data import load_dataset
from promptcls.evaluate import log_scored, predict
from promptcls.names import DATA_DIGEST_TAG, EVALUATED_MODEL_TAG, KIND_TAG
from promptcls.ood.scoring import per_source
from promptcls.predict import CHAMPION_URI, load
from promptcls.tracking import entry_run, log_new_params


@dataclass
class EvaluateArgs:
    """Score a model (any MLflow model URI) on a labelled file."""

    data: str = field(default=str(DEFAULT_EXTERNAL), metadata={"help": "labelled file: .jsonl, .json or .csv"})
    model_uri: str = field(default=CHAMPION_URI, metadata={"help": "models:/…, runs:/…/model, or a path"})
    experiment: str = experiment_field("experiment when not under `mlflow run`")

    def __post_init__(self):
        self.experiment = self.experiment or default_experiment()
        if not os.path.isfile(self.data):
            raise UsageError(f"data: file not found: {self.data}")


def pr_curves_figure(y_true: np.ndarray, scores: np.ndarray) -> Figure:
    fig = Figure(figsize=(6, 4.5), dpi=110)
    ax = fig.add_subplot()
    for c, name in enumerate(LABELS):
        if (y_true == c).any():
            precision, recall, _ = precision_recall_curve(y_true == c, scores[:, c])
            ap = average_precision_score(y_true == c, scores[:, c])
            ax.plot(recall, precision, label=f"{name} (AP {ap:.3f})")
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_title("one-vs-rest precision-recall")
    ax.legend(loc="lower left")
    return fig


def run(args: EvaluateArgs) -> dict[str, float]:
    dataset = load_dataset(args.data)
    model = load(args.model_uri)
    frame = dataset.frame
    with entry_run(args.experiment, run_name="evaluate"):
        mlflow.set_tags({KIND_TAG: "evaluate", EVALUATED_MODEL_TAG: args.model_uri,
                         DATA_DIGEST_TAG: dataset.digest})
        log_new_params({"model_uri": args.model_uri, "data": args.data, "rows": len(frame)})
        out = predict(model.predict, frame["text"].tolist())
        metrics = log_scored(frame, out, "eval", with_ci=True)
        mlflow.log_figure(pr_curves_figure(frame["label"].to_numpy(), out[SCORE_COLUMNS].to_numpy()),
                          "evaluation/eval_precision_recall.png")
        if frame["source"].nunique() > 1:
            table = per_source(frame, out["label"].to_numpy())
            mlflow.log_text(table.to_csv(index=False), "evaluation/eval_per_source.csv")
            print(table.to_string(index=False, float_format="%.3f"))
    print("\n".join(f"eval_{k} = {v:.4f}" for k, v in metrics.items()))
    return metrics
