"""Runs on several pytest-xdist workers: one per GPU, cases grouped by model, one results file.

``memobench run -- -n 4 --dist loadgroup`` (or ``pytest -n 4 --dist loadgroup``)
spreads the cases over four worker processes:

- each worker takes one GPU (``benchmark.device.worker_device``: ``gw0`` -> ``cuda:0``,
  round-robin when there are more workers than GPUs);
- each case is in the xdist group of the model it audits (family, dataset, N_train, and
  the mitigation where it changes training), so
  ``--dist loadgroup`` keeps the cases of a model on one worker and trains it there
  once (the cache's per-key lock covers whatever still meets, e.g. a test that compares
  two models);
- pytest-benchmark turns itself off under xdist, so each worker sends its cases' records
  to the controller with the test reports (``user_properties``), and the controller
  writes them as one pytest-benchmark results file, the same format a serial run writes.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from benchmark import registry
from benchmark.cache import atomic_write
from benchmark.record import CASE_ID

RECORD_PROPERTY = "memobench_record"


def is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def xdist_active(config: pytest.Config) -> bool:
    """Whether this run distributes tests (on the controller; workers say ``is_worker``)."""
    return getattr(config.option, "dist", "no") != "no"


def model_group(item: pytest.Item) -> str | None:
    """The xdist group of a case: the model it audits, from its parameters (``family``,
    ``n_train``, its ``dataset`` or the run's); a paper case has a model of its own, so
    a group of its own; None for a test with no ``family`` parameter."""
    params = getattr(getattr(item, "callspec", None), "params", {})
    family = params.get("family")
    if not isinstance(family, str):
        return None
    if item.get_closest_marker("paper") is not None:
        return f"paper-{item.name}"  # e.g. paper-test_medmnist_table2[ddim-chestmnist]
    dataset = params.get("dataset") or item.config.getoption("--memobench-dataset") or "default"
    size = params.get("n_train", "any")  # a test comparing a family's sizes: its own group
    group = f"{family}-{dataset}-{size}"
    mitigation = params.get("mitigation")
    if isinstance(mitigation, str) and _changes_training(mitigation, params.get("params")):
        group += f"-{mitigation}"  # a training-time mitigation (DP-SGD) has its own model
    return group


def _changes_training(name: str, params: Any) -> bool:
    try:
        return registry.mitigations.get(name)(**dict(params or {})).changes_training
    except Exception:  # an unknown name or bad parameters fail in the case itself
        return False


class WorkerHooks:
    """Registered by the memobench plugin when pytest-xdist is installed."""

    @pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        for item in items:
            group = model_group(item)
            if group is not None and item.get_closest_marker("xdist_group") is None:
                item.add_marker(pytest.mark.xdist_group(group))

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo):
        outcome = yield
        if call.when == "call" and is_worker(item.config):
            send_record(item, outcome.get_result())


def register(config: pytest.Config) -> None:
    """Hook memobench into pytest-xdist, if it is installed: groups and device per worker
    on every process, and on the controller of a distributed run the results file."""
    if not config.pluginmanager.hasplugin("xdist"):
        return
    config.pluginmanager.register(WorkerHooks(), "memobench-workers")
    if is_worker(config):
        share_cores(int(config.workerinput.get("workercount", 1)))
    results = config.getoption("--memobench-results")
    if results and xdist_active(config) and not is_worker(config):
        config.pluginmanager.register(GatheredResults(config, Path(results)), "memobench-gather")


def share_cores(workers: int) -> int:
    """Give this process its share of the CPU cores for torch's threads, when ``workers``
    processes run at once (two xdist workers on 2 cores: one thread each, not two each
    contending for both); returns the threads."""
    import os

    import torch

    threads = max(1, (os.cpu_count() or 1) // max(1, workers))
    torch.set_num_threads(threads)
    return threads


def send_record(item: pytest.Item, report: pytest.TestReport) -> None:
    """On a worker: attach the case's record (the ``benchmark`` fixture's ``extra_info``)
    to its report, as plain JSON (execnet sends only builtin types)."""
    bench = getattr(item, "funcargs", {}).get("benchmark")
    extra = getattr(bench, "extra_info", None)
    if isinstance(extra, dict) and CASE_ID in extra:
        plain = json.loads(json.dumps(extra, default=str))
        report.user_properties.append((RECORD_PROPERTY, plain))


class GatheredResults:
    """On the controller: the records the workers sent, written as one results file."""

    def __init__(self, config: pytest.Config, path: Path) -> None:
        self.config, self.path = config, path
        self.records: list[tuple[str, dict[str, Any]]] = []

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        for name, value in report.user_properties:
            if name == RECORD_PROPERTY:
                self.records.append((report.nodeid, value))

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if not self.records:
            return
        import pytest_benchmark

        config = self.config
        bench_session = getattr(config, "_benchmarksession", None)
        machine = bench_session.get_machine_info() if bench_session is not None else {}
        commit = config.hook.pytest_benchmark_generate_commit_info(config=config)
        doc: dict[str, Any] = {
            "machine_info": machine,
            "commit_info": commit,
            "benchmarks": [
                {
                    "name": nodeid.split("::")[-1].split("@")[0],
                    "fullname": nodeid.split("@")[0],
                    "group": None,
                    "params": None,
                    "stats": {},  # no timing under xdist; the record has its own seconds
                    "extra_info": record,
                }
                for nodeid, record in sorted(self.records, key=lambda r: r[0])
            ],
            "datetime": datetime.now(UTC).isoformat(),
            "version": pytest_benchmark.__version__,
            "xdist": True,
        }
        config.hook.pytest_benchmark_update_json(config=config, benchmarks=[], output_json=doc)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(self.path, lambda tmp: tmp.write_text(json.dumps(doc, indent=2)))
