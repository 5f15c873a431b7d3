"""|q| statistics against scipy.stats.binomtest."""

import pytest
import torch
from scipy.stats import binomtest, hypergeom

from benchmark.measures.carlini_l2 import nearest_two
from benchmark.measures.reproduction import (
    clopper_pearson,
    confirmed_by_nearest,
    count_reproductions,
    fewer_reproductions_p,
)


@pytest.mark.parametrize(
    "k, n, n_train",
    [(0, 150, 1000), (3, 512, 64), (151, 150000, 1000), (0, 50000, 546), (57, 50000, 546)],
)
def test_against_scipy(k, n, n_train):
    saf = torch.zeros(n, dtype=torch.bool)
    ident = torch.zeros(n, dtype=torch.bool)
    saf[:k] = True
    ident[:k] = True
    saf[k : k + 5] = True  # C_SAF only
    ident[n - 2 :] = True  # C_ID only
    rc = count_reproductions(saf, ident, n_train)
    assert rc.q == k and rc.saf_only == min(5, n - k) and rc.id_only == 2
    assert rc.flagged == list(range(k))
    assert rc.expected == n / n_train
    ref = binomtest(k, n, 1 / n_train, alternative="less")
    assert rc.p_value == pytest.approx(ref.pvalue, rel=1e-9)
    ci = binomtest(k, n).proportion_ci(0.95, method="exact")
    assert rc.interval == pytest.approx((ci.low, ci.high), rel=1e-7, abs=1e-12)


def test_paper_table_1_first_row():
    """PathMNIST, N_train=1000, N_gen=150000: |q|=151 vs E|q|=150 -> H0 not rejected."""
    both = torch.zeros(150000, dtype=torch.bool)
    both[:151] = True
    rc = count_reproductions(both, both, 1000)
    assert rc.expected == 150 and rc.p_value > 0.05
    none = count_reproductions(
        torch.zeros(150000, dtype=torch.bool), torch.zeros(150000, dtype=torch.bool), 5000
    )
    assert none.p_value < 0.05  # 0 of 30 expected: rejected, no reproduction


def test_bad_inputs():
    with pytest.raises(ValueError, match="equal length"):
        count_reproductions(torch.zeros(3, dtype=torch.bool), torch.zeros(4, dtype=torch.bool), 5)
    with pytest.raises(ValueError):
        clopper_pearson(5, 3)


@pytest.mark.parametrize("q_a, q_b", [(1, 14), (2, 14), (0, 2), (14, 14), (20, 3)])
def test_fewer_reproductions_against_the_hypergeometric(q_a, q_b):
    """Fisher's one-sided p = P(X <= q_a), X hypergeometric given the total |q|."""
    n_a, n_b = 1024, 1024
    ref = hypergeom(n_a + n_b, q_a + q_b, n_a).cdf(q_a)
    assert fewer_reproductions_p(q_a, n_a, q_b, n_b) == pytest.approx(ref, rel=1e-9)


def test_fewer_reproductions_needs_counts_within_their_draws():
    with pytest.raises(ValueError, match="0 <= q <= n"):
        fewer_reproductions_p(5, 4, 1, 10)


def test_confirmation_by_the_nearest_training_image():
    gen = torch.Generator().manual_seed(0)
    train = torch.randn(20, 1, 4, 4, generator=gen)
    images = torch.cat([train[[3, 7, 3]] + 0.01, torch.randn(5, 1, 4, 4, generator=gen)])
    ref = torch.stack([(train - x).flatten(1).norm(dim=1).argmin() for x in images])
    assert torch.equal(nearest_two(images, train, chunk=3)[2], ref)
    assert confirmed_by_nearest(images, [0, 1, 2], train, saf_index=3) == 2
    assert confirmed_by_nearest(images, [], train, saf_index=3) == 0
