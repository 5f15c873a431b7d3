"""A 95% interval for an AUC that stays honest at small samples and at AUC 1.

The percentile bootstrap of an AUC has zero width when members and non-members
are perfectly separated (every resample separates them too): "AUC 1.000 [1.000,
1.000]" on 63 + 63 images claims a certainty 126 images cannot give. DeLong's
and Hanley and McNeil's variances vanish there as well.

This is Newcombe's score-type interval for the Mann-Whitney effect size (Newcombe
2006, "Confidence intervals for an effect size measure based on the Mann-Whitney
statistic. Part 2", method 5): Hanley and McNeil's variance of an AUC theta,

    V(theta) = theta (1 - theta) / (m n) * [1 + (N* - 1) ((1 - theta) / (2 - theta)
                                                         + theta / (1 + theta))],

with both sample sizes replaced by their mean N* = (m + n) / 2, and the interval
the set of theta that the observed AUC does not reject: (AUC - theta)^2 <=
z^2 V(theta), solved for theta (as Wilson's interval is for a proportion). It
lies inside [0, 1], is not degenerate at AUC 0 or 1, and its coverage stays near
95% down to a few dozen images a side (tests/test_auc_interval.py simulates it).
"""

from __future__ import annotations

import math

from scipy import optimize, stats


def _variance(theta: float, m: int, n: int) -> float:
    mean_n = (m + n) / 2
    shape = (1 - theta) / (2 - theta) + theta / (1 + theta)
    return theta * (1 - theta) / (m * n) * (1 + (mean_n - 1) * shape)


def auc_interval(auc: float, m: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Newcombe's score interval of an AUC measured on ``m`` members and ``n`` non-members.

    Raises:
        ValueError: an AUC outside [0, 1] or an empty side.
    """
    if m < 1 or n < 1:
        raise ValueError(f"an AUC interval needs both classes, got {m} and {n}")
    if not 0.0 <= auc <= 1.0:
        raise ValueError(f"an AUC lies in [0, 1], got {auc}")
    z = stats.norm.ppf(0.5 + level / 2)

    def excess(theta: float) -> float:  # > 0: theta is rejected
        return (auc - theta) ** 2 - z * z * _variance(theta, m, n)

    eps = 1e-12
    # excess(0) = auc^2 >= 0 and excess(1) = (1 - auc)^2 >= 0; between them, at the AUC
    # itself (nudged inside when the AUC is 0 or 1, where the variance vanishes), < 0
    inner = min(max(auc, eps), 1 - eps)
    lo = 0.0 if auc <= eps else optimize.brentq(excess, 0.0, inner, xtol=1e-10)
    hi = 1.0 if auc >= 1 - eps else optimize.brentq(excess, inner, 1.0, xtol=1e-10)
    return float(lo), float(hi)


def advantage(auc: float) -> float:
    """How far an attack is from chance in either direction, |AUC - 0.5|: an AUC of 0.1
    leaks as much as 0.9 (the attacker flips the score's sign)."""
    return abs(auc - 0.5)


def advantage_interval(lo: float, hi: float) -> tuple[float, float]:
    """The interval of |AUC - 0.5| implied by the AUC's interval [lo, hi]."""
    if math.isnan(lo) or math.isnan(hi):
        return (math.nan, math.nan)
    if lo >= 0.5:
        return (lo - 0.5, hi - 0.5)
    if hi <= 0.5:
        return (0.5 - hi, 0.5 - lo)
    return (0.0, max(0.5 - lo, hi - 0.5))
