"""What the score-SDE samplers share: the SDE they integrate, and the NaN guard.

A sampler is a pure function of an ``eps_fn`` (the network's noise estimate
eps_theta(x, t) = -std(t) * score(x, t)), an SDE (``ScoreSDE``), the starting
state and a descending time grid. The mitigation hook ``guidance(x, t, eps)``
sees the same eps as the DDIM sampler's hook, so one mitigation serves both
families: a change of eps by d is a change of the score by -d / std(t).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import torch

from benchmark.errors import ConfigError

EpsFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Guidance = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


class ScoreSDE(Protocol):
    """dx = f(x, t) dt + g(t) dw with Gaussian marginals x_t = mean(t) x_0 + std(t) z."""

    def drift(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor: ...

    def diffusion(self, t: torch.Tensor) -> torch.Tensor: ...

    def mean_coef(self, t: torch.Tensor) -> torch.Tensor: ...

    def std(self, t: torch.Tensor) -> torch.Tensor: ...


def check_start(t0: float) -> None:
    """Samplers start in (0, 1]: t = 0 is the data itself, t > 1 is past the prior."""
    if not 0.0 < float(t0) <= 1.0:
        raise ConfigError(
            f"a score-SDE sampler starts at a time in (0, 1], got {float(t0)}; "
            f"use 1 for a full sample and t in (0, 1) to denoise from a noised image (t*)"
        )


def time_grid(num_steps: int, start: float = 1.0, end: float = 1e-3) -> torch.Tensor:
    """``num_steps`` descending times from ``start`` to ``end``, evenly spaced (score_sde)."""
    check_start(start)
    if num_steps < 1:
        raise ConfigError(f"num_steps must be >= 1, got {num_steps}")
    if not 0.0 < end < start:
        raise ConfigError(f"the end time must be in (0, start={start}), got {end}")
    return torch.linspace(start, end, num_steps, dtype=torch.float64)


def guided_eps(
    eps_fn: EpsFn, x: torch.Tensor, t: torch.Tensor, guidance: Guidance | None
) -> torch.Tensor:
    eps = eps_fn(x, t)
    return eps if guidance is None else guidance(x, t, eps)


def check_finite(x: torch.Tensor, sampler: str, step: int, t: float) -> None:
    """Stop at the first step whose state is NaN or infinite, naming the step."""
    if not torch.isfinite(x).all():
        bad = int((~torch.isfinite(x)).flatten(1).any(1).sum())
        raise FloatingPointError(
            f"{sampler}: the state became non-finite at step {step} (t = {t:.4g}) in {bad} of "
            f"{x.shape[0]} images; the score (network or guidance) returned NaN/inf there"
        )


def denoise(sde: ScoreSDE, x: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """Tweedie's estimate E[x_0 | x_t] = (x_t - std(t) eps) / mean(t): the last step."""
    return (x - sde.std(t) * eps) / sde.mean_coef(t)
