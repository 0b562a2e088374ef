import math

import numpy as np
import pytest

from promptcls.metrics import CRITICAL_ERROR_PENALTY, custom_score, external_metrics, security_metrics

# Hand-computed case. Confusion matrix (rows true, cols pred):
#   true 0: [2, 1, 1]   true 1: [1, 2, 0]   true 2: [1, 0, 2]      N = 10
Y_TRUE = [0, 0, 0, 0, 1, 1, 1, 2, 2, 2]
Y_PRED = [0, 0, 2, 1, 1, 1, 0, 2, 2, 0]


def test_hand_computed_confusion_case():
    m = security_metrics(Y_TRUE, Y_PRED)
    assert m["accuracy"] == pytest.approx(0.6)
    assert m["false_alarm_rate"] == pytest.approx(1 / 10)       # one benign row predicted malicious
    assert m["missed_threat_rate"] == pytest.approx(1 / 10)     # one malicious row predicted benign
    assert m["critical_error_rate"] == pytest.approx(0.2)
    assert m["recall_c2"] == pytest.approx(2 / 3)
    assert m["precision_c1"] == pytest.approx(2 / 3)            # 2 of the 3 rows predicted 1 are 1
    assert m["f1_c0"] == pytest.approx(0.5)                     # precision 2/4, recall 2/4
    assert m["benign_flag_rate"] == pytest.approx(1 / 4)
    assert m["malicious_miss_rate"] == pytest.approx(1 / 3)
    base = 0.5 * 2 / 3 + 0.3 * 2 / 3 + 0.2 * 0.5
    assert m["custom_score"] == pytest.approx(base * math.exp(-CRITICAL_ERROR_PENALTY * 0.2))
    assert m["custom_score"] == pytest.approx(0.2329906, abs=1e-6)
    assert custom_score(Y_TRUE, Y_PRED) == m["custom_score"]


def test_perfect_and_worst_cases():
    y = [0, 1, 2, 0, 1, 2]
    perfect = security_metrics(y, y, np.eye(3)[y])
    assert perfect["custom_score"] == pytest.approx(1.0)
    assert perfect["roc_auc"] == pytest.approx(1.0)
    assert perfect["critical_error_rate"] == 0.0
    swapped = security_metrics([0, 2], [2, 0])                   # every row a critical error
    assert swapped["critical_error_rate"] == pytest.approx(1.0)
    assert swapped["custom_score"] == pytest.approx(0.0)


def test_zero_division_and_missing_class_give_zero_not_nan():
    m = security_metrics([0, 0, 0], [0, 0, 0], np.tile([1.0, 0, 0], (3, 1)))
    assert m["recall_c2"] == 0.0 and m["precision_c1"] == 0.0 and m["malicious_miss_rate"] == 0.0
    assert "roc_auc" not in m                                    # undefined with one class present
    assert all(np.isfinite(v) for v in m.values())


def test_external_metrics_one_class_set():
    scores = external_metrics([2, 2, 0, 1])
    assert scores["recall_c2"] == pytest.approx(0.5)
    assert scores["f1"] == pytest.approx(2 * 1.0 * 0.5 / 1.5)
    assert external_metrics([0, 1]) == {"recall_c2": 0.0, "f1": 0.0}


def test_matches_sklearn_on_random_labels():
    from sklearn.metrics import f1_score, precision_score, recall_score
    rng = np.random.default_rng(3)
    y_true, y_pred = rng.integers(0, 3, 500), rng.integers(0, 3, 500)
    m = security_metrics(y_true, y_pred)
    assert m["f1_macro"] == pytest.approx(f1_score(y_true, y_pred, average="macro"))
    assert m["precision_c1"] == pytest.approx(precision_score(y_true, y_pred, labels=[1], average="macro"))
    assert m["recall_c2"] == pytest.approx(recall_score(y_true, y_pred, labels=[2], average="macro"))


def test_bootstrap_ci_brackets_the_estimate_and_narrows_with_more_data():
    from promptcls.metrics import bootstrap_ci
    rng = np.random.default_rng(0)

    def sample(n):
        y = rng.integers(0, 3, n)
        return y, np.where(rng.random(n) < 0.8, y, rng.integers(0, 3, n))   # ~87% accurate predictions

    y, p = sample(400)
    ci = bootstrap_ci(y, p, n_resamples=500)
    point = security_metrics(y, p)
    for name in ("custom_score", "recall_c2", "false_alarm_rate"):
        assert ci[f"{name}_ci_low"] <= point[name] <= ci[f"{name}_ci_high"]
    # the known answer for recall_c2: a binomial proportion, so the 95% interval is about +-1.96*sqrt(p(1-p)/n2)
    n2 = (y == 2).sum()
    half = 1.96 * np.sqrt(point["recall_c2"] * (1 - point["recall_c2"]) / n2)
    assert (ci["recall_c2_ci_high"] - ci["recall_c2_ci_low"]) / 2 == pytest.approx(half, rel=0.25)
    y4, p4 = sample(4000)
    wide = ci["custom_score_ci_high"] - ci["custom_score_ci_low"]
    narrow = bootstrap_ci(y4, p4, n_resamples=500)
    assert narrow["custom_score_ci_high"] - narrow["custom_score_ci_low"] < wide / 2
    assert bootstrap_ci(y, p, n_resamples=200, seed=1) == bootstrap_ci(y, p, n_resamples=200, seed=1)


def test_ordinary_prompts_are_those_a_model_scores_whole():
    from promptcls.evaluate import ordinary_prompts
    from promptcls.text.settings import robustness
    size = robustness()["windows"]["default_chars"]
    chat, document = "What is the capital of France?", "A long passage. " * (size // 10)
    assert len(document) >= size
    assert ordinary_prompts([chat, document, "x" * (size - 1), "x" * size]) == [chat, "x" * (size - 1)]
