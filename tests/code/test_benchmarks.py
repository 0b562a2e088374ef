"""Every benchmark module imports and has a `main`: the benchmarks run by hand, so nothing else notices when a
refactor breaks one."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import benchmarks

HELPERS = {"common", "http_load"}  # plumbing the benchmarks share, not benchmarks
MODULES = sorted(m.name for m in pkgutil.iter_modules(benchmarks.__path__) if m.name not in HELPERS)


def test_there_are_benchmarks():
    assert {"traditional", "robustness", "encoder_features"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_benchmark_imports_and_has_main(name):
    module = importlib.import_module(f"benchmarks.{name}")
    assert callable(getattr(module, "main", None)), f"benchmarks/{name}.py has no main()"
    assert module.__doc__, f"benchmarks/{name}.py has no docstring saying what it measures"
