"""Typed run arguments shared by every family, validated before anything is trained or logged.

Each family extends `TrainArgs` with its own fields; `parse_args` turns a dataclass into a command line
(`--field value`), which is what the MLproject entry points call.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
import typing
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from importlib.resources import files
from pathlib import Path

import yaml

from promptcls.errors import UsageError  # noqa: F401  (re-exported: `from promptcls.config import UsageError`)
from promptcls.families import config_schema
from promptcls.schemas import validate
from promptcls.text.settings import augment_kinds, robustness

DEFAULT_EXPERIMENT = "prompt-classification"
PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = PROJECT_ROOT / "data" / "prompts.jsonl"  # the corpus exists only in a source checkout, not in a wheel
DEFAULT_EXTERNAL = PROJECT_ROOT / "data" / "external.jsonl"


def default_experiment() -> str:
    """The experiment when none is given: under `mlflow run` the one its run was created in ($MLFLOW_EXPERIMENT_ID,
    which `--experiment-name` sets, so `select` and `report` look where they log), else $MLFLOW_EXPERIMENT_NAME, else
    `prompt-classification`."""
    launched = os.environ.get("MLFLOW_EXPERIMENT_ID") if os.environ.get("MLFLOW_RUN_ID") else None
    if launched:
        from mlflow.tracking import MlflowClient
        return MlflowClient().get_experiment(launched).name
    return os.environ.get("MLFLOW_EXPERIMENT_NAME") or DEFAULT_EXPERIMENT


def experiment_field(help: str = "experiment when not launched by `mlflow run`"):
    """The `experiment` field of every arg class: one default (`default_experiment`); '' also means it."""
    return field(default_factory=default_experiment, metadata={"help": f"{help} ('' = the experiment of `mlflow "
                                                                       f"run`, else $MLFLOW_EXPERIMENT_NAME, else "
                                                                       f"{DEFAULT_EXPERIMENT})"})


def check_input_file(name: str, path: str, skip_hint: str = "") -> None:
    """A ValueError naming the argument when `path` is not a file; the bundled corpus files get a hint, since they
    exist only in a source checkout (a non-editable install has no `data/`)."""
    if Path(path).is_file():
        return
    if Path(path) in (DEFAULT_DATA, DEFAULT_EXTERNAL):
        raise ValueError(f"{name}: the bundled {Path(path).name} is only in a source checkout of promptcls, not in "
                         f"an installed package ({path} does not exist): pass {name}=PATH{skip_hint}")
    raise ValueError(f"{name}: file not found: {path}")


@cache
def family_config(name: str) -> dict:
    """A family's configuration, `promptcls/conf/<name>.yaml` (read once per process), validated by the family's
    `CONFIG_SCHEMA` (promptcls/schemas.py): an unknown or misspelt key fails naming the file and key."""
    data = yaml.safe_load(files("promptcls.conf").joinpath(f"{name}.yaml").read_text())
    validate(data, config_schema(name), f"promptcls/conf/{name}.yaml")
    return data


def _bool(value: str) -> bool:
    if value.lower() in ("1", "true", "yes", "y"):
        return True
    if value.lower() in ("0", "false", "no", "n"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {value!r}")


def _int(value: str) -> int:
    number = float(value)  # MLproject passes numbers as given: "500" or "500.0"
    if not number.is_integer():
        raise argparse.ArgumentTypeError(f"expected an integer, got {value!r}")
    return int(number)


@dataclass
class TrainArgs:
    """Arguments every training entry point takes."""

    model: str = field(metadata={"help": "model name within the family, or `all` for one nested run per model"})
    data: str = field(default=str(DEFAULT_DATA), metadata={"help": "labelled file: .jsonl, .json or .csv"})
    external: str = field(default=str(DEFAULT_EXTERNAL),
                          metadata={"help": "blind set scored as external_* metrics (all rows class 2); '' to skip"})
    sample: int = field(default=0, metadata={"help": "class-stratified subsample of the corpus (0 = all rows)"})
    val_size: float = field(default=0.15, metadata={"help": "validation fraction (early stopping, selection)"})
    test_size: float = field(default=0.15, metadata={"help": "test fraction (final report only)"})
    seed: int = field(default=42, metadata={"help": "seed for splits, sampling and models"})
    experiment: str = experiment_field()
    policy: str = field(default="none", metadata={"help": "decision policy fitted on validation: none (argmax) or "
                                                          "threshold (see promptcls/policy.py)"})
    policy_benign_flag_target: float = field(default=0.02, metadata={"help": "threshold policy: max validation "
                                                                             "P(pred 2 | true 0)"})
    policy_miss_target: float = field(default=0.05, metadata={"help": "threshold policy: max share of validation "
                                                                      "malicious rows below the suspicious floor"})
    explain_samples: int = field(default=40, metadata={"help": "validation prompts explained with SHAP (0 = off)"})
    feedback: str = field(default="", metadata={"help": "reviewed feedback rows (`promptcls feedback build`) added to "
                                                        "training; '' = none"})
    feedback_weight: float = field(default=1.0, metadata={"help": "weight of a feedback training row (sample weight, "
                                                                  "or ceil(weight) repeats)"})
    feedback_holdout: float = field(default=0.3, metadata={"help": "share of the feedback held out, never trained "
                                                                   "on, scored as feedback_* metrics (in whole folds: "
                                                                   "1/k, or 1 - 1/k above 0.5)"})
    augment: str = field(default="none", metadata={
        "help": "training augmentation (promptcls/text/augment.py): none, evasion (perturbed copies of training rows "
                "of every class), indirect (training injections planted inside training documents) or both, "
                "comma-separated"})
    max_input_chars: int = field(default_factory=lambda: robustness()["limits"]["max_input_chars"],
                                 metadata={"help": "longest `text` (characters) the logged model accepts; longer "
                                                   "-> HTTP 400 (default: conf/robustness.yaml)"})
    policy_review_target: float = field(default=0.10, metadata={"help": "threshold policy: max validation "
                                                                        "P(pred 1 | true 0), the benign review share"})
    ood_sources: str = field(default="default", metadata={"help": "sources held out of train/val/test and scored "
                                                                  "as ood_*: default (promptcls/conf/sources.yaml), "
                                                                  "none, or a,b,c"})

    def __post_init__(self):
        for name in ("val_size", "test_size"):
            if not 0.0 < getattr(self, name) < 0.5:
                raise ValueError(f"{name} must be in (0, 0.5), got {getattr(self, name)}")
        if self.policy not in ("none", "threshold"):
            raise ValueError(f"policy must be none or threshold, got {self.policy!r}")
        if not 0.0 < self.policy_review_target <= 1.0:
            raise ValueError(f"policy_review_target must be in (0, 1], got {self.policy_review_target}")
        if not self.ood_sources.strip():
            raise ValueError("ood_sources must be default, none or a comma-separated list of sources")
        for name in ("policy_benign_flag_target", "policy_miss_target"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        augment_kinds(self.augment)
        if self.max_input_chars < 1:
            raise ValueError(f"max_input_chars must be >= 1, got {self.max_input_chars}")
        if self.sample < 0 or self.explain_samples < 0:
            raise ValueError(f"sample and explain_samples must be >= 0, got {self.sample}, {self.explain_samples}")
        self.experiment = self.experiment or default_experiment()
        check_input_file("data", self.data)
        if self.external:
            check_input_file("external", self.external, " (or external='' to skip the blind set)")
        if self.feedback:
            check_input_file("feedback", self.feedback)
        if not self.feedback_weight > 0 or not 0.0 < self.feedback_holdout < 1.0:
            raise ValueError(f"feedback_weight must be > 0 and feedback_holdout in (0, 1), got "
                             f"{self.feedback_weight}, {self.feedback_holdout}")

    def to_params(self) -> dict[str, object]:
        return dataclasses.asdict(self)


def converters(cls: type) -> dict[str, Callable[[str], object]]:
    """Per field of dataclass `cls`: the function turning its command-line string into the field's type."""
    hints = typing.get_type_hints(cls)
    return {f.name: {bool: _bool, int: _int, float: float}.get(hints[f.name], str) for f in dataclasses.fields(cls)}


