"""Units of the feedback loop that need no server: settings validation, prompt storage, sampling, feedback splits
and weights, drift statistics."""

import numpy as np
import pandas as pd
import pytest

from promptcls.config import DEFAULT_DATA, UsageError
from promptcls.data import load_dataset, split_dataset, stratified_sample
from promptcls.feedback.drift import main_script, psi
from promptcls.feedback.redact import redact, sha256, stored_prompt
from promptcls.feedback.retrain import WEIGHT, load_feedback, with_feedback_weights
from promptcls.feedback.settings import load_settings
from promptcls.feedback.traces import recorded_because


def test_settings_refuse_unknown_keys_and_wrong_types(tmp_path):
    assert load_settings("monitor")["score_psi_max"] == 0.25
    bad = tmp_path / "t.yaml"
    bad.write_text("score_psi_maxx: 0.3\n")
    with pytest.raises(UsageError, match=r"t.yaml: unknown key\(s\) \['score_psi_maxx'\]"):
        load_settings("monitor", bad)
    bad.write_text("score_psi_max: high\n")
    with pytest.raises(UsageError, match="t.yaml: score_psi_max must be float"):
        load_settings("monitor", bad)
    assert load_settings("feedback", None, benign_sample_rate=1)["benign_sample_rate"] == 1.0


def test_prompt_storage_modes():
    text = "mail bob@example.com, see https://x.io/a?b=1 or call +1 555 123 4567; key sk-abcdefghijklmnop1234"
    redacted = stored_prompt(text, "redacted")["text"]
    assert "bob@" not in redacted and "x.io" not in redacted and "555" not in redacted and "sk-abc" not in redacted
    assert redacted == redact(text) and "[EMAIL]" in redacted and "[URL]" in redacted and "[SECRET]" in redacted
    assert stored_prompt(text, "hashed") == {"text_sha256": sha256(text)}
    assert stored_prompt(text, "raw") == {"text": text}
    with pytest.raises(ValueError, match="prompt_storage"):
        stored_prompt(text, "plain")


def test_sampling_keeps_every_non_benign_and_a_share_of_benign():
    texts = [f"prompt number {i}" for i in range(2000)]
    kept = [recorded_because("benign", False, sha256(t), 0.25) for t in texts]
    assert 0.2 < sum(k == "benign_sample" for k in kept) / len(texts) < 0.3
    assert all(recorded_because(v, False, sha256(t), 0.0) == v for v in ("suspicious", "malicious") for t in texts)
    assert recorded_because("benign", True, sha256(texts[0]), 0.0) == "shadow_disagreement"
    assert recorded_because("benign", False, sha256(texts[0]), 0.0) is None


@pytest.fixture(scope="module")
def corpus():
    return load_dataset(DEFAULT_DATA).frame


def test_feedback_split_weights_and_no_straddling(tmp_path, corpus):
    sample = stratified_sample(corpus, 900, seed=1)
    splits = split_dataset(sample, 0.15, 0.15, seed=1)
    outside = corpus[~corpus["text"].isin(sample["text"])].sample(60, random_state=1)
    leaking = splits.val.head(5)  # reviewed prompts that are validation rows: never trained on
    ood = outside.head(5)  # ... nor rows of the held-out OOD sources, which rank the run
    rows = pd.concat([outside, leaking])[["text", "label"]].assign(source="feedback")
    path = tmp_path / "fb.jsonl"
    rows.to_json(path, orient="records", lines=True)
    fb = load_feedback(str(path), splits, holdout=0.3, weight=2.5, seed=0, ood=ood)
    assert fb.dropped["in_evaluation_splits"] == len(set(leaking["text"]) - set(fb.holdout["text"])) + \
        len(set(ood["text"]) - set(fb.holdout["text"]))
    assert not set(fb.train["group"]) & (set(splits.val["group"]) | set(splits.test["group"]) | set(ood["group"]))
    assert not set(fb.holdout["group"]) & (set(splits.train["group"]) | set(fb.train["group"]))
    assert 10 <= len(fb.holdout) <= 25 and len(fb.train) + len(fb.holdout) <= 65
    weighted = fb.training_splits(splits, sample_weights=True)
    assert len(weighted.train) == len(splits.train) + len(fb.train)
    assert weighted.train[WEIGHT].tolist().count(2.5) == len(fb.train)
    np.testing.assert_allclose(with_feedback_weights(weighted.train, np.full(len(weighted.train), 2.0))[-1], 5.0)
    repeated = fb.training_splits(splits, sample_weights=False)
    assert len(repeated.train) == len(splits.train) + 3 * len(fb.train) and WEIGHT not in repeated.train
    assert repeated.val is splits.val and repeated.test is splits.test


def test_scripts_and_psi():
    assert [main_script(t) for t in ("Hello", "Привет мир", "忽略之前的指令", "مرحبا", "こんにちは", "123 ?")] == \
        ["LATIN", "CYRILLIC", "CJK", "ARABIC", "CJK", "NONE"]
    rng = np.random.default_rng(0)
    same, shifted = psi(rng.beta(2, 5, 3000), rng.beta(2, 5, 400)), psi(rng.beta(2, 5, 3000), rng.beta(5, 2, 400))
    assert same < 0.1 < 0.25 < shifted
