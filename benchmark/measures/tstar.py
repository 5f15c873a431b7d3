"""t* (the seed paper's t'): how much noise a fingerprinted image survives (docs/science.md).

Algorithm 1 of Dombrowski & Kainz (2023): for a level t in [0, 1) draw M
starts x_t ~ p(x_t | SAF(x_p)), run the model's own reverse process from t to
0, count hits (C_SAF and C_ID both positive); q_M(t) = hits / M and

    t* = max { t on the grid : q_M(t) > 0 }     (-1, "none", when no level hits)

Trajectories run batched in lockstep: the solver walks down the union of the
start times and its own grid, and a trajectory joins the batch when the solver
reaches its start time (``run_lockstep``). Two strategies share one result
type: ``exhaustive`` (every level, all M: the whole curve) and ``adaptive``: an
exact top-down scan, a window of levels at a time, each level stopping at its
first hit and the scan at the topmost level with one. It returns the exhaustive
search's t* on any curve, monotone or not, for at most its NFE (less the deeper
t* lies). Only where a run caps the scan (``scan_budget`` < 1) does a coarse scan
bracket the rest and bisection narrow the bracket; that t* is a lower bound,
reported with ``t_star_upper``, the level every level above which ran all M
trajectories without a hit. Trajectory m of level i always starts from the same
noise, so both strategies see the same hits (for a deterministic solver; a
stochastic one whose per-step noise is keyed by the image's content, as the
sub-VP family's, can flip a borderline level with the batch it runs in).
"""

from __future__ import annotations

import time as _time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from benchmark.config import SamplerConfig
from benchmark.data.base import ImageDataset
from benchmark.errors import ConfigError
from benchmark.models.base import Guidance, TrainedModel
from benchmark.progress import bar
from benchmark.record import Field

TSTAR = Field("tstar", "float", "largest level t from which the sampler returns SAF(x_p); -1: none")
TSTAR_STRATEGY = Field("tstar_strategy", "str", "how the grid was searched")
TSTAR_NFE = Field("tstar_nfe", "int", "network evaluations t* spent")
TSTAR_SECONDS = Field("tstar_seconds", "float", "wall time of t*")
TSTAR_M = Field("tstar_m", "int", "trajectories per level")
TSTAR_CURVE = Field("tstar_curve", "dict", "q_M(t): levels t, hit shares q, trials per level")
TSTAR_UPPER = Field(
    "tstar_upper",
    "float",
    "t* is at most this: every level above it ran all M trajectories without a hit "
    "(equals t* where the search was exact)",
)
TSTAR_EXACT = Field("tstar_exact", "bool", "t* is the exhaustive search's (no level above unrun)")
TSTAR_FIELDS = (
    TSTAR,
    TSTAR_STRATEGY,
    TSTAR_NFE,
    TSTAR_SECONDS,
    TSTAR_M,
    TSTAR_CURVE,
    TSTAR_UPPER,
    TSTAR_EXACT,
)

HitFn = Callable[[torch.Tensor], torch.Tensor]  # images (N, C, H, W) -> (N,) bool
# levels the adaptive scan batches together (``tstar(window=...)``), the same t*: on a GPU
# 32 levels x 4 trajectories per call instead of 4; on 2 CPU cores 16 (the smoke DDIM
# model on 1024 digits: the exact scan in 20 s with 16 and 24 s with 32, where level by
# level the capped search took 28 s; benchmarks/tstar_strategies.py)
TSTAR_WINDOW = {"cuda": 32, "cpu": 16}


def tstar_window(device: torch.device | str) -> int:
    """Levels per batch of the adaptive scan on ``device`` (``TSTAR_WINDOW``)."""
    return TSTAR_WINDOW.get(torch.device(device).type, TSTAR_WINDOW["cpu"])


def default_grid(step: float = 0.01) -> list[float]:
    """0.99, 0.98, ..., 0.00 (docs/science.md, the fingerprint)."""
    n = round(1 / step)
    return [round((n - 1 - i) * step, 10) for i in range(n)]


