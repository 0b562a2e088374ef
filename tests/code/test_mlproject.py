"""The MLproject and the entry points agree: every parameter is used, every flag is one the script accepts."""

import dataclasses
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ENTRY_POINTS = yaml.safe_load((ROOT / "MLproject").read_text())["entry_points"]


@pytest.mark.parametrize("name", sorted(ENTRY_POINTS))
def test_entry_point_parameters_and_flags_match(name):
    spec = ENTRY_POINTS[name]
    command = " ".join(spec["command"].split())
    used = set(re.findall(r"\{(\w+)\}", command))
    assert used == set(spec.get("parameters", {})), "parameters and command placeholders differ"
    assert not re.search(r"'\{\w+\}'", command), "MLflow quotes values itself: no quotes around {param}"
    module = re.search(r"python -m (entrypoints\.\w+)", command).group(1)
    help_text = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True, cwd=ROOT,
                               timeout=120, check=True).stdout
    for flag in re.findall(r"(--[\w-]+) \{", command):
        assert flag in help_text, f"{module} does not accept {flag}"


# ---- one source of defaults: every entry's params and defaults are its arg dataclass's ------------------------------
from promptcls.behaviour import BehaviourArgs  # noqa: E402
from promptcls.config import PROJECT_ROOT, TrainArgs, converters, defaults  # noqa: E402
from promptcls.evaluate_cli import EvaluateArgs  # noqa: E402
from promptcls.families import FAMILIES, get_family  # noqa: E402
from promptcls.families.ensemble import EnsembleArgs  # noqa: E402
from promptcls.holdout import SourceHoldoutArgs  # noqa: E402
from promptcls.pipeline import MainArgs  # noqa: E402
from promptcls.report import ReportArgs  # noqa: E402
from promptcls.select import SelectArgs  # noqa: E402
from promptcls.tune import TuneArgs  # noqa: E402

ARG_CLASSES = {"main": MainArgs, "select": SelectArgs, "source_holdout": SourceHoldoutArgs, "tune": TuneArgs,
               "evaluate": EvaluateArgs, "behaviour": BehaviourArgs, "report": ReportArgs, "train": TrainArgs,
               "ensemble": EnsembleArgs,
               **{name: get_family(name).args_class for name in FAMILIES}}
"""The dataclass behind each MLproject entry; a new entry point must be added here (the test fails until it is)."""
EXTRA = {"train": {"family": "traditional", "model": "", "family_args": ""}}
"""Params an entry adds to its dataclass (the generic `train`: which family, its fields as family_args)."""
OMITTABLE = {"experiment"}
"""Under `mlflow run` the experiment is --experiment-name; where an entry lists it, its default is '' (= the
dataclass default: $MLFLOW_EXPERIMENT_NAME, else prompt-classification)."""


def expected(value):
    """A dataclass default as the MLproject spells it: project paths relative to the checkout, bools lowercase."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str) and value.startswith(str(PROJECT_ROOT) + "/"):
        return str(Path(value).relative_to(PROJECT_ROOT))
    return value


@pytest.mark.parametrize("name", sorted(ENTRY_POINTS))
def test_entry_point_params_and_defaults_are_the_dataclass(name, monkeypatch):
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    assert name in ARG_CLASSES, f"MLproject entry {name!r} has no arg dataclass in ARG_CLASSES"
    cls, params = ARG_CLASSES[name], ENTRY_POINTS[name].get("parameters", {})
    fields, types = defaults(cls) | EXTRA.get(name, {}), converters(cls)
    required = set(types) - set(fields)
    assert set(params) - set(fields) - required == set(), "MLproject params the dataclass does not have"
    missing = set(fields) | required
    missing -= set(params) | OMITTABLE
    assert missing == set(), f"dataclass fields missing from the MLproject entry {name!r}"
    for key, spec in params.items():
        kind = types.get(key, str)
        assert spec["type"] == ("float" if kind in (converters(TrainArgs)["seed"], float) else "string"), key
        if key in required:
            assert "default" not in spec, f"{key}: required in the dataclass, defaulted in MLproject"
        elif key == "experiment":
            assert spec["default"] == "", "experiment defaults to '' (= default_experiment())"
        elif isinstance(fields[key], (int, float)) and not isinstance(fields[key], bool):
            assert float(spec["default"]) == float(fields[key]), f"{key}: MLproject {spec['default']} != {fields[key]}"
        else:
            assert str(spec["default"]) == expected(fields[key]), f"{key}: {spec['default']!r} != {fields[key]!r}"


@pytest.mark.parametrize("name", sorted(FAMILIES) + ["train"])
def test_every_training_entry_point_takes_every_shared_option(name):
    params = set(ENTRY_POINTS[name]["parameters"])
    shared = {f.name for f in dataclasses.fields(TrainArgs)} - OMITTABLE
    assert shared <= params, f"{name} lacks {sorted(shared - params)}"


def test_every_arg_class_defaults_experiment_the_same_way(monkeypatch):
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "from-env")
    for name, cls in ARG_CLASSES.items():
        if "experiment" in {f.name for f in dataclasses.fields(cls)}:
            assert defaults(cls)["experiment"] == "from-env", name
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME")
    assert {defaults(cls)["experiment"] for cls in ARG_CLASSES.values()
            if "experiment" in defaults(cls)} == {"prompt-classification"}
