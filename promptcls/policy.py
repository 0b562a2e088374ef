"""Decision policy: calibrated probabilities and a threshold rule, both fitted on the validation split and stored
inside the pyfunc, so every family serves the same rule.

Calibration is temperature scaling (one scalar T fitted by minimising validation log-loss on log(p)/T). The rule:

* P(malicious) >= `malicious_threshold`            -> 2 malicious
* `suspicious_floor` <= P(malicious) < threshold     -> 1 suspicious (the uncertain middle goes to a human)
* otherwise                                          -> the likelier of benign and suspicious

`malicious_threshold` is the lowest threshold whose validation benign_flag_rate (P(pred 2 | true 0)) is at most
`benign_flag_target`; `suspicious_floor` the highest at or below it that lets at most `miss_target` of validation
malicious rows fall below it. `policy=none` keeps the plain argmax of the model's probabilities.
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

    def calibrate(self, proba: np.ndarray) -> np.ndarray:
        if self.kind == "none" or self.temperature == 1.0:
            return proba
        return softmax(np.log(np.clip(proba, EPS, 1.0)) / self.temperature, axis=1)

    def decide(self, proba: np.ndarray) -> np.ndarray:
        """Labels for (already calibrated) probabilities."""
        if self.kind == "none":
            return proba.argmax(axis=1)
        p_mal = proba[:, 2]
        labels = np.where(proba[:, 1] > proba[:, 0], 1, 0)
        labels = np.where(p_mal >= self.suspicious_floor, 1, labels)
        return np.where(p_mal >= self.malicious_threshold, 2, labels)

    def to_dict(self) -> dict:
        return asdict(self)


def fit_temperature(proba: np.ndarray, y: np.ndarray) -> float:
    logp = np.log(np.clip(proba, EPS, 1.0))

    def nll(t):
        return -log_softmax(logp / t, axis=1)[np.arange(len(y)), y].mean()

    return float(minimize_scalar(nll, bounds=(0.05, 20.0), method="bounded").x)


def fit_policy(proba: np.ndarray, y: np.ndarray, benign_flag_target: float = 0.02,
               miss_target: float = 0.05) -> DecisionPolicy:
    """Fit temperature and thresholds on validation probabilities `proba` (N x 3) and labels `y`."""
    y = np.asarray(y)
    temperature = fit_temperature(proba, y)
    p_mal = DecisionPolicy("threshold", temperature).calibrate(proba)[:, 2]
    benign, malicious = np.sort(p_mal[y == 0]), np.sort(p_mal[y == 2])
    # lowest threshold with #(benign >= t) <= target * n_benign: just above the k-th highest benign score
    allowed = int(np.floor(benign_flag_target * len(benign)))
    threshold = float(np.nextafter(benign[len(benign) - allowed - 1], 1.0)) if len(benign) > allowed else 0.5
    # highest floor <= threshold that leaves at most miss_target of malicious rows below it
    k = int(np.floor(miss_target * len(malicious)))
    floor = float(malicious[k]) if len(malicious) > k else threshold
    return DecisionPolicy("threshold", temperature, threshold, min(floor, threshold))
