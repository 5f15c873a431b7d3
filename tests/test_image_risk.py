"""Each member's risk (benchmark/measures/image_risk.py): the copied ones first, the ratio
as Carlini's criterion computes it, the percentile as scipy computes it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from benchmark.measures.carlini_l2 import nearest_two
from benchmark.measures.image_risk import p_values, percentiles, rank_members


@pytest.fixture
def members():
    return torch.rand(12, 1, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1


def test_copied_members_come_first_with_carlinis_ratio(members):
    gen = torch.Generator().manual_seed(1)
    copies = members[[3, 7, 7]] + 0.01 * torch.randn(3, 1, 8, 8, generator=gen)
    fresh = torch.rand(20, 1, 8, 8, generator=gen) * 2 - 1
    samples = torch.cat([fresh[:10], copies, fresh[10:]])
    ranked = rank_members(samples, members)
    top = {ranked[0].index, ranked[1].index}
    assert top == {3, 7} and all(r.reproduced for r in ranked[:2])
    assert not any(r.reproduced for r in ranked[2:])
    by_index = {r.index: r for r in ranked}
    assert by_index[7].copies == 2 and by_index[3].copies == 1
    d1, d2, idx = nearest_two(samples, members)
    ratios = (d1 / d2).numpy()
    for r in ranked:
        mine = ratios[idx.numpy() == r.index]
        assert r.ratio == (pytest.approx(mine.min()) if len(mine) else float("inf"))
        if r.sample >= 0:
            assert idx[r.sample] == r.index and r.distance == pytest.approx(float(d1[r.sample]))


def test_percentiles_are_scipys():
    rng = np.random.default_rng(0)
    held = np.round(rng.normal(size=50), 1)  # ties on purpose
    scores = np.concatenate([np.round(rng.normal(size=20), 1), [held.max() + 1, held.min() - 1]])
    want = [stats.percentileofscore(held, s, kind="mean") / 100 for s in scores]
    np.testing.assert_allclose(percentiles(scores, held), want)


def test_without_copies_the_most_identifiable_member_comes_first(members):
    samples = torch.rand(16, 1, 8, 8, generator=torch.Generator().manual_seed(2)) * 2 - 1
    scores = np.arange(12, dtype=float)  # member 11 scores highest
    held = np.linspace(-1, 10.5, 200)  # p-values down to 1/201: 1% is resolvable
    ranked = rank_members(samples, members, scores, held)
    assert [r.index for r in ranked[:3]] == [11, 10, 9]
    assert ranked[0].identifiable(fpr=0.01) and not ranked[-1].identifiable(fpr=0.01)
    with pytest.raises(ValueError, match="both"):
        rank_members(samples, members, scores, None)
    with pytest.raises(ValueError, match="3 membership scores for 12 members"):
        rank_members(samples, members, scores[:3], held)


def test_p_values_hold_the_false_positive_rate_under_no_signal():
    """Members and held-out images from one distribution: on average at most 1% of the
    members are flagged at 1%, and with fewer than 99 held-out images none can be."""
    rng = np.random.default_rng(0)
    flagged = [
        np.mean(p_values(rng.normal(size=50), rng.normal(size=300)) <= 0.01) for _ in range(400)
    ]
    assert np.mean(flagged) <= 0.01 + 0.002
    assert p_values([1e9], rng.normal(size=98)).min() > 0.01  # 1 / 99 > 1%
    assert p_values([1e9], rng.normal(size=99)).min() == pytest.approx(0.01)
    held = np.array([0.0, 1.0, 1.0, 2.0])
    np.testing.assert_allclose(p_values([1.0, 3.0, -1.0], held), [4 / 5, 1 / 5, 5 / 5])
