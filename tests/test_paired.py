"""Changes between cases that share what was measured (benchmark/measures/paired.py): a
share of samples on the same seeds, an attack's advantage on the same images. The
intervals hold their coverage on simulated cases, are narrower than the independent
ones where the two cases agree, and the leaderboard pairs exactly the cases that share
seeds or images."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from benchmark.measures.auc_interval import advantage, auc_interval
from benchmark.measures.membership_scores import roc_auc
from benchmark.measures.paired import (
    advantage_change,
    delong_covariance,
    share_change_paired,
    share_change_unpaired,
    wilson,
)


@pytest.mark.parametrize(("k", "n"), [(0, 64), (1, 1024), (14, 1024), (30, 50), (64, 64)])
def test_wilson_matches_scipy(k, n):
    ci = stats.binomtest(k, n).proportion_ci(method="wilson")
    assert wilson(k, n) == pytest.approx((ci.low, ci.high), abs=1e-12)


def test_the_unpaired_interval_is_newcombes_hybrid_score_interval():
    """Newcombe (1998)'s worked example for independent proportions, 56/70 - 48/80: his
    method 10 gives 0.0524 to 0.3339."""
    d, lo, hi = share_change_unpaired(56, 70, 48, 80)
    assert d == pytest.approx(0.2)
    assert (lo, hi) == pytest.approx((0.0524, 0.3339), abs=1e-4)


def _paired_flags(rng, n, p_a, p_b, rho):
    """Per-sample verdicts of two cases on the same samples, correlated through a shared
    latent normal (a Gaussian copula): sample i flagged under a when its latent is low."""
    z = rng.standard_normal(n)
    za = z
    zb = rho * z + math.sqrt(1 - rho * rho) * rng.standard_normal(n)
    fa = np.flatnonzero(za < stats.norm.ppf(p_a))
    fb = np.flatnonzero(zb < stats.norm.ppf(p_b))
    return fa.tolist(), fb.tolist()


@pytest.mark.parametrize(
    ("n", "p_a", "p_b", "rho"),
    [(1024, 0.004, 0.012, 0.8), (1024, 0.01, 0.01, 0.9), (200, 0.3, 0.7, 0.6), (64, 0.1, 0.3, 0.5)],
)
def test_the_paired_share_interval_covers_the_true_change(n, p_a, p_b, rho):
    """Counts of 1-14 of 1024 (|q| and Carlini on a mitigated model) and larger shares:
    the paired interval holds the true change in 93-99.5% of 1000 simulated pairs of
    cases, and is narrower on average than the independent one, which ignores that the
    two cases agree on most samples."""
    rng = np.random.default_rng(int(n * 1000 * p_a + 7))
    hits, width, width_indep = 0, 0.0, 0.0
    for _ in range(1000):
        fa, fb = _paired_flags(rng, n, p_a, p_b, rho)
        _, lo, hi = share_change_paired(fa, fb, n)
        hits += lo <= p_a - p_b <= hi
        _, ulo, uhi = share_change_unpaired(len(fa), n, len(fb), n)
        width += hi - lo
        width_indep += uhi - ulo
    assert 0.93 <= hits / 1000 <= 0.995, hits / 1000
    assert width < width_indep, (width / 1000, width_indep / 1000)


def test_the_wald_interval_it_replaces_had_no_width_at_zero():
    """No sample flagged in either case (|q| = 0 of 1024 twice): the Wald interval of the
    change was [0, 0], a certainty; the paired one is not."""
    _, lo, hi = share_change_paired([], [], 1024)
    assert lo < 0 < hi and hi - lo > 0.003


def test_pairing_narrows_the_interval_where_the_cases_agree():
    """The same 40 of 1024 samples flagged in both, plus 3 more in one: paired, the
    change +3/1024 is told from 0 only by the discordant samples; unpaired, it is lost
    in two counts' spreads."""
    fa, fb = list(range(43)), list(range(40))
    d, lo, hi = share_change_paired(fa, fb, 1024)
    _, ulo, uhi = share_change_unpaired(43, 1024, 40, 1024)
    assert d == pytest.approx(3 / 1024)
    assert hi - lo < 0.5 * (uhi - ulo)
    # no sample in common: no correlation to use, nothing narrower than unpaired
    d2, lo2, hi2 = share_change_paired([0, 1, 2], [3, 4], 1024)
    _, ulo2, uhi2 = share_change_unpaired(3, 1024, 2, 1024)
    assert hi2 - lo2 >= (uhi2 - ulo2) - 1e-9


def test_paired_flags_out_of_range_are_refused():
    with pytest.raises(ValueError, match="flagged indices"):
        share_change_paired([5], [], 4)


