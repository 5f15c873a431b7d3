"""The cases of each tier, built from registry names so a plugin joins every suite.

Used by `suites/` and by the scripts under `benchmarks/`.
"""

from __future__ import annotations

from benchmark import registry
from benchmark.config import CaseConfig, DataConfig, MitigationConfig

# Samples per smoke case. 1024 on the 64-digit models gives E|q| = 16: enough for
# |q| to tell a mitigation from `none` (measured 14 -> 1 or 2 under CPSample, where
# 256 samples gave 2 -> 0 or 1, within chance of each other).
SMOKE_N_GEN = 1024


def suite_names(reg) -> list[str]:
    """Registered names whose plugin takes part in suites (``in_suites``), loaded lazily."""
    return [n for n in reg.names() if getattr(reg.get(n), "in_suites", True)]


def smoke_case(
    family: str,
    n_train: int,
    mitigation: str = "none",
    params=(),
    n_gen: int = SMOKE_N_GEN,
    dataset: str = "digits",
) -> CaseConfig:
    fam_cls = registry.models.get(family)
    model, train, sampler = fam_cls.smoke_configs()
    return CaseConfig(
        # SAF on: the fingerprint audit (|q|, t*) runs on the same cached models.
        data=DataConfig(name=dataset, n_train=n_train, saf=True),
        model=model,
        train=train,
        sampler=sampler,
        mitigation=MitigationConfig(mitigation, params),
        n_gen=n_gen,
    )
