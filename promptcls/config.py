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

DEFAULT_EXPERIMENT = "prompt-classification"
PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = PROJECT_ROOT / "data" / "prompts.jsonl"
DEFAULT_EXTERNAL = PROJECT_ROOT / "data" / "external.jsonl"


@cache
def family_config(name: str) -> dict:
    """A family's configuration, `promptcls/conf/<name>.yaml` (read once per process)."""
    return yaml.safe_load(files("promptcls.conf").joinpath(f"{name}.yaml").read_text())


class UsageError(ValueError):
    """Bad input or a refused operation: entry points report it as one line and exit with code 2."""


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
    experiment: str = field(default_factory=lambda: os.environ.get("MLFLOW_EXPERIMENT_NAME", DEFAULT_EXPERIMENT),
                            metadata={"help": "experiment when not launched by `mlflow run`"})
    policy: str = field(default="none", metadata={"help": "decision policy fitted on validation: none (argmax) or "
                                                          "threshold (see promptcls/policy.py)"})
    policy_benign_flag_target: float = field(default=0.02, metadata={"help": "threshold policy: max validation "
                                                                             "P(pred 2 | true 0)"})
    policy_miss_target: float = field(default=0.05, metadata={"help": "threshold policy: max share of validation "
                                                                      "malicious rows below the suspicious floor"})
    explain_samples: int = field(default=40, metadata={"help": "validation prompts explained with SHAP (0 = off)"})
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
        if self.sample < 0 or self.explain_samples < 0:
            raise ValueError(f"sample and explain_samples must be >= 0, got {self.sample}, {self.explain_samples}")
        if not Path(self.data).is_file():
            raise ValueError(f"data: file not found: {self.data}")
        if self.external and not Path(self.external).is_file():
            raise ValueError(f"external: file not found: {self.external}")

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
    parameter named in the error for an unknown field."""
    extra = dict(item.split("=", 1) for item in filter(None, text.split(",")))
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
    for noise in KNOWN_NOISE:
        warnings.filterwarnings("ignore", message=noise)
    try:
        job()
    except UsageError as exc:
        logging.getLogger("promptcls").error("%s", exc)
        sys.exit(2)
