"""What every sampler shares: the noise estimate it calls, its registration and its
settings, the SDE the score samplers integrate, and the NaN guard.

A sampler is a pure function of an ``eps_fn`` (the network's noise estimate
eps_theta(x, t), for a score SDE -std(t) * score(x, t)), the process it
integrates, the starting state and a descending time grid. A mitigation's
guidance is wrapped around the network once (``guided``; the family's
``noise_estimate``), so a sampler never sees it: one mitigation serves every
sampler, and for a score SDE a change of eps by d is a change of the score by
-d / std(t).
"""

from __future__ import annotations

import functools
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import torch

from benchmark import registry
from benchmark.config import SamplerConfig
from benchmark.errors import ConfigError
from benchmark.params import NoParams, build_params

EpsFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Guidance = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
RandnLike = Callable[[torch.Tensor], torch.Tensor]


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


def guided(eps_fn: EpsFn, guidance: Guidance | None) -> EpsFn:
    """``eps_fn`` with ``guidance(x, t, eps) -> eps_hat`` wrapped around it: the one place
    where a mitigation's hook meets the network's estimate."""
    if guidance is None:
        return eps_fn

    def eps_hat(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return guidance(x, t, eps_fn(x, t))

    return eps_hat


class FiniteWatch:
    """Watches a sampler's state for NaN/inf on the device, step by step, and reads the
    verdict on the host once, at the end (``check``): no sync a step, and the error still
    names the first step whose state went non-finite."""

    def __init__(self, sampler: str) -> None:
        self.sampler = sampler
        self.first: torch.Tensor | None = None  # 0-d: the first bad step, or -1
        self.bad: torch.Tensor | None = None  # images non-finite at that step
        self.times: list[float] = []

    def step(self, x: torch.Tensor, step: int, t: torch.Tensor | float) -> None:
        rows = ~torch.isfinite(x).flatten(1).all(1)
        if self.first is None:
            self.first = torch.full((), -1, dtype=torch.long, device=x.device)
            self.bad = torch.zeros((), dtype=torch.long, device=x.device)
        fresh = (self.first < 0) & rows.any()
        self.first = torch.where(fresh, torch.full_like(self.first, step), self.first)
        self.bad = torch.where(fresh, rows.sum(), self.bad)
        self.times.append(t)

    def check(self, batch: int) -> None:
        if self.first is None:
            return
        if bool(self.first < 0):  # the one host read: every step stayed finite
            return
        first = int(self.first)
        raise non_finite(self.sampler, first, float(self.times[first]), int(self.bad), batch)


def non_finite(sampler: str, step: int, t: float, bad: int, batch: int) -> FloatingPointError:
    """The error of a sampler whose state went NaN/inf, naming the step."""
    return FloatingPointError(
        f"{sampler}: the state became non-finite at step {step} (t = {t:.4g}) in {bad} of "
        f"{batch} images; the score (network or guidance) returned NaN/inf there"
    )


def check_finite(x: torch.Tensor, sampler: str, step: int, t: float) -> None:
    """Stop at the first step whose state is NaN or infinite, naming the step."""
    if not torch.isfinite(x).all():
        bad = int((~torch.isfinite(x)).flatten(1).any(1).sum())
        raise non_finite(sampler, step, t, bad, x.shape[0])


def denoise(sde: ScoreSDE, x: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """Tweedie's estimate E[x_0 | x_t] = (x_t - std(t) eps) / mean(t): the last step."""
    return (x - sde.std(t) * eps) / sde.mean_coef(t)


class Sampler(ABC):
    """A sampler, registered by name under ``memobench.samplers``, built from a
    ``SamplerConfig`` (``get_sampler``) with its own settings.

    A family names the samplers it supports in its ``samplers`` tuple and builds each
    with ``get_sampler(config)``; it never branches on the name itself. Two entry points,
    both pure functions of their arguments: ``sample`` runs a whole trajectory, ``step``
    one grid interval (t* runs many trajectories in lockstep through it). ``eps_fn`` is
    the family's noise estimate with any guidance already around it; ``process`` is what
    the sampler integrates (a score sampler's ``ScoreSDE``, DDIM's alpha-bar schedule);
    ``randn_like`` is the noise source of stochastic samplers (seeded by the family, per
    image). A built sampler is shared by every caller with the same config: it keeps no
    state between calls.

    Attributes:
        name: the ``SamplerConfig.name`` it answers to.
        Params: a frozen dataclass of its settings (``SamplerConfig.params``) and their
            defaults; its ``__post_init__`` raises ``ConfigError`` for a value out of range.
        adaptive: picks its own steps, so it has no grid (and t* cannot use it).
    """

    name: ClassVar[str]
    Params: ClassVar[type] = NoParams
    adaptive: ClassVar[bool] = False

    def __init__(self, config: SamplerConfig) -> None:
        if config.name != self.name:
            raise ConfigError(f"sampler {self.name!r} was given the settings of {config.name!r}")
        self.num_steps = config.num_steps
        self.params = build_params(self.Params, config.kwargs, f"sampler {self.name!r}")

    def step_nfe(self, final: bool = False) -> int:
        """Network evaluations per image of one ``step`` (``final``: the last, to x_0)."""
        return 1

    @abstractmethod
    def grid(self, process: Any, start: Any = None) -> torch.Tensor:
        """The descending times a trajectory from ``start`` visits (``None``: the whole
        diffusion)."""

    @abstractmethod
    def sample(
        self, eps_fn: EpsFn, process: Any, x: torch.Tensor, start: Any, randn_like: RandnLike
    ) -> tuple[torch.Tensor, int]:
        """x_0 from ``x`` at time ``start`` (``None``: the start of the diffusion), and the
        network evaluations per image."""

    @abstractmethod
    def step(
        self,
        eps_fn: EpsFn,
        process: Any,
        x: torch.Tensor,
        t: torch.Tensor,
        next_t: torch.Tensor | None,
        randn_like: RandnLike,
    ) -> torch.Tensor:
        """x at ``next_t`` from x at ``t`` (``next_t`` None: the estimate of x_0)."""


@dataclass(frozen=True)
class ScoreParams:
    """t_end: a score-SDE sampler integrates down to this time, then denoises."""

    t_end: float = 1e-3

    def __post_init__(self) -> None:
        if not 0 < self.t_end < 0.1:
            raise ConfigError(f"sampler t_end must be in (0, 0.1), got {self.t_end}")


class ScoreSampler(Sampler):
    """A sampler of a score SDE (``process`` a ``ScoreSDE``; times in (0, 1])."""

    Params = ScoreParams

    def grid(self, process: ScoreSDE | None = None, start: float | None = None) -> torch.Tensor:
        """The descending times a trajectory from ``start`` (``None``: 1) visits."""
        start = 1.0 if start is None else start
        if self.adaptive:
            raise ConfigError(
                f"the adaptive sampler {self.name!r} picks its own steps, so it has no time "
                f"grid and t* cannot run trajectories in lockstep on it; use a fixed-step "
                f"sampler for t*"
            )
        return time_grid(self.num_steps, start, min(self.params.t_end, start / 2))


def get_sampler(config: SamplerConfig) -> Sampler:
    """The registered sampler ``config.name`` with ``config``'s settings (checked by its
    ``Params``); ``UnknownNameError`` lists the registered ones. Built once per class and
    config and shared: t* and the lockstep steps ask for it at every step."""
    return _built(registry.samplers.get(config.name), config)


@functools.lru_cache(maxsize=256)
def _built(cls: type[Sampler], config: SamplerConfig) -> Sampler:
    return cls(config)
