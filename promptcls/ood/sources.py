"""The genre of each corpus source and the held-out OOD set, from `promptcls/conf/sources.yaml`.

`ood_sources` (a TrainArgs field) is `default` (the configured set, restricted to the sources the data has),
`none`, or a comma-separated list of sources that must all be in the data. The OOD rows, and every near-duplicate
of them in other sources, leave the corpus before the train/val/test split.
"""

from __future__ import annotations

import logging
from functools import cache

import pandas as pd

from promptcls.config import UsageError
from promptcls.schemas import Strict, package_config

log = logging.getLogger(__name__)
CONFIG = "promptcls/conf/sources.yaml"
BENIGN = 0


class SourcesConfig(Strict):
    genres: dict[str, str]
    policy_genres: list[str]
    ood_sources: list[str]


@cache
def sources_config() -> dict:
    config = package_config("sources", SourcesConfig)  # an unknown or misspelt key fails naming the file and key
    genres = config["genres"]
    missing = [s for s in config["ood_sources"] if s not in genres]
    if missing:
        raise UsageError(f"{CONFIG}: ood_sources {missing} have no entry under genres")
    return config


def genre_of(source: str) -> str | None:
    return sources_config()["genres"].get(source)


def policy_mask(frame: pd.DataFrame) -> pd.Series:
    """Rows whose source is of a `policy_genres` genre (risky-sounding benign sources)."""
    genres = set(sources_config().get("policy_genres", []))
    return frame["source"].map(lambda s: genre_of(s) in genres)


def resolve_ood_sources(spec: str, present: set[str]) -> list[str]:
    """The OOD sources of a run: `default`, `none` or 'a,b,c' (each must be in the data)."""
    if spec == "none":
        return []
    if spec == "default":
        wanted = sources_config()["ood_sources"]
        chosen = [s for s in wanted if s in present]
        if len(chosen) < len(wanted):
            log.warning("ood_sources=default: %d of the %d configured OOD sources are not in the data (%s)",
                        len(wanted) - len(chosen), len(wanted), ", ".join(s for s in wanted if s not in present))
        return chosen
    chosen = [s.strip() for s in spec.split(",") if s.strip()]
    unknown = sorted(set(chosen) - present)
    if unknown:
        raise UsageError(f"ood_sources: {unknown} not among the data's sources ({', '.join(sorted(present))})")
    return chosen


def split_ood(frame: pd.DataFrame, spec: str) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """(in-distribution rows, OOD rows or None). No near-duplicate of an OOD row stays in the first part."""
    sources = resolve_ood_sources(spec, set(frame["source"]))
    if not sources:
        return frame, None
    is_ood = frame["source"].isin(sources)
    ood = frame[is_ood].reset_index(drop=True)
    rest = frame[~is_ood & ~frame["group"].isin(set(ood["group"]))].reset_index(drop=True)
    log.info("OOD set: %d rows from %d sources (%s) held out of train/val/test; %d near-duplicates of them dropped",
             len(ood), len(sources), ", ".join(sources), int((~is_ood).sum() - len(rest)))
    return rest, ood
