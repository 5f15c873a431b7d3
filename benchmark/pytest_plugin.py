"""The memobench pytest plugin (``pytest11`` entry point), in pytest-benchmark's manner.

Options live in one group with one prefix (``--memobench-*``); markers are
registered here and ``--strict-markers`` is on. ``gpu`` cases skip with a
reason where there is no CUDA device; ``paper`` cases skip unless the paper
tier is asked for. The results JSON is pytest-benchmark's, with memobench's
versions and settings added.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from benchmark import options, progress  # noqa: F401  (progress keeps stderr before pytest captures it)
from benchmark.errors import MemobenchError
from benchmark.options import (
    PYTEST_PREFIX,
    add_to_pytest,
    check_values,
    parse_shard,
    set_on_config,
)
from benchmark.speed import Speed
from benchmark.tiers import PAPER, SMOKE, TIER_MARKERS, VALIDATION, tier_runs

MARKERS = {
    **TIER_MARKERS,
    "gpu": "needs a CUDA GPU; skipped with a reason where there is none",
    "slow": "slow test (minutes)",
    "science": "asserts a finding (memorization, a mitigation's effect); skipped under "
    "--memobench-rehearse, whose few training steps cannot show one",
    "across_cases": "asserts a finding across several paper cases (a trend with N_train); "
    "left out of a sharded run, where a shard holds only its own cases: run it unsharded "
    "with the shards' cache",
}


def pytest_addoption(parser: pytest.Parser) -> None:
    add_to_pytest(parser.getgroup("memobench", "memobench benchmark"))


GIVEN = "memobench_given"  # pytest-xdist: the run's given values in each worker's input


class GivenOptions:
    """The values ``memobench run`` was given ({option name: value}), put into pytest's
    config before the plugin reads them: the command passes settings, not flags.
    pytest-xdist workers parse the command line again, so the values also travel in
    each worker's input and the plugin puts them into the worker's config."""

    def __init__(self, values: dict) -> None:
        self.values = dict(values)

    @pytest.hookimpl(tryfirst=True)
    def pytest_configure(self, config: pytest.Config) -> None:
        set_on_config(config, self.values)

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node) -> None:
        node.workerinput[GIVEN] = self.values


def option_getter(config: pytest.Config):
    """option name -> its value in ``config`` (``"device"`` -> ``--memobench-device``)."""
    return lambda name: config.getoption(PYTEST_PREFIX + name)


@pytest.fixture(scope="session")
def memobench_session(request: pytest.FixtureRequest):
    """The run's ``benchmark.session.Session``, built once from the ``--memobench-*``
    options: their frozen ``RunSettings`` (``benchmark.options.run_settings``) and the
    memo that trains or loads each model, detector pair and feature extractor once.
    Shipped in the plugin, so a user's own test files get it from ``pip install``."""
    import os

    from benchmark.device import session_device
    from benchmark.options import run_settings
    from benchmark.session import Session

    get = option_getter(request.config)
    worker = os.environ.get("PYTEST_XDIST_WORKER")  # under pytest-xdist: one GPU each
    device = str(session_device(get("device"), worker, get("rehearse")))
    return Session(settings=run_settings(get, device=device))


@pytest.fixture
def memobench_seed() -> int:
    """The seed of the case a test audits: 0, or each of 0..K-1 under
    ``--memobench-seeds K`` (``pytest_generate_tests`` parametrizes it then; a test
    passes it to ``benchmark.tiers.seeded``)."""
    return 0


