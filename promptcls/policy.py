"""Decision policy: calibrated probabilities and a threshold rule, both fitted on the validation split and stored
inside the pyfunc, so every family serves the same rule.

Calibration is temperature scaling (one scalar T fitted by minimising validation log-loss on log(p)/T). The rule:

* P(malicious) >= `malicious_threshold`            -> 2 malicious
* `suspicious_floor` <= P(malicious) < threshold     -> 1 suspicious (the uncertain middle goes to a human)
* otherwise                                          -> suspicious when P(suspicious) - P(benign) exceeds
                                                        `suspicious_margin` (0: the likelier of the two), else benign

`malicious_threshold` is the lowest threshold whose validation benign_flag_rate (P(pred 2 | true 0)) is at most
`benign_flag_target` both over all benign rows and over the benign rows marked `risky` (sources of a
`policy_genres` genre in promptcls/conf/sources.yaml: safe questions that sound unsafe, security coding requests).
`suspicious_floor` is the highest at or below it that lets at most `miss_target` of validation malicious rows fall
below it, raised where needed so that at most `review_target` of benign rows go to suspicious (P(pred 1 | true 0),
`benign_review_rate`): an analyst queue that receives half of the benign traffic is no fix, so the review bound
wins over the miss target. The model's own suspicious votes count first; when they alone exceed the bound,
`suspicious_margin` rises until they fit (and the middle band closes). `policy=none` keeps the plain argmax of the
model's probabilities.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax, softmax

EPS = 1e-7


@dataclass(frozen=True)
class DecisionPolicy:
    kind: str = "none"
    temperature: float = 1.0
    malicious_threshold: float = 0.0
    suspicious_floor: float = 0.0
    suspicious_margin: float = 0.0

    def calibrate(self, proba: np.ndarray) -> np.ndarray:
        if self.kind == "none" or self.temperature == 1.0:
            return proba
        return softmax(np.log(np.clip(proba, EPS, 1.0)) / self.temperature, axis=1)

    def decide(self, proba: np.ndarray) -> np.ndarray:
        """Labels for (already calibrated) probabilities."""
        if self.kind == "none":
            return proba.argmax(axis=1)
        p_mal = proba[:, 2]
        labels = np.where(proba[:, 1] - proba[:, 0] > self.suspicious_margin, 1, 0)
        labels = np.where(p_mal >= self.suspicious_floor, 1, labels)
        return np.where(p_mal >= self.malicious_threshold, 2, labels)

    def to_dict(self) -> dict:
        return asdict(self)


def fit_temperature(proba: np.ndarray, y: np.ndarray) -> float:
    logp = np.log(np.clip(proba, EPS, 1.0))

    def nll(t):
        return -log_softmax(logp / t, axis=1)[np.arange(len(y)), y].mean()

    return float(minimize_scalar(nll, bounds=(0.05, 20.0), method="bounded").x)


def _threshold(benign: np.ndarray, target: float) -> float:
    """Lowest threshold with #(benign >= t) <= target * n: just above the k-th highest benign score."""
    benign = np.sort(benign)
    allowed = int(np.floor(target * len(benign)))
    return float(np.nextafter(benign[len(benign) - allowed - 1], 1.0)) if len(benign) > allowed else 0.0


def _review_floor(p_mal: np.ndarray, argmax_suspicious: np.ndarray, threshold: float, target: float) -> float:
    """Lowest floor that sends at most `target` of these benign rows to suspicious (with `threshold`)."""
    below = p_mal < threshold
    allowed = int(np.floor(target * len(p_mal))) - int((below & argmax_suspicious).sum())
    if allowed < 0:  # the model's own suspicious votes fill the queue: no middle band at all
        return threshold
    band = np.sort(p_mal[below & ~argmax_suspicious])[::-1]
    return float(np.nextafter(band[allowed], 1.0)) if len(band) > allowed else 0.0


def fit_policy(proba: np.ndarray, y: np.ndarray, benign_flag_target: float = 0.02,
               miss_target: float = 0.05, review_target: float = 1.0,
               risky: np.ndarray | None = None) -> DecisionPolicy:
    """Fit temperature and thresholds on validation probabilities `proba` (N x 3) and labels `y`; `risky` marks
    rows whose benign ones must also stay under `benign_flag_target` on their own."""
    y = np.asarray(y)
    temperature = fit_temperature(proba, y)
    calibrated = DecisionPolicy("threshold", temperature).calibrate(proba)
    p_mal = calibrated[:, 2]
    is_benign = y == 0
    threshold = _threshold(p_mal[is_benign], benign_flag_target) if is_benign.any() else 0.5
    if risky is not None and (is_benign & risky).any():
        threshold = max(threshold, _threshold(p_mal[is_benign & risky], benign_flag_target))
    # highest floor <= threshold that leaves at most miss_target of malicious rows below it
    malicious = np.sort(p_mal[y == 2])
    k = int(np.floor(miss_target * len(malicious)))
    floor = float(malicious[k]) if len(malicious) > k else threshold
    margin = 0.0
    if is_benign.any():
        below = p_mal[is_benign] < threshold
        diff = (calibrated[is_benign, 1] - calibrated[is_benign, 0])[below]
        allowed = int(np.floor(review_target * is_benign.sum()))
        if (diff > 0).sum() > allowed:  # the smallest margin leaving at most `allowed` suspicious votes
            margin = float(np.sort(diff)[::-1][allowed])
        votes = calibrated[is_benign, 1] - calibrated[is_benign, 0] > margin
        floor = max(floor, _review_floor(p_mal[is_benign], votes, threshold, review_target))
    return DecisionPolicy("threshold", temperature, threshold, min(floor, threshold), margin)
