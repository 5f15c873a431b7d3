"""The papers' findings as the paper tier asserts them across cases
(benchmark/suites/test_paper_fingerprint.py): each check passes on records shaped as
the papers report and fails on records that contradict them."""

from __future__ import annotations

import pytest

from benchmark.measures.membership_scores import MIA_AUC, MIA_AUC_CI
from benchmark.measures.reproduction import Q
from benchmark.measures.tstar import TSTAR, TSTAR_EXACT
from benchmark.record import N_GEN
from benchmark.suites.test_paper_fingerprint import (
    SHADOW_GSA,
    check_reproductions_fall,
    check_shadow_gsa_finds_the_members,
    check_tstar_falls,
)

pytest_plugins = ["pytester"]  # the records test runs the real suite


def _q(counts: dict[int, int], n_gen: int = 150000) -> dict[int, dict]:
    return {n: {Q: q, N_GEN: n_gen} for n, q in counts.items()}


def test_table1_as_the_paper_reports_it_passes():
    check_reproductions_fall(_q({1000: 151, 5000: 0, 10000: 0, 20000: 0, 50000: 0}))


@pytest.mark.parametrize(
    "counts",
    [
        {1000: 3, 5000: 2, 10000: 2, 20000: 3, 50000: 2},  # no fewer at 50000: p large
        {1000: 151, 5000: 0, 10000: 200, 20000: 300, 50000: 0},  # |q| climbs back
    ],
)
def test_table1_contradicted_fails(counts):
    with pytest.raises(AssertionError):
        check_reproductions_fall(_q(counts))


def test_table2_direction():
    falling = {546: 0.6, 1080: 0.5, 4708: 0.4, 11959: 0.3, 13940: 0.35, 78468: 0.1}
    check_tstar_falls({n: {TSTAR: t} for n, t in falling.items()})
    with pytest.raises(AssertionError, match="does not fall"):
        check_tstar_falls({n: {TSTAR: 0.5 + n / 1e6} for n in falling})
    with pytest.raises(AssertionError, match="does not fall"):  # flat: no finding
        check_tstar_falls({n: {TSTAR: 0.3} for n in falling})
    # a capped scan's bisected t* is a lower bound: not ranked beside exact ones
    mixed = {n: {TSTAR: t, TSTAR_EXACT: n != 4708} for n, t in falling.items()}
    with pytest.raises(AssertionError, match=r"capped scan.*\[4708\]|\[4708\].*capped"):
        check_tstar_falls(mixed)


def test_shadow_gsa_finding():
    """The shadow-trained GSA must find the members of the model that copies: an AUC
    interval above 0.5 passes, one that reaches chance (or a flipped score) fails."""

    def rec(auc, lo, hi):
        return {MIA_AUC(attack=SHADOW_GSA): auc, MIA_AUC_CI(attack=SHADOW_GSA): [lo, hi]}

    check_shadow_gsa_finds_the_members(rec(0.999, 0.99, 1.0), "as the paper reports it")
    for auc, lo, hi in ((0.55, 0.49, 0.61), (0.1, 0.05, 0.15)):
        with pytest.raises(AssertionError, match="GSA trained on a shadow model"):
            check_shadow_gsa_finds_the_members(rec(auc, lo, hi), "at chance")


def _results(path, records: list[dict], rehearsal: bool = False) -> str:
    from benchmark.report.results import write_results

    write_results(path, records, {"rehearsal": rehearsal})
    return str(path)


def _paper_records(
    t_of=lambda n: 1 - n / 1e5, q_small: int = 151, seeds: int = 1, shadow_auc=(0.9, 0.85, 0.95)
) -> list:
    """A record per pixel family's paper case (and seed) with the figures the findings
    read: |q| of N_gen 150000 on Table 1 (and the shadow GSA's AUC and interval where it
    ran), t* on Table 2."""
    from benchmark.tiers import PATHMNIST_N, paper_cases

    out = []
    for node, case in paper_cases(seeds=seeds):
        rec = {"case_id": case.case_id, N_GEN: 150000}
        if "table1" in node:
            rec[Q] = q_small if case.data.n_train == min(PATHMNIST_N) else 0
            if case.shadow:  # the shadow-trained GSA's AUC and interval
                rec.update({MIA_AUC(attack=SHADOW_GSA): shadow_auc[0],
                            MIA_AUC_CI(attack=SHADOW_GSA): list(shadow_auc[1:])})  # fmt: skip
        elif "table2" in node:
            rec.update({TSTAR: t_of(case.data.n_train), TSTAR_EXACT: True})
        else:
            continue
        out.append(rec)
    return out


@pytest.mark.slow
def test_the_findings_are_judged_on_a_sharded_runs_records_without_a_gpu(pytester, tmp_path):
    """The GPU workflow's last job: ``-m "paper and across_cases"`` with
    ``--memobench-records`` on a CPU runner reads the shards' merged records, audits
    nothing and judges each finding per seed; records that contradict a finding fail
    it, and a missing record is named."""
    from pathlib import Path

    from benchmark.tiers import pixel_families

    root = Path(__file__).resolve().parents[1]
    suite = str(root / "suites" / "test_paper_fingerprint.py")
    base = [suite, f"--rootdir={root}", "-p", "no:cacheprovider", "-m", "paper and across_cases",
            "--memobench-tier=paper", f"--memobench-cache={tmp_path / 'empty-cache'}"]  # fmt: skip
    families = len(pixel_families())

    good = _results(tmp_path / "good.json", _paper_records(seeds=2))
    result = pytester.runpytest(*base, f"--memobench-records={good}", "--memobench-seeds=2")
    result.assert_outcomes(passed=3 * families)
    assert not (tmp_path / "empty-cache" / "audits").exists(), "nothing was audited"

    rising = _results(tmp_path / "rising.json", _paper_records(t_of=lambda n: n / 1e5))
    result = pytester.runpytest(*base, f"--memobench-records={rising}", "-k", "tstar")
    result.assert_outcomes(failed=families)
    assert "t* does not fall with N_train" in result.stdout.str()

    chance = _results(tmp_path / "chance.json", _paper_records(shadow_auc=(0.52, 0.47, 0.57)))
    result = pytester.runpytest(*base, f"--memobench-records={chance}", "-k", "shadow")
    result.assert_outcomes(failed=families)
    assert "GSA trained on a shadow model has AUC 0.520" in result.stdout.str()

    partial = _paper_records()[1:]  # one Table 1 record missing
    result = pytester.runpytest(
        *base, f"--memobench-records={_results(tmp_path / 'p.json', partial)}"
    )
    assert "--memobench-records: no record of case" in result.stdout.str()
    result = pytester.runpytest(*base, f"--memobench-records={tmp_path / 'none-*.json'}")
    assert "no file matches" in result.stdout.str()
    rehearsed = _results(tmp_path / "r.json", _paper_records(), rehearsal=True)
    result = pytester.runpytest(*base, f"--memobench-records={rehearsed}")
    assert "holds a rehearsal's records" in result.stdout.str()
