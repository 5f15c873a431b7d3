"""The run options, declared once: pytest's ``--memobench-*`` and ``memobench run``'s flags.

Each ``Option`` names a setting of the run, its kind, default, limits and help.
The pytest plugin adds every one as ``--memobench-<name>`` (``add_to_pytest``);
``memobench run`` offers those marked ``cli`` as ``--<name>`` (``add_to_argparse``)
and hands the values it was given to pytest as they are, not as re-spelled flags
(``given_values``, then ``set_on_config``). ``check_values`` refuses a bad value
with the option's name as the user spelled it, and ``run_settings`` turns the
values into the run's ``RunSettings``.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from benchmark.config import PRECISIONS
from benchmark.device import resolve_device
from benchmark.errors import ConfigError
from benchmark.settings import RunSettings
from benchmark.speed import Speed
from benchmark.tiers import ALL, PAPER, PAPER_GPU_SPEED, SMOKE, TIERS, Rehearsal, default_seeds

PYTEST_PREFIX = "--memobench-"
CLI_PREFIX = "--"


@dataclass(frozen=True)
class Option:
    """One run option.

    Attributes:
        name: ``device`` is ``--memobench-device`` in pytest and ``--device`` in
            ``memobench run``.
        kind: ``str``, ``int``, ``float``, ``flag`` (on when given) or ``switch`` (on, off
            with ``no-``, or left to the default: None).
        low, high: the bounds of a number, inclusive (None: unbounded).
        cli: offered by ``memobench run`` too.
        group: the heading ``memobench run --help`` lists it under.
    """

    name: str
    help: str
    kind: str = "str"
    default: Any = None
    choices: tuple[str, ...] | None = None
    low: float | None = None
    high: float | None = None
    cli: bool = True
    group: str = ""
    metavar: str | None = None

    def __post_init__(self) -> None:
        if self.kind == "flag" and self.default is None:
            object.__setattr__(self, "default", False)  # off unless given

    @property
    def dest(self) -> str:
        return self.name.replace("-", "_")

    def spelled(self, prefix: str) -> str:
        return f"{prefix}{self.name}"

    def problem(self, value: Any, prefix: str) -> str | None:
        """Why ``value`` is refused, naming the option as ``prefix`` spells it, or None."""
        if value is None or self.kind not in ("int", "float"):
            return None
        if (self.low is not None and value < self.low) or (
            self.high is not None and value > self.high
        ):
            if self.high is None:
                bound = f">= {self.low:g}"
            elif self.low is None:
                bound = f"<= {self.high:g}"
            else:
                bound = f"in [{self.low:g}, {self.high:g}]"
            return f"{self.spelled(prefix)} must be {bound}, got {value}{self.hint}"
        return None

    @property
    def hint(self) -> str:
        return HINTS.get(self.name, "")


SPEED = "speed (GPU runners; each switch is recorded with the results)"
HINTS = {
    "batch-size": " (or leave it out: the batch is then chosen from free memory)",
    "detector-min-accuracy": " (0 turns the gate off)",
}

OPTIONS: tuple[Option, ...] = (
    Option("device", "auto (CUDA if present), cpu, cuda or cuda:N", default="auto"),
    Option("cache", "cache folder (default $MEMOBENCH_CACHE or ~/.cache/memobench)"),
    Option("data-root", "folder with local data files (MedMNIST .npz)"),
    Option(
        "tier",
        "which tier of cases runs: smoke (CPU), paper (GPU), validation (the tuned settings "
        "on a model they were not tuned on; CPU) or all",
        default=SMOKE,
        choices=TIERS,
    ),
    Option(
        "rehearse",
        "rehearse the tier's cases end to end on the CPU with every count scaled down (a "
        "few training steps, a handful of samples, short t* grids): the GPU path's code, "
        "networks, audit and leaderboard, in minutes; `gpu` cases run too; its figures are "
        "not results",
        kind="flag",
    ),
    Option(
        "dataset",
        "registered dataset the smoke tier's cases run on (default: digits); MedMNIST sets "
        "read <name>.npz from the data root",
        default="digits",
    ),
    Option("n-gen", "number of generated samples per case (default: the tier's)", "int", low=1),
    Option(
        "seeds",
        "train and audit K models of every case, each with its own training and sampling "
        "seed (the data split and x_p stay); the leaderboard gives each figure's mean and "
        "spread across them (default 1; 3 for the paper tier on a GPU)",
        "int",
        low=1,
        metavar="K",
    ),
    Option("results", "write the run's results JSON (pytest-benchmark format) here"),
    Option(
        "records",
        "judge the papers' findings across cases (marker across_cases) on the records of "
        "these results files (paths or globs, comma-separated: a sharded run's merged "
        "shards) instead of auditing the cases; needs no GPU",
        cli=False,
    ),
    Option(
        "reaudit",
        "sample and measure every case again instead of reusing its stored audit (an audit "
        "is reused only when the case, model, detectors, extractor and code match)",
        kind="flag",
    ),
    Option(
        "inception-weights",
        "Inception-v3 FID weights file (pt_inception-2015-12-05-6726825d.pth): FID and "
        "replication use it instead of the dataset's own classifier features",
    ),
    Option(
        "feature-encoder",
        "a TorchScript feature encoder file (torch.jit.save of a module mapping (N, C, H, W) "
        "images in [-1, 1] to (N, D) features): FID and replication use it instead of the "
        "dataset's classifier or the copy-detection encoder",
    ),
    Option(
        "shard",
        "run only the K-th of N round-robin shares of the benchmark cases (one CI runner of "
        "N; merge the results files with `memobench report`)",
        metavar="K/N",
    ),
    Option(
        "tstar-curve",
        "compute q_M(t) on the whole t* grid for the case pages (the seed paper's Fig. 6; "
        "about 10x the adaptive search's network evaluations)",
        kind="flag",
    ),
    Option(
        "detector-steps",
        "training steps of the fingerprint detectors C_SAF and C_ID (default: the tier's, "
        "800 in the smoke tier); more steps for data they do not learn in 800",
        "int",
        low=1,
    ),
    Option(
        "detector-min-accuracy",
        "held-out accuracy (and balanced accuracy) the detectors need for |q| and t* to be "
        "reported (default 0.95; 0 turns the gate off); below it only those two are withheld",
        "float",
        low=0,
        high=1,
    ),
    Option(
        "precision",
        "autocast of the network while sampling, t* and the attacks (default: bf16 for the "
        "paper tier on a GPU, with TF32; fp32 elsewhere)",
        choices=PRECISIONS,
        group=SPEED,
    ),
    Option(
        "train-precision",
        "train every case's model with this autocast (default: the case's, fp32)",
        choices=PRECISIONS,
        group=SPEED,
    ),
    Option(
        "tf32",
        "TF32 matmuls and convolutions (CUDA; the paper tier's default on a GPU); no-tf32: "
        "strict IEEE fp32; neither: PyTorch's defaults (TF32 convolutions, IEEE matmuls)",
        kind="switch",
        group=SPEED,
    ),
    Option(
        "channels-last",
        "run the network in NHWC memory layout (faster convolutions on a GPU)",
        kind="flag",
        group=SPEED,
    ),
    Option(
        "compile",
        "torch.compile the network for sampling, t* and the attacks",
        kind="flag",
        group=SPEED,
    ),
    Option(
        "batch-size",
        "images per network call (default: as many as fit in half the free memory)",
        "int",
        low=1,
        group=SPEED,
    ),
    # a checkpoint folder audited by suites/test_pretrained.py
    Option("model-path", "audit this diffusers checkpoint folder instead of training", cli=False),
    Option("model-family", "model family of --memobench-model-path", default="ddim", cli=False),
    Option(
        "model-dataset",
        "dataset the --memobench-model-path model was trained on",
        default="digits",
        cli=False,
    ),
    Option(
        "model-n-train",
        "n_train of the split the --memobench-model-path model was trained on",
        "int",
        default=64,
        low=1,
        cli=False,
    ),
    Option(
        "members",
        "the images the --memobench-model-path model was trained on (a folder or .npz): "
        "audited as given, no dataset or split",
        cli=False,
    ),
    Option("heldout", "images the --memobench-model-path model never saw", cli=False),
    Option(
        "fit",
        "how --memobench-members/--memobench-heldout images reach the model's size: "
        "resize, center-crop or exact",
        default="resize",
        choices=("resize", "center-crop", "exact"),
        cli=False,
    ),
    Option(
        "model-split-seed",
        "split seed of the split the --memobench-model-path model was trained on",
        "int",
        default=0,
        cli=False,
    ),
)
BY_NAME = {o.name: o for o in OPTIONS}
_TYPES: dict[str, Callable] = {"int": int, "float": float}


def add_to_pytest(group) -> None:
    """Every option as ``--memobench-<name>`` in pytest's option ``group``."""
    for o in OPTIONS:
        dest = f"memobench_{o.dest}"
        if o.kind == "flag":
            group.addoption(o.spelled(PYTEST_PREFIX), action="store_true", dest=dest, help=o.help)
        elif o.kind == "switch":
            group.addoption(o.spelled(PYTEST_PREFIX), action="store_const", const=True,
                            default=None, dest=dest, help=o.help)  # fmt: skip
            opposite = f"the opposite of {o.spelled(PYTEST_PREFIX)}"
            group.addoption(f"{PYTEST_PREFIX}no-{o.name}", action="store_const", const=False,
                            dest=dest, help=opposite)  # fmt: skip
        else:
            group.addoption(o.spelled(PYTEST_PREFIX), dest=dest, default=o.default,
                            type=_TYPES.get(o.kind), choices=o.choices, metavar=o.metavar,
                            help=o.help)  # fmt: skip


