"""The audit of one case: draw samples through the mitigation, measure the leakage.

Suites call this and record what it returns in pytest-benchmark's
``extra_info``; the leaderboard reads those records.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from benchmark import registry
from benchmark.attacks.base import get_attack, membership_sets, run_attack
from benchmark.config import CaseConfig, DataConfig, DetectorConfig, stable_hash
from benchmark.data.base import ImageDataset
from benchmark.detectors.detector import Detector
from benchmark.metrics.carlini import CarliniL2
from benchmark.metrics.features import extract, extractor_name
from benchmark.metrics.fid import fid_gap_from_features
from benchmark.metrics.likelihood import nll_gap
from benchmark.metrics.replication import replication
from benchmark.metrics.reproduction import confirmed_by_nearest, count_reproductions
from benchmark.metrics.tstar import tstar
from benchmark.mitigations.base import Mitigation, MitigationContext
from benchmark.models.base import SampleResult, TrainedModel


@dataclass
class AuditResult:
    samples: SampleResult
    metrics: dict[str, Any] = field(default_factory=dict)


def fingerprint_audit(
    case: CaseConfig,
    model: TrainedModel,
    data: ImageDataset,
    samples: SampleResult,
    c_saf: Detector,
    c_id: Detector,
    mitigation: Mitigation,
    min_accuracy: float = 0.95,
    strategy: str = "adaptive",
    m: int = 16,
    levels: list[float] | None = None,
    device: torch.device | str = "cpu",
    progress: bool = False,
) -> dict[str, Any]:
    """|q| on the case's samples and t* of the model (SPEC sections 3 and 4).

    Raises:
        ConfigError: no SAF in the data, or detectors trained on other data.
        DetectorAccuracyError: a detector is below ``min_accuracy`` on held-out data.
    """
    for det in (c_saf, c_id):
        det.check_for(data)
        det.require_accuracy(min_accuracy)
    saf_pos, id_pos = c_saf.predict(samples.images), c_id.predict(samples.images)
    reproductions = count_reproductions(saf_pos, id_pos, data.n_train)

    def is_hit(images: torch.Tensor) -> torch.Tensor:
        return c_saf.predict(images) & c_id.predict(images)

    curve = tstar(
        model,
        data,
        is_hit,
        case.sampler,
        strategy=strategy,
        m=m,
        levels=levels,
        seed=case.seed,
        guidance=mitigation.guidance(),
        device=device,
        progress=progress,
    )
    record = {**reproductions.as_record(), **curve.as_record()}
    record["q_nn_confirmed"] = confirmed_by_nearest(
        samples.images, reproductions.flagged, data.train, data.saf.index
    )
    for name, det in (("c_saf", c_saf), ("c_id", c_id)):
        for key, value in det.metrics.items():
            record[f"{name}_{key}"] = value
    return record


def utility_audit(
    data: ImageDataset,
    samples: SampleResult,
    extractor: nn.Module,
    tau: float = 0.95,
    top_k: int = 8,
    seed: int = 0,
    train_features: torch.Tensor | None = None,
) -> dict[str, Any]:
    """FID against members and against held-out images, their gap, and replication (SPEC 7).

    ``train_features``: the members' features, when the caller already has them (every
    family's cases on one split share them: 50000 PathMNIST images take a while on a CPU).
    """
    sample_features = extract(extractor, samples.images)
    if train_features is None:
        train_features = extract(extractor, data.train)
    heldout_features = extract(extractor, data.heldout)
    record = fid_gap_from_features(sample_features, train_features, heldout_features, seed=seed)
    record["fid_extractor"] = extractor_name(extractor)
    record.update(
        replication(
            sample_features, train_features, tau=tau, top_k=top_k, heldout_features=heldout_features
        )
    )
    record["replication_extractor"] = record["fid_extractor"]
    return record


def membership_audit(
    model: TrainedModel,
    data: ImageDataset,
    mitigation: Mitigation,
    attacks: list[str] | None = None,
    max_per_set: int = 512,
    quick: bool = False,
    seed: int = 0,
    device: torch.device | str = "cpu",
    progress: bool = False,
) -> dict[str, Any]:
    """Every registered membership attack on the model as the mitigation leaves it (SPEC 7).

    Members are the training images minus x_p, non-members the held-out images,
    equally many (at most ``max_per_set`` each). ``quick``: each attack with its
    ``quick_params`` (fewer queries; a rehearsal's counts).
    """
    members, nonmembers = membership_sets(data, max_per_set=max_per_set, seed=seed)
    record: dict[str, Any] = {"mia_attacks": []}
    for name in attacks if attacks is not None else registry.attacks.names():
        params = registry.attacks.get(name).quick_params if quick else {}
        run = run_attack(
            get_attack(name, **params),
            model,
            members,
            nonmembers,
            guidance=mitigation.guidance(),
            seed=seed,
            device=device,
            progress=progress,
        )
        record["mia_attacks"].append(name)
        record.update(run.as_record())
    return record


def likelihood_audit(
    model: TrainedModel,
    data: ImageDataset,
    mitigation: Mitigation,
    max_per_set: int = 64,
    tol: float = 1e-5,
    seed: int = 0,
    device: torch.device | str = "cpu",
    progress: bool = False,
) -> dict[str, Any]:
    """NLL (bits/dim) of members and held-out images, where the family has a likelihood.

    Measured for score-SDE families (a ``sde`` attribute: the probability-flow ODE
    gives exact likelihoods) without a mitigation; otherwise the record says why not.
    Members and non-members as for the attacks, at most ``max_per_set`` each (every
    image costs an adaptive ODE solve with a backward pass per evaluation).
    """
    sde = getattr(model.family, "sde", None)
    if sde is None:
        return {"nll_skipped": f"the {model.family.name!r} family has no probability-flow ODE"}
    if mitigation.name != "none":
        return {
            "nll_skipped": f"{mitigation.name!r} changes the sampler, not the model's density; "
            "see the unmitigated case"
        }
    members, nonmembers = membership_sets(data, max_per_set=max_per_set, seed=seed)
    net = model.net.to(device).eval()

    def eps_fn(x, t):
        return model.family.predict_eps(net, x.to(device), t).cpu()

    return nll_gap(eps_fn, sde, members, nonmembers, seed=seed, tol=tol, progress=progress)


@functools.cache
def code_fingerprint(*objects) -> str:
    """Hash of memobench's sources, the repository's fixtures, and the files defining
    ``objects`` (plugins): any change to the code that measures invalidates stored audits.

    Taken once per process, so an edit made while a run goes on does not key that
    run's audits (measured by the code as loaded) on the edited files.
    """
    import benchmark

    package = Path(benchmark.__file__).parent
    files = sorted(package.rglob("*.py"))
    files += sorted((package.parent / "fixtures").rglob("*.py"))  # they run the audit
    for obj in objects:
        source = inspect.getsourcefile(obj)
        if source:
            files.append(Path(source))
    h = hashlib.sha256()
    for f in files:
        h.update(str(f.name).encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


def audit_key(
    case: CaseConfig,
    data: DataConfig,
    model_key: str,
    detectors: DetectorConfig,
    inception_weights: str | None,
    counts: Any,
    device_type: str,
) -> str:
    """The cache key of a case's stored audit: everything that determines its figures
    (the case, its data, the model's weights, the detectors' and feature extractor's
    settings, the audit's counts, the device type and the measuring code)."""
    plugins = [registry.mitigations.get(case.mitigation.name)]
    plugins += [registry.attacks.get(n) for n in registry.attacks.names()]
    return stable_hash(
        "audit",
        case,
        data,
        model_key,
        detectors,
        inception_weights or "classifier-features",
        counts,
        device_type,
        code_fingerprint(*plugins),
    )


def make_mitigation(case: CaseConfig) -> Mitigation:
    return registry.mitigations.get(case.mitigation.name)(**case.mitigation.kwargs)


def case_seeds(case: CaseConfig) -> torch.Tensor:
    """One seed per generated image: image i of every case with the same ``seed`` shares noise."""
    return torch.arange(case.n_gen, dtype=torch.long) + case.seed * 1_000_003


def generate(
    case: CaseConfig,
    model: TrainedModel,
    mitigation: Mitigation,
    context: MitigationContext | None = None,
    device: torch.device | str = "cpu",
    progress: bool = False,
) -> SampleResult:
    """The case's samples through ``mitigation`` (prepared with ``context`` first)."""
    mitigation.prepare(model, context)
    return mitigation.generate(
        model, case_seeds(case), case.sampler, device=device, progress=progress
    )


def measure(
    case: CaseConfig, model: TrainedModel, data: ImageDataset, samples: SampleResult
) -> dict[str, Any]:
    """Leakage and cost metrics of one case's samples."""
    images = samples.images
    if not torch.isfinite(images).all():
        raise FloatingPointError(f"case {case.case_id}: the sampler returned non-finite images")
    carlini = CarliniL2(data.train)
    carlini.update(images)
    stats = model.stats
    return {
        "case_id": case.case_id,
        "family": case.model.family,
        "dataset": case.data.name,
        "n_train": data.n_train,
        "mitigation": case.mitigation.name,
        "mitigation_params": dict(case.mitigation.params),
        "sampler": case.sampler.name,
        "sampler_steps": case.sampler.num_steps,
        "n_gen": int(images.shape[0]),
        "carlini_l2": float(carlini.compute()),
        "train_seconds": stats.get("train_seconds"),
        "train_steps": stats.get("train_steps"),
        "final_loss": stats.get("final_loss"),
        "loss_history": stats.get("loss_history"),
        "param_count": stats.get("param_count"),
        "model_reused": bool(stats.get("reused", False)),
        "model_source": stats.get("source", "trained"),
        "model_key": model.key,
        "nfe_per_image": samples.nfe,
        "nfe_total": samples.nfe * int(images.shape[0]),
        "sample_seconds": samples.seconds,
        "images_per_second": samples.images_per_second,
        "recorded": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
