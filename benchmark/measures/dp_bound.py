"""What (epsilon, delta)-differential privacy allows a membership attack at most.

For any test of "x was in the training set" against a mechanism that is
(epsilon, delta)-DP, the hypothesis-testing view of DP (Kairouz, Oh and
Viswanath, ICML 2015, Theorem 2.1) bounds the true-positive rate at every
false-positive rate:

    TPR <= min(1, e^eps * FPR + delta, 1 - e^-eps * (1 - delta - FPR))

Integrating the bound over FPR bounds the attack's AUC (0.731 at epsilon = 1,
delta = 0; 0.5 at epsilon = 0). That bound alone is a weak check: it is never below
0.5, and no attack at or below chance can break it. ``dp_violations`` judges an
attack's ROC points themselves, in both directions of its score, against the
TPR bound with Clopper-Pearson bounds: a DP-SGD model an attack breaks this on, beyond
the sampling error, was not trained with the guarantee it reports.
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


def dp_violations(
    roc: tuple, n_members: int, n_nonmembers: int, epsilon: float, delta: float,
    fprs: tuple[float, ...] = (0.01, 0.05, 0.1, 0.25), alpha: float = 0.05,
) -> list[str]:  # fmt: skip
    """The operating points of an attack's ROC that (epsilon, delta)-DP rules out.

    The guarantee bounds every test, so both directions of the score are judged: the
    attack as it is, and flipped (an AUC of 0.1 is a strong attack with its sign
    reversed; its ROC is the mirror image, points (1 - FPR, 1 - TPR)). In each
    direction, at each FPR of ``fprs``, the ROC point of highest TPR whose FPR is not
    above it is taken as counts (true positives of ``n_members``, false positives of
    ``n_nonmembers``); it violates the guarantee when the Clopper-Pearson lower bound of
    its TPR exceeds ``tpr_bound`` at the upper bound of its FPR, each one-sided at
    alpha / 2 / (2 len(fprs)) (Bonferroni over points and directions). Unlike a bound on
    the AUC, which no AUC at or below 0.5 can break, this fails for an attack that finds
    members at low FPR.

    Args:
        roc: ``[fpr, tpr]`` lists from (0, 0) to (1, 1), as the results record them.

    Returns:
        one line per violated point (empty: the attack is consistent with the guarantee).
    """
    from scipy import stats

    _check(epsilon, delta)
    fpr, tpr = (np.asarray(v, dtype=float) for v in roc)
    each = alpha / 2 / (2 * len(fprs))
    out = []
    for direction, (xs, ys) in {"": (fpr, tpr), " (its score flipped)": (1 - fpr, 1 - tpr)}.items():
        for target in fprs:
            ok = np.flatnonzero(xs <= target + 1e-12)  # the best TPR there, at its least FPR
            i = int(ok[np.lexsort((xs[ok], -ys[ok]))[0]])
            fp = int(round(xs[i] * n_nonmembers))
            tp = int(round(ys[i] * n_members))
            tpr_lo = stats.beta.ppf(each, tp, n_members - tp + 1) if tp > 0 else 0.0
            fpr_hi = (
                stats.beta.ppf(1 - each, fp + 1, n_nonmembers - fp) if fp < n_nonmembers else 1.0
            )
            allowed = float(tpr_bound(fpr_hi, epsilon, delta))
            if tpr_lo > allowed:
                out.append(
                    f"at FPR {fp}/{n_nonmembers} the attack{direction} finds {tp}/{n_members} "
                    f"members (TPR >= {tpr_lo:.3f}, one-sided at {1 - each:.2%}), above "
                    f"the {allowed:.3f} that ({epsilon:.2f}, {delta:g})-DP allows at FPR <= "
                    f"{fpr_hi:.3f}"
                )
    return out
