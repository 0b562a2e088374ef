"""The robustness settings (`promptcls/conf/robustness.yaml`): limits, windows, augmentation, the evasion sample
every training run measures. One source for each of those defaults."""

from __future__ import annotations

from promptcls.config import family_config


def robustness() -> dict:
    return family_config("robustness")
