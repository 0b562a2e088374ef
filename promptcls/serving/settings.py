"""`promptcls/conf/serving.yaml`: the one source of `promptcls serve`'s defaults, validated like every config file
(an unknown or misspelt key fails naming the file and key)."""

from __future__ import annotations

from functools import cache

from promptcls.schemas import Strict, package_config


class LimitsConfig(Strict):
    max_body_bytes: int
    max_rows: int
    max_text_chars: int
    timeout_s: float


class ShadowConfig(Strict):
    queue_size: int
    keep_disagreements: int


class ServingConfig(Strict):
    model_uri: str
    host: str
    port: int
    limits: LimitsConfig
    poll_interval_s: float
    shadow: ShadowConfig


@cache
def serving_defaults() -> dict:
    """The validated defaults as a plain mapping (read once per process)."""
    return package_config("serving", ServingConfig)
