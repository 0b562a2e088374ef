"""The genre of each corpus source and the held-out OOD set, from `promptcls/conf/sources.yaml`.

`ood_sources` (a TrainArgs field) is `default` (the configured set, restricted to the sources the data has),
`none`, or a comma-separated list of sources that must all be in the data. The OOD rows, and every near-duplicate
of them in other sources, leave the corpus before the train/val/test split. Near-duplicate here is wider than the
corpus's `group` key: a row that shares a long passage with an OOD row (at least half of the word 8-grams of the
shorter of the two, SOURCES.md's cleaning rule 10) goes too, e.g. a jailbreak template that wraps an OOD jailbreak,
or the injected twin of a held-out benign document.
"""

from __future__ import annotations

import logging
import re
from collections import Counter, defaultdict
from functools import cache

import pandas as pd

from promptcls.config import UsageError
from promptcls.schemas import Strict, package_config

log = logging.getLogger(__name__)
CONFIG = "promptcls/conf/sources.yaml"
BENIGN = 0
PASSAGE_WORDS = 8    # a shared passage is a run of this many words ...
PASSAGE_SHARE = 0.5  # ... covering this share of the word 8-grams of the shorter text


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


def word_grams(text: str) -> set[str]:
    words = re.findall(r"\w+", text.lower())
    return {" ".join(words[i:i + PASSAGE_WORDS]) for i in range(len(words) - PASSAGE_WORDS + 1)}


def shares_passage(texts: pd.Series, held: pd.Series) -> pd.Series:
    """For each of `texts`: does it share a long passage with one of `held` (PASSAGE_SHARE of the word 8-grams of
    the shorter of the two)? Texts under 8 words have no 8-gram and are left to the `group` key."""
    held_grams = [word_grams(t) for t in held]
    index: dict[str, list[int]] = defaultdict(list)
    for j, grams in enumerate(held_grams):
        for gram in grams:
            index[gram].append(j)

    def shares(text: str) -> bool:
        grams = word_grams(text)
        common = Counter(j for gram in grams for j in index.get(gram, ()))
        return any(n >= PASSAGE_SHARE * min(len(grams), len(held_grams[j])) for j, n in common.items())

    return texts.map(shares)


def split_ood(frame: pd.DataFrame, spec: str) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """(in-distribution rows, OOD rows or None). No near-duplicate of an OOD row stays in the first part: neither
    one of the same `group` nor one that shares a long passage with it."""
    sources = resolve_ood_sources(spec, set(frame["source"]))
    if not sources:
        return frame, None
    is_ood = frame["source"].isin(sources)
    ood = frame[is_ood].reset_index(drop=True)
    rest = frame[~is_ood & ~frame["group"].isin(set(ood["group"]))]
    passage = shares_passage(rest["text"], ood["text"])
    if passage.any():
        log.info("OOD set: dropped %d rows that share a passage with an OOD row (%s)", int(passage.sum()),
                 ", ".join(f"{s} {n}" for s, n in rest.loc[passage, "source"].value_counts().items()))
    rest = rest[~passage].reset_index(drop=True)
    log.info("OOD set: %d rows from %d sources (%s) held out of train/val/test; %d near-duplicates of them dropped",
             len(ood), len(sources), ", ".join(sources), int((~is_ood).sum() - len(rest)))
    return rest, ood
