"""Build a run's models, classifiers and audits ahead of its cases, in parallel processes.

On the CPU, ``prefetch(session, specs, cases)`` trains the uncached models, the
audits' small classifiers and the unstored audits in the training pool
(``benchmark.pool``), each audit once its model and classifiers are stored, so
both cores work until the last audit ends. A case's own ``run_case`` then loads its
audit. The session's ``log`` (``RunLog``) remembers what its workers built.
"""

from __future__ import annotations

from dataclasses import replace as replace_config

from benchmark import registry
from benchmark.audit import case_audit_key, run_case
from benchmark.cache import Cache
from benchmark.config import CaseConfig, DataConfig, DetectorConfig
from benchmark.data import load_dataset
from benchmark.detectors.detector import get_detector
from benchmark.measures.features import classifier_features
from benchmark.models.store import family_for, model_key
from benchmark.pool import BuildJob, JobFailure, TrainSpec, train_many
from benchmark.session import Session
from benchmark.settings import RunSettings
from benchmark.tiers import shadow_training, with_mitigation_training


def prefetch(session: Session, specs: list, cases: list[CaseConfig] = ()) -> None:
    """Train the uncached models among ``specs`` (``TrainSpec``) and audit the unstored
    ``cases`` in parallel processes, each audit once its model and classifiers are
    stored (CPU only; on a GPU they train and audit one after the other as cases need
    them). An audit that failed in a worker for a reason the same inputs give again
    (``JobFailure.deterministic``: a bad input, a setting) fails its case with that
    error without sampling again; any other failure is audited again in the case itself."""
    if session.device.type != "cpu":
        return
    cases = [with_mitigation_training(c) for c in cases]
    for case in cases:  # a sampler setting it refuses fails now, before any model trains
        family_for(case.model).check_sampler(case.sampler)
    specs = [replace_config(s, data=session.settings.resolve(s.data)) for s in specs]
    specs += [TrainSpec(c.model, c.train, session.settings.resolve(c.data)) for c in cases]
    jobs = classifier_jobs(session, [s.data for s in specs])
    specs += [_shadow_spec(session, c) for c in cases if c.shadow]  # no detectors of its own
    audits = audit_jobs(session, cases, jobs)
    trained, done = train_many(
        specs, session.cache, session.progress, jobs=jobs, after=tuple(audits)
    )
    session.log.trained.update(trained)
    for job, key in audits.items():
        outcome = done.get(job.what, None)
        if isinstance(outcome, JobFailure):
            if outcome.deterministic:
                session.log.failed[key] = outcome
        elif job.what in done:
            session.log.audited.add(key)


def audit_jobs(session: Session, cases: list[CaseConfig], classifiers: tuple) -> dict:
    """{job: audit key} for the pool: each case not yet stored (or every case under
    ``reaudit``), after its model and its split's classifiers."""
    jobs = {}
    for case in dict.fromkeys(cases):
        family = family_for(case.model)
        model = model_key(family, case.train, session.dataset(case.data))
        key = case_audit_key(case, session, model, family)
        if key in session.log.audited or key in jobs.values():
            continue
        if not session.settings.reaudit and session.cache.path("audits", key).exists():
            continue
        data = session.settings.resolve(case.data)
        needs = (TrainSpec(case.model, case.train, data),)
        needs += (_shadow_spec(session, case),) if case.shadow else ()
        needs += tuple(j.what for j in classifiers if data in j.args or data.name in j.args)
        args = (session.worker_settings(), case)
        jobs[BuildJob(f"audit {case.case_id}", store_audit, args, needs, False)] = key
    return jobs


def _shadow_spec(session: Session, case: CaseConfig) -> TrainSpec:
    """The training of ``case``'s shadow model (``tiers.shadow_training``)."""
    train, data = shadow_training(case)
    return TrainSpec(case.model, train, session.settings.resolve(data))


def classifier_jobs(session: Session, splits: list[DataConfig]) -> tuple:
    """The small classifiers the audits of ``splits`` need (C_SAF and C_ID per
    fingerprinted split, the feature classifier per dataset), as jobs for the training
    pool: built with the same functions and keys as ``Session.detectors`` and
    ``Session.extractor``."""
    root, jobs = str(session.cache.root), []
    for data in dict.fromkeys(splits):
        if data.saf:
            for kind in ("saf", "id"):
                what = f"C_{kind.upper()} {data.name} {data.n_train}"
                args = (kind, session.detector_config, data, root)
                jobs.append(BuildJob(what, store_detector, args))
    if not session.settings.feature_space():
        for name, data_root in dict.fromkeys((d.name, d.root) for d in splits):
            args = (name, data_root, root, session.counts.feature_steps)
            jobs.append(BuildJob(f"features {name}", store_features, args))
    return tuple(jobs)


def store_detector(kind: str, cfg: DetectorConfig, data: DataConfig, cache_root: str) -> None:
    """Train and store C_SAF or C_ID for ``data`` (a training-pool job)."""
    cache = Cache(cache_root)
    get_detector(kind, cfg, load_dataset(data, cache_root=cache.root), cache, "cpu", False)


def store_audit(settings: RunSettings, case: CaseConfig) -> None:
    """Audit ``case`` into the cache in a session made from ``settings`` (a pool job)."""
    run_case(case, Session(settings=settings))


def store_features(name: str, data_root: str | None, cache_root: str, steps: int) -> None:
    """Train and store the dataset's feature classifier (a training-pool job)."""
    cache = Cache(cache_root)
    source = registry.datasets.get(name)(root=data_root, cache_root=cache.root)
    classifier_features(source, cache, steps=steps, device="cpu", progress=False)
