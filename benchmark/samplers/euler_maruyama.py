"""Reverse-SDE Euler–Maruyama, with an optional Langevin corrector (predictor–corrector).

Song et al. 2021 ("Score-based generative modeling through SDEs"), Algorithms
2–3 as score_sde's ``EulerMaruyamaPredictor`` and ``LangevinCorrector``: the
reverse SDE dx = [f(x, t) - g(t)^2 score] dt + g(t) dw-bar is stepped from the
first time of the grid to the last, each step preceded by ``corrector_steps``
Langevin steps with step size 2 (snr ||z|| / ||score||)^2. The final step is
the noise-free Tweedie estimate of x_0. One difference from score_sde: the
Langevin step size uses each image's own norms instead of the batch mean, so
an image does not depend on which images share its batch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from benchmark.errors import ConfigError
from benchmark.samplers.base import (
    EpsFn,
    FiniteWatch,
    RandnLike,
    ScoreParams,
    ScoreSampler,
    ScoreSDE,
    check_start,
    denoise,
)

DEFAULT_STEPS = 50  # predictor steps of the smoke tier (score_sde: 1000)
DEFAULT_SNR = 0.16  # score_sde's signal-to-noise ratio for VP-type SDEs


def _per_image_norm(v: torch.Tensor) -> torch.Tensor:
    return v.flatten(1).norm(dim=1).view(-1, *([1] * (v.ndim - 1)))


def langevin_step(
    eps_fn: EpsFn,
    sde: ScoreSDE,
    x: torch.Tensor,
    t: torch.Tensor,
    snr: float,
    randn_like: Callable[[torch.Tensor], torch.Tensor] = torch.randn_like,
) -> torch.Tensor:
    """One corrector step at fixed t: x + e score + sqrt(2e) z (score_sde's alpha = 1)."""
    score = -eps_fn(x, t) / sde.std(t)
    z = randn_like(x)
    step = 2 * (snr * _per_image_norm(z) / _per_image_norm(score).clamp_min(1e-12)) ** 2
    return x + step * score + (2 * step).sqrt() * z


def em_step(
    eps: torch.Tensor,
    sde: ScoreSDE,
    x: torch.Tensor,
    t: torch.Tensor,
    next_t: torch.Tensor,
    randn_like: Callable[[torch.Tensor], torch.Tensor] = torch.randn_like,
) -> torch.Tensor:
    """x_{t+dt} = x + [f - g^2 score] dt + g sqrt(-dt) z, dt = next_t - t < 0."""
    dt = next_t - t
    g = sde.diffusion(t)
    score = -eps / sde.std(t)
    x_mean = x + (sde.drift(x, t) - g**2 * score) * dt
    return x_mean + g * (-dt).sqrt() * randn_like(x)


def em_sample(
    eps_fn: EpsFn,
    sde: ScoreSDE,
    x: torch.Tensor,
    times: torch.Tensor,
    *,
    corrector_steps: int = 0,
    snr: float = DEFAULT_SNR,
    randn_like: Callable[[torch.Tensor], torch.Tensor] = torch.randn_like,
) -> tuple[torch.Tensor, int]:
    """Integrate the reverse SDE from ``times[0]`` (x ~ p_t there) to x_0.

    Args:
        eps_fn: eps_theta(x, t) for a 0-d float tensor t (guidance, if any, inside).
        sde: the forward SDE.
        x: (B, C, H, W) state at ``times[0]`` (in (0, 1]).
        times: descending times; the last step goes from ``times[-1]`` to x_0 by Tweedie.
        corrector_steps: Langevin steps before each predictor step (0: plain EM).
        snr: corrector signal-to-noise ratio.
        randn_like: noise source (seeded by the caller for reproducible samples).

    Returns:
        x_0 and the number of network evaluations per image.
    """
    check_start(times[0])
    name = "predictor-corrector" if corrector_steps else "Euler-Maruyama"
    nfe = 0
    watch = FiniteWatch(name)  # read on the host once, after the last step
    for i, t in enumerate(times):
        for _ in range(corrector_steps):
            x = langevin_step(eps_fn, sde, x, t, snr, randn_like)
            nfe += 1
        eps = eps_fn(x, t)
        nfe += 1
        if i + 1 < len(times):
            x = em_step(eps, sde, x, t, times[i + 1], randn_like)
        else:
            x = denoise(sde, x, t, eps)
        watch.step(x, i, t)
    watch.check(x.shape[0])
    return x, nfe


@dataclass(frozen=True)
class PCParams(ScoreParams):
    """snr: the Langevin corrector's signal-to-noise ratio; corrector_steps: Langevin steps
    before each predictor step."""

    snr: float = DEFAULT_SNR
    corrector_steps: int = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.snr > 0:
            raise ConfigError(f"sampler snr must be > 0, got {self.snr}")
        if self.corrector_steps < 0:
            raise ConfigError(f"corrector_steps must be >= 0, got {self.corrector_steps}")


class PredictorCorrector(ScoreSampler):
    """``pc``: ``corrector_steps`` Langevin steps (at ``snr``) before each EM step."""

    name = "pc"
    Params = PCParams

    @property
    def corrector_steps(self) -> int:
        return self.params.corrector_steps

    @property
    def snr(self) -> float:
        return self.params.snr

    def step_nfe(self, final: bool = False) -> int:
        return 1 + self.corrector_steps

    def sample(self, eps_fn, process, x, start, randn_like):
        return em_sample(
            eps_fn, process, x, self.grid(process, start),
            corrector_steps=self.corrector_steps, snr=self.snr, randn_like=randn_like,
        )  # fmt: skip

    def step(self, eps_fn, process, x, t, next_t, randn_like: RandnLike):
        for _ in range(self.corrector_steps):
            x = langevin_step(eps_fn, process, x, t, self.snr, randn_like)
        eps = eps_fn(x, t)
        if next_t is None:
            return denoise(process, x, t, eps)
        return em_step(eps, process, x, t, next_t, randn_like)


class EulerMaruyama(PredictorCorrector):
    """``em``: the reverse-SDE Euler–Maruyama predictor alone (score_sde's sub-VP default)."""

    name = "em"
    Params = ScoreParams
    corrector_steps = 0
    snr = DEFAULT_SNR  # no corrector: unused
