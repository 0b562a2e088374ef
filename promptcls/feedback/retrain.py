"""Feedback rows in a training run (`feedback=` on every training entry point).

The feedback file (from `promptcls feedback build`) is loaded with the corpus loader and split group-aware like the
corpus: `feedback_holdout` of it is held out, never trained on, and scored as `feedback_*` metrics; the rest joins
the training split, weighted by `feedback_weight` (as sample weights where the family supports them, else each row
repeated ceil(weight) times). Near-duplicates never straddle: a feedback training row whose group is in the
validation or test split or the held-out OOD sources (which rank the run), and a held-out row whose group is trained
on, are dropped (counted in the params).
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass

import mlflow
import numpy as np
import pandas as pd

from promptcls import LABELS
from promptcls.data import Dataset, Splits, hold_out, hold_out_folds, load_dataset
from promptcls.tracking import log_input
from promptcls.names import FEEDBACK_DIGEST_TAG

log = logging.getLogger(__name__)
WEIGHT = "weight"  # column of per-row training weights in `Splits.train` (absent: every row weighs 1)


@dataclass(frozen=True)
class Feedback:
    dataset: Dataset
    train: pd.DataFrame
    holdout: pd.DataFrame
    dropped: dict[str, int]
    weight: float

    def training_splits(self, splits: Splits, sample_weights: bool) -> Splits:
        """`splits` with the feedback training rows appended to `train`: a `weight` column when the family takes
        sample weights, else rows repeated ceil(weight) times."""
        if self.train.empty:
            return splits
        corpus = splits.train.assign(**{WEIGHT: 1.0})
        if sample_weights:
            extra = self.train.assign(**{WEIGHT: self.weight})
        else:
            extra = pd.concat([self.train] * math.ceil(self.weight), ignore_index=True).assign(**{WEIGHT: 1.0})
        train = pd.concat([corpus, extra], ignore_index=True)
        return dataclasses.replace(splits, train=train if sample_weights else train.drop(columns=WEIGHT))

    def log(self) -> None:
        """Dataset inputs (feedback training rows, held-out rows), digest and counts as params."""
        for context, frame in (("feedback_train", self.train), ("feedback_holdout", self.holdout)):
            counts = frame["label"].value_counts().reindex(range(len(LABELS)), fill_value=0)
            source = mlflow.data.from_pandas(frame[["text", "label", "source"]], source=str(self.dataset.path),
                                             targets="label", name=f"{self.dataset.path.stem}-{context}")
            log_input(source, context=context, tags={"rows": str(len(frame)),
                                                     **{f"rows_{LABELS[c]}": str(n) for c, n in counts.items()}})
        mlflow.log_params({"feedback_digest": self.dataset.digest, "n_feedback_train": len(self.train),
                           "n_feedback_holdout": len(self.holdout),
                           **{f"feedback_dropped_{k}": v for k, v in self.dropped.items()}})
        mlflow.set_tag(FEEDBACK_DIGEST_TAG, self.dataset.digest)
        mlflow.log_dict(self.holdout[["text", "label"]].to_dict(orient="records"), "feedback/holdout.json")


def _split(frame: pd.DataFrame, fraction: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Group-aware split; stratified when every class present has enough groups, else by group alone."""
    n_splits = hold_out_folds(fraction)
    if frame["group"].nunique() < n_splits:
        return frame, frame.iloc[:0]
    if frame.groupby("label")["group"].nunique().min() >= n_splits:
        return hold_out(frame, fraction, seed)
    groups = frame["group"].drop_duplicates().sample(frac=1.0, random_state=seed)
    held = set(groups.iloc[:max(1, round(len(groups) * fraction))])
    mask = frame["group"].isin(held)
    return frame[~mask].reset_index(drop=True), frame[mask].reset_index(drop=True)


def load_feedback(path: str, splits: Splits, holdout: float, weight: float, seed: int,
                  ood: pd.DataFrame | None = None) -> Feedback:
    """The feedback rows of `path` split for a run on `splits` (and `ood`, its held-out sources)."""
    dataset = load_dataset(path)
    train, held = _split(dataset.frame, holdout, seed)
    evaluated = set(splits.val["group"]) | set(splits.test["group"]) | set(() if ood is None else ood["group"])
    leak = train["group"].isin(evaluated)
    trained = set(splits.train["group"]) | set(train[~leak]["group"])
    overlap = held["group"].isin(trained)
    dropped = {"in_evaluation_splits": int(leak.sum()), "holdout_trained_on": int(overlap.sum())}
    if any(dropped.values()):
        log.warning("feedback rows dropped so that no near-duplicate straddles a split: %s", dropped)
    if overlap.all() or held.empty:
        log.warning("%s: no held-out feedback row is left to score (%d rows in all)", path, len(dataset.frame))
    return Feedback(dataset, train[~leak].reset_index(drop=True), held[~overlap].reset_index(drop=True), dropped,
                    weight)


def with_feedback_weights(train: pd.DataFrame, weights: np.ndarray | None) -> np.ndarray | None:
    """Class weights (or None) times the rows' feedback weights, when `train` has them."""
    if WEIGHT not in train.columns:
        return weights
    return (np.ones(len(train)) if weights is None else np.asarray(weights)) * train[WEIGHT].to_numpy()
