"""``memobench doctor``: what this machine can run, one line a check, before a run starts.

The first step of a CI job on a GPU runner: the device and its driver, the library
versions, the cache folder (writable, free space), the data root's files and the speed
switches the device supports. A check that would stop a run fails with its fix, and
the command exits 1.
"""

from __future__ import annotations

import importlib.metadata
import platform
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from benchmark import registry
from benchmark.cache import default_root
from benchmark.device import resolve_device
from benchmark.errors import DeviceError

MIN_FREE_GB = 5.0  # a smoke run stores about 1 GB; the paper tier's checkpoints far more


@dataclass(frozen=True)
class Check:
    """One line of the table: what was checked, what was found, and the fix if it fails."""

    name: str
    found: str
    ok: bool = True
    fix: str = ""
    warning: bool = False

    def line(self) -> str:
        mark = "ok  " if self.ok and not self.warning else ("warn" if self.ok else "FAIL")
        text = f"{mark}  {self.name:<14} {self.found}"
        return text + (f"  -> {self.fix}" if self.fix else "")


def _version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def device_checks(spec: str) -> list[Check]:
    checks = [
        Check(
            "torch",
            f"{torch.__version__} (CUDA build {torch.version.cuda or 'none'}), diffusers "
            f"{_version('diffusers')}, Python {platform.python_version()}",
        )
    ]
    try:
        device = resolve_device(spec)
    except DeviceError as err:
        fix = (
            "use --device cpu (or auto), or run on a machine whose driver supports this "
            "torch's CUDA build (install with the project's constraints file)"
        )
        return [*checks, Check("device", f"{spec}: {err}", ok=False, fix=fix)]
    if torch.cuda.is_available():
        names = ", ".join(
            f"cuda:{i} {torch.cuda.get_device_name(i)}" for i in range(torch.cuda.device_count())
        )
        checks.append(Check("gpus", names))
    checks.append(Check("device", f"{spec} -> {device}"))
    checks.append(Check("speed", speed_support(device)))
    return checks


def speed_support(device: torch.device) -> str:
    """The speed switches ``device`` runs well: bf16 and TF32 need compute capability 8."""
    if device.type != "cuda":
        return "fp32 (bf16, TF32 and compile gain nothing on the CPU; the defaults apply)"
    major, minor = torch.cuda.get_device_capability(device)
    fast = major >= 8
    return (
        f"compute capability {major}.{minor}: bf16 {'yes' if fast else 'no'}, TF32 "
        f"{'yes' if fast else 'no'}, channels_last yes, torch.compile yes"
    )


def cache_check(cache: str | None) -> Check:
    root = default_root(cache)
    try:
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=root, prefix=".doctor-"):
            pass
    except OSError as err:
        return Check(
            "cache",
            f"{root}: not writable ({type(err).__name__}: {err})",
            ok=False,
            fix="pass --cache DIR (or set MEMOBENCH_CACHE) to a folder this user can write, "
            "e.g. one under the CI runner's own work folder",
        )
    free = shutil.disk_usage(root).free / 2**30
    if free < MIN_FREE_GB:
        return Check(
            "cache",
            f"{root}: writable, {free:.1f} GiB free",
            warning=True,
            fix=f"free space or move the cache (--cache DIR): under {MIN_FREE_GB:g} GiB "
            f"a run may stop mid-way",
        )
    return Check("cache", f"{root}: writable, {free:.0f} GiB free")


def data_check(data_root: str | None) -> Check:
    if not data_root:
        return Check("data root", "none given: the smoke tier runs on the embedded digits")
    root = Path(data_root).expanduser()
    if not root.is_dir():
        return Check(
            "data root",
            f"{root}: no such folder",
            ok=False,
            fix="pass --data-root DIR, a folder holding the MedMNIST .npz files",
        )
    names = set(registry.datasets.names())
    files = sorted(p.name for p in root.glob("*.npz"))
    known = [f for f in files if f[: -len(".npz")] in names]
    found = ", ".join(known) if known else "no <dataset>.npz of a registered dataset"
    return Check("data root", f"{root}: {found}", warning=not known)


def run_checks(device: str = "auto", cache: str | None = None, data_root: str | None = None):
    return [*device_checks(device), cache_check(cache), data_check(data_root)]


def doctor(device: str = "auto", cache: str | None = None, data_root: str | None = None) -> int:
    """Print the table; 1 where a check failed, else 0."""
    checks = run_checks(device, cache, data_root)
    for check in checks:
        print(check.line())
    failed = [c for c in checks if not c.ok]
    print(
        f"memobench doctor: {len(failed)} check(s) failed" if failed else "memobench doctor: ready"
    )
    return 1 if failed else 0