@pytest.hookimpl(trylast=True)  # after the parametrize marks: the seed's id comes last
def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Under ``--memobench-seeds K`` (K > 1, or the paper tier's default on a GPU) every
    case that takes ``memobench_seed`` runs once per seed, ids ``seed0`` ... ``seed<K-1>``
    after its own; at one seed the node ids stay as they are."""
    if "memobench_seed" not in metafunc.fixturenames:
        return
    from benchmark.options import seeds
    from benchmark.tiers import seed_ids

    ids = seed_ids(seeds(option_getter(metafunc.config)))
    if ids:
        metafunc.parametrize("memobench_seed", range(len(ids)), ids=ids)


def _is_case(item: pytest.Item) -> bool:
    """A benchmark case (marked with a tier: smoke, paper, validation), as opposed to a
    plain test."""
    if item.get_closest_marker("across_cases") is not None:
        return False
    return any(item.get_closest_marker(m) is not None for m in TIER_MARKERS)


@pytest.hookimpl(trylast=True)  # after -m / -k deselection: shard what is selected
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """With --memobench-shard K/N keep the K-th of N round-robin shares of the benchmark
    cases (tier-marked, in node-id order, so every runner agrees and ``memobench
    plan --shard K/N`` lists the same cases); tests across cases are left out (each
    would audit every other shard's cases); other tests stay."""
    from benchmark.tiers import shard_index

    shard = parse_shard(config.getoption("--memobench-shard"))
    if shard is None:
        return
    k, n = shard

    def base(item: pytest.Item) -> str:  # pytest-xdist's loadgroup appends "@<group>"
        return item.nodeid.split("@")[0]

    cases = sorted(base(it) for it in items if _is_case(it))
    mine = {nodeid for nodeid in cases if shard_index(cases, nodeid, n) == k}
    keep, drop = [], []
    for it in items:
        across = it.get_closest_marker("across_cases") is not None
        (keep if not across and (not _is_case(it) or base(it) in mine) else drop).append(it)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def check_dataset_option(name: str, root: str | None, cache_root: str | None) -> None:
    """Refuse an unusable ``--memobench-dataset`` before any case runs.

    Raises:
        MemobenchError: unknown name, missing or malformed file, or fewer images than the
            smoke tier's largest N_train (the message names the file and the fix).
    """
    from benchmark.cache import default_root
    from benchmark.data.base import check_source
    from benchmark.tiers import SMOKE_N_TRAIN

    check_source(name, root, default_root(cache_root), min_train=max(SMOKE_N_TRAIN))


def check_run_options(device: str | None, model_path: str | None, rehearse: bool) -> None:
    """Refuse a device this machine lacks and a model folder that is not there, before any
    case runs (each would otherwise fail every case with a traceback).

    Raises:
        MemobenchError: the device or the folder, what was wrong, and what to do.
    """
    from benchmark.device import resolve_device
    from benchmark.errors import CheckpointError

    if not rehearse:  # a rehearsal runs on the CPU whatever was asked
        resolve_device(device or "auto")
    if model_path and not Path(model_path).expanduser().is_dir():
        raise CheckpointError(
            f"--memobench-model-path {model_path}: no such folder; pass the folder that "
            f"DDPMPipeline.save_pretrained or UNet2DModel.save_pretrained wrote"
        )


def speed_from_options(config: pytest.Config) -> Speed:
    """The run's speed switches from its options (``benchmark.options.speed``: the paper
    tier's defaults on a GPU where an option is left out)."""
    return options.speed(option_getter(config))


def check_options(config: pytest.Config) -> None:
    """Every ``--memobench-*`` value that can be checked before a case runs.

    Raises:
        MemobenchError: the option, what was wrong, and the fix.
    """
    from benchmark import registry

    check_values(option_getter(config), PYTEST_PREFIX)
    model_path = config.getoption("--memobench-model-path")
    check_run_options(
        config.getoption("--memobench-device"), model_path, config.getoption("--memobench-rehearse")
    )
    if model_path:
        registry.models.get(config.getoption("--memobench-model-family"))
        registry.datasets.get(config.getoption("--memobench-model-dataset"))
    dataset = config.getoption("--memobench-dataset")
    if dataset != "digits":
        try:
            check_dataset_option(
                dataset,
                config.getoption("--memobench-data-root"),
                config.getoption("--memobench-cache"),
            )
        except MemobenchError as err:
            raise type(err)(f"--memobench-dataset {dataset}: {err}") from err


def pytest_configure(config: pytest.Config) -> None:
    given = getattr(config, "workerinput", {}).get(GIVEN)
    if given:  # a pytest-xdist worker of `memobench run`
        set_on_config(config, given)
    for name, text in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {text}")
    try:
        check_options(config)
    except MemobenchError as err:
        # one line, ``Exit: memobench: error: ...``, before anything is collected, and
        # exit code 2 as ``memobench`` itself uses for a bad input
        pytest.exit(f"memobench: error: {err}", returncode=2)
    from benchmark import workers

    workers.register(config)  # pytest-xdist: groups, a GPU per worker, one results file
    results = config.getoption("--memobench-results")
    if results and getattr(config.option, "benchmark_json", None) is None:
        path = Path(results)
        path.parent.mkdir(parents=True, exist_ok=True)
        config.option.benchmark_json = path


def pytest_runtest_setup(item: pytest.Item) -> None:
    tier = item.config.getoption("--memobench-tier")
    if item.get_closest_marker(PAPER) and not tier_runs(tier, PAPER):
        pytest.skip("paper tier: run with --memobench-tier paper (on a GPU)")
    if item.get_closest_marker(SMOKE) and not tier_runs(tier, SMOKE):
        pytest.skip(f"smoke tier case; --memobench-tier is {tier}")
    if item.get_closest_marker(VALIDATION) and not tier_runs(tier, VALIDATION):
        pytest.skip("validation tier: run with --memobench-tier validation (about 15 CPU minutes)")
    if item.get_closest_marker("science") and item.config.getoption("--memobench-rehearse"):
        pytest.skip(
            "a rehearsal runs the code path with a few training steps, so it cannot show "
            "this finding; run without --memobench-rehearse to measure it"
        )
    # a check across cases that reads records other runs wrote (--memobench-records)
    # audits nothing, so it needs no GPU
    reads = item.get_closest_marker("across_cases") and item.config.getoption("--memobench-records")
    rehearse = item.config.getoption("--memobench-rehearse")
    if item.get_closest_marker("gpu") and not rehearse and not reads:
        import torch

        if not torch.cuda.is_available():
            pytest.skip("needs a CUDA GPU; torch.cuda.is_available() is False on this machine")


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus):
    """Before pytest-benchmark writes the results file: leave out a case that was cut off
    mid-run (Ctrl-C, a crash) and so has no timing, so the finished cases' results are
    still written (pytest-benchmark fails on an empty timing: 'min() arg is an empty
    sequence', and wrote nothing)."""
    bench = getattr(session.config, "_benchmarksession", None)
    if bench is not None:
        cut = [b for b in bench.benchmarks if not b]
        if cut:
            bench.benchmarks[:] = [b for b in bench.benchmarks if b]
            names = ", ".join(b.name for b in cut)
            print(
                f"memobench: {len(cut)} case(s) cut off before they finished, left out of "
                f"the results: {names}",
                file=sys.stderr,
            )
    yield


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    from benchmark.models.store import EVENTS

    if not EVENTS:
        return
    tr = terminalreporter
    tr.section("memobench models")
    for event, family, key, path in EVENTS:
        verb = "reused from the cache" if event == "reused" else "trained and cached"
        tr.write_line(f"{family} {key}: {verb} ({path})")


def pytest_benchmark_update_json(config: pytest.Config, benchmarks, output_json) -> None:
    import diffusers
    import torch

    import benchmark
    from benchmark.environment import environment

    output_json["memobench"] = {
        "version": benchmark.__version__,
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "tier": config.getoption("--memobench-tier"),
        # a rehearsal's figures come from models trained a few steps: never a result
        "rehearsal": bool(config.getoption("--memobench-rehearse")),
        "dataset": config.getoption("--memobench-dataset"),
        "device": config.getoption("--memobench-device"),
        # the current device's name: a worker's own GPU (each case also records its device)
        "cuda": torch.cuda.get_device_name(torch.cuda.current_device())
        if torch.cuda.is_available()
        else None,
        # what explains two runs' figures differing (compare_runs.py prints it)
        "environment": environment(),
    }
