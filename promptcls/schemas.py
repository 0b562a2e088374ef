"""Schemas of the YAML configuration (gates file, family files), validated before any run is created.

Every schema refuses unknown keys (`extra="forbid"`): a misspelt key is an error naming the file and the key's
path, never silently ignored. `load_yaml(path, Schema)` reads and validates a file; `validate(data, Schema,
where)` validates an already-read mapping.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from promptcls.errors import UsageError


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _describe(error: dict) -> str:
    where = ".".join(str(part) for part in error["loc"]) or "(top level)"
    message = "unknown key (misspelt?)" if error["type"] == "extra_forbidden" else error["msg"]
    return f"{where}: {message}"


def validate(data: object, schema: type[Strict], where: str) -> Strict:
    """`data` as `schema`; a UsageError lists each bad key as `<where>: <key.path>: <problem>`."""
    try:
        return schema.model_validate(data if data is not None else {})
    except ValidationError as exc:
        problems = "; ".join(_describe(e) for e in exc.errors())
        raise UsageError(f"{where}: {problems}") from None


def load_yaml(path: str | Path, schema: type[Strict]) -> Strict:
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{path}: file not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise UsageError(f"{path}: not valid YAML: {exc}") from None
    return validate(data, schema, str(path))


def package_config(name: str, schema: type[Strict]) -> dict:
    """`promptcls/conf/<name>.yaml` (package data) validated by `schema`, as a plain mapping."""
    data = yaml.safe_load(files("promptcls.conf").joinpath(f"{name}.yaml").read_text())
    return validate(data, schema, f"promptcls/conf/{name}.yaml").model_dump()


# ---- promotion gates (promptcls/registry/gates.yaml) -------------------------------------------------------------

class GateSpec(Strict):
    metric: str = Field(min_length=1)
    min: float | None = None
    max: float | None = None
    required: bool = True

    @model_validator(mode="after")
    def _bounded(self):
        if self.min is None and self.max is None:
            raise ValueError(f"gate {self.metric!r} has neither min nor max: it would pass every candidate")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"gate {self.metric!r}: min {self.min} > max {self.max}: no candidate can pass")
        return self


class GatesFile(Strict):
    metric: str = "val_custom_score"
    registered_model: str = Field("promptcls", min_length=1)
    paired_alpha: float = Field(0.05, gt=0, lt=1)  # champion vs challenger: promote only when the paired p < this
    gates: list[GateSpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self):
        names = [g.metric for g in self.gates]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"gates: {twice} listed more than once (one gate per metric)")
        return self


# ---- family configuration (promptcls/conf/<family>.yaml) -------------------------------------------------------

class Distribution(Strict):
    """One search-space entry: {type: float|int, low, high, log, step} or {type: categorical, choices}."""

    type: Literal["float", "int", "categorical"]
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: list[Any] | None = None

    @model_validator(mode="after")
    def _complete(self):
        if self.type == "categorical":
            if not self.choices or self.low is not None or self.high is not None:
                raise ValueError("categorical needs a non-empty `choices` and no low/high")
        elif self.low is None or self.high is None or self.choices is not None or self.low > self.high:
            raise ValueError(f"{self.type} needs low <= high and no `choices`")
        return self


SearchSpace = dict[str, dict[str, Distribution]]
"""Per model (or '*' = every model without its own entry): argument or estimator param -> distribution."""