@dataclass
class TStarResult:
    """t*, the curve q_M(t) where computed, and what it cost.

    Attributes:
        t_star: the largest level with a hit, or -1 when none.
        levels: the grid, descending.
        hits: hits per level (``None`` where the level was not run).
        trials: trajectories run per level (< M where a level stopped at its first hit).
        nfe: network evaluations (per image, summed over all trajectories).
        seconds: wall time.
    """

    strategy: str
    t_star: float
    levels: list[float]
    hits: list[int | None]
    trials: list[int]
    m: int
    nfe: int
    seconds: float
    extra: dict = field(default_factory=dict)

    @property
    def q(self) -> list[float | None]:
        return [
            None if h is None or n == 0 else h / n
            for h, n in zip(self.hits, self.trials, strict=True)
        ]

    @property
    def t_star_upper(self) -> float:
        """t* is at most this: the topmost level not run in full without a hit (every
        level above it ran all M trajectories and none hit); -1 when every level did."""
        for t, h, n in zip(self.levels, self.hits, self.trials, strict=True):
            if h or n < self.m:
                return t
        return -1.0

    @property
    def exact(self) -> bool:
        """t* is the exhaustive search's: the topmost level not cleared is the hit."""
        return self.t_star == self.t_star_upper

    @property
    def t_star_label(self) -> str:
        return "none" if self.t_star < 0 else f"{self.t_star:.2f}"

    def as_record(self) -> dict:
        return {
            TSTAR: self.t_star,
            TSTAR_STRATEGY: self.strategy,
            TSTAR_NFE: self.nfe,
            TSTAR_SECONDS: self.seconds,
            TSTAR_M: self.m,
            TSTAR_CURVE: {"t": self.levels, "q": self.q, "trials": self.trials},
            TSTAR_UPPER: self.t_star_upper,
            TSTAR_EXACT: self.exact,
        }


def _check(model: TrainedModel, data: ImageDataset, levels: list[float], m: int) -> None:
    if data.saf is None:
        raise ConfigError(
            f"t* needs a fingerprinted training set, but dataset {data.name!r} "
            f"(n_train={data.n_train}) has no SAF; train the model with DataConfig(saf=True)"
        )
    if m < 1:
        raise ConfigError(f"t*: M (trajectories per level) must be >= 1, got {m}")
    if not levels:
        raise ConfigError("t*: the grid of levels is empty")
    bad = [t for t in levels if not 0 <= t < 1]
    if bad:
        raise ConfigError(f"t*: grid levels must lie in [0, 1), got {bad[:5]}")
    if any(a <= b for a, b in zip(levels, levels[1:], strict=False)):
        raise ConfigError("t*: the grid must be strictly descending (e.g. 0.99, 0.98, ..., 0)")


