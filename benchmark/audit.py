"""The audit of one case: draw samples through the mitigation, then every registered metric.

``run_case(case, session)`` is the one way a case is audited: by the suites, the
pretrained audit, the scripts under ``benchmarks/`` and users' own Python (as
lm-evaluation-harness' ``simple_evaluate``). It trains or loads the case's
model through the session, samples, and runs each ``memobench.metrics`` plugin
(``benchmark.metrics.base.CaseMetric``) on the samples. The audit is stored in
the cache under a key of everything that determines it, and reused.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import inspect
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from benchmark import registry
from benchmark.config import CaseConfig, DataConfig, DetectorConfig, stable_hash
from benchmark.data.base import ImageDataset
from benchmark.device import device_name
from benchmark.environment import AUDIT_LIBRARIES, library_versions
from benchmark.metrics.base import AuditInputs, case_metrics, metric_classes
from benchmark.mitigations.base import Mitigation, MitigationContext
from benchmark.models.base import ModelFamily, SampleResult, TrainedModel
from benchmark.models.store import family_for
from benchmark.progress import line
from benchmark.record import (
    AUDIT,
    AUDIT_REUSED,
    BASE_MODEL,
    BATCH_SIZE,
    CASE_ID,
    CHANNELS_LAST,
    CIRCULAR,
    COMPILED,
    DATASET,
    DEVICE,
    FAMILY,
    FINAL_LOSS,
    IMAGES_PER_SECOND,
    LOSS_HISTORY,
    METRIC_SECONDS,
    METRIC_SKIPPED,
    MITIGATION,
    MITIGATION_ADDRESSES,
    MITIGATION_ENTRY,
    MITIGATION_PARAMS,
    MODEL_KEY,
    MODEL_REUSED,
    MODEL_SOURCE,
    N_GEN,
    N_TRAIN,
    NFE_PER_IMAGE,
    NFE_TOTAL,
    PARAM_COUNT,
    PRECISION,
    RECORDED,
    SAMPLE_SECONDS,
    SAMPLER,
    SAMPLER_STEPS,
    SEEDS,
    TF32,
    THREADS,
    TRAIN_PRECISION,
    TRAIN_SECONDS,
    TRAIN_STEPS,
    check_entries,
)
from benchmark.session import Session
from benchmark.speed import Speed
from benchmark.tiers import with_mitigation_training

log = logging.getLogger("memobench")


@dataclass
class AuditResult:
    """One audited case.

    Attributes:
        samples: the case's generated images and their cost.
        metrics: the case's record: identity, cost, and every metric's entries.
        data: the split the case was measured on.
        reused: whether the audit came from the cache.
    """

    case: CaseConfig
    samples: SampleResult
    metrics: dict[str, Any] = field(default_factory=dict)
    data: ImageDataset | None = None
    reused: bool = False


def run_case(case: CaseConfig, session: Session, model: TrainedModel | None = None) -> AuditResult:
    """Audit ``case``: its model (trained, cached, or ``model`` when given, e.g. a user's
    checkpoint), samples through its mitigation, and every registered metric.

    Audited once per session; stored in ``session.cache`` and reused while the case,
    model weights, detectors, feature extractor, counts, device type and code are
    unchanged (``reaudit`` in the run's settings measures again). The run's settings
    apply here (a rehearsal's counts, the training precision: ``RunSettings.scaled``),
    so a case given unscaled is measured as the run says.
    """
    case = with_mitigation_training(session.settings.scaled(case))
    memo = (case, model.key if model is not None else None)
    if memo in session.log.audits:
        return session.log.audits[memo]
    if model is None:
        family_for(case.model).check_sampler(case.sampler)  # before the model trains
        model = session.model(case.model, case.train, case.data)
    model = session.fast(model)  # the network as the run's speed switches call it
    data = session.dataset(case.data)
    key = case_audit_key(case, session, model.key, model.family)
    failure = session.log.failed.get(key)
    if failure is not None:  # the worker's error, not a second identical attempt
        err = failure.error
        err.add_note(
            f"case {case.case_id}: raised while a worker process audited it; the same "
            f"inputs give the same error, so it was not sampled again"
        )
        raise err
    here = key in session.log.audited  # stored moments ago by a worker process
    start = time.perf_counter()
    payload, reused = session.cache.get_or_create(
        "audits",
        key,
        lambda: _stored(audit_case(case, model, data, session)),
        what=f"audit {case.case_id}",
        rebuild=session.settings.reaudit and not here,
    )
    seconds = time.perf_counter() - start
    if here or reused:
        how = "audited by a worker" if here else "stored audit reused"
        line(f"case {case.case_id}: {how} (loaded in {seconds:.0f} s)")
    else:
        line(f"case {case.case_id}: audited in {seconds:.0f} s")
    images = payload["images"].float() / 127.5 - 1  # stored as uint8
    samples = SampleResult(images, payload["seeds"], payload["nfe"], payload["seconds"])
    metrics = dict(payload["metrics"])
    metrics[AUDIT_REUSED] = reused and not here
    result = AuditResult(case, samples, metrics, data, reused and not here)
    session.log.audits[memo] = result
    return result


def audit_case(
    case: CaseConfig, model: TrainedModel, data: ImageDataset, session: Session
) -> AuditResult:
    """The audit itself, uncached: generate, then each metric in order."""
    mitigation = make_mitigation(case)
    context = MitigationContext(
        data=data,
        cache=session.cache,
        features=lambda: session.extractor(case.data),  # built if the mitigation needs it
        device=session.device,
        progress=session.progress,
        seed=case.seed,
    )

    prepared = mitigation.prepare(model, context)

    def sample() -> SampleResult:
        return mitigation.generate(
            model,
            prepared,
            case_seeds(case),
            case.sampler,
            device=session.device,
            progress=session.progress,
            batch_size=session.batch_size(model, SAMPLE_BATCH),
        )

    samples = retry_on_oom(sample, session, model, f"case {case.case_id}: sampling")
    batch = session.batch_size(model, SAMPLE_BATCH)
    record = measure(case, model, samples)
    record.update(speed_record(session.settings.speed, batch))
    record[SEEDS] = {
        "split": case.data.split_seed,
        "saf": case.data.saf_seed,
        "train": case.train.seed,
        "case": case.seed,
        "detectors": session.detector_config.seed,
    }
    record[THREADS] = torch.get_num_threads()
    record[DEVICE] = device_name(session.device)
    record[MITIGATION_ADDRESSES] = list(mitigation.addresses)
    record[CIRCULAR] = [str(k) for k in mitigation.uses]
    # what the mitigation did while drawing the samples
    record.update({MITIGATION_ENTRY(entry=k): v for k, v in samples.mitigation.items()})
    check_entries("the audit", record, AUDIT)
    for metric in case_metrics():
        inputs = AuditInputs(
            case, model, data, samples, mitigation, session, dict(record), prepared
        )
        reason = metric.skip_reason(inputs)
        if reason is not None:
            record[METRIC_SKIPPED(metric=metric.name)] = reason
            continue
        start = time.perf_counter()
        entries = retry_on_oom(
            lambda inputs=inputs, metric=metric: metric.compute(inputs),
            session,
            model,
            f"case {case.case_id}: metric {metric.name}",
        )
        # a metric may withhold part of its figures itself: <name>_skipped says why
        check_entries(
            f"metric {metric.name!r} ({type(metric).__qualname__})",
            entries,
            (*metric.fields, METRIC_SKIPPED),
        )
        record.update(entries)
        record[METRIC_SECONDS(metric=metric.name)] = time.perf_counter() - start
    record[BATCH_SIZE] = session.batch_size(model, SAMPLE_BATCH)  # after any halving
    return AuditResult(case, samples, record, data)


def retry_on_oom(call, session: Session, model: TrainedModel, what: str):
    """``call()``, again with every batch of ``model`` halved after each CUDA
    out-of-memory error (said once per call site in the log), until it fits or the
    batch is at its floor (``Batches.halve`` raises then)."""
    said = False
    while True:
        try:
            return call()
        except torch.cuda.OutOfMemoryError:
            if session.device.type == "cuda":
                torch.cuda.empty_cache()
            batch = session.batches.halve(model)
            if not said:
                log.warning("%s: out of memory, retrying with smaller batches", what)
                line(f"{what}: out of GPU memory; retried with at most {batch} images per call")
                said = True


def _stored(result: AuditResult) -> dict[str, Any]:
    images = ((result.samples.images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return {
        "images": images,
        "seeds": result.samples.seeds,
        "nfe": result.samples.nfe,
        "seconds": result.samples.seconds,
        "metrics": result.metrics,
    }


@functools.cache
def code_fingerprint(*objects) -> str:
    """Hash of memobench's sources (its suites and pytest plugin included) and the files
    defining ``objects`` (plugins): any change to the code that measures invalidates
    stored audits. Files count by name and content, so where the package is installed
    does not change the key.

    Taken once per process, so an edit made while a run goes on does not key that
    run's audits (measured by the code as loaded) on the edited files.
    """
    package = Path(__file__).parent  # the benchmark package
    files = sorted(package.rglob("*.py"))
    for obj in objects:
        source = inspect.getsourcefile(obj)
        if source:
            files.append(Path(source))
    h = hashlib.sha256()
    for f in files:
        h.update(str(f.name).encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


def case_audit_key(case: CaseConfig, session: Session, model_key: str, family: ModelFamily) -> str:
    """The stored audit's key of ``case`` on the model ``model_key`` in ``session``."""
    return audit_key(
        case,
        session.settings.resolve(case.data),
        model_key,
        session.detector_config,
        session.settings.feature_space(),
        session.counts,
        session.device.type,
        family,
        (session.settings.speed, session.settings.batch_size),
    )


def audit_key(
    case: CaseConfig,
    data: DataConfig,
    model_key: str,
    detectors: DetectorConfig,
    feature_space: str | None,
    counts: Any,
    device_type: str,
    family: ModelFamily,
    speed: tuple[Speed, int | None] = (Speed(), None),
) -> str:
    """The cache key of a case's stored audit: everything that determines its figures
    (the case, its data, the model's weights, the detectors' and feature extractor's
    settings, the audit's counts, the device type, the speed switches and an explicit
    batch size, and the measuring code)."""
    plugins = [registry.mitigations.get(case.mitigation.name)]
    plugins += [registry.attacks.get(n) for n in registry.attacks.names()]
    plugins += metric_classes()
    plugins.append(type(family))  # the family that made the model (a plugin's own file)
    versions = [(getattr(p, "name", "?"), getattr(p, "version", "1")) for p in plugins]
    return stable_hash(
        "audit",
        case,
        data,
        model_key,
        detectors,
        feature_space or "classifier-features",
        counts,
        device_type,
        speed,
        versions,
        library_versions(*AUDIT_LIBRARIES),
        code_fingerprint(*plugins),
    )


def make_mitigation(case: CaseConfig) -> Mitigation:
    return registry.mitigations.get(case.mitigation.name)(**case.mitigation.kwargs)


def case_seeds(case: CaseConfig) -> torch.Tensor:
    """One seed per generated image: image i of every case with the same ``seed`` shares noise."""
    return torch.arange(case.n_gen, dtype=torch.long) + case.seed * 1_000_003


SAMPLE_BATCH = 256  # images per sampling call on the CPU (and the least on a GPU)


def speed_record(speed: Speed, batch: int) -> dict[str, Any]:
    """The speed switches the case was sampled and attacked with, and its batch."""
    return {
        PRECISION: speed.precision,
        TF32: speed.tf32,
        CHANNELS_LAST: speed.channels_last,
        COMPILED: speed.compile,
        BATCH_SIZE: batch,
    }


def base_model(case: CaseConfig, model: TrainedModel) -> str:
    """The setup ``case``'s model was trained from, apart from what a training-time
    mitigation sets for itself (DP-SGD: its hook, its step count and batch): equal for
    `none` and DP-SGD of one family, data, network and optimizer. A loaded checkpoint
    is its own base."""
    if model.stats.get("source", "trained") != "trained":
        return model.key
    base_train = dataclasses.replace(case.train, mitigation=None, steps=1, batch_size=1)
    return stable_hash("base-model", case.model, base_train, case.data)


def measure(case: CaseConfig, model: TrainedModel, samples: SampleResult) -> dict[str, Any]:
    """The case's identity and cost: the record every metric adds to."""
    images = samples.images
    if not torch.isfinite(images).all():
        raise FloatingPointError(f"case {case.case_id}: the sampler returned non-finite images")
    stats = model.stats
    return {
        CASE_ID: case.case_id,
        FAMILY: case.model.family,
        DATASET: case.data.name,
        N_TRAIN: case.data.n_train,
        MITIGATION: case.mitigation.name,
        MITIGATION_PARAMS: dict(case.mitigation.params),
        SAMPLER: case.sampler.name,
        SAMPLER_STEPS: case.sampler.num_steps,
        N_GEN: int(images.shape[0]),
        TRAIN_SECONDS: stats.get("train_seconds"),
        TRAIN_STEPS: stats.get("train_steps"),
        TRAIN_PRECISION: case.train.precision,
        FINAL_LOSS: stats.get("final_loss"),
        LOSS_HISTORY: stats.get("loss_history"),
        PARAM_COUNT: stats.get("param_count"),
        MODEL_REUSED: bool(stats.get("reused", False)),
        MODEL_SOURCE: stats.get("source", "trained"),
        MODEL_KEY: model.key,
        BASE_MODEL: base_model(case, model),
        NFE_PER_IMAGE: samples.nfe,
        NFE_TOTAL: samples.nfe * int(images.shape[0]),
        SAMPLE_SECONDS: samples.seconds,
        IMAGES_PER_SECOND: samples.images_per_second,
        RECORDED: time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
