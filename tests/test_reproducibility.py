"""The same case gives the same figures however it is run: in this process or a pool
worker's (tests/test_store.py), at one thread or two, cold or from the cache; and when
two runs' figures differ, their results files say where and what could explain it."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from benchmark.audit import run_case
from benchmark.record import AUDIT_REUSED, CASE_ID, SEEDS, THREADS
from benchmark.session import Session
from benchmark.tiers import Rehearsal, smoke_case

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("compare_runs", ROOT / "benchmarks/compare_runs.py")
compare_runs = importlib.util.module_from_spec(spec)
spec.loader.exec_module(compare_runs)

# Float sums may be ordered differently by another thread count. On the rehearsed DDIM
# case every figure agreed to 1e-6 (counts, AUCs, Carlini, t* exactly) except the Welch
# t statistics of PIA and SecMI and their p-values, which moved by about 2e-6 (scores of
# 4 + 4 images, nearly equal); those are held to TOLERANCE.
TOLERANCE = 1e-5
WELCH = ("_t_stat", "_p_value")


def _audit(cache: Path, threads: int, reaudit: bool) -> dict:
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        session = Session(cache, n_gen=8, rehearsal=Rehearsal(), progress=False, reaudit=reaudit)
        return run_case(session.settings.scaled(smoke_case("ddim", 64, n_gen=8)), session).metrics
    finally:
        torch.set_num_threads(before)


def test_one_and_two_threads_and_the_cache_give_the_same_figures(tmp_path):
    one = _audit(tmp_path, threads=1, reaudit=False)  # cold: trains and audits
    two = _audit(tmp_path, threads=2, reaudit=True)  # audited again at two threads
    stored = _audit(tmp_path, threads=2, reaudit=False)  # from the cache
    assert one[THREADS] == 1 and two[THREADS] == 2
    assert not one[AUDIT_REUSED] and not two[AUDIT_REUSED] and stored[AUDIT_REUSED]
    assert one[SEEDS] == {"split": 0, "saf": 0, "train": 0, "case": 0, "detectors": 0}
    a, b, c = ({one[CASE_ID]: r} for r in (one, two, stored))
    assert compare_runs.differences(a, b, TOLERANCE) == {}
    finer = compare_runs.differences(a, b, 1e-6)
    assert all(key.endswith(WELCH) for key in finer), sorted(finer)
    assert compare_runs.differences(b, c, 0.0) == {}, "the stored audit is the audit"
    # the comparison can fail: a changed figure is found
    moved = {one[CASE_ID]: dict(one, carlini_l2=one["carlini_l2"] + 0.01)}
    assert "carlini_l2" in compare_runs.differences(a, moved, TOLERANCE)


def _results(path: Path, figures: dict[str, dict], threads: int, torch_version: str) -> str:
    doc = {
        "benchmarks": [{"extra_info": {CASE_ID: case, **f}} for case, f in figures.items()],
        "memobench": {"environment": {"torch_threads": threads,
                                      "versions": {"torch": torch_version}}},
    }  # fmt: skip
    path.write_text(json.dumps(doc))
    return str(path)


def test_compare_runs_names_the_first_difference_and_the_environments(tmp_path):
    first = _results(
        tmp_path / "a.json", {"c1": {"auc": 0.5, "q": 3}, "c2": {"auc": 0.7, "q": 1}}, 1, "2.14.1"
    )
    second = _results(
        tmp_path / "b.json", {"c1": {"auc": 0.5, "q": 4}, "c2": {"auc": 0.9, "q": 1}}, 2, "2.14.1"
    )
    run = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks/compare_runs.py"), first, second],
        capture_output=True, text=True, cwd=ROOT,
    )  # fmt: skip
    assert run.returncode == 1, run.stdout + run.stderr
    assert "first difference: case c1, key q: 3.0 vs 4.0" in run.stdout
    assert "torch_threads: 1 vs 2" in run.stdout and "versions.torch" not in run.stdout
    same = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks/compare_runs.py"), first, first],
        capture_output=True, text=True, cwd=ROOT,
    )  # fmt: skip
    assert same.returncode == 0 and "every figure agrees" in same.stdout


@pytest.mark.parametrize("key", ["torch_threads", "cpu_capability", "versions"])
def test_results_files_record_what_explains_a_difference(key):
    from benchmark.environment import environment

    env = environment()
    assert key in env
    assert env["versions"]["torch"] == torch.__version__.split("+")[0]