def start_noise(seed: int, level: int, m: int, shape: tuple[int, ...]) -> torch.Tensor:
    """The noise of trajectory ``m`` at level index ``level``: the same in every strategy."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + level * 1009 + m)
    return torch.randn(shape, generator=g)


def run_lockstep(
    model: TrainedModel,
    x0: torch.Tensor,
    starts: list,
    sampler: SamplerConfig,
    noises: torch.Tensor,
    guidance: Guidance | None = None,
    device: torch.device | str = "cpu",
    max_batch: int = 2048,
) -> tuple[torch.Tensor, int]:
    """Noise ``x0`` to each trajectory's start time and solve all of them to time 0.

    Args:
        model: the trained model; its family supplies noising and solver steps.
        x0: (C, H, W) the image to noise (SAF(x_p)).
        starts: family start time of each trajectory (K of them).
        sampler: solver settings.
        noises: (K, *latent_shape) standard normal noise of each trajectory (the family's
            ``latent_shape``: the image's own for a pixel family).

    Returns:
        The K final images and the NFE spent (sum over trajectories).
    """
    fam, net = model.family, model.net.to(device).eval()
    estimate = fam.noise_estimate(net, guidance)  # the guidance around the network, once
    grid = fam.solver_grid(sampler)
    k = len(starts)
    z0 = fam.encode(net, x0.unsqueeze(0).to(device))  # a latent family noises its latent
    x = torch.stack(
        [fam.noise.noise_to(z0, s, noises[i : i + 1].to(device))[0] for i, s in enumerate(starts)]
    )
    current = list(starts)
    done = [False] * k
    events = sorted(set(starts) | {g for g in grid if g <= max(starts)}, reverse=True)
    nfe = 0
    for tau in events:
        active = [i for i in range(k) if not done[i] and current[i] == tau]
        if not active:
            continue
        below = [g for g in grid if g < tau]
        nxt = below[0] if below else None
        idx = torch.tensor(active, device=x.device)
        for chunk in idx.split(max_batch):
            with torch.no_grad():  # a guidance hook enables gradients for itself
                x[chunk] = fam.solver_step(estimate, x[chunk], tau, nxt, sampler).detach()
        nfe += len(active) * fam.step_nfe(sampler, final=nxt is None)
        for i in active:
            if nxt is None:
                done[i] = True
            else:
                current[i] = nxt
    if fam.latent:
        with torch.no_grad():  # back to pixels, as the family's sampler returns them
            x = torch.cat([fam.decode(net, c).clamp(-1, 1) for c in x.split(max_batch)])
    return x.cpu(), nfe


def tstar(
    model: TrainedModel,
    data: ImageDataset,
    is_hit: HitFn,
    sampler: SamplerConfig,
    strategy: str = "adaptive",
    m: int = 16,
    levels: list[float] | None = None,
    seed: int = 0,
    guidance: Guidance | None = None,
    device: torch.device | str = "cpu",
    progress: bool = False,
    chunk: int = 4,
    coarse_stride: int = 10,
    scan_budget: float = 1.0,
    max_batch: int = 2048,
    window: int = 1,
) -> TStarResult:
    """Algorithm 1 with the ``exhaustive`` or ``adaptive`` strategy.

    Args:
        is_hit: maps images to booleans (C_SAF and C_ID both positive).
        chunk: adaptive: trajectories per batch while waiting for a level's first hit.
        max_batch: at most this many trajectories per network call.
        coarse_stride: adaptive: levels between the points of the coarse scan.
        scan_budget: adaptive: share of the exhaustive NFE the exact top-down scan may
            spend before the search switches to bracketing and bisection. 1 (the
            default): never; t* is then the exhaustive search's on any curve. Below 1,
            t* under the scanned levels is a lower bound (bisection assumes q_M(t)
            falls as t grows, which a sporadic hit breaks) and ``t_star_upper`` says
            how far the scan cleared.
        window: adaptive: levels whose next ``chunk`` trajectories run in one batch while
            scanning (1: level by level). A wider window finds the same t* (the same noise
            per trajectory; it stops the levels below a hit, finishes those above) and
            spends some NFE on levels below the topmost hit, for far fewer, larger
            network calls (``TSTAR_WINDOW`` per device).
    """
    if window < 1:
        raise ConfigError(f"t*: window (levels per batch) must be >= 1, got {window}")
    if not 0 < scan_budget <= 1:
        raise ConfigError(
            f"t*: scan_budget (share of the exhaustive NFE for the exact scan) must lie in "
            f"(0, 1], got {scan_budget}; 1 scans exactly"
        )
    levels = default_grid() if levels is None else list(levels)
    _check(model, data, levels, m)
    if strategy not in ("exhaustive", "adaptive"):
        raise ConfigError(f"t* strategy must be 'exhaustive' or 'adaptive', got {strategy!r}")
    x0 = data.saf.fingerprinted()
    shape = model.family.latent_shape(tuple(x0.shape))
    times = [model.family.noise.time_at(t) for t in levels]
    hits: list[int | None] = [None] * len(levels)
    trials = [0] * len(levels)
    start = _time.perf_counter()
    nfe = 0

    def run(pairs: list[tuple[int, int]]) -> torch.Tensor:
        nonlocal nfe
        noises = torch.stack([start_noise(seed, i, j, shape) for i, j in pairs])
        images, spent = run_lockstep(
            model, x0, [times[i] for i, _ in pairs], sampler, noises, guidance, device, max_batch
        )
        nfe += spent
        return is_hit(images)

    if strategy == "exhaustive":
        pairs = [(i, j) for i in range(len(levels)) for j in range(m)]
        with bar(total=1, desc="t* exhaustive", unit="batch", enabled=progress) as pbar:
            found = run(pairs)
            pbar.update(1)
        for (i, _), h in zip(pairs, found.tolist(), strict=True):
            hits[i] = (hits[i] or 0) + int(h)
            trials[i] += 1
    else:

        def first_hit(indices: list[int]) -> int | None:
            """The first of ``indices`` (in order) with a hit among its M trajectories, or
            None: each level's trajectories ``chunk`` at a time, stopping at its first
            hit, the next chunks of up to ``window`` levels in one batch."""
            for start in range(0, len(indices), window):
                group, best = indices[start : start + window], None
                for i in group:
                    hits[i], trials[i] = 0, 0
                for first in range(0, m, chunk):
                    open_ = [i for i in group if not hits[i] and (best is None or i < best)]
                    if not open_:
                        break
                    pairs = [(i, j) for i in open_ for j in range(first, min(m, first + chunk))]
                    for (i, _), h in zip(pairs, run(pairs).tolist(), strict=True):
                        trials[i] += 1
                        hits[i] += int(h)
                    best = next((i for i in group if hits[i]), None)
                if best is not None:
                    return best
            return None

        # Phase 1, exact: walk down from the top level by level (each stopping at its
        # first hit) while the NFE the levels above would spend with no hit stays
        # within ``scan_budget`` of the exhaustive cost (all of it by default). Hits are
        # sporadic: near t = 1 a memorizing model copies x_p at rate ~1/N_train, and
        # the smoke DDIM model on 1024 digits hits at 0.16 with gaps below (0.13, 0.10,
        # 0.08-0.06), where a bisection lands on 0.05; only a scan finds the topmost.
        budget = scan_budget * expected_exhaustive_nfe(model, sampler, m, levels)
        scanned, spent = 0, 0
        while scanned < len(levels) and (scan_budget >= 1 or spent < budget):
            spent += expected_exhaustive_nfe(model, sampler, m, [levels[scanned]])
            scanned += 1
        with bar(total=len(levels), desc="t* adaptive", unit="level", enabled=progress) as pbar:
            found_at = first_hit(list(range(scanned)))
            first = scanned if found_at is None else found_at
            pbar.update(first + 1)
            # Phase 2: bracket the rest with a coarse scan, then bisect inside the
            # bracket (assumes q_M(t) falls with t there; see the module docstring).
            if found_at is None and first < len(levels):
                coarse = list(range(first, len(levels), coarse_stride))
                if coarse[-1] != len(levels) - 1:
                    coarse.append(len(levels) - 1)
                above = first - 1
                found_at = first_hit(coarse)
                above = max((i for i in coarse if found_at is None or i < found_at), default=above)
                pbar.update(len(coarse) if found_at is None else coarse.index(found_at) + 1)
                if found_at is not None and above >= 0:
                    lo, hi = above, found_at  # lo: no hit, hi: hit (lower index = higher t)
                    while hi - lo > 1:
                        mid = (lo + hi) // 2
                        if first_hit([mid]) is not None:
                            hi = mid
                        else:
                            lo = mid
    computed = [i for i, h in enumerate(hits) if h]
    t_star = levels[min(computed)] if computed else -1.0
    seconds = _time.perf_counter() - start
    return TStarResult(strategy, t_star, levels, hits, trials, m, nfe, seconds)


def expected_exhaustive_nfe(
    model: TrainedModel, sampler: SamplerConfig, m: int = 16, levels: list[float] | None = None
) -> int:
    """NFE the exhaustive search costs: per level, M x (solver steps from its start)."""
    levels = default_grid() if levels is None else levels
    fam = model.family
    grid = fam.solver_grid(sampler)
    total = 0
    for t in levels:
        s = model.family.noise.time_at(t)
        steps = sum(1 for g in grid if g < s)
        total += m * (steps * fam.step_nfe(sampler) + fam.step_nfe(sampler, final=True))
    return total
