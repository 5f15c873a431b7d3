"""memobench: does this diffusion model give away its training images?

The library behind the pytest benchmark: data (with the synthetic anatomic
fingerprint of Dombrowski & Kainz, 2023), model families, samplers,
mitigations, detectors, metrics, attacks and the leaderboard report.
"""

__version__ = "0.1.0"

_LAZY = {
    "Session": "benchmark.session",
    "run_case": "benchmark.audit",
    "audit_model": "benchmark.model_audit",
    "smoke_case": "benchmark.tiers",
    "paper_case": "benchmark.tiers",
}


def __getattr__(name: str):
    """``from benchmark import Session, run_case, audit_model``, imported on first use."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'benchmark' has no attribute {name!r}")