def _binormal_pair(rng, n, d_a, d_b, rho):
    """Two attacks' scores on the same n members and n non-members, correlated by rho."""

    def two(mean_a, mean_b):
        z = rng.standard_normal(n)
        w = rho * z + math.sqrt(1 - rho * rho) * rng.standard_normal(n)
        return mean_a + z, mean_b + w

    (ma, mb), (ha, hb) = two(d_a, d_b), two(0.0, 0.0)
    return (ma, ha), (mb, hb)


def test_delong_covariance_matches_a_bootstrap():
    """DeLong's variances and covariance of two correlated AUCs on 300 + 300 images,
    against 2000 bootstrap resamples of the images (members and non-members apart)."""
    rng = np.random.default_rng(3)
    a, b = _binormal_pair(rng, 300, 0.8, 0.5, 0.7)
    auc_a, auc_b, cov = delong_covariance(a, b)
    labels = np.r_[np.ones(300), np.zeros(300)]
    assert auc_a == pytest.approx(roc_auc(labels, np.r_[a[0], a[1]]))
    assert auc_b == pytest.approx(roc_auc(labels, np.r_[b[0], b[1]]))
    boot = []
    for _ in range(2000):
        i, j = rng.integers(0, 300, 300), rng.integers(0, 300, 300)
        boot.append(
            (
                roc_auc(labels, np.r_[a[0][i], a[1][j]]),
                roc_auc(labels, np.r_[b[0][i], b[1][j]]),
            )
        )
    ref = np.cov(np.array(boot).T)
    assert cov == pytest.approx(ref, rel=0.15)
    assert cov[0, 1] > 0.5 * math.sqrt(cov[0, 0] * cov[1, 1])  # the attacks agree


@pytest.mark.parametrize(("n", "d_a", "d_b"), [(63, 1.2, 2.0), (200, 0.6, 0.9), (63, -1.5, 1.0)])
def test_the_paired_advantage_change_covers_the_true_change(n, d_a, d_b):
    """Binormal attacks with a true AUC of Phi(d / sqrt 2) each, on the same images: the
    paired change in |AUC - 0.5| holds the true change in >= 93% of 400 simulations. It
    is narrower on average than the independent one where both AUCs lie on the same side
    of 0.5; where one lies below (its advantage falls as its AUC rises), the two
    advantages move against each other and the paired interval is rightly wider."""
    rng = np.random.default_rng(n)
    truth = advantage(stats.norm.cdf(d_a / math.sqrt(2))) - advantage(
        stats.norm.cdf(d_b / math.sqrt(2))
    )
    hits, width, width_indep = 0, 0.0, 0.0
    for _ in range(400):
        a, b = _binormal_pair(rng, n, d_a, d_b, 0.8)
        auc_a, auc_b, _ = delong_covariance(a, b)
        ci_a, ci_b = auc_interval(auc_a, n, n), auc_interval(auc_b, n, n)
        _, lo, hi, paired = advantage_change(auc_a, ci_a, auc_b, ci_b, (a, b))
        _, ilo, ihi, _ = advantage_change(auc_a, ci_a, auc_b, ci_b)
        hits += lo <= truth <= hi
        width += hi - lo
        width_indep += ihi - ilo
    assert 0.93 <= hits / 400 <= 0.999, hits / 400
    if d_a * d_b > 0:
        assert width < 0.9 * width_indep, (width / 400, width_indep / 400)
    else:
        assert width > width_indep, (width / 400, width_indep / 400)


def test_a_perfect_separation_falls_back_to_the_independent_interval():
    """Both attacks separate perfectly (AUC 1, DeLong's variance 0): no correlation to be
    had, the interval is the independent one, and it is said not to be paired."""
    m, h = np.arange(20) + 100.0, np.arange(20.0)
    ci = auc_interval(1.0, 20, 20)
    d, lo, hi, paired = advantage_change(1.0, ci, 1.0, ci, ((m, h), (m, h)))
    assert not paired and d == 0.0
    assert (lo, hi) == pytest.approx(advantage_change(1.0, ci, 1.0, ci)[1:3])


# ---- the leaderboard pairs the cases that share seeds and images, and only those


