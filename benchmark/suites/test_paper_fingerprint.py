"""Paper tier: the seed paper's fingerprint audit settings (Dombrowski & Kainz, 2023).

PathMNIST with N_train in {1000, 5000, 10000, 20000, 50000} (its Table 1) and the six
MedMNIST sets of its Table 2 at their full training splits, 28x28 (each pixel family),
and PneumoniaMNIST at 64 x 64 (each latent family), the paper's UNet, 30000 training
steps, N_gen from ``--memobench-n-gen`` (the paper: 150000 for Table 1, 50000 for Table
2; the paper tier's default is 50000). The cases live in ``benchmark.tiers``
(``memobench plan`` reads the same list). GPU only: these cases skip with a reason on a
machine without CUDA, except under ``--memobench-rehearse``, which runs each of them on
the CPU with the counts scaled down.

Beside each case's own checks, the papers' findings across cases are asserted as
directions that can fail (marker ``science``, so a rehearsal skips them; marker
``across_cases``, so a sharded run leaves them out): |q| falls as N_train grows (Table
1), t* falls with N_train across the Table 2 sets (a negative rank correlation), and
GSA with its classifier trained on a shadow model (Pang et al.'s attack as published)
finds the members of the PathMNIST model that copies (N_train 1000). The Table 1 cases
of ``PATHMNIST_SHADOW_N`` train that shadow: the same training on as many other
PathMNIST training images; the cross-fitted GSA runs beside it on every case.
After a sharded run they are judged on the shards' merged records, without a GPU:
``pytest suites -m "paper and across_cases" --memobench-tier=paper
--memobench-records="results/*.json"`` (the GPU workflow's last job does so). Under
``--memobench-seeds K`` each finding must hold for the models of every seed.
"""

from __future__ import annotations

import pytest

from benchmark.audit import run_case
from benchmark.errors import MemobenchError
from benchmark.measures.membership_scores import MIA_AUC, MIA_AUC_CI
from benchmark.measures.reproduction import (
    Q_CONCLUSIVE,
    Q_EXPECTED,
    Q_P_VALUE,
    Q,
    fewer_reproductions_p,
)
from benchmark.measures.tstar import TSTAR, TSTAR_EXACT, TSTAR_NFE
from benchmark.metrics.membership_inference import MIA_RUNS, MIA_SHADOW_MODEL
from benchmark.record import N_GEN, N_TRAIN
from benchmark.report.results import records_from
from benchmark.report.thumbnails import case_record
from benchmark.tiers import (
    LATENT_PAPER,
    PAPER,
    PATHMNIST_N,
    PATHMNIST_SHADOW_N,
    TABLE2,
    latent_families,
    paper_case,
    pixel_families,
    seeded,
)


def _case(ctx, family: str, dataset: str, n_train: int, seed: int = 0):
    """The paper case as this run measures it (its counts scaled under a rehearsal),
    trained and sampled with ``seed`` (``--memobench-seeds``)."""
    case = paper_case(family, dataset, n_train, ctx.settings.samples)
    return ctx.settings.scaled(seeded(case, seed))


SHADOW_GSA = "gsa-shadow_weights"  # the shadow-trained GSA's record name


def _record(family, dataset, n_train, ctx, benchmark, seed=0):
    case = _case(ctx, family, dataset, n_train, seed)
    result = benchmark.pedantic(run_case, args=(case, ctx), rounds=1, iterations=1)
    metrics = case_record(result, tier=PAPER)
    benchmark.extra_info.update(metrics)
    assert result.samples.images.shape == (case.n_gen, *ctx.dataset(case.data).image_shape)
    assert metrics[N_TRAIN] == n_train
    return metrics


