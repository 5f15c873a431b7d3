"""The AUC's 95% interval (benchmark/measures/auc_interval.py): Newcombe's score interval
holds its coverage on simulated attacks, is not zero-wide where members and non-members
separate perfectly (the percentile bootstrap was), and reads two-sided as an advantage."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from benchmark.measures.auc_interval import advantage, advantage_interval, auc_interval
from benchmark.measures.bootstrap import bootstrap_ci
from benchmark.measures.membership_scores import roc_auc, score_attack


@pytest.mark.parametrize(("n", "true_auc"), [(30, 0.5), (30, 0.9), (63, 0.97), (200, 0.75)])
def test_coverage_on_binormal_scores_is_near_95_percent(n, true_auc):
    """Members' scores N(d, 1), non-members' N(0, 1): the true AUC is Phi(d / sqrt 2).
    Over 600 simulated attacks the interval holds it 93-99.5% of the time (Newcombe's
    method is slightly conservative); the bootstrap's percentile interval, at AUC 0.97
    on 63 + 63 images, holds it far less often (checked below)."""
    rng = np.random.default_rng(n)
    d = np.sqrt(2) * stats.norm.ppf(true_auc)
    labels = np.r_[np.ones(n), np.zeros(n)]
    hits = 0
    for _ in range(600):
        auc = roc_auc(labels, np.r_[rng.normal(d, 1, n), rng.normal(0, 1, n)])
        lo, hi = auc_interval(auc, n, n)
        hits += lo <= true_auc <= hi
    assert 0.93 <= hits / 600 <= 0.995, hits / 600


def test_the_bootstrap_undercovers_where_the_score_interval_does_not():
    """At a true AUC of 0.99 on 20 + 20 images (often every pair ranked right) the
    percentile bootstrap misses the true AUC in about a fifth of the attacks."""
    rng = np.random.default_rng(1)
    n, true_auc = 20, 0.99
    d = np.sqrt(2) * stats.norm.ppf(true_auc)
    labels = np.r_[np.ones(n), np.zeros(n)]
    boot = score = 0
    for i in range(150):
        m, h = rng.normal(d, 1, n), rng.normal(0, 1, n)
        auc = roc_auc(labels, np.r_[m, h])
        lo, hi = bootstrap_ci(lambda a, b: roc_auc(labels, np.r_[a, b]), [m, h], 200, seed=i)
        boot += lo <= true_auc <= hi
        lo, hi = auc_interval(auc, n, n)
        score += lo <= true_auc <= hi
    assert boot / 150 < 0.9 and score / 150 >= 0.93, (boot / 150, score / 150)


def test_perfect_separation_gives_a_real_interval():
    """63 + 63 images, every member above every non-member: AUC 1 with a lower bound
    below 1 (it was [1.000, 1.000]), and the mirror image at AUC 0."""
    out = score_attack(np.arange(63) + 100.0, np.arange(63.0), n_boot=50)
    assert out.auc == 1.0
    lo, hi = out.auc_ci
    assert hi == 1.0 and 0.9 < lo < 0.99, out.auc_ci
    lo0, hi0 = auc_interval(0.0, 63, 63)
    assert lo0 == 0.0 and hi0 == pytest.approx(1 - lo)
    assert auc_interval(1.0, 6, 6)[0] < lo  # fewer images, a wider interval


def test_the_interval_is_the_set_the_score_test_does_not_reject():
    """At each end, (AUC - theta)^2 = z^2 V(theta): the z statistic at the bound is 1.96."""
    from benchmark.measures.auc_interval import _variance

    for auc, m, n in [(0.7, 40, 60), (0.95, 10, 12), (0.5, 100, 100)]:
        for bound in auc_interval(auc, m, n):
            z = abs(auc - bound) / np.sqrt(_variance(bound, m, n))
            assert z == pytest.approx(stats.norm.ppf(0.975), rel=1e-6), (auc, m, n, bound)


def test_advantage_is_two_sided():
    assert advantage(0.1) == pytest.approx(advantage(0.9)) == pytest.approx(0.4)
    assert advantage_interval(0.05, 0.2) == pytest.approx((0.3, 0.45))
    assert advantage_interval(0.8, 0.95) == pytest.approx((0.3, 0.45))
    assert advantage_interval(0.45, 0.6) == pytest.approx((0.0, 0.1))


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="both classes"):
        auc_interval(0.5, 0, 3)
    with pytest.raises(ValueError, match=r"lies in \[0, 1\]"):
        auc_interval(1.2, 3, 3)
