"""The probability-flow ODE with a fixed-step Heun (2nd-order Runge–Kutta) solver.

dx/dt = f(x, t) - 1/2 g(t)^2 score(x, t) (Song et al. 2021, eq. 13) has the same
marginals as the forward SDE; solved deterministically from ``times[0]`` down
the grid with Heun's method (two network evaluations per step, as EDM's
Algorithm 1), and finished with the Tweedie estimate of x_0 at the last time.
"""

from __future__ import annotations

import torch

from benchmark.samplers.base import (
    EpsFn,
    FiniteWatch,
    ScoreSampler,
    ScoreSDE,
    check_start,
    denoise,
)

DEFAULT_STEPS = 25  # grid points of the smoke tier: 24 Heun steps + 1 final = 49 NFE


def ode_velocity(sde: ScoreSDE, x: torch.Tensor, t: torch.Tensor, eps: torch.Tensor):
    """dx/dt of the probability-flow ODE, with score = -eps / std(t)."""
    return sde.drift(x, t) + 0.5 * sde.diffusion(t) ** 2 * eps / sde.std(t)


def heun_step(
    eps_fn: EpsFn,
    sde: ScoreSDE,
    x: torch.Tensor,
    t: torch.Tensor,
    next_t: torch.Tensor,
    eps: torch.Tensor | None = None,
) -> torch.Tensor:
    """x at ``next_t`` from x at ``t``: Euler predictor, trapezoidal corrector."""
    h = next_t - t
    if eps is None:
        eps = eps_fn(x, t)
    d1 = ode_velocity(sde, x, t, eps)
    x_euler = x + h * d1
    d2 = ode_velocity(sde, x_euler, next_t, eps_fn(x_euler, next_t))
    return x + 0.5 * h * (d1 + d2)


def heun_sample(
    eps_fn: EpsFn,
    sde: ScoreSDE,
    x: torch.Tensor,
    times: torch.Tensor,
) -> tuple[torch.Tensor, int]:
    """Solve the PF-ODE from ``times[0]`` over the grid; returns (x_0, NFE per image)."""
    check_start(times[0])
    nfe = 0
    watch = FiniteWatch("probability-flow ODE (Heun)")  # read on the host once, after the last step
    for i, t in enumerate(times):
        if i + 1 < len(times):
            x = heun_step(eps_fn, sde, x, t, times[i + 1])
            nfe += 2
        else:
            x = denoise(sde, x, t, eps_fn(x, t))
            nfe += 1
        watch.step(x, i, t)
    watch.check(x.shape[0])
    return x, nfe


class Heun(ScoreSampler):
    """``ode_heun``: the probability-flow ODE with fixed Heun steps (2 NFE a step)."""

    name = "ode_heun"

    def step_nfe(self, final: bool = False) -> int:
        return 1 if final else 2

    def sample(self, eps_fn, process, x, start, randn_like):
        return heun_sample(eps_fn, process, x, self.grid(process, start))

    def step(self, eps_fn, process, x, t, next_t, randn_like):
        if next_t is None:
            return denoise(process, x, t, eps_fn(x, t))
        return heun_step(eps_fn, process, x, t, next_t)
