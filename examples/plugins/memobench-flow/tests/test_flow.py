"""The flow family's own science: the path, the eps/velocity algebra, the Euler solver."""

import pytest
import torch
from memobench_flow import LinearPath, RectifiedFlow
from torch import nn

from benchmark import registry
from benchmark.config import SamplerConfig
from benchmark.errors import ConfigError


class _Out:
    def __init__(self, sample):
        self.sample = sample


class ExactVelocity(nn.Module):
    """The true velocity field of the path when the data is one point x_star: every
    x_t = (1 - t) x_star + t eps has v = eps - x_star = (x_t - x_star) / t."""

    def __init__(self, x_star: torch.Tensor) -> None:
        super().__init__()
        self.x_star = x_star

    def forward(self, x, steps):
        t = (steps.float() / 999).view(-1, 1, 1, 1).clamp_min(1e-6)
        return _Out((x - self.x_star) / t)


def family():
    return RectifiedFlow(RectifiedFlow.smoke_configs()[0])


def test_registered_through_its_entry_point():
    assert registry.models.get("flow") is RectifiedFlow


def test_path_noises_and_inverts():
    path, x0, eps = LinearPath(), torch.randn(3, 1, 4, 4), torch.randn(3, 1, 4, 4)
    x_t = path.noise_to(x0, 0.3, eps)
    torch.testing.assert_close(x_t, 0.7 * x0 + 0.3 * eps)
    torch.testing.assert_close(path.predict_x0(x_t, 0.3, eps), x0)
    assert path.noise_std(0.3) == pytest.approx(0.3)
    assert path.fraction_of(path.time_at(0.42)) == pytest.approx(0.42)


def test_predict_eps_recovers_the_noise_from_the_exact_velocity():
    x_star = torch.randn(1, 1, 8, 8)
    net, fam = ExactVelocity(x_star), family()
    eps = torch.randn(4, 1, 8, 8)
    x_t = fam.noise.noise_to(x_star.expand(4, -1, -1, -1), 0.6, eps)
    estimate = fam.noise_estimate(net)
    torch.testing.assert_close(fam.predict_eps(estimate, x_t, 0.6), eps, atol=1e-4, rtol=1e-4)


def test_euler_on_the_exact_field_lands_on_the_data_point():
    x_star = torch.rand(1, 1, 8, 8) * 1.6 - 0.8
    images, nfe = family().sample(
        ExactVelocity(x_star), torch.randn(5, 1, 8, 8), SamplerConfig(name="euler", num_steps=10)
    )
    assert nfe == 10
    torch.testing.assert_close(images, x_star.expand(5, -1, -1, -1), atol=1e-4, rtol=1e-4)


def test_guidance_moves_the_x0_estimate_where_the_hook_puts_it():
    """A hook that shifts eps by d shifts x0_hat by -t d / (1 - t): what a DDIM step does."""
    x_star = torch.zeros(1, 1, 8, 8)
    net, fam, t = ExactVelocity(x_star), family(), 0.5
    x = torch.randn(2, 1, 8, 8)
    d = 0.1 * torch.ones_like(x)
    plain = fam.solver_step(fam.noise_estimate(net), x, t, None, SamplerConfig(name="euler"))
    shifted = fam.noise_estimate(net, guidance=lambda x_, t_, e: e + d)
    guided = fam.solver_step(shifted, x, t, None, SamplerConfig(name="euler"))
    torch.testing.assert_close(guided - plain, -t * d / (1 - t))


def test_unknown_sampler_is_refused_with_the_choices():
    with pytest.raises(ConfigError, match="euler"):
        family().solver_grid(SamplerConfig(name="ddim"))
