"""DP-SGD through Opacus: the bound it implies, the guarantee its training reports, the
cache key it trains under, resume, and the inputs it refuses."""

from __future__ import annotations

import math
import warnings
from dataclasses import replace

import numpy as np
import pytest
import torch

from benchmark.config import DataConfig, ModelConfig
from benchmark.data import load_dataset
from benchmark.errors import ConfigError
from benchmark.measures.dp_bound import auc_bound, dp_violations, tpr_bound
from benchmark.measures.membership_scores import score_attack
from benchmark.mitigations.dp_sgd import DPSGD
from benchmark.models.base import TrainedModel
from benchmark.models.ddpm import DDIMFamily
from benchmark.models.store import get_trained, model_key
from benchmark.models.training import TrainingInterrupted, train
from benchmark.tiers import Rehearsal, smoke_case, with_mitigation_training
from tests.helpers import TINY_MODEL, TINY_TRAIN

DP = {"epsilon": 2.0, "delta": 1e-3, "max_grad_norm": 0.5}


@pytest.fixture(scope="module")
def images():
    data = load_dataset(DataConfig(n_train=16))
    return torch.nn.functional.avg_pool2d(data.train, 2)  # 8x8, tiny and fast


def dp_train(params=DP, base=TINY_TRAIN):
    return DPSGD(**params).train_config(base)


# -- the bound --------------------------------------------------------------------------
@pytest.mark.parametrize("epsilon", [0.1, 1.0, 3.0, 8.0])
def test_the_auc_bound_of_pure_dp_is_the_logistic_of_epsilon(epsilon):
    # with delta = 0 the bound is e^eps / (1 + e^eps) (the area under min(e^eps x,
    # 1 - e^-eps (1 - x)))
    assert auc_bound(epsilon, 0.0) == pytest.approx(1 / (1 + math.exp(-epsilon)), abs=1e-9)


def test_the_tpr_bound_is_the_hypothesis_testing_region():
    fpr = np.linspace(0, 1, 201)
    bound = tpr_bound(fpr, 1.0, 1e-3)
    assert np.all(np.diff(bound) >= 0) and bound[-1] == 1.0
    assert bound[0] == pytest.approx(1e-3)  # delta: what may leak outright
    assert tpr_bound(0.01, 1.0, 0.0) == pytest.approx(math.e * 0.01)
    np.testing.assert_allclose(tpr_bound(fpr, 0.0, 0.0), fpr)  # no information
    assert auc_bound(0.0, 0.0) == pytest.approx(0.5)
    assert auc_bound(1.0, 1e-2) > auc_bound(1.0, 0.0)
    with pytest.raises(ConfigError, match="epsilon"):
        auc_bound(-1.0, 0.0)


def test_the_guarantee_check_can_fail_and_passes_a_chance_attack():
    """The check on an attack's ROC points: an attack that separates 64 members from 64
    non-members (AUC 1) breaks epsilon = 1 at every FPR; one at chance breaks nothing; an
    attack at AUC 0, which the AUC bound could never flag, breaks it with its score
    flipped; and at epsilon = 8 even a perfect attack on 64 images cannot be shown to
    break the guarantee."""
    rng = np.random.default_rng(0)
    perfect = score_attack(np.arange(64) + 100.0, np.arange(64.0), n_boot=10)
    broken = dp_violations(perfect.roc, 64, 64, 1.0, 1e-5)
    assert len(broken) == 4 and "finds 64/64 members" in broken[0], broken
    chance = score_attack(rng.normal(size=64), rng.normal(size=64), n_boot=10)
    assert dp_violations(chance.roc, 64, 64, 1.0, 1e-5) == []
    flipped = score_attack(np.arange(64.0), np.arange(64) + 100.0, n_boot=10)
    assert flipped.auc == 0.0 and auc_bound(1.0, 1e-5) > flipped.auc_ci[1]
    mirrored = dp_violations(flipped.roc, 64, 64, 1.0, 1e-5)
    assert len(mirrored) == 4 and all("its score flipped" in v for v in mirrored), mirrored
    assert dp_violations(perfect.roc, 64, 64, 8.0, 1e-5) == []
    # one loud member among 64 at FPR 0 is within e^1 * FPR + delta at 95% confidence
    one = score_attack(np.r_[100.0, rng.normal(size=63)], rng.normal(size=64), n_boot=10)
    assert dp_violations(one.roc, 64, 64, 1.0, 1e-5) == []