def add_to_argparse(parser: argparse.ArgumentParser) -> None:
    """The ``cli`` options as ``--<name>``, every default None: a value is one the user gave
    (pytest's own default applies otherwise)."""
    groups: dict[str, Any] = {}
    for o in OPTIONS:
        if not o.cli:
            continue
        where = parser
        if o.group:
            where = groups.setdefault(o.group, parser.add_argument_group(o.group))
        help_ = (
            o.help
            if o.default is None or "default" in o.help
            else f"{o.help} (default {o.default})"
        )
        if o.kind == "flag":
            where.add_argument(o.spelled(CLI_PREFIX), action="store_true", default=None,
                               dest=o.dest, help=help_)  # fmt: skip
        elif o.kind == "switch":
            where.add_argument(o.spelled(CLI_PREFIX), action=argparse.BooleanOptionalAction,
                               default=None, dest=o.dest, help=help_)  # fmt: skip
        else:
            where.add_argument(o.spelled(CLI_PREFIX), dest=o.dest, default=None,
                               type=_TYPES.get(o.kind), choices=o.choices, metavar=o.metavar,
                               help=help_)  # fmt: skip


def given_values(args: argparse.Namespace) -> dict[str, Any]:
    """{option name: value} of the ``cli`` options the user gave ``memobench run``."""
    return {o.name: getattr(args, o.dest) for o in OPTIONS
            if o.cli and getattr(args, o.dest, None) is not None}  # fmt: skip


