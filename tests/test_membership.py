"""Membership inference: the ROC code against scikit-learn, the attacks on models
whose membership leakage is known in closed form."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats
from sklearn.metrics import roc_auc_score
from sklearn.metrics import roc_curve as sk_roc_curve

from benchmark import registry
from benchmark.attacks.base import Shadow, get_attack, membership_sets, run_attack
from benchmark.config import DataConfig, ModelConfig
from benchmark.data import load_dataset
from benchmark.errors import ConfigError, UnknownNameError
from benchmark.measures.membership_scores import (
    check_member_sets,
    roc_auc,
    roc_curve,
    score_attack,
    tpr_at_fpr,
)
from benchmark.models.base import TrainedModel
from benchmark.models.ddpm import DDIMFamily
from tests.helpers import MixtureDenoiser, _Out

ATTACKS = registry.attacks.names()


@pytest.fixture
def scores():
    rng = np.random.default_rng(0)
    labels = np.r_[np.ones(300), np.zeros(300)]
    s = np.r_[rng.normal(0.5, 1, 300), rng.normal(0, 1, 300)].round(1)  # rounding makes ties
    return labels, s


def test_roc_curve_matches_sklearn(scores):
    labels, s = scores
    fpr, tpr, thr = roc_curve(labels, s)
    sk_fpr, sk_tpr, sk_thr = sk_roc_curve(labels, s, drop_intermediate=False)
    np.testing.assert_allclose(fpr, sk_fpr)
    np.testing.assert_allclose(tpr, sk_tpr)
    np.testing.assert_allclose(thr[1:], sk_thr[1:])


def test_auc_matches_sklearn(scores):
    labels, s = scores
    assert roc_auc(labels, s) == pytest.approx(roc_auc_score(labels, s), abs=1e-12)
    assert roc_auc(labels, -s) == pytest.approx(1 - roc_auc_score(labels, s), abs=1e-12)


@pytest.mark.parametrize("fpr_max", [0.0, 0.001, 0.01, 0.1, 0.5])
def test_tpr_at_fpr_matches_sklearn_curve(scores, fpr_max):
    labels, s = scores
    sk_fpr, sk_tpr, _ = sk_roc_curve(labels, s, drop_intermediate=False)
    assert tpr_at_fpr(labels, s, fpr_max) == pytest.approx(sk_tpr[sk_fpr <= fpr_max].max())


def test_score_attack_reports_welch_test_and_intervals(scores):
    labels, s = scores
    m, h = s[labels == 1], s[labels == 0]
    out = score_attack(m, h, n_boot=200)
    ref = stats.ttest_ind(m, h, equal_var=False)
    assert out.t_stat == pytest.approx(ref.statistic) and out.p_value == pytest.approx(ref.pvalue)
    assert out.auc_ci[0] <= out.auc <= out.auc_ci[1]
    assert out.auc_ci[1] - out.auc_ci[0] < 0.15
    lo, hi = out.tpr_ci[0.01]
    assert 0 <= lo <= hi <= 1
    rec = out.as_record("x")
    assert {"mia_x_auc", "mia_x_tpr_1pct", "mia_x_tpr_0.1pct_ci", "mia_x_p_value"} <= set(rec)
    fpr, tpr = rec["mia_x_roc"]
    assert fpr[0] == 0 and fpr[-1] == 1 and tpr[-1] == 1 and len(fpr) <= 200


def test_perfectly_separated_scores():
    out = score_attack(np.arange(10) + 100.0, np.arange(10), n_boot=20)
    assert out.auc == 1.0 and out.tpr[0.01] == 1.0 and out.tpr[0.001] == 1.0
    same = score_attack(np.ones(5), np.ones(5), n_boot=5)  # scipy warns; t is then 0
    assert same.auc == 0.5 and same.p_value == 1.0


def test_member_sets_must_be_equal_and_disjoint():
    x = torch.randn(6, 1, 4, 4)
    with pytest.raises(ValueError, match="equal size.*6 members and 5 non-members"):
        check_member_sets(x, torch.randn(5, 1, 4, 4))
    with pytest.raises(ValueError, match="2 image\\(s\\) are both members and non-members"):
        check_member_sets(x, torch.cat([x[:2], torch.randn(4, 1, 4, 4)]))
    with pytest.raises(ValueError, match="equal member and non-member counts"):
        score_attack(np.ones(3), np.ones(4))
    with pytest.raises(FloatingPointError, match="non-finite"):
        score_attack(np.array([1.0, np.nan]), np.ones(2))


def test_membership_sets_leave_out_xp_and_are_equal():
    digits_64 = load_dataset(DataConfig(n_train=64, saf=True))
    members, nonmembers = membership_sets(digits_64)
    assert members.shape == nonmembers.shape == (63, *digits_64.image_shape)
    fingerprinted = digits_64.train[digits_64.saf.index]
    assert not (members == fingerprinted).flatten(1).all(1).any(), "x_p is not a member here"
    check_member_sets(members, nonmembers)
    small, _ = membership_sets(digits_64, max_per_set=10)
    assert small.shape[0] == 10


# -- the attacks on models with known leakage ------------------------------------------
class GaussianDenoiser(torch.nn.Module):
    """The exact eps-prediction for data ~ N(0, s^2 I): knows the distribution, no member."""

    def __init__(self, std: float, alphas_cumprod: torch.Tensor) -> None:
        super().__init__()
        self.std = torch.nn.Parameter(torch.tensor(std), requires_grad=False)  # for GSA
        self.register_buffer("abar", alphas_cumprod)

    def forward(self, x, t):
        a = self.abar[torch.as_tensor(t).long()].reshape(-1, 1, 1, 1)
        x0 = a.sqrt() * self.std**2 / (a * self.std**2 + 1 - a) * x
        return _Out((x - a.sqrt() * x0) / (1 - a).sqrt())


def _model(net, family) -> TrainedModel:
    return TrainedModel(family, net, "analytic", (1, 8, 8))


@pytest.fixture(scope="module")
def gaussian_sets():
    g = torch.Generator().manual_seed(20261122)  # not the attacks' own noise seeds
    return torch.randn(100, 1, 8, 8, generator=g) * 0.5, torch.randn(
        100, 1, 8, 8, generator=g
    ) * 0.5


def copies_of(images: torch.Tensor, noise: float = 0.05) -> torch.Tensor:
    """What a memorizer samples: its training images, slightly perturbed, twice each."""
    g = torch.Generator().manual_seed(5)
    twice = images.repeat(2, 1, 1, 1)
    return twice + noise * torch.randn(twice.shape, generator=g)


def memorizer_of(points: torch.Tensor) -> TrainedModel:
    family = DDIMFamily(ModelConfig())
    weights = torch.full((points.shape[0],), 1 / points.shape[0])
    return _model(MixtureDenoiser(points, weights, family.alphas_cumprod), family)


def shadow_of(name: str, build=memorizer_of) -> dict:
    """``shadow=`` for an attack that learns on a shadow model: the target's kind of
    model (``build``) on other images of the same distribution, those images as its
    members and as many fresh ones as its non-members."""
    if not registry.attacks.get(name).trains_on_shadow:
        return {}
    g = torch.Generator().manual_seed(20261206)
    points, fresh = (torch.randn(100, 1, 8, 8, generator=g) * 0.5 for _ in range(2))
    return {"shadow": Shadow(build(points), points, fresh)}


@pytest.mark.parametrize("name", ATTACKS)
def test_attack_finds_members_of_a_model_that_memorized_them(name, gaussian_sets):
    members, nonmembers = gaussian_sets
    memorizer = memorizer_of(members)
    samples = copies_of(members)  # read by the samples-only attack
    run = run_attack(
        get_attack(name), memorizer, members, nonmembers, n_boot=50, samples=samples,
        **shadow_of(name),
    )  # fmt: skip
    assert run.score.auc > 0.95, f"{name}: AUC {run.score.auc:.3f} on a perfect memorizer"
    assert run.score.t_stat > 0 and run.score.p_value < 1e-6
    rec = run.as_record()
    assert rec[f"mia_{name}_queries_per_image"] == get_attack(name).queries_per_image


@pytest.mark.parametrize("name", ATTACKS)
def test_attack_is_at_chance_on_a_model_that_knows_only_the_distribution(name, gaussian_sets):
    members, nonmembers = gaussian_sets
    family = DDIMFamily(ModelConfig())
    model = _model(GaussianDenoiser(0.5, family.alphas_cumprod), family)
    samples = torch.randn(200, 1, 8, 8, generator=torch.Generator().manual_seed(6)) * 0.5
    shadow = shadow_of(name, lambda _: model)  # a shadow that, too, knows no member
    run = run_attack(
        get_attack(name), model, members, nonmembers, n_boot=50, samples=samples, **shadow
    )
    assert 0.35 < run.score.auc < 0.65, f"{name}: AUC {run.score.auc:.3f} without memorization"
    lo, hi = run.score.auc_ci
    assert lo < 0.5 + 0.02 and hi > 0.5 - 0.02, "the interval should reach chance"


def test_attack_sees_the_mitigation_guidance(gaussian_sets):
    members, nonmembers = gaussian_sets
    family = DDIMFamily(ModelConfig())
    weights = torch.full((members.shape[0],), 1 / members.shape[0])
    memorizer = _model(MixtureDenoiser(members, weights, family.alphas_cumprod), family)
    calls = []

    def guidance(x, t, eps):  # replace eps-theta by pure noise: nothing left to attack
        calls.append(int(t))
        return torch.zeros_like(eps)

    run = run_attack(get_attack("loss"), memorizer, members, nonmembers, guidance=guidance)
    assert calls, "the attack must query the mitigated model"
    assert 0.35 < run.score.auc < 0.65


def test_attack_parameters_are_checked():
    with pytest.raises(ConfigError, match="no parameter.*'tt'"):
        get_attack("loss", tt=3)
    with pytest.raises(ConfigError, match="fractions in \\(0, 1\\)"):
        get_attack("loss", times=(0.1, 1.5))
    with pytest.raises(ConfigError, match="multiple of interval"):
        get_attack("secmi", t_sec=0.1, interval=0.03)
    with pytest.raises(ConfigError, match="PIA: t"):
        get_attack("pia", t=0)
    with pytest.raises(UnknownNameError, match="loss"):
        get_attack("nope")
    assert get_attack("secmi").queries_per_image == 12
    assert get_attack("loss", times=(0.2,), draws=4).queries_per_image == 4


def test_non_finite_model_output_is_named(gaussian_sets):
    members, nonmembers = gaussian_sets

    class NaNNet(torch.nn.Module):
        def forward(self, x, t):
            return _Out(torch.full_like(x, float("nan")))

    model = _model(NaNNet(), DDIMFamily(ModelConfig()))
    with pytest.raises(FloatingPointError, match="attack 'pia': non-finite score for 100"):
        run_attack(get_attack("pia"), model, members, nonmembers)
