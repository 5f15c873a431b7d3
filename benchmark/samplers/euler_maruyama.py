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

import torch

from benchmark.samplers.base import (
    EpsFn,
    FiniteWatch,
    Guidance,
    RandnLike,
    ScoreSampler,
    ScoreSDE,
    check_start,
    denoise,
    guided_eps,
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
    guidance: Guidance | None = None,
    randn_like: Callable[[torch.Tensor], torch.Tensor] = torch.randn_like,
) -> torch.Tensor:
    """One corrector step at fixed t: x + e score + sqrt(2e) z (score_sde's alpha = 1)."""
    score = -guided_eps(eps_fn, x, t, guidance) / sde.std(t)
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
    guidance: Guidance | None = None,
    randn_like: Callable[[torch.Tensor], torch.Tensor] = torch.randn_like,
) -> tuple[torch.Tensor, int]:
    """Integrate the reverse SDE from ``times[0]`` (x ~ p_t there) to x_0.

    Args:
        eps_fn: eps_theta(x, t) for a 0-d float tensor t.
        sde: the forward SDE.
        x: (B, C, H, W) state at ``times[0]`` (in (0, 1]).
        times: descending times; the last step goes from ``times[-1]`` to x_0 by Tweedie.
        corrector_steps: Langevin steps before each predictor step (0: plain EM).
        snr: corrector signal-to-noise ratio.
        guidance: mitigation hook on eps.
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
            x = langevin_step(eps_fn, sde, x, t, snr, guidance, randn_like)
            nfe += 1
        eps = guided_eps(eps_fn, x, t, guidance)
        nfe += 1
        if i + 1 < len(times):
            x = em_step(eps, sde, x, t, times[i + 1], randn_like)
        else:
            x = denoise(sde, x, t, eps)
        watch.step(x, i, t)
    watch.check(x.shape[0])
    return x, nfe


class PredictorCorrector(ScoreSampler):
    """``pc``: ``config.corrector_steps`` Langevin steps (``config.snr``) before each EM step."""

    name = "pc"

    def corrector_steps(self, config) -> int:
        return config.corrector_steps

    def step_nfe(self, config, final: bool = False) -> int:
        return 1 + self.corrector_steps(config)

    def sample(self, eps_fn, sde, x, config, start, guidance, randn_like):
        times = self.grid(config, start)
        return em_sample(
            eps_fn, sde, x, times, corrector_steps=self.corrector_steps(config),
            snr=config.snr, guidance=guidance, randn_like=randn_like,
        )  # fmt: skip

    def step(self, eps_fn, sde, x, t, next_t, config, guidance, randn_like: RandnLike):
        for _ in range(self.corrector_steps(config)):
            x = langevin_step(eps_fn, sde, x, t, config.snr, guidance, randn_like)
        eps = guided_eps(eps_fn, x, t, guidance)
        if next_t is None:
            return denoise(sde, x, t, eps)
        return em_step(eps, sde, x, t, next_t, randn_like)


class EulerMaruyama(PredictorCorrector):
    """``em``: the reverse-SDE Euler–Maruyama predictor alone (score_sde's sub-VP default)."""

    name = "em"

    def corrector_steps(self, config) -> int:
        return 0