def _record(case_id, mitigation, flagged, q_flagged, scores, sets="abc", case_seed=0):
    members, nonmembers = scores
    labels = np.r_[np.ones(len(members)), np.zeros(len(nonmembers))]
    auc = roc_auc(labels, np.r_[members, nonmembers])
    return {
        "case_id": case_id,
        "family": "ddim",
        "dataset": "digits",
        "n_train": 64,
        "base_model": "setup-64",
        "model_key": "k",
        "mitigation": mitigation,
        "n_gen": 1024,
        "seeds": {"case": case_seed},
        "carlini_l2": len(flagged) / 1024,
        "carlini_l2_flagged": flagged,
        "q": len(q_flagged),
        "q_flagged": q_flagged,
        "fid_test": 10.0,
        "mia_sets": sets,
        "mia_loss_weights_auc": auc,
        "mia_loss_weights_auc_ci": list(auc_interval(auc, len(members), len(nonmembers))),
        "mia_loss_weights_scores": {"members": list(members), "nonmembers": list(nonmembers)},
    }


def test_the_leaderboard_pairs_cases_on_the_same_seeds_and_images():
    from benchmark.report.groups import compare_groups

    rng = np.random.default_rng(0)
    a, b = _binormal_pair(rng, 63, 0.6, 1.2, 0.8)
    none = _record("ddim-digits64-none", "none", list(range(300)), list(range(14)), b)
    mitigated = _record("ddim-digits64-cpsample", "cpsample", list(range(40)), [2], a)
    (group,) = compare_groups([none, mitigated])
    (c,) = group.comparisons
    assert c.carlini.paired and c.q.paired and c.privacy["weights"].paired
    assert c.carlini.delta == pytest.approx((40 - 300) / 1024)
    assert c.q.delta == pytest.approx(1 - 14)
    assert "paired" in c.carlini.text()
    # the CI shown for |q| is the paired share's, scaled to counts of N_gen
    _, lo, hi = share_change_paired([2], list(range(14)), 1024)
    assert (c.q.lo, c.q.hi) == pytest.approx((lo * 1024, hi * 1024))

    # other sample seeds, other images scored: the independent intervals, said so
    other = _record(
        "ddim-digits64-cpsample", "cpsample", list(range(40)), [2], a, sets="xyz", case_seed=1
    )
    (group,) = compare_groups([none, other])
    (c,) = group.comparisons
    assert not (c.carlini.paired or c.q.paired or c.privacy["weights"].paired)
    _, lo, hi = share_change_unpaired(40, 1024, 300, 1024)
    assert (c.carlini.lo, c.carlini.hi) == pytest.approx((lo, hi))


def test_mcnemar_counts_only_the_samples_one_case_flags():
    """14 reproductions without the mitigation, 1 with it, on the same seeds: the one is
    among the 14 (13 discordant, all for `none`), p = 2^-13; a mitigation that flags
    other samples than `none` does is judged on those too. The suite's CPSample check
    uses this where both cases drew the same samples, Fisher's test of two counts
    otherwise."""
    from benchmark.measures.paired import fewer_flagged_p
    from benchmark.suites.checks import fewer_reproductions

    plain = list(range(14))
    assert fewer_flagged_p([3], plain) == pytest.approx(0.5**13)
    assert fewer_flagged_p([100, 101, 102], plain) == pytest.approx(
        stats.binomtest(3, 17, 0.5, alternative="less").pvalue
    )
    assert fewer_flagged_p([], []) == 1.0

    def rec(flagged, seed=0):
        return {"q": len(flagged), "q_flagged": flagged, "n_gen": 1024, "seeds": {"case": seed}}

    p, test = fewer_reproductions(rec([3]), rec(plain))
    assert test.startswith("McNemar") and p == pytest.approx(0.5**13)
    p, test = fewer_reproductions(rec([3], seed=1), rec(plain))
    assert test == "Fisher"
    assert p == pytest.approx(
        stats.fisher_exact([[1, 1023], [14, 1010]], alternative="less").pvalue
    )


@pytest.mark.parametrize("seed", [0, 3])
def test_the_members_found_at_the_transferred_threshold_are_the_attacks_own(seed):
    """Recomputed from the per-image scores a record keeps, the members an attack finds at
    its transferred threshold are as many as its recorded TPR says; two attacks on the
    same images share the evaluation half, so their finds pair member by member."""
    from benchmark.measures.membership_scores import score_attack, transferred_found

    rng = np.random.default_rng(seed)
    m, h = rng.normal(0.6, 1, 512), rng.normal(0, 1, 512)
    m2 = m + rng.normal(0, 0.3, 512)  # a second attack, close to the first
    for fpr in (0.01, 0.001):
        out = score_attack(m, h, n_boot=10, seed=seed).transferred[fpr]
        found, n = transferred_found(m, h, fpr, seed)
        assert n == out.n_members and len(found) == round(out.tpr * n)
        found2, n2 = transferred_found(m2, h, fpr, seed)
        assert n2 == n and set(found) | set(found2) <= set(range(512))
    with pytest.raises(ValueError, match="too few"):
        transferred_found([1.0], [0.0], 0.01, 0)
