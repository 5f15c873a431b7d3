"""What a tier will cost before GPU hours are spent: ``memobench plan``.

For every case of a tier (or of one shard), in the order and shares the suite's
``--memobench-shard`` uses: whether its model, detectors and audit are already
in the cache; the network evaluations (NFE) it spends training, sampling,
searching t* and attacking; the FLOPs of one evaluation, counted with
``torch.utils.flop_counter`` on the real network at the dataset's image size;
and a GPU time predicted at a stated sustained throughput. Training counts an
optimiser step on one image as three evaluations (forward and backward).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field, replace

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from benchmark import registry
from benchmark.attacks.threat import DENOISER_API, threat_models_for
from benchmark.audit import audit_key
from benchmark.cache import Cache
from benchmark.config import CaseConfig, DetectorConfig
from benchmark.data.base import ImageDataset, load_dataset
from benchmark.detectors.detector import detector_key
from benchmark.errors import MemobenchError, TooFewImagesError
from benchmark.measures.tstar import default_grid, expected_exhaustive_nfe
from benchmark.models.base import ModelFamily, TrainedModel
from benchmark.models.store import family_for, model_key
from benchmark.speed import Speed
from benchmark.tiers import PAPER_GPU_SPEED, AuditCounts, shard_index

TRAIN_EVALS_PER_IMAGE = 3  # forward + backward of one training image, in forward passes


@dataclass
class CasePlan:
    """The predicted cost of one case and what the cache already holds for it."""

    node_id: str
    case: CaseConfig
    shard: int
    cached: dict[str, str] = field(default_factory=dict)  # model/detectors/audit -> state
    nfe: dict[str, int] = field(default_factory=dict)  # train/sample/tstar/attacks
    flops_per_eval: int = 0
    image_shape: tuple[int, int, int] = (1, 1, 1)

    @property
    def flops(self) -> float:
        """FLOPs of the phases still to run (a cached model costs no training)."""
        todo = dict(self.nfe)
        if self.cached.get("model") == "cached":
            todo.pop("train", None)
        if self.cached.get("audit") == "cached":
            todo = {k: v for k, v in todo.items() if k == "train"}
        return float(sum(todo.values())) * self.flops_per_eval

    def phase_seconds(self, rates: Rates) -> dict[str, float]:
        """Seconds of each phase still to run at ``rates`` (training at the training
        rate, sampling, t* and the attacks at the evaluation rate)."""
        todo = dict(self.nfe)
        if self.cached.get("model") == "cached":
            todo["train"] = 0
        if self.cached.get("audit") == "cached":
            todo = {k: (v if k == "train" else 0) for k, v in todo.items()}
        return {
            phase: n / (TRAIN_EVALS_PER_IMAGE * rates.train if phase == "train" else rates.evaluate)
            for phase, n in todo.items()
        }


@dataclass(frozen=True)
class Rates:
    """Images per second one network runs at: evaluations (sampling, t*, attacks) and
    training (a forward, a backward and an optimizer step per image).

    Attributes:
        source: how they were obtained: measured on a device, or from a FLOP rate.
    """

    evaluate: float
    train: float
    source: str

    @classmethod
    def from_tflops(cls, tflops: float, flops_per_eval: int) -> Rates:
        evaluate = tflops * 1e12 / max(flops_per_eval, 1)
        return cls(evaluate, evaluate / TRAIN_EVALS_PER_IMAGE, f"{tflops:g} TFLOP/s assumed")


def measure_plans(plans: list[CasePlan], device, speed=None, batch: int = 256) -> dict:
    """Measured ``Rates`` of every distinct network among ``plans``, for ``format_plan``."""
    out: dict[tuple, Rates] = {}
    for p in plans:
        key = (p.case.model.family, p.case.model, p.image_shape)
        if key not in out:
            out[key] = measure_rates(family_for(p.case.model), p.image_shape, device, speed, batch)
    return out


def measure_rates(
    family: ModelFamily,
    image_shape: tuple[int, int, int],
    device: torch.device | str,
    speed=None,
    batch: int = 256,
    repeats: int = 3,
) -> Rates:
    """Images per second of the real network on ``device``: evaluations as the audit calls
    it (under ``speed``, no gradients) and training steps (forward, backward, AdamW), each
    the best of ``repeats`` timed calls of ``batch`` images after a warm-up call."""
    import time

    device = torch.device(device)
    speed = speed or Speed()
    net = family.build_network(tuple(image_shape)).to(device)
    x = torch.randn((batch, *image_shape), device=device)  # what training reads
    z = torch.randn((batch, *family.latent_shape(tuple(image_shape))), device=device)
    t = family.noise.time_at(0.5)
    fast = speed.wrap(net, device)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    def best(call) -> float:
        call()  # warm-up (and compilation, with torch.compile)
        sync()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            call()
            sync()
            times.append(time.perf_counter() - start)
        return batch / min(times)

    def evaluate() -> None:
        with torch.no_grad():
            family.predict_eps(fast.eval(), z, t)

    opt = torch.optim.AdamW(net.parameters(), lr=1e-4)
    gen = torch.Generator(device=device).manual_seed(0)

    def train() -> None:
        net.train()
        opt.zero_grad(set_to_none=True)
        family.loss(net, x, gen).backward()
        opt.step()

    return Rates(best(evaluate), best(train), f"measured on {device} at batch {batch}")


class _ZeroNet(nn.Module):
    """A network that predicts zero noise: counts a sampler's evaluations for free."""

    class _Out:
        def __init__(self, sample: torch.Tensor) -> None:
            self.sample = sample

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> _Out:
        return self._Out(torch.zeros_like(x))


