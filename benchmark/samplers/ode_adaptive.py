"""The probability-flow ODE with an adaptive Runge–Kutta solver (scipy ``solve_ivp``).

As score_sde's ``get_ode_sampler``: the whole batch is one ODE system, solved
with RK45 at rtol = atol = 1e-5 from the start time to ``end``, then the
Tweedie estimate of x_0. The solver picks its own steps, so the NFE is an
output; it is per image, since every evaluation covers the whole batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.integrate import solve_ivp

from benchmark.errors import ConfigError
from benchmark.samplers.base import (
    EpsFn,
    ScoreParams,
    ScoreSampler,
    ScoreSDE,
    check_start,
    denoise,
)
from benchmark.samplers.pf_ode import ode_velocity

DEFAULT_TOL = 1e-5


def ode_solve(
    eps_fn: EpsFn,
    sde: ScoreSDE,
    x: torch.Tensor,
    start: float,
    end: float,
    *,
    rtol: float = DEFAULT_TOL,
    atol: float = DEFAULT_TOL,
    method: str = "RK45",
) -> tuple[torch.Tensor, int]:
    """x at ``end`` from x at ``start`` along the PF-ODE; returns (x, NFE)."""
    check_start(start)
    shape, dtype, device = x.shape, x.dtype, x.device
    calls = 0

    def velocity(t: float, flat: np.ndarray) -> np.ndarray:
        nonlocal calls
        calls += 1
        state = torch.from_numpy(flat).to(device=device, dtype=dtype).view(shape)
        time = torch.tensor(t, dtype=torch.float64)
        v = ode_velocity(sde, state, time, eps_fn(state, time))
        v = v.detach().cpu().double().numpy().ravel()
        if not np.isfinite(v).all():
            raise FloatingPointError(
                f"probability-flow ODE (RK45): non-finite score at evaluation {calls} "
                f"(t = {t:.4g}); the network or the guidance returned NaN/inf"
            )
        return v

    sol = solve_ivp(
        velocity,
        (float(start), float(end)),
        x.detach().cpu().double().numpy().ravel(),
        rtol=rtol,
        atol=atol,
        method=method,
    )
    if sol.status != 0:
        raise FloatingPointError(f"probability-flow ODE ({method}) failed: {sol.message}")
    out = torch.from_numpy(sol.y[:, -1]).to(device=device, dtype=dtype).view(shape)
    return out, int(sol.nfev)


def rk45_sample(
    eps_fn: EpsFn,
    sde: ScoreSDE,
    x: torch.Tensor,
    start: float = 1.0,
    end: float = 1e-3,
    *,
    rtol: float = DEFAULT_TOL,
    atol: float = DEFAULT_TOL,
) -> tuple[torch.Tensor, int]:
    """Sample by solving the PF-ODE adaptively to ``end`` and denoising; (x_0, NFE)."""
    x, nfe = ode_solve(eps_fn, sde, x, start, end, rtol=rtol, atol=atol)
    t_end = torch.tensor(end, dtype=torch.float64)
    return denoise(sde, x, t_end, eps_fn(x, t_end)), nfe + 1


@dataclass(frozen=True)
class RK45Params(ScoreParams):
    """tol: the solver's relative and absolute tolerance."""

    tol: float = DEFAULT_TOL

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 < self.tol < 1:
            raise ConfigError(f"sampler tol must be in (0, 1), got {self.tol}")


class RK45(ScoreSampler):
    """``ode_rk45``: the probability-flow ODE, adaptive RK45 at ``tol``; no grid."""

    name = "ode_rk45"
    Params = RK45Params
    adaptive = True

    def sample(self, eps_fn, process, x, start, randn_like):
        start = 1.0 if start is None else start
        tol = self.params.tol
        return rk45_sample(eps_fn, process, x, start, self.params.t_end, rtol=tol, atol=tol)

    def step(self, eps_fn, process, x, t, next_t, randn_like):
        if next_t is None:
            return denoise(process, x, t, eps_fn(x, t))
        tol = self.params.tol
        out, _ = ode_solve(eps_fn, process, x, float(t), float(next_t), rtol=tol, atol=tol)
        return out
