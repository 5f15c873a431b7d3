"""Negative log-likelihood in bits/dim through the probability-flow ODE (Song et al. 2021).

The ODE dx/dt = v(x, t) carries p_eps to p_1 ~ N(0, I), so (instantaneous change
of variables) log p_eps(x) = log N(x(1); 0, I) + int_eps^1 div v(x(t), t) dt. The
divergence is Hutchinson's estimate e^T (dv/dx) e with one Rademacher e per
image, fixed over the solve, computed with one vector-Jacobian product per
evaluation; the joint system is solved with scipy's RK45 at rtol = atol = 1e-5
from eps = 1e-5, as score_sde's ``likelihood.py``.

Images in [-1, 1] are dequantized as score_sde does: on the [0, 1] scale,
x -> (255 x + u) / 256 with u ~ U[0, 1). Bits/dim then add log2(128) = 7 for
the map from 256 levels to [-1, 1].

The gap NLL(held-out) - NLL(members) is a memorization signal: a model that
stores its training images gives them more likelihood than new ones.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import torch
from scipy.integrate import solve_ivp

from benchmark.attacks.base import membership_sets
from benchmark.display import Column, with_interval
from benchmark.measures.bootstrap import bootstrap_ci
from benchmark.metrics.base import AuditInputs, CaseMetric
from benchmark.progress import bar
from benchmark.record import Field
from benchmark.samplers.base import EpsFn, ScoreSDE
from benchmark.samplers.pf_ode import ode_velocity
from benchmark.speed import STRICT_FP32, exact

NLL_MEMBERS_BPD = Field(
    "nll_members_bpd", "float", "NLL of training images in bits/dim (dequantized)"
)
NLL_HELDOUT_BPD = Field("nll_heldout_bpd", "float", "NLL of held-out images in bits/dim")
NLL_GAP = Field(
    "nll_gap", "float", "nll_heldout_bpd - nll_members_bpd: > 0 when members are likelier"
)
NLL_GAP_CI = Field("nll_gap_ci", "list", "bootstrap 95% interval of nll_gap [lo, hi]")
NLL_N = Field("nll_n", "list", "[members, held-out images] measured")
NLL_NFE_PER_IMAGE = Field("nll_nfe_per_image", "float", "ODE network evaluations per image")
NLL_SECONDS_PER_IMAGE = Field("nll_seconds_per_image", "float", "wall time per image")
NLL_FIELDS = (
    NLL_MEMBERS_BPD,
    NLL_HELDOUT_BPD,
    NLL_GAP,
    NLL_GAP_CI,
    NLL_N,
    NLL_NFE_PER_IMAGE,
    NLL_SECONDS_PER_IMAGE,
)

LOG2 = math.log(2.0)


def dequantize(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Uniform dequantization of [-1, 1] images on 256 levels (score_sde)."""
    x01 = (x + 1) / 2
    u = torch.rand(x.shape, generator=generator)
    return 2 * ((x01 * 255 + u) / 256) - 1


def log_likelihood(
    eps_fn: EpsFn,
    sde: ScoreSDE,
    x: torch.Tensor,
    *,
    eps: float = 1e-5,
    tol: float = 1e-5,
    generator: torch.Generator | None = None,
    exact_divergence: bool = False,
) -> tuple[torch.Tensor, int]:
    """log p_eps(x) in nats per image, and the NFE (each with a backward pass).

    Args:
        eps_fn: eps_theta(x, t) = -std(t) score(x, t).
        sde: the forward SDE; its prior at t = 1 is taken as N(0, I).
        x: (B, ...) points (already dequantized if they are images).
        eps: start time of the ODE.
        tol: rtol and atol of RK45.
        generator: draws the Rademacher probes.
        exact_divergence: the exact trace (one backward per dimension) instead of
            Hutchinson's estimate; for tests on small dimensions.
    """
    shape, n = x.shape, x.shape[0]
    dims = int(np.prod(shape[1:]))
    probe = torch.randint(0, 2, shape, generator=generator).to(x.dtype) * 2 - 1
    calls = 0

    def rhs(t: float, state: np.ndarray) -> np.ndarray:
        nonlocal calls
        calls += 1
        xt = torch.from_numpy(state[: n * dims]).to(x.dtype).view(shape).requires_grad_(True)
        tt = torch.tensor(t, dtype=torch.float64)
        with torch.enable_grad():
            v = ode_velocity(sde, xt, tt, eps_fn(xt, tt))
            if exact_divergence:
                div = torch.zeros(n, dtype=torch.float64)
                flat_v = v.reshape(n, dims)
                for d in range(dims):
                    (g,) = torch.autograd.grad(flat_v[:, d].sum(), xt, retain_graph=True)
                    div += g.reshape(n, dims)[:, d].double()
            else:
                (g,) = torch.autograd.grad((v * probe).sum(), xt)
                div = (g * probe).reshape(n, -1).sum(1).double()
        out = np.concatenate([v.detach().double().numpy().ravel(), div.numpy()])
        if not np.isfinite(out).all():
            raise FloatingPointError(
                f"likelihood ODE: non-finite velocity or divergence at evaluation {calls} "
                f"(t = {t:.4g}); the network returned NaN/inf"
            )
        return out

    start = np.concatenate([x.detach().double().numpy().ravel(), np.zeros(n)])
    sol = solve_ivp(rhs, (eps, 1.0), start, rtol=tol, atol=tol, method="RK45")
    if sol.status != 0:
        raise FloatingPointError(f"likelihood ODE failed: {sol.message}")
    end = sol.y[:, -1]
    z, delta = end[: n * dims].reshape(n, dims), end[n * dims :]
    prior = -0.5 * dims * math.log(2 * math.pi) - 0.5 * (z**2).sum(1)
    return torch.from_numpy(prior + delta), int(sol.nfev)