def count_flops(fn, *args) -> int:
    """FLOPs of ``fn(*args)`` as ``torch.utils.flop_counter`` counts them (matmuls, convs)."""
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        fn(*args)
    return int(counter.get_total_flops())


def flops_per_eval(family: ModelFamily, image_shape: tuple[int, int, int]) -> int:
    """FLOPs of one network evaluation on one image, through the family's own call (with
    the padding a 28 px image gets), on a network built from the case's config."""
    return _flops(type(family), family.config, tuple(image_shape))


@functools.cache
def _flops(family_cls: type[ModelFamily], config, image_shape: tuple[int, int, int]) -> int:
    family = family_cls(config)
    net = family.build_network(image_shape).eval()
    x = torch.zeros((1, *family.latent_shape(image_shape)))
    return count_flops(family.predict_eps, net, x, family.noise.time_at(0.5))


def sampler_nfe(family: ModelFamily, case: CaseConfig, image_shape) -> int:
    """Evaluations per image of the case's sampler, counted by running it on a zero net."""
    image_shape = tuple(image_shape)
    latents = torch.zeros((1, *family.latent_shape(image_shape)))
    net = _ZeroNet()
    if family.latent:  # its sampler decodes with the autoencoder: a real one, zero denoiser
        net = family.build_network(image_shape).eval()
        net.unet = _ZeroNet()
    with torch.no_grad():
        _, nfe = family.sample(net, latents, case.sampler)
    return int(nfe)


def tstar_nfe_bound(family: ModelFamily, case: CaseConfig, counts: AuditCounts) -> int:
    """An upper bound on the t* search's NFE (``benchmark.measures.tstar``).

    The exact scan (the default) runs each level at most M trajectories, so at most the
    exhaustive search's NFE (a model whose t* lies low costs about that much). A capped
    scan stops within ``tstar_scan_budget`` of it, plus one level; then at most a coarse
    scan (every 10th level) and a bisection of one bracket, each level at most M
    trajectories from the top of the grid.
    """
    levels = default_grid(counts.tstar_step)
    stub = TrainedModel(family, _ZeroNet(), "plan", (1, 1, 1))
    exhaustive = expected_exhaustive_nfe(stub, case.sampler, counts.tstar_m, levels)
    if counts.tstar_strategy == "exhaustive" or counts.tstar_scan_budget >= 1:
        return exhaustive
    per_level = expected_exhaustive_nfe(stub, case.sampler, counts.tstar_m, levels[:1])
    coarse = math.ceil(len(levels) / 10) + 1
    bisection = math.ceil(math.log2(10))
    return int(counts.tstar_scan_budget * exhaustive + (1 + coarse + bisection) * per_level)


