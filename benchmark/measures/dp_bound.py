"""What (epsilon, delta)-differential privacy allows a membership attack at most.

For any test of "x was in the training set" against a mechanism that is
(epsilon, delta)-DP, the hypothesis-testing view of DP (Kairouz, Oh and
Viswanath, ICML 2015, Theorem 2.1) bounds the true-positive rate at every
false-positive rate:

    TPR <= min(1, e^eps * FPR + delta, 1 - e^-eps * (1 - delta - FPR))

Integrating the bound over FPR bounds the attack's AUC (0.731 at epsilon = 1,
delta = 0; 0.5 at epsilon = 0). A DP-SGD model whose measured AUC sits above this,
beyond its sampling error, was not trained with the guarantee it reports.
"""

from __future__ import annotations

import numpy as np

from benchmark.errors import ConfigError


def _check(epsilon: float, delta: float) -> None:
    if not epsilon >= 0:
        raise ConfigError(f"epsilon must be >= 0, got {epsilon}")
    if not 0 <= delta < 1:
        raise ConfigError(f"delta must be in [0, 1), got {delta}")


def tpr_bound(fpr, epsilon: float, delta: float) -> np.ndarray:
    """The largest TPR any membership test can have at ``fpr`` under (epsilon, delta)-DP."""
    _check(epsilon, delta)
    fpr = np.clip(np.asarray(fpr, dtype=float), 0.0, 1.0)
    first = np.exp(epsilon) * fpr + delta
    second = 1 - np.exp(-epsilon) * (1 - delta - fpr)
    return np.minimum(1.0, np.minimum(first, second))


def auc_bound(epsilon: float, delta: float) -> float:
    """The largest AUC a membership test can have under (epsilon, delta)-DP.

    The bound is piecewise linear: exact under the trapezoid rule on a grid that holds
    its kinks (where the two lines cross and where each reaches 1).
    """
    _check(epsilon, delta)
    e = np.exp(epsilon)
    cross = (1 - delta) * (1 - 1 / e) / (e - 1 / e) if epsilon > 0 else 0.0
    kinks = [cross, (1 - delta) / e, 1 - delta]
    grid = np.unique(np.clip(np.concatenate([np.linspace(0, 1, 1001), kinks]), 0, 1))
    return float(np.trapezoid(tpr_bound(grid, epsilon, delta), grid))
