"""The robustness settings (`promptcls/conf/robustness.yaml`): limits, windows, augmentation, the evasion sample
every training run measures. One source for each of those defaults, validated (an unknown key fails naming it)."""

from __future__ import annotations

from functools import cache

from promptcls.schemas import Strict, package_config


AUGMENT_CHOICES = ("none", "evasion")
"""TrainArgs `augment` (and the main job's): none, or perturbed copies of training rows (promptcls/text/augment.py)."""


class _Limits(Strict):
    max_input_chars: int


class _Empty(Strict):
    label: int


class _Windows(Strict):
    default_chars: int
    min_malicious: float


class _Augment(Strict):
    share: float


class _ValEvasion(Strict):
    max_rows: int


class RobustnessConfig(Strict):
    limits: _Limits
    empty: _Empty
    windows: _Windows
    augment: _Augment
    val_evasion: _ValEvasion


@cache
def robustness() -> dict:
    return package_config("robustness", RobustnessConfig)