def bits_per_dim(
    eps_fn: EpsFn,
    sde: ScoreSDE,
    images: torch.Tensor,
    *,
    batch_size: int = 64,
    seed: int = 0,
    tol: float = 1e-5,
    progress: bool = False,
) -> tuple[torch.Tensor, dict[str, Any]]:
    """NLL of each image in bits/dim (dequantized, score_sde's offset of 7), and its cost.

    The cost's ``nfe`` sums network evaluations over images (with a backward each).
    """
    gen = torch.Generator().manual_seed(seed)
    dims = int(np.prod(images.shape[1:]))
    out, nfe = [], 0
    start = time.perf_counter()
    with bar(total=images.shape[0], desc="NLL", unit="img", enabled=progress) as pbar:
        for chunk in images.split(batch_size):
            logp, spent = log_likelihood(
                eps_fn, sde, dequantize(chunk, gen), tol=tol, generator=gen
            )
            out.append(-logp / (dims * LOG2) + 7.0)
            nfe += spent * chunk.shape[0]  # each evaluation covers the whole chunk
            pbar.update(chunk.shape[0])
    seconds = time.perf_counter() - start
    return torch.cat(out), {"nfe": nfe, "seconds": seconds}


def nll_gap(
    eps_fn: EpsFn,
    sde: ScoreSDE,
    members: torch.Tensor,
    heldout: torch.Tensor,
    *,
    seed: int = 0,
    tol: float = 1e-5,
    progress: bool = False,
    n_boot: int = 1000,
) -> dict[str, Any]:
    """NLL on members and on held-out images (bits/dim), their gap with a bootstrap 95% CI."""
    bpd_m, cost_m = bits_per_dim(eps_fn, sde, members, seed=seed, tol=tol, progress=progress)
    bpd_h, cost_h = bits_per_dim(eps_fn, sde, heldout, seed=seed + 1, tol=tol, progress=progress)
    lo, hi = bootstrap_ci(
        lambda m, h: h.mean() - m.mean(), [bpd_m.numpy(), bpd_h.numpy()], n_boot, seed
    )
    n = len(bpd_m) + len(bpd_h)
    return {
        NLL_MEMBERS_BPD: float(bpd_m.mean()),
        NLL_HELDOUT_BPD: float(bpd_h.mean()),
        NLL_GAP: float(bpd_h.mean() - bpd_m.mean()),
        NLL_GAP_CI: [float(lo), float(hi)],
        NLL_N: [len(bpd_m), len(bpd_h)],
        NLL_NFE_PER_IMAGE: (cost_m["nfe"] + cost_h["nfe"]) / n,
        NLL_SECONDS_PER_IMAGE: (cost_m["seconds"] + cost_h["seconds"]) / n,
    }


class Likelihood(CaseMetric):
    """NLL (bits/dim) of members and held-out images and their gap, where the family has a
    probability-flow ODE (a ``sde`` attribute) and the case no mitigation."""

    name = "nll"
    order = 50
    fields = NLL_FIELDS

    def skip_reason(self, inputs: AuditInputs) -> str | None:
        family, mitigation = inputs.model.family, inputs.mitigation
        if getattr(family, "sde", None) is None:
            return f"the {family.name!r} family has no probability-flow ODE"
        if mitigation.name != "none":
            return (
                f"{mitigation.name!r} changes the sampler, not the model's density; see the "
                f"unmitigated case"
            )
        return None

    def compute(self, inputs: AuditInputs) -> dict[str, Any]:
        counts, model, device = inputs.context.counts, inputs.model, inputs.device
        members, nonmembers = membership_sets(
            inputs.data, max_per_set=counts.nll_max_per_set, seed=inputs.case.seed
        )
        # strict fp32 whatever the run's speed switches (no bf16, no TF32): a divergence
        # estimate is too fine for either
        net = exact(model.net).to(device).eval()

        def eps_fn(x, t):
            with STRICT_FP32.backends():
                return model.family.predict_eps(net, x.to(device), t).cpu()

        return nll_gap(
            eps_fn,
            model.family.sde,
            members,
            nonmembers,
            seed=inputs.case.seed,
            tol=counts.nll_tol,
            progress=inputs.progress,
        )

    @classmethod
    def columns(cls):

        return [
            Column(
                NLL_GAP,
                "NLL gap",
                "bits/dim of held-out images − of members (probability-flow ODE, score-SDE "
                "families; > 0 when the model gives its training images more likelihood), 95% "
                "interval",
                False,
                "{:.3f}",
                with_interval(NLL_GAP, NLL_GAP_CI),
            ),
            Column(
                NLL_MEMBERS_BPD,
                "NLL members",
                "negative log-likelihood of training images in bits/dim (dequantized)",
                None,
                "{:.3f}",
            ),
        ]
