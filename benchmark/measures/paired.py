"""95% intervals for a change between two cases, paired where they share what was measured.

A mitigation and ``none`` on the same base model are measured on the same things: the
same sample seeds (sample i of both starts from the same noise) and the same members and
non-members (the attacks score the same images, in the same order). Their figures are
then correlated, and an interval that treats them as independent is too wide where they
agree and can be wrong in either direction where they do not. Here:

- **A share of samples** (Carlini's replication fraction, |q| / N_gen) on the same
  seeds: Newcombe's hybrid score interval for a difference of paired proportions
  (Newcombe 1998, "Improved confidence intervals for the difference between binomial
  proportions based on paired data", method 10): each share's Wilson interval,
  combined with the phi correlation of the 2x2 table of per-sample verdicts. Unpaired
  (other seeds or counts), the same combination with phi = 0 (Newcombe's method 10 for
  independent proportions), which replaces the Wald interval: that one has zero width at
  0 of n and covers badly at counts of 1 to 14.
  The one-sided test that goes with it is McNemar's exact test on the samples
  flagged by one case only (``fewer_flagged_p``).
- **An attack's advantage** |AUC - 0.5| on the same images: the MOVER combination of
  each AUC's own score interval (``auc_interval``) with the correlation of the two AUCs
  from DeLong's structural components (DeLong, DeLong and Clarke-Pearson 1988; Zou and
  Donner 2008 for MOVER with correlated estimates). Where the correlation cannot be
  estimated (a perfect separation has no variance) or an AUC's interval straddles 0.5
  (the advantage's sign is unknown), it is taken as 0: the independent interval.

tests/test_paired.py checks the coverage of both by simulation and DeLong's covariance
against a bootstrap.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence

import numpy as np
from scipy import stats

from benchmark.measures.auc_interval import advantage, advantage_interval


def wilson(k: int, n: int) -> tuple[float, float]:
    """Wilson's 95% score interval of a proportion ``k`` of ``n`` (scipy's)."""
    if n < 1 or not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n and n >= 1, got k={k}, n={n}")
    ci = stats.binomtest(k, n).proportion_ci(0.95, method="wilson")
    return float(ci.low), float(ci.high)


def mover(
    a: float,
    a_ci: tuple[float, float],
    b: float,
    b_ci: tuple[float, float],
    r: float = 0.0,
) -> tuple[float, float, float]:
    """a - b with its interval from each estimate's own interval and their correlation
    ``r`` (Zou and Donner's MOVER): (difference, lower, upper)."""
    (a_lo, a_hi), (b_lo, b_hi) = a_ci, b_ci
    r = min(max(r, -1.0), 1.0)

    def half(x: float, y: float) -> float:
        return math.sqrt(max(x * x + y * y - 2 * r * x * y, 0.0))

    d = a - b
    return d, d - half(a - a_lo, b_hi - b), d + half(a_hi - a, b - b_lo)


def share_change_unpaired(k1: int, n1: int, k2: int, n2: int) -> tuple[float, float, float]:
    """k1/n1 - k2/n2 of two independent samples (Newcombe's hybrid score interval)."""
    p1, p2 = k1 / n1, k2 / n2
    return mover(p1, wilson(k1, n1), p2, wilson(k2, n2), 0.0)


def share_change_paired(
    flagged_a: Sequence[int], flagged_b: Sequence[int], n: int
) -> tuple[float, float, float]:
    """Share flagged under a minus share flagged under b, on the same ``n`` samples
    (indices of the flagged ones, in [0, n)); Newcombe's paired method 10."""
    a, b = set(map(int, flagged_a)), set(map(int, flagged_b))
    if n < 1 or any(not 0 <= i < n for i in a | b):
        raise ValueError(f"flagged indices must lie in [0, {n})")
    both = len(a & b)
    only_a, only_b = len(a - b), len(b - a)
    neither = n - both - only_a - only_b
    k1, k2 = both + only_a, both + only_b
    # phi of the 2x2 table, with Newcombe's continuity correction where it is positive
    cross = both * neither - only_a * only_b
    denom = math.sqrt(k1 * (n - k1) * k2 * (n - k2))
    phi = 0.0 if denom == 0 else (max(cross - n / 2, 0.0) if cross > 0 else cross) / denom
    return mover(k1 / n, wilson(k1, n), k2 / n, wilson(k2, n), phi)


def fewer_flagged_p(flagged_a: Sequence[int], flagged_b: Sequence[int]) -> float:
    """One-sided p that a flags fewer of the same samples than b: McNemar's exact test,
    the discordant samples (flagged by one only) as a binomial with p = 1/2."""
    a, b = set(map(int, flagged_a)), set(map(int, flagged_b))
    only_a, only_b = len(a - b), len(b - a)
    if only_a + only_b == 0:
        return 1.0
    return float(stats.binomtest(only_a, only_a + only_b, 0.5, alternative="less").pvalue)


def _placements(members: np.ndarray, nonmembers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """DeLong's structural components: for each member the share of non-members it
    outscores (ties count half), for each non-member the share of members that outscore
    it. Their means are the AUC."""
    m, n = members.size, nonmembers.size
    joint = stats.rankdata(np.r_[members, nonmembers])
    v10 = (joint[:m] - stats.rankdata(members)) / n
    v01 = 1.0 - (joint[m:] - stats.rankdata(nonmembers)) / m
    return v10, v01


def delong_covariance(
    scores_a: tuple[Sequence[float], Sequence[float]],
    scores_b: tuple[Sequence[float], Sequence[float]],
) -> tuple[float, float, np.ndarray]:
    """Two attacks' AUCs on the same members and non-members (each a pair of score
    sequences, higher = member, in the same image order) and DeLong's 2x2 covariance of
    them: (auc_a, auc_b, covariance)."""
    ma, ha = (np.asarray(s, dtype=np.float64) for s in scores_a)
    mb, hb = (np.asarray(s, dtype=np.float64) for s in scores_b)
    if ma.size != mb.size or ha.size != hb.size:
        raise ValueError("paired attacks must score the same members and non-members")
    if ma.size < 2 or ha.size < 2:
        raise ValueError("DeLong's covariance needs at least 2 members and 2 non-members")
    (v10_a, v01_a), (v10_b, v01_b) = _placements(ma, ha), _placements(mb, hb)
    v10, v01 = np.stack([v10_a, v10_b]), np.stack([v01_a, v01_b])
    cov = np.cov(v10) / ma.size + np.cov(v01) / ha.size
    return float(v10[0].mean()), float(v10[1].mean()), cov


def advantage_change(
    auc_a: float,
    ci_a: tuple[float, float],
    auc_b: float,
    ci_b: tuple[float, float],
    scores: tuple[tuple[Sequence[float], Sequence[float]], tuple[Sequence[float], Sequence[float]]]
    | None = None,
) -> tuple[float, float, float, bool]:
    """Change in |AUC - 0.5| from b to a with a 95% interval: (change, lower, upper,
    paired). ``scores``: both attacks' per-image scores on the same images, for the
    correlation; without them (or where it cannot be had) the interval is the
    independent one."""
    r, paired = 0.0, False
    straddles = ci_a[0] < 0.5 < ci_a[1] or ci_b[0] < 0.5 < ci_b[1]
    if scores is not None and not straddles:  # a sign unknown: no correlation to use
        _, _, cov = delong_covariance(*scores)
        var_a, var_b = cov[0, 0], cov[1, 1]
        if var_a > 0 and var_b > 0:
            sign = (1 if auc_a >= 0.5 else -1) * (1 if auc_b >= 0.5 else -1)
            r, paired = sign * cov[0, 1] / math.sqrt(var_a * var_b), True
    d, lo, hi = mover(
        advantage(auc_a),
        advantage_interval(*ci_a),
        advantage(auc_b),
        advantage_interval(*ci_b),
        r,
    )
    return d, lo, hi, paired


def images_digest(*tensors) -> str:
    """A short content digest of image sets (which images, in which order): two cases
    with the same digest scored the same images."""
    h = hashlib.sha256()
    for t in tensors:
        arr = np.ascontiguousarray(t.detach().cpu().float().numpy())
        h.update(str(arr.shape).encode())
        h.update(arr.tobytes())
    return h.hexdigest()[:16]
