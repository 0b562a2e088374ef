"""The input pipeline (canonicalisation, views, windows) lowers a small trained model's evasion flip rate: the
same classifier is measured with the pipeline on (the contract) and off (raw text straight to the classifier),
over the same malicious corpus rows and the same perturbations (`promptcls.evasion`)."""

from __future__ import annotations

import random

import pandas as pd
import pytest

from promptcls.config import DEFAULT_DATA
from promptcls.contract import PromptClassifierModel
from promptcls.data import load_dataset, stratified_sample
from promptcls.evasion import MALICIOUS, evasion_outcomes, flip_rates, perturb_all
from promptcls.families.traditional import SklearnTextClassifier, build_pipeline, load_config

HANDLED = ["variation_selectors", "format_chars", "combining_accents", "fullwidth", "base64_wrapper",
           "url_encoding", "html_entities", "unicode_escapes", "reversed_text", "dot_split", "newline_split"]
"""Kinds the pipeline undoes exactly or decodes: their flip rate must drop to (near) zero with it on."""


@pytest.fixture(scope="module")
def measured():
    frame = stratified_sample(load_dataset(DEFAULT_DATA).frame, 3000, seed=1)
    train, held = frame.iloc[:2400], frame.iloc[2400:]
    config = load_config()
    pipeline = build_pipeline(config["models"]["logreg"], config["features"], seed=0)
    model = PromptClassifierModel(SklearnTextClassifier(pipeline.fit(train["text"].tolist(),
                                                                    train["label"].to_numpy())))
    malicious = held.loc[(held["label"] == MALICIOUS) & (held["text"].str.len() < 600), "text"].tolist()[:60]
    perturbed = perturb_all(malicious, random.Random(0))
    rates = {}
    for name, normalize in (("on", True), ("off", False)):
        _, results = evasion_outcomes(lambda texts: model.predict_texts(texts, normalize=normalize), malicious,
                                      perturbed)
        rates[name] = flip_rates({kind: kept for kind, (_, kept) in results.items()})
    return rates


def test_pipeline_lowers_the_overall_flip_rate(measured):
    on, off = measured["on"], measured["off"]
    assert on["evasion_pairs"] >= 300 and off["evasion_pairs"] >= 300
    assert on["evasion_flip_rate"] < 0.5 * off["evasion_flip_rate"], pd.DataFrame(measured).to_string()


@pytest.mark.parametrize("kind", HANDLED)
def test_pipeline_undoes_the_kinds_it_handles(measured, kind):
    on, off = measured["on"], measured["off"]
    assert on[f"evasion_flip_rate_{kind}"] <= 0.05, (kind, on[f"evasion_flip_rate_{kind}"])
    assert on[f"evasion_flip_rate_{kind}"] <= off[f"evasion_flip_rate_{kind}"]
