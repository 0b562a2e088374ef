"""The interface a model family implements. The training driver (`promptcls.train`) does everything else:
data, splits, runs, evaluation, model logging and latency."""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod

from promptcls.config import TrainArgs, UsageError
from promptcls.contract import TextClassifier
from promptcls.data import Splits


class Family(ABC):
    name: str
    """Family name, logged as the `promptcls.family` tag."""
    args_class: type[TrainArgs]
    """Dataclass of this family's arguments (extends TrainArgs)."""
    supports_sample_weights: bool = False
    """Whether `train` applies a `weight` column of `splits.train` (feedback rows); otherwise the driver repeats
    weighted rows instead (promptcls/feedback/retrain.py)."""
    supports_distributed: bool = False
    """Whether `train` can run in every process of a torchrun job (WORLD_SIZE > 1). Such a family's `train` is
    then called on every rank, with an active MLflow run on rank 0 only: it must log only where
    `promptcls.distributed.is_main_process()`, and its training must leave no collective operation pending
    (rank 0 evaluates and logs alone afterwards, while the others have already returned)."""

    @abstractmethod
    def model_names(self) -> list[str]:
        """Models this family can train (what `model=all` runs)."""

    @abstractmethod
    def train(self, model_name: str, splits: Splits, args: TrainArgs) -> TextClassifier:
        """Fit on `splits.train` (and `splits.val` for early stopping/tuning; never `splits.test`).

        Runs inside the active MLflow run: log family-specific params and curves here, at `step` = epoch number
        (1-based). The driver then logs the returned model's final metrics at the run's last step.
        """

    def build_untrained(self, model_name: str) -> object:
        """The model's configuration built into its untrained object (estimator pipeline, network, ...), tiny and
        without data: tests/code/test_configs.py calls it for every model of every registered family, so a broken
        YAML entry fails in seconds rather than mid-training."""
        raise NotImplementedError(f"family {self.name!r} must implement build_untrained")

    def window_chars(self, args: TrainArgs) -> int | None:
        """For a model that truncates its input (a CNN, a transformer): the characters of the windows the contract
        shows it a long text in, so augmented copies can be cut to them (promptcls/text/augment.py). None for a
        model that reads a whole text."""
        return None

    @abstractmethod
    def requirements(self) -> list[str]:
        """Distributions the logged model needs beyond the base set (pinned at log time)."""

    def tuned_args(self, args: TrainArgs, params: dict[str, object]) -> TrainArgs:
        """`args` with hyper-parameters fixed to `params`: the one configuration a tuning trial trains.

        By default the tuned names are fields of `args_class` (learning_rate, batch_size, ...); a family whose
        knobs live elsewhere (the traditional estimators' params) overrides this. Invalid values raise ValueError.
        """
        unknown = set(params) - {f.name for f in dataclasses.fields(args)}
        if unknown:
            raise UsageError(f"{sorted(unknown)} are not {self.name} arguments; valid: "
                             f"{', '.join(f.name for f in dataclasses.fields(args))}")
        return dataclasses.replace(args, **params)
