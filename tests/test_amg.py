"""Anti-memorization guidance: its rule on a known x0_hat, and its effect on a model
that can only reproduce its training images (the analytic memorizer)."""

from __future__ import annotations

import pytest
import torch

from benchmark.config import DataConfig, SamplerConfig
from benchmark.data import load_dataset
from benchmark.errors import ConfigError
from benchmark.measures.carlini_l2 import nearest_two
from benchmark.mitigations.amg import AntiMemorizationGuidance
from benchmark.mitigations.base import MitigationContext
from benchmark.mitigations.guided import GuidanceLog
from tests.helpers import analytic_memorizer


@pytest.fixture(scope="module")
def memorizer():
    data = load_dataset(DataConfig(n_train=16))
    return analytic_memorizer(data), data


def test_amg_parameters_are_checked(memorizer):
    model, _ = memorizer
    with pytest.raises(ConfigError, match="ratio"):
        AntiMemorizationGuidance(ratio=0)
    with pytest.raises(ConfigError, match="scale must be >= 0"):
        AntiMemorizationGuidance(scale=-1)
    with pytest.raises(ConfigError, match="'chunk' must be a whole number"):
        AntiMemorizationGuidance(chunk=10.5)
    with pytest.raises(ConfigError, match="MitigationContext"):
        AntiMemorizationGuidance().prepare(model)


def test_the_guidance_moves_x0_hat_away_from_its_nearest_training_image(memorizer):
    model, data = memorizer
    prepared = AntiMemorizationGuidance(scale=0.5).prepare(model, MitigationContext(data=data))
    log = GuidanceLog()
    guide, noise, t = prepared.guidance(log), model.family.noise, torch.tensor(300)
    target = data.train[3:4]
    near = target + 0.01 * torch.randn(target.shape, generator=torch.Generator().manual_seed(0))
    far = torch.zeros_like(target)  # the mean image: no training image is close to it
    eps = torch.randn(target.shape, generator=torch.Generator().manual_seed(1))
    _, d2, _ = nearest_two(near, data.train)
    a, s = (float(c) for c in noise.coefficients(t))
    for x0, flagged in ((near, True), (far, False)):
        x_t = noise.noise_to(x0, t, eps)
        moved = noise.predict_x0(x_t, t, guide(x_t, t, eps))
        if not flagged:
            torch.testing.assert_close(moved, x0, atol=1e-4, rtol=1e-4)
            continue
        away = x_t / a - target
        expected = x0 + 0.5 * 0.5 * float(d2) * away / away.norm()  # scale * ratio * d2 * u
        torch.testing.assert_close(moved, expected, atol=1e-4, rtol=1e-4)
    assert log.fired == 1 and log.evaluations == 2


def test_amg_cuts_the_copies_of_a_memorizer(memorizer):
    model, data = memorizer
    sampler = SamplerConfig(num_steps=20)
    seeds = torch.arange(64)
    plain = model.generate(seeds, sampler).images
    amg = AntiMemorizationGuidance(scale=1.0)
    guided = amg.generate(model, amg.prepare(model, MitigationContext(data=data)), seeds, sampler)

    def copies(images):
        d1, d2, _ = nearest_two(images, data.train)
        return float((d1 < d2 / 3).float().mean())

    assert copies(plain) > 0.9, "the memorizer samples its training images"
    assert copies(guided.images) < copies(plain) - 0.5, (copies(guided.images), copies(plain))
    rec = guided.mitigation
    assert 0 < rec["guided_step_fraction"] <= 1 and rec["guided_sample_fraction"] > 0.5
    assert rec["guidance_seconds"] >= 0


def test_amg_leaves_eps_alone_where_no_noise_is_left():
    """A score-SDE grid ends at t = 0 (s_t = 0): there eps steers nothing, and AMG must not
    divide by s_t (it did, on the sub-VP smoke model)."""
    from benchmark import registry
    from benchmark.models.base import TrainedModel

    family_cls = registry.models.get("subvp")
    family = family_cls(family_cls.smoke_configs()[0])
    data = load_dataset(DataConfig(n_train=16))
    model = TrainedModel(family, torch.nn.Identity(), "t0", data.image_shape)
    prepared = AntiMemorizationGuidance().prepare(model, MitigationContext(data=data))
    t = torch.tensor(family.noise.time_at(0.0))
    assert float(family.noise.coefficients(t)[1]) == 0
    x = data.train[:2].clone()  # a copy: AMG would fire if there were noise to steer
    eps = torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(prepared.guidance()(x, t, eps), eps)