@pytest.mark.paper
@pytest.mark.gpu
@pytest.mark.parametrize("n_train", PATHMNIST_N)
@pytest.mark.parametrize("family", pixel_families())
def test_pathmnist_table1(family, n_train, memobench_session, memobench_seed, benchmark):
    m = _record(family, "pathmnist", n_train, memobench_session, benchmark, memobench_seed)
    shadowed = n_train in PATHMNIST_SHADOW_N
    assert (SHADOW_GSA in m[MIA_RUNS]) == shadowed and bool(m[MIA_SHADOW_MODEL]) == shadowed, (
        f"{family}, PathMNIST {n_train}: the shadow-trained GSA ran {m[MIA_RUNS]} on shadow "
        f"{m[MIA_SHADOW_MODEL]!r}; it runs exactly on the cases with a shadow model"
    )
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
    # else: N_gen is below q_min_n_gen, so no |q| could reject H0: the case records
    # q_conclusive false and its figures, and there is no verdict to assert (it asserted
    # N_gen < q_min_n_gen, the very comparison q_conclusive is computed from)


@pytest.mark.paper
@pytest.mark.gpu
@pytest.mark.parametrize("dataset", list(TABLE2))
@pytest.mark.parametrize("family", pixel_families())
def test_medmnist_table2(family, dataset, memobench_session, memobench_seed, benchmark):
    m = _record(family, dataset, TABLE2[dataset], memobench_session, benchmark, memobench_seed)
    assert -1 <= m[TSTAR] < 1
    assert m[TSTAR_NFE] > 0


@pytest.mark.paper
@pytest.mark.gpu
@pytest.mark.parametrize("dataset", [LATENT_PAPER[0]])
@pytest.mark.parametrize("family", latent_families())
def test_latent_medmnist_plus(family, dataset, memobench_session, memobench_seed, benchmark):
    """A latent model where medical groups train them, above 28 px: PneumoniaMNIST at
    64 x 64 (MedMNIST+), its full training split. The fingerprint audit runs on decoded
    pixels, the attacks on the latent denoiser, and the autoencoder is attacked alone."""
    from benchmark.metrics.autoencoder import AE_AUC, AE_MSE_HELDOUT

    m = _record(family, dataset, LATENT_PAPER[1], memobench_session, benchmark, memobench_seed)
    assert -1 <= m[TSTAR] < 1 and m[TSTAR_NFE] > 0
    assert 0 <= m[AE_AUC] <= 1 and m[AE_MSE_HELDOUT] >= 0


def paper_metrics(
    ctx, family: str, dataset: str, n_train: int, seed: int = 0, records: dict | None = None
) -> dict:
    """A paper case's record: from ``records`` (the results files of
    ``--memobench-records``) where given, else audited (once, then from the cache)."""
    case = _case(ctx, family, dataset, n_train, seed)
    if records is None:
        return run_case(case, ctx).metrics
    if case.case_id not in records:
        raise MemobenchError(
            f"--memobench-records: no record of case {case.case_id} in the results files "
            f"(its shard failed or did not run; merge every shard's results file)"
        )
    return records[case.case_id]


@pytest.fixture
def recorded(request) -> dict | None:
    """The records of ``--memobench-records``'s results files, or None (audit instead)."""
    spec = request.config.getoption("--memobench-records")
    return records_from(spec) if spec else None


def check_reproductions_fall(by_n: dict[int, dict]) -> None:
    """Table 1's finding: the model trained on the fewest images reproduces x_p more often
    than the one trained on the most (one-sided Fisher exact p < 0.05 on their |q|), and
    |q| / N_gen does not rise with N_train (Spearman's rho <= 0)."""
    from scipy import stats

    ns = sorted(by_n)
    few, most = by_n[ns[0]], by_n[ns[-1]]
    p = fewer_reproductions_p(most[Q], most[N_GEN], few[Q], few[N_GEN])
    assert p < 0.05, (
        f"|q| = {most[Q]} of {most[N_GEN]} at N_train = {ns[-1]} against {few[Q]} of "
        f"{few[N_GEN]} at {ns[0]}: not fewer (one-sided Fisher p = {p:.3g}); the paper's "
        f"Table 1 has 151 at 1000 and 0 from 5000 on"
    )
    rates = [by_n[n][Q] / by_n[n][N_GEN] for n in ns]
    if len(set(rates)) > 1:
        rho = stats.spearmanr(ns, rates).statistic
        assert rho <= 0, f"|q| / N_gen rises with N_train (Spearman rho {rho:.2f}): {rates}"


