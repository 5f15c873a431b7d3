"""Build several cache entries at once, one process each, each after what it needs.

These models are small: on a 2-core CPU a second thread speeds one training
step up by less than 10% (measured: 149 vs 163 ms per batch-64 step of the
smoke UNet), so two single-threaded processes finish a session's models
nearly twice as fast as training them one after the other. The same holds for
the small classifiers every audit needs (C_SAF, C_ID, the feature classifier)
and for the audits themselves (a smoke case's sampling gains 1.66x from a second
thread, its attacks, t* search and likelihood much less). So the pool trains the
models (longest first), then the classifiers, and audits each case as soon as its
model and classifiers are stored: both cores stay busy until the last audit ends.
On a GPU, everything stays in this process, one after another.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import time
from collections.abc import Callable, Hashable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

import torch

from benchmark.cache import Cache
from benchmark.config import DataConfig, ModelConfig, TrainConfig
from benchmark.data import load_dataset
from benchmark.errors import DeviceError, MemobenchError
from benchmark.models.store import EVENTS, family_for, get_trained, is_cached
from benchmark.progress import line

log = logging.getLogger("memobench.pool")


@dataclass(frozen=True)
class TrainSpec:
    model: ModelConfig
    train: TrainConfig
    data: DataConfig


@dataclass(frozen=True, eq=False)
class BuildJob:
    """A cache entry for the pool to build beside the models.

    Attributes:
        what: how the log names it; unique among a pool's jobs (``needs`` names jobs by it).
        build: a module-level function (the pool pickles it by name) that builds the
            entry into the cache (``Cache.get_or_create``, so it is built once).
        args: its arguments, picklable.
        needs: what must be stored first: ``TrainSpec``s and other jobs' ``what``. A need
            that is not among the pool's models and jobs counts as stored.
        required: a failure stops the pool (else it is logged and the pool goes on; the
            entry's owner builds it again in its own process and fails there, e.g. an audit
            in its test case).
    """

    what: str
    build: Callable[..., Any]
    args: tuple
    needs: tuple[Hashable, ...] = ()
    required: bool = True


@dataclass(frozen=True)
class JobFailure:
    """A pool job's failure, returned among the results in place of its value.

    Attributes:
        error: the exception the job raised (unpickled from the worker).
        deterministic: the same inputs fail the same way (a ``MemobenchError``: a bad
            input or setting, a detector below its gate; a non-finite sample): the owner
            reports it instead of building the entry again.
    """

    what: str
    error: BaseException

    @property
    def deterministic(self) -> bool:
        if isinstance(self.error, DeviceError):  # free memory is shared: it may fit later
            return False
        return isinstance(self.error, (MemobenchError, FloatingPointError))


def _run_job(job: BuildJob, threads: int) -> Any:
    torch.set_num_threads(threads)
    return job.build(*job.args)


def _train_one(
    spec: TrainSpec, cache_root: str, threads: int, position: int, progress: bool
) -> tuple[str, bool]:
    """(model key, reused): reused when another process built it while this one waited."""
    torch.set_num_threads(threads)

    cache = Cache(cache_root)
    data = load_dataset(spec.data, cache_root=cache.root)
    model = get_trained(
        spec.model, spec.train, data, cache, device="cpu", progress=progress, position=position
    )
    return model.key, bool(model.stats.get("reused"))


def training_cost(spec: TrainSpec) -> int:
    """Images a training passes through the network: the pool starts the longest first."""
    return spec.train.steps * spec.train.batch_size


def train_many(
    specs: list[TrainSpec],
    cache: Cache,
    progress: bool = True,
    workers: int | None = None,
    jobs: tuple[BuildJob, ...] = (),
    after: tuple[BuildJob, ...] = (),
) -> tuple[list[TrainSpec], dict[str, Any]]:
    """Train the uncached ``specs`` on the CPU in parallel processes, with ``jobs`` (the
    classifiers) and ``after`` (the audits) in the same pool, each once its ``needs`` are
    stored. Returns (the specs trained, each finished job's result by its ``what``; a
    non-required job that failed has a ``JobFailure`` there).

    ``jobs`` run only when something else does (in a warm run their entries are stored
    and the audit loads them). Nothing runs in a pool for fewer than two tasks: the
    callers build that one in their own process.

    Raises whatever a required job or a training raised (a ``KeyboardInterrupt`` after
    the workers wrote their checkpoints, so a rerun resumes).
    """
    todo = []
    for spec in dict.fromkeys(specs):  # unique, in order
        data = load_dataset(spec.data, cache.root)
        family_for(spec.model).check_image_shape(data.image_shape)  # before any worker starts
        if not is_cached(spec.model, spec.train, data, cache):
            todo.append(spec)
    todo.sort(key=training_cost, reverse=True)  # stable: ties keep their order
    tasks: list[TrainSpec | BuildJob] = [*todo, *(jobs if todo or after else ()), *after]
    if len(todo) + len(after) < 2:
        return [], {}
    cores = os.cpu_count() or 1
    workers = max(1, min(workers or cores, len(tasks)))
    threads = max(1, cores // workers)
    more = len(tasks) - len(todo)  # the classifiers and the audits
    what = f"{len(todo)} models" + (f" and {more} more entries" if more else "")
    log.info("building %s in %d processes (%d thread(s) each)", what, workers, threads)
    line(f"building {what} in {workers} processes ({threads} thread(s) each)")
    names = {task if isinstance(task, TrainSpec) else task.what for task in tasks}
    done: set[Hashable] = set()
    results: dict[str, Any] = {}
    start = time.perf_counter()
    ctx = mp.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        running: dict[Any, TrainSpec | BuildJob] = {}
        position = 0
        while tasks or running:
            while len(running) < workers:  # start the first task whose needs are stored
                ready = next((t for t in tasks if _ready(t, names, done)), None)
                if ready is None:
                    break
                tasks.remove(ready)
                if isinstance(ready, TrainSpec):
                    args = (ready, str(cache.root), threads, position % workers, progress)
                    running[pool.submit(_train_one, *args)] = ready
                    position += 1
                else:
                    running[pool.submit(_run_job, ready, threads)] = ready
            if not running:  # what is left needs something that failed
                line(f"{len(tasks)} builds skipped: what they need failed")
                break
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                task = running.pop(future)
                elapsed = time.perf_counter() - start
                if isinstance(task, TrainSpec):
                    key, reused = future.result()
                    event = "reused" if reused else "trained"
                    EVENTS.append((event, task.model.family, key, str(cache.path("models", key))))
                    how = "another process trained it" if reused else "trained by a worker"
                    line(f"model {task.model.family} {key}: {how} ({elapsed:.0f} s in)")
                    done.add(task)
                    continue
                try:
                    results[task.what] = future.result()
                except Exception as error:
                    if task.required:
                        raise
                    failure = results[task.what] = JobFailure(task.what, error)
                    then = (
                        "the same inputs fail the same way"
                        if failure.deterministic
                        else "its owner builds it again"
                    )
                    line(f"{task.what}: failed in a worker ({type(error).__name__}: {error}); "
                         f"{then}")  # fmt: skip
                    continue
                done.add(task.what)
                line(f"{task.what}: built by a worker ({elapsed:.0f} s in)")
    return todo, results


def _ready(task: TrainSpec | BuildJob, names: set, done: set) -> bool:
    needs = task.needs if isinstance(task, BuildJob) else ()
    return all(need in done or need not in names for need in needs)
