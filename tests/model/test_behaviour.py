"""Behavioural tests of a model URI (see conftest.py for which): what the contract guarantees for every model
(the normaliser undoes invisible-character and homoglyph evasions exactly), and floors on the pass rates
(conf/behaviour.yaml `thresholds`) for models given explicitly: the default CI model, trained on 400 rows, is a
smoke model, not one you would deploy."""

from __future__ import annotations

import random

import numpy as np
import pandas as pd
import pytest

from promptcls.behaviour import DEFAULT_CASES, ModelUnderTest, load_cases, run_suite
from promptcls.contract import OUTPUT_COLUMNS, SCORE_COLUMNS
from promptcls.perturb import EVASIONS, INVARIANCES

CASES = load_cases(DEFAULT_CASES)
PROMPTS = [p for group in CASES["minimum_functionality"].values() for p in group]
NORMALISED_AWAY = ["zero_width", "invisible_mix", "bidi_controls", "homoglyph_cyrillic", "homoglyph_greek"]


@pytest.fixture(scope="module")
def model(model_uri):
    return ModelUnderTest(model_uri)


@pytest.fixture(scope="module")
def suite(model):
    return run_suite(model, CASES, seed=0)


@pytest.mark.parametrize("perturbation", NORMALISED_AWAY)
def test_invisible_and_homoglyph_evasions_do_not_change_the_output(model, perturbation):
    rng = random.Random(0)
    perturbed = [EVASIONS[perturbation](p, rng) for p in PROMPTS]
    assert all(a != b for a, b in zip(PROMPTS, perturbed))
    original, evasive = model.score(PROMPTS), model.score(perturbed)
    assert list(evasive.columns) == OUTPUT_COLUMNS
    assert (evasive["label"] == original["label"]).all()
    np.testing.assert_allclose(evasive[SCORE_COLUMNS].to_numpy(), original[SCORE_COLUMNS].to_numpy(), atol=1e-9)


def test_outer_whitespace_does_not_change_the_output(model):
    padded = [f" \t{p}\n " for p in PROMPTS]
    pd.testing.assert_frame_equal(model.score(padded), model.score(PROMPTS))


def test_suite_scores_every_case(suite):
    table, metrics = suite
    n_mft = len(PROMPTS)
    counts = table[table["path"] == "model"].groupby("test_type").size()
    n_para = sum(len(g) - 1 for g in CASES["paraphrases"])
    assert counts["minimum_functionality"] == n_mft
    assert counts["invariance"] == n_mft * len(INVARIANCES) + n_para
    assert counts["directional"] == len(CASES["minimum_functionality"]["benign"]) * len(CASES["directional_suffixes"])
    assert counts["evasion"] == len(CASES["minimum_functionality"]["malicious"]) * len(EVASIONS)
    assert all(0.0 <= v <= 1.0 for k, v in metrics.items() if "rate" in k)
    for perturbation in NORMALISED_AWAY:  # the guarantee above, seen through the suite's own figures
        assert metrics.get(f"evasion_flip_rate_{perturbation}", 0.0) == 0.0


@pytest.mark.parametrize("name, metric", [
    ("minimum_functionality_malicious", "behaviour_minimum_functionality_malicious_pass_rate"),
    ("minimum_functionality_benign", "behaviour_minimum_functionality_benign_pass_rate"),
    ("invariance", "behaviour_invariance_pass_rate"),
    ("directional", "behaviour_directional_pass_rate"),
])
@pytest.mark.named_model_only  # the 400-row smoke model is not held to these floors (see conftest)
def test_pass_rate_floor(suite, name, metric):
    table, metrics = suite
    floor = CASES["thresholds"][name]
    failed = table[(table["path"] == "model") & (table["passed"] == False)]  # noqa: E712
    assert metrics[metric] >= floor, f"{metric}={metrics[metric]:.3f} < {floor}; failed cases:\n" + \
        failed[["test_type", "group", "text", "label"]].head(20).to_string()