def check_tstar_falls(by_n: dict[int, dict]) -> None:
    """Table 2's finding: the larger the training set, the less noise the fingerprint
    survives (t* and N_train have a negative Spearman rank correlation)."""
    from scipy import stats

    ns = sorted(by_n)
    capped = [n for n in ns if by_n[n].get(TSTAR_EXACT) is False]
    assert not capped, (
        f"t* of N_train {capped} is a capped scan's lower bound, not comparable with the "
        "others; audit with the exact scan (AuditCounts.tstar_scan_budget = 1, the default)"
    )
    ts = [by_n[n][TSTAR] for n in ns]
    rho = stats.spearmanr(ns, ts).statistic if len(set(ts)) > 1 else float("nan")
    shown = ", ".join(f"{n}: {t}" for n, t in zip(ns, ts, strict=True))
    assert rho < 0, f"t* does not fall with N_train (Spearman rho {rho:.2f}): {shown}"


def finding_across_cases(test):
    """A paper finding judged across cases, once per pixel family: marked ``paper``,
    ``gpu``, ``science`` (a rehearsal skips it) and ``across_cases`` (a sharded run
    leaves it out; the merge job judges it on the records)."""
    marks = (pytest.mark.paper, pytest.mark.gpu, pytest.mark.science, pytest.mark.across_cases)
    for mark in (pytest.mark.parametrize("family", pixel_families()), *reversed(marks)):
        test = mark(test)
    return test


def check_shadow_gsa_finds_the_members(m: dict, what: str) -> None:
    """Pang et al.'s finding, on a model that copies: GSA with its classifier trained on a
    shadow model tells the members apart (the 95% interval of its AUC above 0.5; the
    paper: 0.999 on a DDPM trained on CIFAR-10)."""
    auc, ci = m[MIA_AUC(attack=SHADOW_GSA)], m[MIA_AUC_CI(attack=SHADOW_GSA)]
    assert ci[0] > 0.5, (
        f"{what}: GSA trained on a shadow model has AUC {auc:.3f} (95% CI [{ci[0]:.3f}, "
        f"{ci[1]:.3f}]); the paper's attack finds the members of a model that memorizes"
    )


@finding_across_cases
def test_shadow_gsa_finds_the_members_of_a_model_that_copies(family, memobench_session, recorded):
    """Judged with the findings across cases (after a sharded run, on its records)."""
    ctx, n = memobench_session, min(PATHMNIST_SHADOW_N)
    for seed in range(ctx.settings.seeds):
        m = paper_metrics(ctx, family, "pathmnist", n, seed, recorded)
        check_shadow_gsa_finds_the_members(m, f"{family}, PathMNIST {n}, seed {seed}")


@finding_across_cases
def test_reproductions_fall_as_the_training_set_grows(family, memobench_session, recorded):
    # the finding holds for the models of each training seed (--memobench-seeds)
    ctx = memobench_session
    for seed in range(ctx.settings.seeds):
        check_reproductions_fall({n: paper_metrics(ctx, family, "pathmnist", n, seed, recorded)
                                  for n in PATHMNIST_N})  # fmt: skip


@finding_across_cases
def test_tstar_falls_as_the_training_set_grows(family, memobench_session, recorded):
    ctx = memobench_session
    for seed in range(ctx.settings.seeds):
        check_tstar_falls({n: paper_metrics(ctx, family, d, n, seed, recorded)
                           for d, n in TABLE2.items()})  # fmt: skip
