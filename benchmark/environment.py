"""What a run's figures depend on besides its cases: library versions, threads, the CPU's
vector unit and the device. Written into every results file, so two runs whose figures
differ can be told apart (``benchmarks/compare_runs.py`` prints where they do)."""

from __future__ import annotations

import functools
import importlib.metadata
import os
import platform
from typing import Any

import torch

LIBRARIES = ("torch", "diffusers", "numpy", "scipy", "scikit-learn", "torchmetrics", "opacus")
# the libraries whose versions key what each cache entry stores: an upgrade that changes
# the figures then measures again instead of reusing what the older version stored
TRAINING_LIBRARIES = ("torch", "diffusers")
DP_LIBRARIES = ("opacus",)  # a DP-SGD model's noise and epsilon, besides
AUDIT_LIBRARIES = ("torch", "diffusers", "numpy", "scipy", "scikit-learn", "torchmetrics")


@functools.cache
def library_versions(*names: str) -> tuple[tuple[str, str | None], ...]:
    """``(name, version)`` of each installed library (``None``: not installed)."""
    out = []
    for name in names:
        try:
            out.append((name, importlib.metadata.version(name)))
        except importlib.metadata.PackageNotFoundError:
            out.append((name, None))
    return tuple(out)


def environment() -> dict[str, Any]:
    """Versions, threads, CPU capability and device of this process."""
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "python": platform.python_version(),
        "versions": versions,
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        # the vector unit torch's CPU kernels dispatched to (AVX2, AVX512, ...): float
        # sums can differ between two of them
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "xdist_workers": os.environ.get("PYTEST_XDIST_WORKER_COUNT"),
    }