# -- training ---------------------------------------------------------------------------
def test_dp_training_reports_the_accountants_epsilon(tmp_path, images):
    from opacus.accountants import RDPAccountant
    from opacus.accountants.utils import get_noise_multiplier

    cfg = dp_train()
    _, stats = train(DDIMFamily(TINY_MODEL), images, cfg, tmp_path, progress=False)
    q = cfg.batch_size / images.shape[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sigma = get_noise_multiplier(
            target_epsilon=2.0, target_delta=1e-3, sample_rate=q, steps=cfg.steps
        )
    accountant = RDPAccountant()
    accountant.history = [(sigma, q, cfg.steps)]
    assert stats["dp_noise_multiplier"] == pytest.approx(sigma)
    assert stats["dp_epsilon"] == pytest.approx(accountant.get_epsilon(1e-3))
    assert stats["dp_epsilon"] <= 2.0 * 1.01  # the target, within get_noise_multiplier's tolerance
    assert stats["dp_steps"] == cfg.steps and stats["dp_sample_rate"] == q
    assert (stats["dp_delta"], stats["dp_max_grad_norm"]) == (1e-3, 0.5)


def test_a_stricter_guarantee_adds_more_noise_and_keys_another_model(tmp_path, images):
    family = DDIMFamily(TINY_MODEL)
    data = load_dataset(DataConfig(n_train=16))
    plain, loose, strict = TINY_TRAIN, dp_train(), dp_train({**DP, "epsilon": 0.5})
    keys = {model_key(family, cfg, data) for cfg in (plain, loose, strict)}
    assert len(keys) == 3, "the privacy parameters are part of the model's cache key"
    nets = {}
    for name, cfg in (("plain", plain), ("loose", loose), ("strict", strict)):
        net, stats = train(family, images, cfg, tmp_path / name, progress=False)
        nets[name] = torch.cat([p.flatten() for p in net.parameters()])
        if name != "plain":
            nets[name + "_sigma"] = stats["dp_noise_multiplier"]
    assert nets["strict_sigma"] > nets["loose_sigma"]
    assert not torch.equal(nets["plain"], nets["loose"])


def test_dp_training_resumes_with_the_same_weights_and_guarantee(tmp_path, images):
    family, cfg = DDIMFamily(TINY_MODEL), dp_train()
    ref, ref_stats = train(family, images, cfg, tmp_path / "a", progress=False)
    with pytest.raises(TrainingInterrupted):
        train(family, images, cfg, tmp_path / "b", progress=False, stop_after=5)
    resumed, stats = train(family, images, cfg, tmp_path / "b", progress=False)
    for k, v in ref.state_dict().items():
        assert torch.equal(v, resumed.state_dict()[k]), k
    assert stats["dp_epsilon"] == ref_stats["dp_epsilon"] and stats["dp_steps"] == cfg.steps


def test_poisson_batches_and_an_empty_one(tmp_path, images):
    """Each image joins a batch with rate q; at q = 1/16 of 16 images about a third of
    the batches are empty, and those steps are noise alone."""
    cfg = dp_train({**DP, "batch_size": 1, "steps": 12, "epsilon": 50.0})
    hook = DPSGD(**dict(cfg.mitigation.params)).training_hook(cfg, images.shape[0])
    gen = torch.Generator().manual_seed(0)
    sizes = [len(hook.batch(1000, 1, gen)) for _ in range(200)]  # q = 1/16 of 1000
    assert abs(np.mean(sizes) - 1000 / 16) < 3
    net, stats = train(DDIMFamily(TINY_MODEL), images, cfg, tmp_path, progress=False)
    assert stats["dp_steps"] == 12 and all(torch.isfinite(p).all() for p in net.parameters())


def test_per_sample_gradients_through_attention_and_padding(tmp_path):
    """The paper network's parts: attention at the lowest level, 28 px padded to 32."""
    images = torch.rand(8, 1, 28, 28) * 2 - 1
    model = ModelConfig(
        family="ddim", block_out_channels=(8, 16, 16, 16), attention=True, norm_num_groups=4
    )
    cfg = dp_train({**DP, "delta": 1e-2, "steps": 2, "batch_size": 4})
    net, stats = train(DDIMFamily(model), images, cfg, tmp_path, progress=False)
    assert stats["dp_steps"] == 2 and all(torch.isfinite(p).all() for p in net.parameters())


# -- what it refuses --------------------------------------------------------------------
def test_dp_sgd_refuses_what_would_break_its_guarantee(tmp_path, images):
    with pytest.raises(ConfigError, match="epsilon must be > 0"):
        DPSGD(epsilon=0)
    with pytest.raises(ConfigError, match="max_grad_norm"):
        DPSGD(max_grad_norm=-1)
    with pytest.raises(ConfigError, match="'steps' must be a whole number or None, got 2.5"):
        DPSGD(steps=2.5)
    with pytest.raises(ConfigError, match="not below 1/N_train"):  # 16 images, delta 0.1
        train(DDIMFamily(TINY_MODEL), images, dp_train({**DP, "delta": 0.1}), tmp_path)
    with pytest.raises(ConfigError, match="trains in fp32"):
        train(DDIMFamily(TINY_MODEL), images, replace(dp_train(), precision="bf16"), tmp_path)

    family = DDIMFamily(TINY_MODEL)
    bn = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.BatchNorm2d(4))
    hook = DPSGD(**DP).training_hook(dp_train(), 16)
    with pytest.raises(ConfigError, match="BatchNorm"):
        hook.attach(bn, torch.optim.SGD(bn.parameters(), lr=0.1), torch.device("cpu"))

    plain = TrainedModel(family, torch.nn.Identity(), "plain", (1, 8, 8), {"train_steps": 6})
    with pytest.raises(ConfigError, match="not trained with DP-SGD"):
        DPSGD().prepare(plain)


