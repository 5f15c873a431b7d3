"""Validation tier: the tuned settings checked on a model they were not tuned on.

CPSample's (alpha, s), AMG's scale and GSA's levels and C were chosen on the smoke
tier's 64-digit DDIM model: the *selection* model (training seed 0, split 0, x_p 0).
Here the smoke suite's checks of them run again on an *evaluation* model: DDIM on 64
other digits (split seed 1), with another fingerprinted image (SAF seed 1), trained
with seed 1 and sampled with other seeds; its detectors are trained for its own split.
The paper's own CPSample setting (alpha = 0.001, s = 1000, CelebA-64's) runs beside the
tuned one on both models, recorded for the leaderboard (each record says which model
it is, ``tuning_role``). `memobench run --tier validation` (about 15 minutes on 2 CPU
cores with the smoke tier's models cached); a rehearsal runs its cases in a minute.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from benchmark import registry
from benchmark.audit import run_case
from benchmark.measures.carlini_l2 import CARLINI_L2
from benchmark.pool import TrainSpec
from benchmark.prefetch import prefetch
from benchmark.report.thumbnails import case_record
from benchmark.suites.checks import (
    CPSAMPLE_MARGIN,
    check_amg_in_independent_features,
    check_amg_steers_off_copies,
    check_cpsample_cuts_copies,
    check_cpsample_through_the_api,
    check_gsa_finds_the_members,
)
from benchmark.tiers import SMOKE_N_TRAIN, VALIDATION, smoke_case
from benchmark.workers import is_worker

FAMILY = "ddim"  # the family the settings were tuned on
SMALL_N = SMOKE_N_TRAIN[0]
SELECTION, EVALUATION = "selection", "evaluation"
ROLES = (SELECTION, EVALUATION)
EVALUATION_SEED = 1  # split, x_p, training and sampling seed of the evaluation model
# the tuned settings (the smoke suite's) and the CPSample paper's CelebA-64 setting
TUNED = {name: registry.mitigations.get(name).suite_settings[-1] for name in ("cpsample", "amg")}
PAPER_CPSAMPLE = {"alpha": 0.001, "scale": 1000.0}
CASES = [
    ("none", {}),
    ("cpsample", TUNED["cpsample"]),
    ("cpsample", PAPER_CPSAMPLE),
    ("amg", TUNED["amg"]),
]


def heldout_case(ctx, role: str, mitigation: str = "none", params=()):
    """A 64-digit DDIM case on the selection model (the smoke tier's own case) or on the
    evaluation model (every seed ``EVALUATION_SEED``), at the run's counts."""
    case = smoke_case(FAMILY, SMALL_N, mitigation, params, ctx.settings.samples)
    if role == EVALUATION:
        s = EVALUATION_SEED
        case = replace(
            case,
            data=replace(case.data, split_seed=s, saf_seed=s),
            train=replace(case.train, seed=s),
            seed=s,
        )
    return ctx.settings.scaled(case)  # smoke_case gave it its mitigation's training


def record_of(ctx, role: str, mitigation: str = "none", params=()) -> dict:
    return run_case(heldout_case(ctx, role, mitigation, params), ctx).metrics


def _tag(mitigation: str, params: dict) -> str:
    settings = ",".join(f"{k}={v}" for k, v in sorted(params.items()))
    return f"{mitigation}({settings})" if settings else mitigation


@pytest.fixture(scope="module", autouse=True)
def _build_in_parallel(request, memobench_session):
    """Train both models and audit every case of this tier in parallel processes (CPU)."""
    if is_worker(request.config):
        return
    cases = [heldout_case(memobench_session, r, m, p) for r in ROLES for m, p in CASES]
    specs = dict.fromkeys(TrainSpec(c.model, c.train, c.data) for c in cases)
    prefetch(memobench_session, list(specs), cases)


@pytest.mark.validation
@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("mitigation,params", [pytest.param(m, p, id=_tag(m, p)) for m, p in CASES])
def test_heldout_case(role, mitigation, params, memobench_session, benchmark):
    ctx = memobench_session
    case = heldout_case(ctx, role, mitigation, params)
    ctx.model(case.model, case.train, case.data)  # train outside the timing
    result = benchmark.pedantic(run_case, args=(case, ctx), rounds=1, iterations=1)
    record = case_record(result, tier=VALIDATION, tuning_role=role)
    benchmark.extra_info.update(record)
    assert result.samples.images.shape[0] == case.n_gen
    assert 0.0 <= record[CARLINI_L2] <= 1.0
    if role == EVALUATION:
        assert record["case_id"].endswith("~split1-saf1-train1-seed1"), record["case_id"]


def _plain_and(ctx, role: str, mitigation: str) -> tuple[dict, dict, str]:
    plain = record_of(ctx, role)
    what = f"{mitigation} {TUNED[mitigation]} on the {role} model ({FAMILY} x {SMALL_N} digits)"
    # a model that barely copies cannot show a mitigation's cut
    assert plain[CARLINI_L2] > CPSAMPLE_MARGIN, (
        f"the {role} model copies too little to judge a mitigation by: Carlini fraction "
        f"{plain[CARLINI_L2]:.3f}"
    )
    return plain, record_of(ctx, role, mitigation, TUNED[mitigation]), what


@pytest.mark.validation
@pytest.mark.science
@pytest.mark.parametrize("role", ROLES)
def test_tuned_cpsample_holds(role, memobench_session):
    """CPSample's tuned setting cuts copies, reproductions, the leak through the API and
    t* on the model it was tuned on and on one it was not."""
    plain, guided, what = _plain_and(memobench_session, role, "cpsample")
    check_cpsample_cuts_copies(plain, guided, what)
    check_cpsample_through_the_api(plain, guided, what)


@pytest.mark.validation
@pytest.mark.science
@pytest.mark.parametrize("role", ROLES)
def test_tuned_amg_holds(role, memobench_session):
    """AMG's tuned scale cuts the Carlini copies for little FID and lowers replication in
    features it does not steer by, on both models."""
    plain, amg, what = _plain_and(memobench_session, role, "amg")
    check_amg_steers_off_copies(plain, amg, what)
    check_amg_in_independent_features(plain, amg, what)


@pytest.mark.validation
@pytest.mark.science
@pytest.mark.parametrize("role", ROLES)
def test_tuned_gsa_holds(role, memobench_session):
    """GSA's tuned levels and C find the members of both models."""
    check_gsa_finds_the_members(
        record_of(memobench_session, role), f"GSA on the {role} model ({FAMILY} x {SMALL_N})"
    )