def defaults(cls: type) -> dict[str, object]:
    """Per field of dataclass `cls` that has a default: that default."""
    return {f.name: f.default if f.default is not dataclasses.MISSING else f.default_factory()
            for f in dataclasses.fields(cls)
            if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING}


def assignments(cls: type, text: str, name: str) -> dict[str, object]:
    """Typed fields of dataclass `cls` from 'field=value,field=value' (the `family_args` params); `name` is the
    parameter named in the error for an unknown field. A part with no `field=` continues the value before it, so a
    value may hold commas ('augment=evasion,indirect', 'hp={"C":16,"penalty":"l2"}')."""
    pairs: list[list[str]] = []
    for item in filter(None, text.split(",")):
        key, equals, value = item.partition("=")
        if equals and key.isidentifier():
            pairs.append([key, value])
        elif pairs:
            pairs[-1][1] += "," + item
        else:
            raise UsageError(f"{name}: {item!r} is not field=value")
    extra = dict(pairs)
    types = converters(cls)
    unknown = set(extra) - set(types)
    if unknown:
        raise UsageError(f"{name}: unknown field(s) {sorted(unknown)}; valid: {sorted(types)}")
    return {k: types[k](v) for k, v in extra.items()}


def parse_args(cls: type, argv: list[str] | None = None):
    """Build an argparse parser from dataclass `cls`; invalid values exit with a message naming the field."""
    parser = argparse.ArgumentParser(description=cls.__doc__)
    types = converters(cls)
    default = defaults(cls)
    for f in dataclasses.fields(cls):
        kwargs: dict = {"help": f.metadata.get("help", ""), "type": types[f.name]}
        if f.name not in default:
            kwargs["required"] = True
        else:
            kwargs["default"] = default[f.name]
            kwargs["help"] += f" (default: {kwargs['default']})"
        parser.add_argument(f"--{f.name.replace('_', '-')}", dest=f.name, **kwargs)
    namespace = parser.parse_args(argv)
    try:
        return cls(**vars(namespace))
    except ValueError as exc:
        parser.error(str(exc))


KNOWN_NOISE = (
    ".*Integer columns in Python cannot represent missing values.*",  # `label` is never missing
    "The specified dataset source can be interpreted in multiple ways",  # two equivalent local-file sources
)
"""MLflow warnings that do not apply to promptcls runs; entry points silence them."""


def run_cli(job: Callable[[], object]) -> None:
    """Run an entry point's job: progress logged to stderr, a UsageError as a one-line message with exit code 2."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # one bar per model load is noise
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")  # tracking.print_ui_links prints ours
    for noise in KNOWN_NOISE:
        warnings.filterwarnings("ignore", message=noise)
    try:
        job()
    except UsageError as exc:
        logging.getLogger("promptcls").error("%s", exc)
        sys.exit(2)