def test_a_case_trains_its_dp_model_and_records_the_guarantee(tmp_path):
    """smoke_case and a rehearsal name the mitigation in the TrainConfig; the store
    trains through the hook, and the mitigation reports epsilon and the AUC bound."""
    case = smoke_case("ddim", 64, "dpsgd", {"epsilon": 1.0, "steps": 40, "batch_size": 8})
    assert case.train.mitigation.name == "dpsgd" and case.train.steps == 40
    assert with_mitigation_training(case) == case
    rehearsed = Rehearsal().case(case)
    assert rehearsed.train.mitigation.kwargs["steps"] is None  # the rehearsal's own steps
    assert rehearsed.train.steps == Rehearsal().train_steps

    from benchmark.cache import Cache

    data = load_dataset(rehearsed.data)
    model = get_trained(rehearsed.model, rehearsed.train, data, Cache(tmp_path), progress=False)
    mitigation = DPSGD(**rehearsed.mitigation.kwargs)
    metrics = mitigation.prepare(model).stats
    assert 0 < metrics["epsilon"] <= 1.01 and metrics["steps"] == rehearsed.train.steps
    assert metrics["auc_bound"] == pytest.approx(auc_bound(metrics["epsilon"], 1e-5))
    # the cached entry carries the guarantee: a second load reports the same
    again = get_trained(rehearsed.model, rehearsed.train, data, Cache(tmp_path), progress=False)
    assert again.stats["reused"] and again.stats["dp_epsilon"] == metrics["epsilon"]
