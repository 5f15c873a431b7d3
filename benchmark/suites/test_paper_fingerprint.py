"""Paper tier: the seed paper's fingerprint audit settings (Dombrowski & Kainz, 2023).

PathMNIST with N_train in {1000, 5000, 10000, 20000, 50000} (its Table 1) and
the six MedMNIST sets of its Table 2 at their full training splits, 28x28, the
paper's UNet, 30000 training steps, N_gen from ``--memobench-n-gen`` (the paper:
150000 for Table 1, 50000 for Table 2; the paper tier's default is 50000). The
cases live in ``benchmark.tiers`` (``memobench plan`` reads the same list). GPU
only: these cases skip with a reason on a machine without CUDA, except under
``--memobench-rehearse``, which runs each of them on the CPU with the counts
scaled down.
"""

from __future__ import annotations

import pytest

from benchmark import registry
from benchmark.audit import run_case
from benchmark.measures.reproduction import Q_CONCLUSIVE, Q_EXPECTED, Q_MIN_N_GEN, Q_P_VALUE, Q
from benchmark.measures.tstar import TSTAR, TSTAR_NFE
from benchmark.record import N_GEN, N_TRAIN
from benchmark.report.thumbnails import case_record
from benchmark.tiers import PAPER, PATHMNIST_N, TABLE2, paper_case, suite_names


def _record(family, dataset, n_train, ctx, benchmark):
    case = ctx.settings.scaled(paper_case(family, dataset, n_train, ctx.settings.samples))
    result = benchmark.pedantic(run_case, args=(case, ctx), rounds=1, iterations=1)
    metrics = case_record(result, tier=PAPER)
    benchmark.extra_info.update(metrics)
    assert result.samples.images.shape == (case.n_gen, *ctx.dataset(case.data).image_shape)
    assert metrics[N_TRAIN] == n_train
    return metrics


@pytest.mark.paper
@pytest.mark.gpu
@pytest.mark.parametrize("n_train", PATHMNIST_N)
@pytest.mark.parametrize("family", suite_names(registry.models))
def test_pathmnist_table1(family, n_train, memobench_session, benchmark):
    m = _record(family, "pathmnist", n_train, memobench_session, benchmark)
    if n_train == 1000:  # the paper: |q| = 151 vs E|q| = 150, H0 kept
        assert m[Q_P_VALUE] >= 0.05, (
            f"{family}, PathMNIST {n_train}: |q| = {m[Q]} is significantly below E|q| = "
            f"{m[Q_EXPECTED]:.1f} (p = {m[Q_P_VALUE]:.3g}); the paper's model copies x_p"
        )
    elif m[Q_CONCLUSIVE]:  # the paper: |q| = 0, H0 (copies x_p like any image) rejected
        assert m[Q_P_VALUE] < 0.05, (
            f"{family}, PathMNIST {n_train}: |q| = {m[Q]} of E|q| = {m[Q_EXPECTED]:.1f} "
            f"(p = {m[Q_P_VALUE]:.3g}); the paper found no reproduction of x_p"
        )
    else:  # too few samples: no |q| could reject H0, and the record must say so
        assert m[N_GEN] < m[Q_MIN_N_GEN], m


@pytest.mark.paper
@pytest.mark.gpu
@pytest.mark.parametrize("dataset", list(TABLE2))
@pytest.mark.parametrize("family", suite_names(registry.models))
def test_medmnist_table2(family, dataset, memobench_session, benchmark):
    m = _record(family, dataset, TABLE2[dataset], memobench_session, benchmark)
    assert -1 <= m[TSTAR] < 1
    assert m[TSTAR_NFE] > 0
