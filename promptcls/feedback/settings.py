"""Configuration files of the feedback loop: the package's YAML holds every default (one source); a user file may
override keys of it, never add unknown ones, and every value must have the default's type."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

import yaml

from promptcls.config import UsageError


def _check(key: str, value: object, default: object, where: str) -> object:
    if isinstance(default, bool) or isinstance(value, bool):
        ok = isinstance(value, bool) and isinstance(default, bool)
    elif isinstance(default, float):
        ok = isinstance(value, (int, float))
        value = float(value) if ok else value
    else:
        ok = isinstance(value, type(default))
    if not ok:
        raise UsageError(f"{where}: {key} must be {type(default).__name__}, got {value!r}")
    return value


def load_settings(name: str, path: str | Path | None = None, **overrides) -> dict:
    """`promptcls/conf/<name>.yaml`, with the keys of `path` (a YAML mapping) and then `overrides` replacing its
    values. Unknown keys and wrongly typed values raise a UsageError naming the file and key."""
    settings = yaml.safe_load(files("promptcls.conf").joinpath(f"{name}.yaml").read_text())
    layers = []
    if path:
        path = Path(path)
        if not path.is_file():
            raise UsageError(f"{path}: file not found")
        try:
            user = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise UsageError(f"{path}: not valid YAML: {exc}") from None
        if not isinstance(user, dict):
            raise UsageError(f"{path}: expected a mapping of {name} settings, got {type(user).__name__}")
        layers.append((str(path), user))
    layers.append((f"{name} settings", {k: v for k, v in overrides.items() if v is not None}))
    for where, layer in layers:
        unknown = sorted(set(layer) - set(settings))
        if unknown:
            raise UsageError(f"{where}: unknown key(s) {unknown}; valid: {sorted(settings)}")
        for key, value in layer.items():
            settings[key] = _check(key, value, settings[key], where)
    return settings
