"""The papers' findings as the paper tier asserts them across cases
(benchmark/suites/test_paper_fingerprint.py): each check passes on records shaped as
the papers report and fails on records that contradict them."""

from __future__ import annotations

import pytest

from benchmark.measures.reproduction import Q
from benchmark.measures.tstar import TSTAR, TSTAR_EXACT
from benchmark.record import N_GEN
from benchmark.suites.test_paper_fingerprint import check_reproductions_fall, check_tstar_falls


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
