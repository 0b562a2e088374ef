import numpy as np
import pytest

from promptcls.metrics import security_metrics
from promptcls.policy import DecisionPolicy, fit_policy, fit_temperature


def synthetic(n=3000, seed=0):
    """Overconfident, overlapping class probabilities: some benign rows look malicious."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    logits = rng.normal(0, 1.0, (n, 3))
    logits[np.arange(n), y] += 1.8
    proba = np.exp(3 * logits)                      # x3: overconfident
    return proba / proba.sum(axis=1, keepdims=True), y


@pytest.mark.parametrize("target", [0.01, 0.02, 0.05])
def test_meets_benign_flag_target_on_the_data_it_was_fitted_on(target):
    proba, y = synthetic()
    policy = fit_policy(proba, y, benign_flag_target=target, miss_target=0.05)
    labels = policy.decide(policy.calibrate(proba))
    assert security_metrics(y, labels)["benign_flag_rate"] <= target
    assert security_metrics(y, proba.argmax(axis=1))["benign_flag_rate"] > 0.05   # argmax alone would not
    below_floor = (policy.calibrate(proba)[y == 2, 2] < policy.suspicious_floor).mean()
    assert below_floor <= 0.05


def test_routes_mid_probability_rows_to_suspicious():
    policy = DecisionPolicy("threshold", temperature=1.0, malicious_threshold=0.8, suspicious_floor=0.3)
    proba = np.array([[0.05, 0.05, 0.90],    # above threshold -> 2
                      [0.40, 0.10, 0.50],    # uncertain middle -> 1 even though benign beats suspicious
                      [0.60, 0.20, 0.20],    # below floor -> likelier of 0/1 -> 0
                      [0.20, 0.60, 0.20]])   # below floor -> 1
    assert policy.decide(proba).tolist() == [2, 1, 0, 1]
    assert DecisionPolicy().decide(proba).tolist() == [2, 2, 0, 1]   # none = argmax


def test_temperature_scaling_undoes_overconfidence():
    proba, y = synthetic(seed=1)
    t = fit_temperature(proba, y)
    assert t > 1.5                                   # the synthetic model is ~3x overconfident
    calibrated = DecisionPolicy("threshold", t).calibrate(proba)
    nll = lambda p: -np.log(p[np.arange(len(y)), y]).mean()  # noqa: E731
    assert nll(calibrated) < nll(proba)
    np.testing.assert_allclose(calibrated.sum(axis=1), 1.0)


def test_bounds_the_benign_review_share_and_the_risky_rows_flag_rate():
    proba, y = synthetic(seed=2)
    rng = np.random.default_rng(3)
    risky = rng.random(len(y)) < 0.2
    # the risky benign rows look more malicious than the others: the overall target alone would let them through
    swap = risky & (y == 0) & (rng.random(len(y)) < 0.15)
    proba[swap] = proba[swap][:, [2, 1, 0]]
    free = fit_policy(proba, y, benign_flag_target=0.02, miss_target=0.05)
    policy = fit_policy(proba, y, benign_flag_target=0.02, miss_target=0.05, review_target=0.10, risky=risky)
    def rates(p, mask):
        labels = p.decide(p.calibrate(proba))
        return security_metrics(y[mask], labels[mask])
    assert rates(free, risky)["benign_flag_rate"] > 0.02          # without `risky` the bound does not hold there
    assert rates(policy, risky)["benign_flag_rate"] <= 0.02
    assert rates(policy, np.ones(len(y), bool))["benign_flag_rate"] <= 0.02
    assert rates(free, np.ones(len(y), bool))["benign_review_rate"] > 0.10   # the miss target alone floods review
    assert rates(policy, np.ones(len(y), bool))["benign_review_rate"] <= 0.10
    assert policy.suspicious_floor <= policy.malicious_threshold
