"""Leave-one-source-out evaluation: for each source, train on all the others and score the held-out source.

Random splits of one corpus overstate quality on prompts from sources a model never saw; this is the number to
quote for unseen data. Each source is a nested child run whose `test_*` metrics are the held-out source's; the
parent logs the per-source table and `lso_*` summary metrics.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field

import mlflow
import pandas as pd

from promptcls.config import DEFAULT_DATA, UsageError, assignments, default_experiment, experiment_field
from promptcls.data import Splits, hold_out, load_dataset, stratified_sample
from promptcls.families import FAMILIES, get_family
from promptcls.names import FAMILY_TAG, KIND_TAG, MODEL_TAG
from promptcls.tracking import HOLDOUT_TAG, child_run, entry_run, log_new_params
from promptcls.train import log_dataset, train_one

log = logging.getLogger(__name__)


@dataclass
class SourceHoldoutArgs:
    """Leave-one-source-out: train a family/model on all sources but one, evaluate on that one, for each source."""

    family: str = field(default="traditional", metadata={"help": f"one of {', '.join(FAMILIES)}"})
    model: str = field(default="logreg", metadata={"help": "model name within the family"})
    data: str = field(default=str(DEFAULT_DATA), metadata={"help": "labelled file with a `source` column"})
    sample: int = field(default=0, metadata={"help": "class-stratified subsample (0 = all rows)"})
    sources: str = field(default="", metadata={"help": "comma-separated sources to hold out (default: all)"})
    family_args: str = field(default="", metadata={"help": "extra family arguments, e.g. 'cv_folds=2,seed=1'"})
    seed: int = field(default=42, metadata={"help": "seed"})
    experiment: str = experiment_field("experiment when not under `mlflow run`")

    def __post_init__(self):
        self.experiment = self.experiment or default_experiment()
        self.family_impl = get_family(self.family)
        extra = assignments(self.family_impl.args_class, self.family_args, "family_args")
        self.train_args = self.family_impl.args_class(model=self.model, data=self.data, external="",
                                                      seed=self.seed, experiment=self.experiment, **extra)
        if self.train_args.feedback:
            raise ValueError("family_args: feedback is not applied by source_holdout (a diagnostic of the corpus)")


def source_table(results: dict[str, dict[str, float]], frame: pd.DataFrame) -> pd.DataFrame:
    """Per held-out source: rows per class, detection rate on its malicious rows, flag rate on its benign rows."""
    rows = []
    for source, m in results.items():
        counts = frame.loc[frame["source"] == source, "label"].value_counts()
        rows.append({"source": source, "rows": int(counts.sum()), "benign": int(counts.get(0, 0)),
                     "suspicious": int(counts.get(1, 0)), "malicious": int(counts.get(2, 0)),
                     "malicious_detection_rate": m["test_recall_c2"] if counts.get(2, 0) else None,
                     "benign_flag_rate": m["test_benign_flag_rate"] if counts.get(0, 0) else None,
                     "suspicious_recall": m["test_recall_c1"] if counts.get(1, 0) else None,
                     "custom_score": m["test_custom_score"], "accuracy": m["test_accuracy"]})
    return pd.DataFrame(rows)


def run(args: SourceHoldoutArgs) -> pd.DataFrame:
    dataset = load_dataset(args.data)
    frame = stratified_sample(dataset.frame, args.sample, args.seed)
    sources = args.sources.split(",") if args.sources else sorted(frame["source"].unique())
    missing = set(sources) - set(frame["source"])
    if missing or len(set(frame["source"])) < 2:
        raise UsageError(f"{args.data}: need >= 2 sources; unknown source(s) {sorted(missing)}")
    results = {}
    with entry_run(args.experiment, run_name=f"source-holdout-{args.family}-{args.model}"):
        mlflow.set_tags({KIND_TAG: "source_holdout", FAMILY_TAG: args.family,
                         MODEL_TAG: args.model})
        log_new_params({k: v for k, v in dataclasses.asdict(args).items()})
        for i, source in enumerate(sources, 1):
            held = frame[frame["source"] == source]
            # no near-duplicate of a held-out row may be trained on, whichever source it came from
            others = frame[(frame["source"] != source) & ~frame["group"].isin(set(held["group"]))]
            train, val = hold_out(others, args.train_args.val_size, args.seed)
            splits = Splits(train=train, val=val, test=held.reset_index(drop=True))
            log.info("[%d/%d] holding out %s (%d rows); training on %d", i, len(sources), source, len(held),
                     len(train))
            with child_run(run_name=f"holdout-{source}"):
                mlflow.set_tag(HOLDOUT_TAG, source)
                log_new_params(args.train_args.to_params() | {"held_out_source": source})
                log_dataset(dataset, splits)
                results[source] = train_one(args.family_impl, args.model, splits, None, args.train_args)
        table = source_table(results, frame)
        mlflow.log_table(table, "source_holdout.json")
        mlflow.log_text(table.to_csv(index=False), "source_holdout.csv")
        summary = {"lso_mean_custom_score": table["custom_score"].mean(),
                   "lso_min_recall_c2": table["malicious_detection_rate"].min(),
                   "lso_mean_recall_c2": table["malicious_detection_rate"].mean(),
                   "lso_max_benign_flag_rate": table["benign_flag_rate"].max(),
                   "lso_mean_benign_flag_rate": table["benign_flag_rate"].mean()}
        mlflow.log_metrics({k: float(v) for k, v in summary.items() if pd.notna(v)})
    print(table.to_string(index=False, float_format="%.3f"))
    print("\n".join(f"{k} = {v:.4f}" for k, v in summary.items() if pd.notna(v)))
    return table
