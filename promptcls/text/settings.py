"""The robustness settings (`promptcls/conf/robustness.yaml`): limits, windows, augmentation, the evasion sample
every training run measures. One source for each of those defaults, validated (an unknown key fails naming it)."""

from __future__ import annotations

from functools import cache

from promptcls.schemas import Strict, package_config


AUGMENT_KINDS = ("evasion", "indirect")
"""TrainArgs `augment` (and the main job's): none, or these kinds comma-separated (promptcls/text/augment.py)."""


def augment_kinds(spec: str) -> list[str]:
    """The kinds of an `augment` value ('none' = no kind); a ValueError naming the valid values otherwise."""
    kinds = [] if spec == "none" else spec.split(",")
    if not all(k in AUGMENT_KINDS for k in kinds) or len(set(kinds)) != len(kinds) or spec == "":
        raise ValueError(f"augment must be none or {', '.join(AUGMENT_KINDS)} (comma-separated), got {spec!r}")
    return kinds


class _Limits(Strict):
    max_input_chars: int


class _Empty(Strict):
    label: int


class _Windows(Strict):
    default_chars: int
    min_malicious: float


class _Indirect(Strict):
    documents: list[str]
    payloads: list[str]
    max_payload_chars: int
    per_document: int


class _Augment(Strict):
    share: float
    indirect: _Indirect


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
