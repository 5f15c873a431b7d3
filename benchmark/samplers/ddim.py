"""Deterministic DDIM sampling (Song, Meng & Ermon, 2021), the loop written out.

Matches diffusers' ``DDIMPipeline`` (``DDIMScheduler`` with "leading" timestep
spacing, ``set_alpha_to_one=True``, x0 clipping) on the same weights and noise.
Randomness is passed in (``randn_like``, only used when eta > 0); a trajectory
can start at any timestep (``timesteps`` need not start at T - 1, for t*); a
mitigation's guidance is inside ``eps_fn``. Registered as the sampler ``ddim``,
whose process is the training schedule's alpha-bar.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from benchmark.errors import ConfigError
from benchmark.samplers.base import EpsFn, RandnLike, Sampler


def ddim_timesteps(
    num_steps: int, num_train_timesteps: int = 1000, start: int | None = None
) -> torch.Tensor:
    """Descending timesteps with "leading" spacing: (T // n) * [n-1, ..., 1, 0].

    Args:
        num_steps: number of DDIM steps over the whole diffusion.
        num_train_timesteps: T of the training schedule.
        start: if given, the trajectory starts at this timestep and continues on the
            grid points below it (for t*: docs/science.md, the fingerprint).
    """
    if not 1 <= num_steps <= num_train_timesteps:
        raise ValueError(f"num_steps must be in [1, {num_train_timesteps}], got {num_steps}")
    ratio = num_train_timesteps // num_steps
    grid = torch.arange(num_steps - 1, -1, -1, dtype=torch.long) * ratio
    if start is None:
        return grid
    if not 0 <= start < num_train_timesteps:
        raise ValueError(f"start timestep must be in [0, {num_train_timesteps - 1}], got {start}")
    return torch.cat([torch.tensor([start]), grid[grid < start]])


def ddim_sample(
    eps_fn: EpsFn,
    latents: torch.Tensor,
    alphas_cumprod: torch.Tensor,
    timesteps: torch.Tensor,
    *,
    eta: float = 0.0,
    clip_sample: bool = True,
    clip_range: float = 1.0,
    randn_like: Callable[[torch.Tensor], torch.Tensor] = torch.randn_like,
) -> tuple[torch.Tensor, int]:
    """Run DDIM from ``latents`` at ``timesteps[0]`` down to x_0.

    Args:
        eps_fn: noise prediction eps_theta(x_t, t), t a 0-d long tensor (guidance, if
            any, inside).
        latents: (B, C, H, W) x at the first timestep.
        alphas_cumprod: (T,) cumulative products alpha-bar of the training schedule.
        timesteps: descending timesteps to visit.
        eta: 0 for deterministic DDIM; 1 for DDPM-like variance.
        clip_sample: clip the predicted x_0 to [-clip_range, clip_range].
        randn_like: noise source for eta > 0.

    Returns:
        x_0 (B, C, H, W) and the number of network evaluations per image.
    """
    x = latents
    alphas_cumprod = alphas_cumprod.to(latents.device)
    nfe = 0
    timesteps = timesteps.cpu()  # alpha-bar is looked up by host indices: no sync a step
    for i, t in enumerate(timesteps):
        t_dev = t.to(latents.device)
        prev_t = timesteps[i + 1] if i + 1 < len(timesteps) else None
        eps = eps_fn(x, t_dev)  # DDIM paper eq. (12): eps_theta(x_t, t)
        nfe += 1
        x = ddim_step(
            x,
            eps,
            alphas_cumprod,
            t,
            prev_t,
            eta=eta,
            clip_sample=clip_sample,
            clip_range=clip_range,
            randn_like=randn_like,
        )
    return x, nfe


def ddim_step(
    x: torch.Tensor,
    eps: torch.Tensor,
    alphas_cumprod: torch.Tensor,
    t: torch.Tensor,
    prev_t: torch.Tensor | None,
    *,
    eta: float = 0.0,
    clip_sample: bool = True,
    clip_range: float = 1.0,
    randn_like: Callable[[torch.Tensor], torch.Tensor] = torch.randn_like,
) -> torch.Tensor:
    """One DDIM update x_t -> x_{prev_t} given eps (DDIM paper eq. 12).

    ``prev_t`` ``None`` is the final step to x_0 (alpha-bar = 1, diffusers'
    ``set_alpha_to_one``).
    """
    a_t = alphas_cumprod[t]
    a_prev = alphas_cumprod[prev_t] if prev_t is not None else torch.ones_like(a_t)
    beta_t = 1 - a_t
    x0 = (x - beta_t ** (0.5) * eps) / a_t ** (0.5)  # "predicted x_0"
    if clip_sample:
        x0 = x0.clamp(-clip_range, clip_range)
    variance = (1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev)
    std = eta * variance ** (0.5)
    direction = (1 - a_prev - std**2) ** (0.5) * eps  # "direction pointing to x_t"
    x = a_prev ** (0.5) * x0 + direction
    if eta > 0:
        x = x + std * randn_like(x)
    return x


@dataclass(frozen=True)
class DDIMParams:
    """eta: 0 for deterministic DDIM, 1 for DDPM-like variance; clip_sample: clip the
    predicted x_0 to [-1, 1] (a latent model's latents are not clipped)."""

    eta: float = 0.0
    clip_sample: bool = True

    def __post_init__(self) -> None:
        if not 0.0 <= self.eta <= 1.0:
            raise ConfigError(f"DDIM: eta must be in [0, 1], got {self.eta}")


class DDIM(Sampler):
    """``ddim``: DDIM's update on a discrete schedule; ``process`` is its alpha-bar (T,),
    times are integer timesteps ("leading" spacing)."""

    name = "ddim"
    Params = DDIMParams

    def grid(self, process: torch.Tensor, start: int | None = None) -> torch.Tensor:
        return ddim_timesteps(self.num_steps, len(process), start)

    def sample(self, eps_fn, process, x, start, randn_like: RandnLike):
        return ddim_sample(
            eps_fn,
            x,
            process,
            self.grid(process, start),
            eta=self.params.eta,
            clip_sample=self.params.clip_sample,
            randn_like=randn_like,
        )

    def step(self, eps_fn, process, x, t, next_t, randn_like: RandnLike):
        t_dev = torch.tensor(int(t), device=x.device)
        return ddim_step(
            x,
            eps_fn(x, t_dev),
            process.to(x.device),
            torch.tensor(int(t)),  # host indices into alpha-bar: no sync
            None if next_t is None else torch.tensor(int(next_t)),
            eta=self.params.eta,
            clip_sample=self.params.clip_sample,
            randn_like=randn_like,
        )
