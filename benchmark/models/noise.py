"""The noise process of a model family: how x_t is made from x_0, at which time.

Every family memobench audits noises an image the same way,

    x_t = a(t) x_0 + s(t) eps,    eps ~ N(0, I),

with its own time variable (DDPM: an integer step 0 ... T-1; the sub-VP SDE:
continuous t in [0, 1]; rectified flow: a(t) = 1 - t, s(t) = t). What the
audit needs from it is one object, in the spirit of EDM's preconditioning
classes: the family's time at a diffusion fraction in [0, 1] and back
(``time_at``, ``fraction_of``), and the map between x_0 and x_t given eps
(``noise_to``, ``predict_x0``, ``noise_std``). t*, every membership attack and
CPSample use only this, so a new family that supplies ``coefficients`` gets all
of them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import torch


def _as_tensor(value: Any, like: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(value, dtype=like.dtype, device=like.device)


class NoiseProcess(ABC):
    """x_t = a(time) x_0 + s(time) eps, at a family's own ``time``."""

    @abstractmethod
    def time_at(self, fraction: float) -> Any:
        """The family's time at diffusion fraction ``fraction`` in [0, 1) (0: clean)."""

    @abstractmethod
    def fraction_of(self, time: Any) -> float:
        """Inverse of ``time_at``: the diffusion fraction in [0, 1] of family ``time``."""

    @abstractmethod
    def coefficients(self, time: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """(a, s) at ``time``: the signal's scale and the noise's standard deviation, as
        0-d float64 tensors."""

    def noise_std(self, time: Any) -> float:
        """Standard deviation s(time) of the noise in x_time."""
        return float(self.coefficients(time)[1])

    def noise_to(self, x0: torch.Tensor, time: Any, noise: torch.Tensor) -> torch.Tensor:
        """A draw of x_time ~ p(x_time | x0) from standard normal ``noise``."""
        a, s = self.coefficients(time)
        return _as_tensor(a, x0) * x0 + _as_tensor(s, x0) * noise

    def predict_x0(self, x: torch.Tensor, time: Any, eps: torch.Tensor) -> torch.Tensor:
        """The clean image that ``noise_to(x0, time, eps)`` would have made ``x`` from."""
        a, s = self.coefficients(time)
        return (x - _as_tensor(s, x) * eps) / _as_tensor(a, x)


class DiscreteVP(NoiseProcess):
    """DDPM's discrete variance-preserving process: a = sqrt(abar_t), s = sqrt(1 - abar_t),
    time an integer step; fraction f is step round(f T) (docs/science.md, model families)."""

    def __init__(self, alphas_cumprod: torch.Tensor) -> None:
        self.alphas_cumprod = alphas_cumprod.double()
        self.num_steps = len(alphas_cumprod)

    def time_at(self, fraction: float) -> int:
        return round(float(fraction) * self.num_steps)

    def fraction_of(self, time: Any) -> float:
        return float(time) / self.num_steps

    def coefficients(self, time: Any) -> tuple[torch.Tensor, torch.Tensor]:
        abar = self.alphas_cumprod[int(time)]
        return abar.sqrt(), (1 - abar).sqrt()