def set_on_config(config, values: dict[str, Any]) -> None:
    """Put ``values`` ({option name: value}) into a pytest config, as if given as options."""
    for name, value in values.items():
        setattr(config.option, f"memobench_{BY_NAME[name].dest}", value)


def parse_shard(text: str | None, prefix: str = PYTEST_PREFIX) -> tuple[int, int] | None:
    """``"K/N"`` -> (K, N) with 1 <= K <= N; None for no sharding (``prefix``: how the
    user spells the option, for the message)."""
    if text is None:
        return None
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not match or not 1 <= int(match[1]) <= int(match[2]):
        raise ConfigError(
            f"{prefix}shard must be K/N with 1 <= K <= N (e.g. 2/4 for the second of four "
            f"runners), got {text!r}"
        )
    return int(match[1]), int(match[2])


def check_values(get: Callable[[str], Any], prefix: str, names=None) -> None:
    """Refuse a value out of its bounds, a shard that is not K/N and a rehearsal of every
    tier at once.

    Args:
        get: option name -> value.
        prefix: how the user spells the options (``--memobench-`` or ``--``).

    Raises:
        ConfigError: the option as spelled, the value, and what it must be.
    """
    for o in OPTIONS:
        if names is None or o.name in names:
            problem = o.problem(get(o.name), prefix)
            if problem:
                raise ConfigError(problem)
    parse_shard(get("shard"), prefix)
    if get("rehearse") and get("tier") == ALL:
        raise ConfigError(
            f"{prefix}rehearse scales one tier's counts: pass {prefix}tier smoke, paper or "
            f"validation with it, not all"
        )


def seeds(get: Callable[[str], Any]) -> int:
    """Models per configuration: ``--memobench-seeds``, else the tier's default on the
    run's device (``benchmark.tiers.default_seeds``: 3 for the paper tier on a GPU)."""
    if get("seeds") is not None:
        return get("seeds")
    device = resolve_device("cpu" if get("rehearse") else get("device") or "auto")
    return default_seeds(get("tier") or SMOKE, device.type, bool(get("rehearse")))


def speed(get: Callable[[str], Any]) -> Speed:
    """The run's speed switches, with the paper tier's defaults on a GPU
    (``PAPER_GPU_SPEED``) where an option is left out."""
    precision, tf32 = get("precision"), get("tf32")
    device = resolve_device("cpu" if get("rehearse") else get("device") or "auto")
    if get("tier") == PAPER and device.type == "cuda":
        precision = PAPER_GPU_SPEED.precision if precision is None else precision
        tf32 = PAPER_GPU_SPEED.tf32 if tf32 is None else tf32
    return Speed(
        precision=precision or "fp32",
        tf32=tf32,
        channels_last=bool(get("channels-last")),
        compile=bool(get("compile")),
    )


def run_settings(get: Callable[[str], Any], device: str | None = None) -> RunSettings:
    """The run's settings from its option values (``device``: the device this process
    runs on, e.g. a pytest-xdist worker's own GPU, instead of the option's)."""
    return RunSettings(
        cache=get("cache"),
        device=device or get("device") or "auto",
        tier=get("tier") or SMOKE,
        n_gen=get("n-gen"),
        data_root=get("data-root"),
        smoke_dataset=get("dataset") or "digits",
        rehearsal=Rehearsal() if get("rehearse") else None,
        inception_weights=get("inception-weights"),
        feature_encoder=get("feature-encoder"),
        reaudit=bool(get("reaudit")),
        speed=speed(get),
        batch_size=get("batch-size"),
        train_precision=get("train-precision"),
        tstar_curve=bool(get("tstar-curve")),
        detector_steps=get("detector-steps"),
        detector_min_accuracy=get("detector-min-accuracy"),
        seeds=seeds(get),
    )
