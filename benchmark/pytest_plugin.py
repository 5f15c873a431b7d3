"""The memobench pytest plugin (``pytest11`` entry point), in pytest-benchmark's manner.

Options live in one group with one prefix (``--memobench-*``); markers are
registered here and ``--strict-markers`` is on. ``gpu`` cases skip with a
reason where there is no CUDA device; ``paper`` cases skip unless the paper
tier is asked for. The results JSON is pytest-benchmark's, with memobench's
versions and settings added.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from benchmark import progress  # noqa: F401  (keeps stderr before pytest captures it)
from benchmark.config import PRECISIONS
from benchmark.errors import ConfigError, MemobenchError
from benchmark.speed import Speed, check_batch_size
from benchmark.tiers import PAPER, PAPER_GPU_SPEED, SMOKE, TIER_MARKERS, TIERS, tier_runs

MARKERS = {
    **TIER_MARKERS,
    "gpu": "needs a CUDA GPU; skipped with a reason where there is none",
    "slow": "slow test (minutes)",
    "science": "asserts a finding (memorization, a mitigation's effect); skipped under "
    "--memobench-rehearse, whose few training steps cannot show one",
}


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("memobench", "memobench benchmark")
    g.addoption(
        "--memobench-device", default="auto", help="auto (CUDA if present), cpu, cuda or cuda:N"
    )
    g.addoption(
        "--memobench-cache",
        default=None,
        help="cache folder (default $MEMOBENCH_CACHE or ~/.cache/memobench)",
    )
    g.addoption(
        "--memobench-data-root", default=None, help="folder with local data files (MedMNIST .npz)"
    )
    g.addoption(
        "--memobench-tier",
        default=SMOKE,
        choices=TIERS,
        help="which tier of cases runs: smoke (CPU), paper (GPU) or all",
    )
    g.addoption(
        "--memobench-rehearse",
        action="store_true",
        help="rehearse the tier's cases end to end on the CPU with every count scaled down "
        "(a few training steps, a handful of samples, short t* grids): the GPU path's code, "
        "networks, audit and leaderboard, in minutes; `gpu` cases run too",
    )
    g.addoption(
        "--memobench-dataset",
        default="digits",
        help="registered dataset the smoke tier's cases run on (default: digits); MedMNIST "
        "sets read <name>.npz from --memobench-data-root",
    )
    g.addoption(
        "--memobench-n-gen",
        type=int,
        default=None,
        help="number of generated samples per case (default: the tier's)",
    )
    g.addoption(
        "--memobench-results",
        default=None,
        help="write the run's results JSON (pytest-benchmark format) here",
    )
    g.addoption(
        "--memobench-reaudit",
        action="store_true",
        help="sample and measure every case again instead of reusing its stored audit "
        "(an audit is reused only when the case, model, detectors, extractor and code match)",
    )
    g.addoption(
        "--memobench-inception-weights",
        default=None,
        help="Inception-v3 FID weights file (pt_inception-2015-12-05-6726825d.pth): FID and "
        "replication use it instead of the dataset's own classifier features",
    )
    g.addoption(
        "--memobench-model-path",
        default=None,
        help="audit this diffusers checkpoint folder instead of training",
    )
    g.addoption(
        "--memobench-model-family", default="ddim", help="model family of --memobench-model-path"
    )
    g.addoption(
        "--memobench-shard",
        default=None,
        metavar="K/N",
        help="run only the K-th of N round-robin shares of the benchmark cases (one CI runner "
        "of N; merge the results files with `memobench report`)",
    )
    g.addoption(
        "--memobench-precision",
        default=None,
        choices=PRECISIONS,
        help="autocast of the network while sampling, t* and the attacks (default: bf16 for "
        "the paper tier on a GPU, with TF32; fp32 elsewhere)",
    )
    g.addoption(
        "--memobench-train-precision",
        default=None,
        choices=PRECISIONS,
        help="train every case's model with this autocast (default: the case's, fp32)",
    )
    g.addoption(
        "--memobench-tf32",
        action="store_const",
        const=True,
        dest="memobench_tf32",
        default=None,
        help="TF32 matmuls and convolutions (CUDA; the paper tier's default on a GPU); neither "
        "this nor --memobench-no-tf32: PyTorch's defaults (TF32 convolutions, IEEE matmuls)",
    )
    g.addoption(
        "--memobench-no-tf32",
        action="store_const",
        const=False,
        dest="memobench_tf32",
        help="strict IEEE fp32 for CUDA matmuls and convolutions",
    )
    g.addoption(
        "--memobench-channels-last",
        action="store_true",
        help="run the network in NHWC memory layout (faster convolutions on a GPU)",
    )
    g.addoption(
        "--memobench-compile",
        action="store_true",
        help="torch.compile the network for sampling, t* and the attacks",
    )
    g.addoption(
        "--memobench-batch-size",
        type=int,
        default=None,
        help="images per network call (default: as many as fit in half the free memory)",
    )
    g.addoption(
        "--memobench-tstar-curve",
        action="store_true",
        help="compute q_M(t) on the whole t* grid for the case pages (the seed paper's Fig. 6; "
        "about 10x the adaptive search's network evaluations)",
    )
    g.addoption(
        "--memobench-detector-steps",
        type=int,
        default=None,
        help="training steps of the fingerprint detectors C_SAF and C_ID (default: the "
        "tier's, 800 in the smoke tier); more steps for data they do not learn in 800",
    )
    g.addoption(
        "--memobench-detector-min-accuracy",
        type=float,
        default=None,
        help="held-out accuracy (and balanced accuracy) the detectors need for |q| and t* "
        "to be reported (default 0.95; 0 turns the gate off); below it only those two are "
        "withheld",
    )
    g.addoption(
        "--memobench-model-dataset",
        default="digits",
        help="dataset the --memobench-model-path model was trained on",
    )
    g.addoption(
        "--memobench-model-n-train",
        type=int,
        default=64,
        help="n_train of the split the --memobench-model-path model was trained on",
    )
    g.addoption(
        "--memobench-model-split-seed",
        type=int,
        default=0,
        help="split seed of the split the --memobench-model-path model was trained on",
    )


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """``"K/N"`` -> (K, N) with 1 <= K <= N; None for no sharding."""
    if text is None:
        return None
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not match or not 1 <= int(match[1]) <= int(match[2]):
        raise ConfigError(
            f"--memobench-shard must be K/N with 1 <= K <= N (e.g. 2/4 for the second of four "
            f"runners), got {text!r}"
        )
    return int(match[1]), int(match[2])


def _is_case(item: pytest.Item) -> bool:
    """A benchmark case (smoke- or paper-marked), as opposed to a plain test."""
    return any(item.get_closest_marker(m) is not None for m in TIER_MARKERS)


@pytest.hookimpl(trylast=True)  # after -m / -k deselection: shard what is selected
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """With --memobench-shard K/N keep the K-th of N round-robin shares of the benchmark
    cases (smoke/paper-marked, in node-id order, so every runner agrees and ``memobench
    plan --shard K/N`` lists the same cases); other tests stay."""
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
        (keep if not _is_case(it) or base(it) in mine else drop).append(it)
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
    """The run's speed switches (``benchmark.speed.Speed``) from its options, with the
    paper tier's defaults on a GPU (``PAPER_GPU_SPEED``) where an option is left out."""
    from benchmark.device import resolve_device

    precision = config.getoption("--memobench-precision")
    tf32 = config.getoption("--memobench-tf32")
    rehearse = config.getoption("--memobench-rehearse")
    device = resolve_device("cpu" if rehearse else config.getoption("--memobench-device"))
    if config.getoption("--memobench-tier") == PAPER and device.type == "cuda":
        precision = PAPER_GPU_SPEED.precision if precision is None else precision
        tf32 = PAPER_GPU_SPEED.tf32 if tf32 is None else tf32
    return Speed(
        precision=precision or "fp32",
        tf32=tf32,
        channels_last=config.getoption("--memobench-channels-last"),
        compile=config.getoption("--memobench-compile"),
    )


