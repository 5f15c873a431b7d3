"""Issue 15's measurements: threat models, the samples-only and GSA attacks, thresholds
that transfer, the blind baseline, circular cells, |q|'s power and the full q_M(t) curve.
Each on data whose answer is known (an analytic memorizer, the distribution's own
denoiser, a deliberately shifted split)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from benchmark.attacks.base import get_attack, membership_sets, run_attack
from benchmark.attacks.threat import (
    DENOISER_API,
    SAMPLES_ONLY,
    WEIGHTS,
    run_name,
    threat_models_for,
)
from benchmark.config import DataConfig, ModelConfig
from benchmark.data import load_dataset
from benchmark.errors import ConfigError
from benchmark.measures.membership_scores import (
    MIA_AUC,
    MIA_FPR_ACHIEVED,
    MIA_TPR_TRANSFER,
    threshold_for_fpr,
    transfer_threshold,
)
from benchmark.measures.reproduction import (
    Q_FALSE_POSITIVE_COUNTS,
    Q_FALSE_POSITIVE_RATE,
    Q_FALSE_POSITIVE_UPPER,
    Q_POWER,
    Q_POWER_N_GEN,
    ReproductionCount,
    clopper_pearson,
    critical_count,
    min_n_gen_to_reject,
    n_gen_for_power,
    q_power,
)
from benchmark.metrics.base import AuditInputs
from benchmark.metrics.blind import BLIND_AUC, BLIND_AUC_CI, BLIND_SHIFT, blind_baseline
from benchmark.metrics.independent_replication import (
    REPLICATION_INDEPENDENT,
    SPACE,
    IndependentReplication,
    RandomFeatures,
    independent_replication,
)
from benchmark.metrics.membership_inference import MIA_RUNS, membership_audit
from benchmark.mitigations.base import Mitigation, Prepared
from benchmark.models.base import SampleResult, TrainedModel
from benchmark.models.ddpm import DDIMFamily
from benchmark.session import Session
from benchmark.tiers import smoke_case
from tests.helpers import analytic_memorizer
from tests.test_membership import GaussianDenoiser, copies_of


# -- threat models ------------------------------------------------------------------------
def test_each_attack_runs_under_the_threat_models_its_needs_allow():
    assert threat_models_for(DENOISER_API) == (WEIGHTS, DENOISER_API)
    assert threat_models_for(WEIGHTS) == (WEIGHTS,)
    assert threat_models_for(SAMPLES_ONLY) == (SAMPLES_ONLY,)
    assert run_name("loss", DENOISER_API) == "loss_api"
    assert MIA_AUC(attack=run_name("gsa", WEIGHTS)) == "mia_gsa_weights_auc"
    with pytest.raises(ConfigError, match="unknown threat model 'gpu'"):
        threat_models_for("gpu")


def test_a_plugin_declaring_an_unknown_threat_model_is_refused():
    class Odd(Mitigation):
        name = "odd"
        addresses = ("telepathy",)

    with pytest.raises(ConfigError, match="mitigation 'odd'.*unknown threat model 'telepathy'"):
        Odd()


class ZeroGuidance(Mitigation):
    """A sampling-time mitigation that hides everything behind its denoiser API."""

    name = "zero"
    addresses = (DENOISER_API, SAMPLES_ONLY)

    def prepare(self, model, context=None):
        return Prepared(hook=lambda x, t, eps: torch.zeros_like(eps))


@pytest.fixture(scope="module")
def memorizer():
    data = load_dataset(DataConfig(n_train=64, saf=True))
    return analytic_memorizer(data), data


def test_a_guided_mitigation_hides_the_leak_from_its_api_not_from_its_weights(memorizer):
    model, data = memorizer
    attacks = ["loss", "nearest"]
    samples = copies_of(data.train)
    zeroed = ZeroGuidance().prepare(model).guidance()
    guided = membership_audit(model, data, zeroed, attacks, samples=samples)
    plain = membership_audit(model, data, None, attacks, samples=samples)
    assert guided[MIA_RUNS] == ["loss_weights", "loss_api", "nearest_samples"]
    assert guided[MIA_AUC(attack="loss_weights")] > 0.95, "the weights still leak"
    assert guided[MIA_AUC(attack="loss_api")] < 0.7, "the zeroed API leaks nothing"
    assert guided[MIA_AUC(attack="nearest_samples")] > 0.95, "copies among the samples"
    # the same raw network under `weights`, with or without the mitigation
    assert guided[MIA_AUC(attack="loss_weights")] == plain[MIA_AUC(attack="loss_weights")]
    # without guidance the deployed denoiser is eps_theta: the api figures are the weights'
    assert plain[MIA_AUC(attack="loss_api")] == plain[MIA_AUC(attack="loss_weights")]
    # no samples: the samples-only attack is not run
    without = membership_audit(model, data, None, attacks)
    assert without[MIA_RUNS] == ["loss_weights", "loss_api"]


def test_the_nearest_sample_attack_needs_the_samples(memorizer):
    model, data = memorizer
    members, nonmembers = membership_sets(data)
    with pytest.raises(ConfigError, match="reads the case's generated images and got 0"):
        run_attack(get_attack("nearest"), model, members, nonmembers)
    with pytest.raises(ConfigError, match="k must be a positive integer"):
        get_attack("nearest", k=0)


def test_the_nearest_sample_attack_is_at_chance_on_fresh_samples(memorizer):
    model, data = memorizer
    half = data.heldout.shape[0] // 2
    members, nonmembers = data.train[:half], data.heldout[:half]
    fresh = data.heldout[half:]  # images of the distribution, neither member nor candidate
    run = run_attack(get_attack("nearest"), model, members, nonmembers, samples=fresh)
    lo, hi = run.score.auc_ci
    assert lo < 0.5 < hi, f"nearest-sample AUC {run.score.auc:.3f} [{lo:.3f}, {hi:.3f}]"


def test_gsa_needs_parameters_and_checks_its_settings():
    class NoParams(torch.nn.Module):
        def forward(self, x, t):
            raise AssertionError("not reached")

    family = DDIMFamily(ModelConfig())
    model = TrainedModel(family, NoParams(), "bare", (1, 8, 8))
    x = torch.zeros(4, 1, 8, 8)
    with pytest.raises(ConfigError, match="GSA needs the network's parameters"):
        run_attack(get_attack("gsa"), model, x, x + 1)
    with pytest.raises(ConfigError, match="folds"):
        get_attack("gsa", folds=1)
    assert get_attack("gsa").needs == WEIGHTS


# -- thresholds that transfer -------------------------------------------------------------
def test_the_threshold_is_fixed_on_calibration_scores_only():
    cal = np.arange(100.0)  # 1% FPR: exactly one of 100 calibration scores above it
    thr = threshold_for_fpr(cal, 0.01)
    assert thr == 98.0 and (cal > thr).mean() == pytest.approx(0.01)
    assert threshold_for_fpr(cal[:50], 0.01) == 49.0  # below 1/n: no score above it
    t = transfer_threshold(cal, np.array([99.5, 50.0]), np.array([98.5, 10.0, 1.0, 2.0]), 0.01)
    assert (t.tpr, t.fpr) == (0.5, 0.25)
    ci = stats.binomtest(1, 4).proportion_ci(0.95, method="exact")
    assert t.fpr_ci == pytest.approx((ci.low, ci.high))
    ci = stats.binomtest(1, 2).proportion_ci(0.95, method="exact")  # the TPR has one too
    assert t.tpr_ci == pytest.approx((ci.low, ci.high)) and (t.found, t.n_members) == (1, 2)


def test_a_transferred_threshold_keeps_its_fpr_on_the_distributions_own_denoiser():
    """Members and non-members of one Gaussian, attacked through its exact denoiser: the 1%
    threshold fixed on calibration non-members gives about 1% on fresh ones."""
    g = torch.Generator().manual_seed(15)
    members, nonmembers = (torch.randn(2000, 1, 8, 8, generator=g) * 0.5 for _ in range(2))
    family = DDIMFamily(ModelConfig())
    model = TrainedModel(family, GaussianDenoiser(0.5, family.alphas_cumprod), "gauss", (1, 8, 8))
    run = run_attack(get_attack("loss"), model, members, nonmembers, n_boot=20, name="loss_w")
    rec = run.as_record()
    achieved = rec[MIA_FPR_ACHIEVED(attack="loss_w", fpr="1pct")]
    n_eval = 1000
    lo, hi = stats.binom.interval(0.95, n_eval, 0.01)
    assert lo / n_eval <= achieved <= hi / n_eval, f"achieved FPR {achieved:.4f} for 1%"
    assert rec[MIA_TPR_TRANSFER(attack="loss_w", fpr="1pct")] < 0.05  # nothing to find


# -- the blind baseline -------------------------------------------------------------------
def test_the_blind_baseline_flags_a_shifted_split_and_not_a_fair_one():
    data = load_dataset(DataConfig(n_train=1024))
    members, nonmembers = membership_sets(data, max_per_set=256)
    fair = blind_baseline(members, nonmembers, n_boot=200)
    assert not fair[BLIND_SHIFT] and fair[BLIND_AUC_CI][0] <= 0.5 <= fair[BLIND_AUC_CI][1]
    brightened = (nonmembers + 0.1).clamp(-1, 1)  # non-members scanned on a brighter device
    shifted = blind_baseline(members, brightened, n_boot=200)
    assert shifted[BLIND_SHIFT] and shifted[BLIND_AUC] > 0.9, shifted


# -- replication in an independent feature space ------------------------------------------
def test_independent_replication_sees_copies_and_not_fresh_images():
    data = load_dataset(DataConfig(n_train=64))
    half = data.heldout.shape[0] // 2
    copies = copies_of(data.train).clamp(-1, 1)
    assert independent_replication(copies, data.train, data.heldout)[REPLICATION_INDEPENDENT] > 0.9
    fresh = independent_replication(data.heldout[:half], data.train, data.heldout[half:])
    assert fresh[REPLICATION_INDEPENDENT] < 0.1


def test_independent_replication_extracts_a_splits_members_once_per_session(tmp_path):
    """Every case on a split shares the members' random features (a 78k-image MedMNIST set
    took 30 s a case to extract): the metric through a session gives the plain function's
    figures, and a second case builds no network and extracts nothing again."""
    session = Session(tmp_path, progress=False)
    case = smoke_case("ddim", 64)
    cfg = case.data
    data = session.dataset(cfg)
    copies = copies_of(data.train).clamp(-1, 1)
    built = []

    def network():
        built.append(1)
        return RandomFeatures(data.image_shape[0])

    def audit(images):
        inputs = AuditInputs(
            case=case,
            model=None,
            data=data,
            samples=SampleResult(images, torch.arange(len(images)), nfe=0, seconds=0.0),
            mitigation=None,
            context=session,
        )
        return IndependentReplication().compute(inputs)

    for images in (copies, data.heldout):
        assert audit(images) == independent_replication(images, data.train, data.heldout)
    stored = session.member_features(cfg, SPACE, network)
    assert not built, "the first case's audit stored the members' features for the next"
    assert torch.equal(stored, RandomFeatures(data.image_shape[0])(data.train))
    other = session.member_features(cfg, "another-space", network)
    assert other is not stored, "another space is extracted on its own"
    assert session.member_features(cfg, "another-space", network) is other
    assert len(built) == 1, "and once"


# -- |q|'s power ----------------------------------------------------------------------------
def test_q_power_is_the_binomial_tests_rejection_probability():
    n_gen, n_train, fp = 4096, 1024, 1e-4
    k = critical_count(n_gen, n_train)
    assert (
        stats.binom.cdf(k, n_gen, 1 / n_train) < 0.05 <= stats.binom.cdf(k + 1, n_gen, 1 / n_train)
    )
    assert q_power(n_gen, n_train, fp) == pytest.approx(stats.binom.cdf(k, n_gen, fp))
    assert q_power(1024, 1024) == 0.0  # N_gen = N_train cannot reject whatever happens
    assert q_power(min_n_gen_to_reject(1024), 1024) == 1.0  # perfect detectors
    need = n_gen_for_power(1024, fp)
    assert q_power(need, 1024, fp) >= 0.8 > q_power(need // 2, 1024, fp)
    assert n_gen_for_power(1024, 2 / 1024) is None  # the detectors fire more than copies would


def test_the_leaderboard_says_too_few_samples_to_conclude():
    from benchmark.metrics.fingerprint import _show_q

    rec = ReproductionCount(n_gen=1024, n_train=1024, q=0, saf_only=0, id_only=0).as_record()
    assert rec[Q_POWER] == 0.0 and rec[Q_POWER_N_GEN] == min_n_gen_to_reject(1024)
    assert "too few samples to conclude (power 0.00, N_gen 3067 reaches 0.8)" in _show_q(rec)
    enough = ReproductionCount(n_gen=1024, n_train=64, q=14, saf_only=0, id_only=0).as_record()
    assert "too few" not in _show_q(enough)


def test_q_power_comes_from_the_false_positive_rates_upper_bound():
    """0 joint hits on 128 held-out images is a rate of 0 but not a rate below 1/64: its
    Clopper-Pearson upper bound (2.8%) is above it, and there the test has no power.
    1024 generated images that are not x_p, also without a hit, bound it at 0.32%."""
    from benchmark.metrics.fingerprint import _show_q

    few = ReproductionCount(
        n_gen=1024, n_train=64, q=0, saf_only=0, id_only=0, false_positives={"heldout": (0, 128)}
    )
    rec = few.as_record()
    assert rec[Q_FALSE_POSITIVE_RATE] == 0.0
    assert rec[Q_FALSE_POSITIVE_UPPER] == pytest.approx(1 - 0.025 ** (1 / 128))  # 2.84%
    assert rec[Q_FALSE_POSITIVE_UPPER] > 1 / 64 and rec[Q_POWER] < 0.1
    assert rec[Q_POWER_N_GEN] is None and "too few samples to conclude" in _show_q(rec)
    assert "no N_gen reaches 0.8" in _show_q(rec)
    # the leaderboard reads records through a pandas table, where None becomes NaN
    assert "no N_gen reaches 0.8" in _show_q({**rec, Q_POWER_N_GEN: float("nan")})
    many = ReproductionCount(
        n_gen=1024,
        n_train=64,
        q=0,
        saf_only=0,
        id_only=0,
        false_positives={"heldout": (0, 128), "generated": (0, 1024)},
    )
    rec = many.as_record()
    assert rec[Q_FALSE_POSITIVE_UPPER] == pytest.approx(clopper_pearson(0, 1152)[1])
    assert rec[Q_FALSE_POSITIVE_UPPER] < 0.0033
    assert rec[Q_POWER] > 0.99 and rec[Q_FALSE_POSITIVE_COUNTS]["generated"] == [0, 1024]
    with pytest.raises(ValueError, match="generated"):
        ReproductionCount(1, 2, 0, 0, 0, false_positives={"generated": (3, 2)}).as_record()


# -- the whole q_M(t) curve -------------------------------------------------------------------
def test_the_tstar_curve_option_switches_to_the_exhaustive_grid(tmp_path):
    assert Session(tmp_path).counts.tstar_strategy == "adaptive"
    assert Session(tmp_path, tstar_curve=True).counts.tstar_strategy == "exhaustive"


def test_the_plan_counts_each_threat_models_queries():
    from benchmark import registry
    from benchmark.plan import attack_nfe

    per_image = {n: registry.attacks.get(n)().queries_per_image for n in registry.attacks.names()}
    query = [n for n in per_image if registry.attacks.get(n).needs == DENOISER_API]
    shadow = [n for n in per_image if registry.attacks.get(n).trains_on_shadow]
    extra = sum(per_image[n] for n in query) * 2 * 10  # the guided API run of each query attack
    assert attack_nfe(10, guided=True) == attack_nfe(10) + extra
    # an attack that learns on a shadow model runs only on a case that trains one
    assert attack_nfe(10) == sum(v for n, v in per_image.items() if n not in shadow) * 2 * 10
    assert attack_nfe(10, shadow=True) == sum(per_image.values()) * 2 * 10
