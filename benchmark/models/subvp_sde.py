"""The sub-VP score SDE (Song et al. 2021), the first source paper's model (docs/science.md).

Continuous time t in [eps, 1], beta(t) = beta_min + t (beta_max - beta_min),
B(t) = beta_min t + t^2 (beta_max - beta_min) / 2:

    dx = -1/2 beta(t) x dt + sqrt(beta(t) (1 - e^{-2 B(t)})) dw
    x_t = e^{-B(t)/2} x_0 + (1 - e^{-B(t)}) z.

The network is the same diffusers ``UNet2DModel`` as the DDIM family, fed
timestep 999 t, and predicts the noise z: score(x, t) = -net(x, 999 t) / std(t),
as score_sde's continuous VP/sub-VP models. Denoising score matching with
lambda(t) = std(t)^2 then is ||net(x_t, 999 t) - z||^2 with t ~ U[1e-5, 1]. The
training loop (EMA, checkpoints, resume) is the shared one; this file supplies
the noise process, the loss and the samplers of ``benchmark.samplers``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from benchmark.config import ModelConfig, SamplerConfig, TrainConfig
from benchmark.errors import CheckpointError
from benchmark.models.base import ModelFamily
from benchmark.models.keyed_noise import KeyedRandnLike, content_keys
from benchmark.models.noise import NoiseProcess
from benchmark.models.unet import MARKER, UNetNetwork, load_unet, read_marker, unet_forward
from benchmark.samplers import euler_maruyama
from benchmark.samplers.base import EpsFn, Guidance, check_finite, check_start, get_sampler


def _t(t) -> torch.Tensor:
    return t if isinstance(t, torch.Tensor) else torch.tensor(float(t), dtype=torch.float64)


@dataclass(frozen=True)
class SubVPSDE(NoiseProcess):
    """The forward process; every method takes t as a tensor (0-d or broadcastable).

    As the family's ``noise``: continuous time t in [0, 1] is its own diffusion
    fraction (t* rounds it to 1e-9 so grid levels compare exactly).
    """

    beta_min: float = 0.1
    beta_max: float = 20.0
    eps: float = 1e-5  # smallest training time

    def beta(self, t: torch.Tensor) -> torch.Tensor:
        return self.beta_min + t * (self.beta_max - self.beta_min)

    def integral(self, t: torch.Tensor) -> torch.Tensor:
        """B(t) = int_0^t beta(s) ds."""
        return self.beta_min * t + 0.5 * t**2 * (self.beta_max - self.beta_min)

    def mean_coef(self, t: torch.Tensor) -> torch.Tensor:
        return torch.exp(-0.5 * self.integral(t))

    def std(self, t: torch.Tensor) -> torch.Tensor:
        return -torch.expm1(-self.integral(t))  # 1 - e^{-B}, exact near t = 0

    def drift(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return -0.5 * self.beta(t) * x

    def diffusion(self, t: torch.Tensor) -> torch.Tensor:
        return torch.sqrt(self.beta(t) * -torch.expm1(-2 * self.integral(t)))

    def time_at(self, fraction: float) -> float:
        return round(float(fraction), 9)

    def fraction_of(self, time) -> float:
        return float(time)

    def coefficients(self, time) -> tuple[torch.Tensor, torch.Tensor]:
        t = _t(time).double()
        return self.mean_coef(t), self.std(t)

    def marginal(self, x0: torch.Tensor, t: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        t = _t(t)
        if t.ndim == 1:
            t = t.view(-1, *([1] * (x0.ndim - 1)))
        return self.mean_coef(t).to(x0.dtype) * x0 + self.std(t).to(x0.dtype) * z


class SubVPFamily(UNetNetwork, ModelFamily):
    name = "subvp"
    version = "1"
    samplers = ("ode_heun", "em", "pc", "ode_rk45")

    sde = SubVPSDE()

    @property
    def noise(self) -> SubVPSDE:
        return self.sde

    @classmethod
    def smoke_configs(cls) -> tuple[ModelConfig, TrainConfig, SamplerConfig]:
        return (
            # the DDIM family's 0.27M-parameter UNet, so the two families compare
            ModelConfig(family=cls.name, block_out_channels=(16, 32, 32), layers_per_block=1),
            TrainConfig(steps=2500, batch_size=64, lr=2e-3, lr_schedule="cosine", ema_decay=0.99),
            # reverse-SDE Euler-Maruyama, 50 NFE like the DDIM family's 50 steps. The
            # probability-flow ODE (Heun or RK45) ends about one sample in six of these
            # smoke models in noise (C_SAF then fires on them); EM samples are as smooth
            # as the training digits. score_sde's sub-VP default is EM too.
            SamplerConfig(name="em", num_steps=euler_maruyama.DEFAULT_STEPS),
        )

    @classmethod
    def paper_sampler(cls) -> SamplerConfig:
        # score_sde's sub-VP configs: Euler-Maruyama predictor, no corrector, N = 1000
        return SamplerConfig(name="em", num_steps=1000)

    # -- the network as a noise predictor -------------------------------------------
    def eps(self, net: nn.Module, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """net(x, 999 t) = -std(t) score(x, t); ``t`` 0-d or (B,)."""
        t = _t(t).to(x.device)
        steps = (999 * t).to(torch.float32).expand(x.shape[0])
        return unet_forward(net, x, steps)

    def loss(self, net: nn.Module, x0: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        # denoising score matching with lambda(t) = std(t)^2 (score_sde, reduce_mean)
        u = torch.rand((x0.shape[0],), generator=generator, device=x0.device)
        t = self.sde.eps + u * (1 - self.sde.eps)
        z = torch.randn(x0.shape, generator=generator, device=x0.device)
        x_t = self.sde.marginal(x0, t, z)
        return F.mse_loss(self.eps(net, x_t, t), z)

    # -- sampling: the registered score-SDE samplers (``benchmark.samplers``) ----------
    def sample(
        self,
        net: nn.Module,
        latents: torch.Tensor,
        sampler: SamplerConfig,
        guidance: Guidance | None = None,
        start: float = 1.0,
        generators: list[torch.Generator] | None = None,
    ) -> tuple[torch.Tensor, int]:
        """Solve from ``latents`` at time ``start`` (1: pure noise) to x_0 with ``sampler``."""
        self.check_sampler(sampler)
        check_start(start)
        # each image's noise keyed by its own latent, drawn on its device (no host loop)
        randn_like = (
            _randn_from(generators) if generators else KeyedRandnLike(content_keys(latents))
        )
        x, nfe = get_sampler(sampler).sample(
            self.noise_estimate(net, guidance), self.sde, latents, start, randn_like
        )
        return x.clamp(-1, 1), nfe

    # -- t* ----------------------------------------------------------------------------
    def solver_grid(self, sampler: SamplerConfig) -> list[float]:
        self.check_sampler(sampler)
        grid = get_sampler(sampler).grid(self.sde)
        return [round(float(t), 9) for t in grid]

    def solver_step(
        self,
        estimate: EpsFn,
        x: torch.Tensor,
        time: float,
        next_time: float | None,
        sampler: SamplerConfig,
    ) -> torch.Tensor:
        self.check_sampler(sampler)
        if float(time) <= 0:
            return x  # t = 0 is the clean image itself
        out = get_sampler(sampler).step(
            estimate, self.sde, x, _t(time),
            None if next_time is None else _t(next_time),
            KeyedRandnLike(content_keys(x)),
        )  # fmt: skip
        if next_time is None:
            out = out.clamp(-1, 1)
        check_finite(out, f"{self.name} {sampler.name}", 0, float(time))
        return out

    # -- folders -----------------------------------------------------------------------
    def save_pretrained(self, net: nn.Module, folder: Path) -> None:
        """The UNet as a diffusers folder (``unet/``) and the SDE in our marker file."""
        folder = Path(folder)
        net.save_pretrained(folder / "unet")
        (folder / MARKER).write_text(
            json.dumps(
                {
                    "family": self.name,
                    "sde": {"beta_min": self.sde.beta_min, "beta_max": self.sde.beta_max},
                    "timestep_input": "999 * t",
                    "output": "noise z = -std(t) * score",
                },
                indent=2,
            )
        )

    @classmethod
    def load_pretrained(cls, folder: Path) -> tuple[SubVPFamily, nn.Module]:
        """Load a folder written by ``save_pretrained``.

        Raises:
            CheckpointError: missing folder, no memobench marker (a plain diffusers
                checkpoint is an eps-prediction DDPM: load it with ``ddim``), another
                family's folder, another SDE, or unreadable weights.
        """
        folder = Path(folder).expanduser()
        meta = read_marker(folder, cls.name)
        if meta is None:
            raise CheckpointError(
                f"{folder} has no {MARKER}, so it is not a memobench {cls.name!r} checkpoint; a "
                f"plain diffusers UNet/DDPMPipeline folder is a discrete-time eps model: load "
                f"it with model family 'ddim'"
            )
        sde = meta.get("sde", {})
        if not (
            math.isclose(sde.get("beta_min", -1), cls.sde.beta_min)
            and math.isclose(sde.get("beta_max", -1), cls.sde.beta_max)
        ):
            raise CheckpointError(
                f"{folder / MARKER}: SDE {sde} differs from this family's "
                f"beta_min={cls.sde.beta_min}, beta_max={cls.sde.beta_max}; its scores would be "
                f"read on the wrong noise scale"
            )
        net = load_unet(folder / "unet")
        cfg = net.config
        config = ModelConfig(
            family=cls.name,
            block_out_channels=tuple(cfg.block_out_channels),
            layers_per_block=cfg.layers_per_block,
            attention=any("Attn" in b for b in cfg.down_block_types),
            norm_num_groups=cfg.norm_num_groups,
        )
        return cls(config), net.eval()


def _randn_from(gens: list[torch.Generator]):
    """``randn_like`` drawing row i from ``gens[i]`` (given generators, on their device)."""

    def randn_like(x: torch.Tensor) -> torch.Tensor:
        rows = [torch.randn(x.shape[1:], generator=g, dtype=x.dtype, device=g.device) for g in gens]
        return torch.stack(rows).to(x.device)

    return randn_like
