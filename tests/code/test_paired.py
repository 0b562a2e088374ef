"""The exact McNemar test behind champion-vs-challenger promotion."""

import numpy as np
from scipy.stats import binomtest

from promptcls.ood.paired import critical_errors, mcnemar


def test_counts_only_benign_malicious_confusions():
    label = np.array([0, 0, 2, 2, 1, 1])
    pred = np.array([2, 1, 0, 1, 2, 0])
    assert critical_errors(label, pred).tolist() == [True, False, True, False, False, False]


def test_clear_improvement_is_significant_and_its_effect_is_the_error_rate_drop():
    rng = np.random.default_rng(0)
    label = rng.choice([0, 2], 1000)
    champion = label.copy()
    champion[:60] = 2 - label[:60]                 # 60 critical errors
    challenger = label.copy()
    challenger[50:60] = 2 - label[50:60]           # 10 of the same errors, and 5 new ones
    challenger[100:105] = 2 - label[100:105]
    result = mcnemar(label, champion, challenger)
    assert (result.b, result.c, result.champion_errors, result.challenger_errors) == (50, 5, 60, 15)
    assert result.p_value == binomtest(50, 55, 0.5, alternative="greater").pvalue < 1e-9
    assert result.effect == (50 - 5) / 1000


def test_equal_models_and_a_worse_challenger_are_not_significant():
    label = np.array([0, 2] * 100)
    same = mcnemar(label, label, label)
    assert same.p_value == 1.0 and same.effect == 0.0
    worse = label.copy()
    worse[:8] = 2 - worse[:8]
    assert mcnemar(label, label, worse).p_value == 1.0           # 0 wins, 8 losses
    slightly = label.copy()
    slightly[:3] = 2 - slightly[:3]
    assert mcnemar(label, slightly, label).p_value > 0.05         # 3 wins, 0 losses: 1/8, not enough