def attack_nfe(
    n_members: int, quick: bool = False, guided: bool = False, shadow: bool = False
) -> int:
    """Evaluations of every registered attack on ``n_members`` members and as many
    non-members, under each threat model it runs under (a query attack twice where the
    mitigation ``guided`` the deployed denoiser: raw weights, then the guided API); the
    attacks that learn on a shadow model only where the case trains one (``shadow``)."""

    total = 0
    for name in registry.attacks.names():
        cls = registry.attacks.get(name)
        if cls.trains_on_shadow and not shadow:
            continue
        attack = cls(**(cls.quick_params if quick else {}))
        runs = threat_models_for(cls.needs)
        n_runs = len(runs) if guided or DENOISER_API not in runs else len(runs) - 1
        total += attack.queries_per_image * 2 * n_members * n_runs
    return total


def plan_case(
    node_id: str,
    case: CaseConfig,
    shard: int,
    data: ImageDataset | None,
    cache: Cache,
    detectors: DetectorConfig,
    counts: AuditCounts,
    device_type: str = "cuda",
    inception_weights: str | None = None,
) -> CasePlan:
    """The plan of one case; ``data`` None when its file is not on this machine (the
    cache state is then unknown and the attack count assumes N_train held-out images)."""
    family = family_for(case.model)
    if data is not None:
        shape = data.image_shape
        n_heldout = data.heldout.shape[0]
    else:
        src = registry.datasets.get(case.data.name)
        shape = (src.channels, src.image_size, src.image_size)
        n_heldout = case.data.n_train
    family.check_image_shape(shape)
    plan = CasePlan(node_id, case, shard)
    plan.flops_per_eval = flops_per_eval(family, shape)
    plan.image_shape = tuple(shape)
    n_members = min(case.data.n_train - int(case.data.saf), n_heldout, counts.mia_max_per_set)
    trainings = 2 if case.shadow else 1  # a case with a shadow model trains two
    plan.nfe = {
        "train": trainings * case.train.steps * case.train.batch_size * TRAIN_EVALS_PER_IMAGE,
        "sample": case.n_gen * sampler_nfe(family, case, shape),
        "tstar": tstar_nfe_bound(family, case, counts),
        "attacks": attack_nfe(
            n_members,
            counts.quick_attacks,
            DENOISER_API in registry.mitigations.get(case.mitigation.name).addresses,
            case.shadow,
        ),
    }
    if data is None:
        plan.cached = {"model": "no data", "detectors": "no data", "audit": "no data"}
        return plan
    key = model_key(family, case.train, data)
    plan.cached["model"] = "cached" if cache.path("models", key).exists() else "to train"
    have = [
        cache.path("detectors", detector_key(k, detectors, data)).exists() for k in ("saf", "id")
    ]
    plan.cached["detectors"] = "cached" if all(have) else "to train"
    # the switches a default run of the paper tier uses on that device (its audit's key)
    speed = PAPER_GPU_SPEED if device_type == "cuda" else Speed()
    akey = audit_key(
        case, case.data, key, detectors, inception_weights, counts, device_type, family,
        (speed, None),
    )  # fmt: skip
    plan.cached["audit"] = "cached" if cache.path("audits", akey).exists() else "to run"
    return plan


