"""Train several models at once, one process each, into the cache.

These models are small: on a 2-core CPU a second thread speeds one training
step up by less than 10% (measured: 149 vs 163 ms per batch-64 step of the
smoke UNet), so two single-threaded processes finish a session's models
nearly twice as fast as training them one after the other. The same holds for
the small classifiers every audit needs (C_SAF, C_ID, the feature classifier):
given as ``BuildJob``s they train in the same pool, after the models, instead of
one after the other in the audit. On a GPU, training stays in this process, one
model after another.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any

import torch

from benchmark.cache import Cache
from benchmark.config import DataConfig, ModelConfig, TrainConfig
from benchmark.data import load_dataset
from benchmark.progress import line

log = logging.getLogger("memobench.models")


@dataclass(frozen=True)
class TrainSpec:
    model: ModelConfig
    train: TrainConfig
    data: DataConfig


@dataclass(frozen=True)
class BuildJob:
    """A cache entry for the pool to build beside the models.

    Attributes:
        what: how the log names it.
        build: a module-level function (the pool pickles it by name) that builds the
            entry into the cache (``Cache.get_or_create``, so it is built once).
        args: its arguments, picklable.
    """

    what: str
    build: Callable[..., Any]
    args: tuple


def _run_job(job: BuildJob, threads: int) -> None:
    torch.set_num_threads(threads)
    job.build(*job.args)


def _train_one(
    spec: TrainSpec, cache_root: str, threads: int, position: int, progress: bool
) -> tuple[str, bool]:
    """(model key, reused): reused when another process built it while this one waited."""
    torch.set_num_threads(threads)
    from benchmark.models.store import get_trained

    cache = Cache(cache_root)
    data = load_dataset(spec.data, cache_root=cache.root)
    model = get_trained(
        spec.model, spec.train, data, cache, device="cpu", progress=progress, position=position
    )
    return model.key, bool(model.stats.get("reused"))


def train_many(
    specs: list[TrainSpec],
    cache: Cache,
    progress: bool = True,
    workers: int | None = None,
    jobs: tuple[BuildJob, ...] = (),
) -> list[TrainSpec]:
    """Train the uncached ``specs`` on the CPU in parallel processes; returns those trained.

    ``jobs`` run in the same pool after the models, when there are models to train (a
    cold run; in a warm one their entries are stored too and the audit loads them).

    Raises whatever a worker raised (a ``KeyboardInterrupt`` after the workers
    wrote their checkpoints, so a rerun resumes).
    """
    from benchmark.models.store import EVENTS, family_for, is_cached

    todo = []
    for spec in dict.fromkeys(specs):  # unique, in order
        data = load_dataset(spec.data, cache.root)
        family_for(spec.model).check_image_shape(data.image_shape)  # before any worker starts
        if not is_cached(spec.model, spec.train, data, cache):
            todo.append(spec)
    if len(todo) < 2:
        return []  # nothing to gain: the fixture trains it in-process
    cores = os.cpu_count() or 1
    workers = max(1, min(workers or cores, len(todo)))
    threads = max(1, cores // workers)
    log.info("training %d models in %d processes (%d thread(s) each)", len(todo), workers, threads)
    line(f"training {len(todo)} models in {workers} processes ({threads} thread(s) each)")
    start = time.perf_counter()
    ctx = mp.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        futures: dict[Any, TrainSpec | BuildJob] = {
            pool.submit(_train_one, spec, str(cache.root), threads, i % workers, progress): spec
            for i, spec in enumerate(todo)
        }
        futures.update({pool.submit(_run_job, job, threads): job for job in jobs})
        for future in as_completed(futures):
            spec = futures[future]
            if isinstance(spec, BuildJob):
                future.result()
                elapsed = time.perf_counter() - start
                line(f"{spec.what}: built by a worker ({elapsed:.0f} s in)")
                continue
            key, reused = future.result()
            event = "reused" if reused else "trained"
            EVENTS.append((event, spec.model.family, key, str(cache.path("models", key))))
            elapsed = time.perf_counter() - start
            how = "another process trained it" if reused else "trained by a worker"
            line(f"model {spec.model.family} {key}: {how} ({elapsed:.0f} s in)")
    return todo
