"""Rectified flow / flow matching (Liu et al. 2022; Lipman et al. 2023) as a memobench family.

The straight path from an image x_0 to noise eps,

    x_t = (1 - t) x_0 + t eps,    t in [0, 1],

has velocity v = eps - x_0. The network v_theta(x_t, 999 t) learns it by
regression (conditional flow matching, t ~ U[0, 1]); samples come from the ODE
dx/dt = v_theta integrated from t = 1 (noise) to 0 with Euler steps.

memobench sees the family only through its contract
(``benchmark.models.base.ModelFamily``): the path is the ``noise`` process, and
the velocity converts to the noise estimate the attacks and mitigations work
with, eps = x_t + (1 - t) v (both follow from x_t = x_0 + t v). A guidance hook
that moves eps by d moves v by d / (1 - t), which leaves x_0's estimate where
the hook puts it. The Euler step needs v, which eps cannot give back at t = 1
(there x_t is the noise itself and eps = x_t whatever v is), so the family's
``noise_estimate`` is a ``FlowEstimate``: eps with the guidance around it, and
the velocity that guided eps implies.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from benchmark.config import ModelConfig, SamplerConfig, TrainConfig
from benchmark.models.base import ModelFamily
from benchmark.models.noise import NoiseProcess
from benchmark.models.unet import UNetNetwork, unet_forward
from benchmark.samplers.base import Guidance, guided

# 1 - t below this is treated as this when guidance converts eps to v: at t = 1 the
# image holds no signal, so eps fixes nothing about x_0.
MIN_SIGNAL = 1e-2


def _t(time: Any) -> torch.Tensor:
    return torch.as_tensor(time, dtype=torch.float64)


class LinearPath(NoiseProcess):
    """x_t = (1 - t) x_0 + t eps; t is its own diffusion fraction."""

    def time_at(self, fraction: float) -> float:
        return round(float(fraction), 9)

    def fraction_of(self, time: Any) -> float:
        return float(time)

    def coefficients(self, time: Any) -> tuple[torch.Tensor, torch.Tensor]:
        t = _t(time)
        return 1 - t, t


class RectifiedFlow(UNetNetwork, ModelFamily):
    """Flow matching on memobench's UNet, sampled with the Euler ODE solver."""

    name = "flow"
    version = "1"
    samplers = ("euler",)

    @classmethod
    def smoke_configs(cls) -> tuple[ModelConfig, TrainConfig, SamplerConfig]:
        return (
            # the built-in families' 0.27M-parameter smoke UNet and training, so they compare
            ModelConfig(family=cls.name, block_out_channels=(16, 32, 32), layers_per_block=1),
            TrainConfig(steps=2500, batch_size=64, lr=2e-3, lr_schedule="cosine", ema_decay=0.99),
            SamplerConfig(name="euler", num_steps=50),
        )

    @classmethod
    def paper_sampler(cls) -> SamplerConfig:
        return SamplerConfig(name="euler", num_steps=100)

    @property
    def noise(self) -> LinearPath:
        return LinearPath()

    def velocity(self, net: nn.Module, x: torch.Tensor, time: Any) -> torch.Tensor:
        """v_theta(x, t); ``time`` a number, a 0-d or a (B,) tensor."""
        t = _t(time).to(x.device)
        steps = (999 * t).to(torch.float32).expand(x.shape[0])
        return unet_forward(net, x, steps)

    def loss(self, net: nn.Module, x0: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        t = torch.rand((x0.shape[0],), generator=generator, device=x0.device)
        eps = torch.randn(x0.shape, generator=generator, device=x0.device)
        tb = t.view(-1, 1, 1, 1)
        x_t = (1 - tb) * x0 + tb * eps
        return F.mse_loss(self.velocity(net, x_t, t), eps - x0)

    def eps(self, net: nn.Module, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return x + (1 - float(t)) * self.velocity(net, x, t)

    def time_tensor(self, time: Any, device: torch.device | str) -> torch.Tensor:
        return _t(time)

    def noise_estimate(self, net: nn.Module, guidance: Guidance | None = None) -> FlowEstimate:
        return FlowEstimate(self, net, guidance)

    def solver_grid(self, sampler: SamplerConfig) -> list[float]:
        self.check_sampler(sampler)
        n = sampler.num_steps
        return [round(1 - i / n, 9) for i in range(n)]  # 1, ..., 1/n; the last step to 0

    def solver_step(
        self,
        estimate: FlowEstimate,
        x: torch.Tensor,
        time: float,
        next_time: float | None,
        sampler: SamplerConfig,
    ) -> torch.Tensor:
        t = _t(time)
        v = estimate.velocity(x, t)
        dt = (0.0 if next_time is None else float(next_time)) - float(t)
        out = x + dt * v
        return out.clamp(-1, 1) if next_time is None else out


class FlowEstimate:
    """The flow's noise estimate eps(x, t) with a guidance hook wrapped around it, and the
    velocity it implies (what the Euler step takes)."""

    def __init__(self, family: RectifiedFlow, net: nn.Module, guidance: Guidance | None) -> None:
        self.family, self.net, self.guidance = family, net, guidance
        self._eps = guided(lambda x, t: family.eps(net, x, t), guidance)

    def __call__(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self._eps(x, t)

    def velocity(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        v = self.family.velocity(self.net, x, t)
        if self.guidance is None:
            return v
        eps = x + (1 - float(t)) * v
        return v + (self.guidance(x, t, eps) - eps) / max(1 - float(t), MIN_SIGNAL)