def plan_cases(
    cases: list[tuple[str, CaseConfig]],
    cache: Cache,
    detectors: DetectorConfig,
    counts: AuditCounts,
    shard: tuple[int, int] | None = None,
    data_root: str | None = None,
    device_type: str = "cuda",
) -> list[CasePlan]:
    """Plans of ``cases`` ((node id, case) pairs), in the shares ``--memobench-shard`` runs."""
    order = sorted(node for node, _ in cases)
    datasets: dict = {}
    plans = []
    for node, case in cases:
        index = shard_index(order, node, shard[1] if shard else 1)
        if shard and index != shard[0]:
            continue
        cfg = case.data if data_root is None else replace(case.data, root=data_root)
        if cfg not in datasets:
            try:
                datasets[cfg] = load_dataset(cfg, cache_root=cache.root, download=False)
            except TooFewImagesError:
                datasets[cfg] = "too small"  # the file is here, with fewer images than N_train
            except MemobenchError:
                datasets[cfg] = None  # no file here: planned without it
        data = datasets[cfg]
        plan = plan_case(
            node, case, index, data if not isinstance(data, str) else None, cache, detectors,
            counts, device_type,
        )  # fmt: skip
        if isinstance(data, str):
            plan.cached = dict.fromkeys(plan.cached, data)
        plans.append(plan)
    return plans


def format_plan(
    plans: list[CasePlan], tflops: float, rates: dict[tuple, Rates] | None = None
) -> str:
    """The table ``memobench plan`` prints: a line per case, then totals per shard and
    per phase. Hours come from ``rates`` (keyed by (family, model config, image shape):
    measured on a device) where given, else from ``tflops``."""

    def case_rates(p: CasePlan) -> Rates:
        key = (p.case.model.family, p.case.model, p.image_shape)
        if rates and key in rates:
            return rates[key]
        return Rates.from_tflops(tflops, p.flops_per_eval)

    head = (
        f"{'case':<44} {'shard':>5} {'model':>9} {'detect':>9} {'audit':>8} "
        f"{'train NFE':>10} {'sample NFE':>11} {'t* NFE<=':>10} {'attack NFE':>10} "
        f"{'GFLOP/eval':>10} {'GPU h':>7}"
    )
    lines = [head, "-" * len(head)]
    shards: dict[int, list[CasePlan]] = {}
    phases: dict[str, float] = {}
    for p in plans:
        shards.setdefault(p.shard, []).append(p)
        seconds = p.phase_seconds(case_rates(p))
        for phase, sec in seconds.items():
            phases[phase] = phases.get(phase, 0.0) + sec
        lines.append(
            f"{p.node_id.split('::')[-1]:<44} {p.shard:>5} {p.cached['model']:>9} "
            f"{p.cached['detectors']:>9} {p.cached['audit']:>8} {p.nfe['train']:>10.3g} "
            f"{p.nfe['sample']:>11.3g} {p.nfe['tstar']:>10.3g} {p.nfe['attacks']:>10.3g} "
            f"{p.flops_per_eval / 1e9:>10.2f} {sum(seconds.values()) / 3600:>7.2f}"
        )
    lines.append("-" * len(head))
    for k in sorted(shards):
        group = shards[k]
        flops = sum(p.flops for p in group)
        hours = sum(sum(p.phase_seconds(case_rates(p)).values()) for p in group) / 3600
        todo = sum(p.cached.get("model") != "cached" for p in group)
        lines.append(
            f"shard {k}: {len(group)} cases, {todo} models to train, {flops / 1e15:.1f} PFLOP "
            f"to run, predicted {hours:.1f} GPU h"
        )
    total = sum(p.flops for p in plans)
    hours = sum(phases.values()) / 3600
    by_phase = ", ".join(f"{phase} {sec / 3600:.1f} h" for phase, sec in phases.items())
    how = (
        "; ".join(sorted({r.source for r in rates.values()}))
        if rates
        else f"at a sustained {tflops:g} TFLOP/s"
    )
    lines.append(
        f"total: {len(plans)} cases, {total / 1e15:.1f} PFLOP, predicted {hours:.1f} GPU h "
        f"({by_phase}) {how} (network evaluations only: detectors, features and the "
        f"sub-VP NLL are not counted)"
    )
    return "\n".join(lines)
