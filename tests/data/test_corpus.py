"""Data tier: the vendored corpus is the shared one, loads cleanly, and has the shape SOURCES.md documents."""

import hashlib
from pathlib import Path

import pytest

from promptcls.config import DEFAULT_DATA, DEFAULT_EXTERNAL
from promptcls.data import load_dataset

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data" / "promptcls"


@pytest.mark.parametrize("name", ["prompts.jsonl", "external.jsonl", "SOURCES.md"])
def test_vendored_copy_matches_shared(name):
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} not present (only checked where ../shared sits beside the checkout)")
    vendored, shared = DEFAULT_DATA.parent / name, SHARED / name
    digest = lambda p: hashlib.sha256(p.read_bytes()).hexdigest()  # noqa: E731
    assert digest(vendored) == digest(shared), f"{name} changed in ../shared: copy it into data/ again"


def test_corpus_loads_with_three_classes_and_sources():
    ds = load_dataset(DEFAULT_DATA)
    counts = ds.frame["label"].value_counts().to_dict()
    assert set(counts) == {0, 1, 2}
    assert len(ds.frame) > 15000 and min(counts.values()) > 3000
    assert ds.frame["source"].nunique() >= 10
    # de-duplicated upstream after NFKC; normalize_text also removes invisible characters, which makes lines 9614
    # and 13065 (tensortrust_hijack, same label, differing only in zero-width spaces) one prompt
    assert ds.n_exact_duplicates == 1


def test_external_set_is_all_malicious_and_disjoint_from_corpus():
    external = load_dataset(DEFAULT_EXTERNAL).frame
    corpus = load_dataset(DEFAULT_DATA).frame
    assert (external["label"] == 2).all() and len(external) >= 10
    assert not set(external["group"]) & set(corpus["group"])