def check_options(config: pytest.Config) -> None:
    """Every ``--memobench-*`` value that can be checked before a case runs.

    Raises:
        MemobenchError: the option, what was wrong, and the fix.
    """
    from benchmark import registry

    parse_shard(config.getoption("--memobench-shard"))
    if config.getoption("--memobench-rehearse") and config.getoption("--memobench-tier") == "all":
        raise ConfigError(
            "--memobench-rehearse scales one tier's counts: pass --memobench-tier smoke or "
            "paper with it, not all"
        )
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
    n_gen = config.getoption("--memobench-n-gen")
    if n_gen is not None and n_gen < 1:
        raise ConfigError(f"--memobench-n-gen must be >= 1, got {n_gen}")
    check_batch_size(config.getoption("--memobench-batch-size"))
    check_detector_options(
        config.getoption("--memobench-detector-steps"),
        config.getoption("--memobench-detector-min-accuracy"),
        "--memobench-",
    )


def check_detector_options(steps: int | None, min_accuracy: float | None, prefix: str) -> None:
    """Refuse detector steps below 1 and a gate outside [0, 1], naming the option.

    Raises:
        ConfigError: the option (``prefix`` + its name), the value and what it must be.
    """
    if steps is not None and steps < 1:
        raise ConfigError(f"{prefix}detector-steps must be >= 1, got {steps}")
    if min_accuracy is not None and not 0 <= min_accuracy <= 1:
        raise ConfigError(
            f"{prefix}detector-min-accuracy must be in [0, 1] (0 turns the gate off), "
            f"got {min_accuracy}"
        )


def pytest_configure(config: pytest.Config) -> None:
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
    if item.get_closest_marker("science") and item.config.getoption("--memobench-rehearse"):
        pytest.skip(
            "a rehearsal runs the code path with a few training steps, so it cannot show "
            "this finding; run without --memobench-rehearse to measure it"
        )
    if item.get_closest_marker("gpu") and not item.config.getoption("--memobench-rehearse"):
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
