"""A run cut off mid-way (Ctrl-C, a crash) loses nothing that finished: the results file
holds every finished case, the leaderboard is rendered from it, and the run says how to
resume."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from benchmark.cli import RESUME, finish_run
from benchmark.record import CASE_ID

ROOT = Path(__file__).resolve().parents[1]

SUITE = """
import pytest

from benchmark.audit import run_case
from benchmark.report.thumbnails import case_record
from benchmark.session import Session
from benchmark.tiers import SMOKE, Rehearsal, smoke_case


@pytest.mark.parametrize("n", [32, 48])
def test_case(n, benchmark):
    session = Session({cache!r}, n_gen=4, rehearsal=Rehearsal(), progress=False)
    case = session.settings.scaled(smoke_case("dummy", n, n_gen=4))
    if n == 48:  # Ctrl-C while the second case is being measured

        def cut():
            raise KeyboardInterrupt

        benchmark.pedantic(cut, rounds=1, iterations=1)
    result = benchmark.pedantic(run_case, args=(case, session), rounds=1, iterations=1)
    benchmark.extra_info.update(case_record(result, tier=SMOKE))
"""


def test_ctrl_c_mid_case_keeps_the_finished_cases_and_says_how_to_resume(tmp_path, capsys):
    suite = tmp_path / "test_cut.py"
    suite.write_text(textwrap.dedent(SUITE.format(cache=str(tmp_path / "cache"))))
    results = tmp_path / "results.json"
    run = subprocess.run(
        [sys.executable, "-m", "pytest", str(suite), f"--memobench-results={results}",
         "-p", "no:cacheprovider", "-q", f"--rootdir={tmp_path}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=3600,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),  # this checkout's memobench
    )  # fmt: skip
    assert run.returncode == pytest.ExitCode.INTERRUPTED, run.stdout[-3000:] + run.stderr
    assert "min() arg is an empty sequence" not in run.stdout + run.stderr
    assert "1 case(s) cut off before they finished" in run.stderr
    doc = json.loads(results.read_text())
    cases = [b["extra_info"][CASE_ID] for b in doc["benchmarks"]]
    assert cases == ["dummy-digits32-none"], cases

    board = tmp_path / "board" / "leaderboard.html"
    assert finish_run(int(pytest.ExitCode.INTERRUPTED), results, str(board)) == 2
    assert "dummy-digits32-none" in board.read_text()
    err = capsys.readouterr().err
    assert "interrupted" in err and RESUME in err


def test_an_interrupt_before_any_case_finished_says_how_to_resume(tmp_path, capsys):
    assert finish_run(int(pytest.ExitCode.INTERRUPTED), tmp_path / "none.json", None) == 2
    err = capsys.readouterr().err
    assert "wrote no results" in err and RESUME in err
    assert not Path(tmp_path / "none.json").exists()
