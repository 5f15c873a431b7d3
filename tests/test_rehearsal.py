"""The GPU path rehearsed on the CPU: every paper case end to end, and the smoke tier on a
user's MedMNIST file, through `memobench run` as a user runs it.

The paper tier's networks (the 25M-parameter UNet at 28 px, ResNet-50 detectors),
audit, attacks, results file and leaderboard run as on a GPU runner; only the
counts are scaled down (``benchmark.tiers.Rehearsal``). The MedMNIST files are
written here in MedMNIST's own ``.npz`` layout, at each set's full training size.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmark import registry
from benchmark.measures.carlini_l2 import CARLINI_L2
from benchmark.measures.fid import FID_GAP
from benchmark.measures.membership_scores import MIA_AUC
from benchmark.measures.reproduction import Q_CONCLUSIVE, Q
from benchmark.measures.tstar import TSTAR, TSTAR_NFE
from benchmark.metrics.fingerprint import C_SAF_ENTRY
from benchmark.metrics.likelihood import NLL_N
from benchmark.metrics.membership_inference import MIA_RUNS, MIA_SHADOW_MODEL
from benchmark.metrics.utility import REPLICATION_EXTRACTOR
from benchmark.record import (
    CASE_ID,
    DATASET,
    FAMILY,
    METRIC_SKIPPED,
    N_GEN,
    N_TRAIN,
    PARAM_COUNT,
    TIER,
)
from benchmark.tiers import LATENT_PAPER, PATHMNIST_N, PATHMNIST_SHADOW_N, TABLE2, paper_cases
from tests.helpers import write_medmnist_npz

ROOT = Path(__file__).resolve().parents[1]


# A safety net against a hung subprocess, not a timing: CI's own limit (90 minutes),
# several times the longest rehearsal seen (17 minutes on a loaded 2-core machine).
SAFETY_NET_S = 5400


def memobench(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    # this checkout's memobench, whichever is installed
    env = dict(os.environ, MEMOBENCH_PROGRESS="0", PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, "-m", "benchmark.cli", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=SAFETY_NET_S,
    )  # fmt: skip


def _records(results: Path) -> dict[str, dict]:
    doc = json.loads(results.read_text())
    assert doc["memobench"]["rehearsal"] is True, "a rehearsal's results say so"
    return {b["extra_info"][CASE_ID]: b["extra_info"] for b in doc["benchmarks"]}


@pytest.fixture(scope="module")
def medmnist_root(tmp_path_factory) -> Path:
    """Every paper set in MedMNIST's layout, as many training images as its cases use."""
    root = tmp_path_factory.mktemp("medmnist")
    sizes = {"pathmnist": max(PATHMNIST_N), **TABLE2}
    for name, n_train in sizes.items():
        channels = registry.datasets.get(name).channels
        # PathMNIST's test split: the N_train 1000 case's 1000 non-members, then 64 for
        # its shadow model's
        n_test = 64 + (min(PATHMNIST_SHADOW_N) if name == "pathmnist" else 0)
        write_medmnist_npz(root / f"{name}.npz", n_train=n_train, n_test=n_test, channels=channels)
    # the latent family's MedMNIST+ case: its own file, at 64 px
    name, n_train = LATENT_PAPER
    source = registry.datasets.get(name)
    write_medmnist_npz(root / f"{source.flag}_{source.image_size}.npz", n_train=n_train,
                       n_test=64, size=source.image_size, channels=source.channels)  # fmt: skip
    return root


BUILT_IN_FAMILIES = ("ddim", "subvp", "latent")
# Table 1's PathMNIST sizes take one path, whatever N_train: the rehearsal runs the
# smallest and the largest (the largest also reads the whole file); Table 2 runs whole,
# each set its own file, channel count and label layout.
REHEARSED_PATHMNIST = (min(PATHMNIST_N), max(PATHMNIST_N))


def _rehearsed(node_id: str, case) -> bool:
    if case.model.family not in BUILT_IN_FAMILIES:
        return False
    return case.data.name != "pathmnist" or case.data.n_train in REHEARSED_PATHMNIST


@pytest.mark.slow
def test_every_paper_case_runs_in_rehearsal(medmnist_root, tmp_path):
    results = tmp_path / "paper.json"
    board = tmp_path / "board" / "leaderboard.html"
    chosen = [(node, case) for node, case in paper_cases() if _rehearsed(node, case)]
    run = memobench(
        "run", "--tier", "paper", "--rehearse", "--data-root", str(medmnist_root),
        "--cache", str(tmp_path / "cache"), "--results", str(results), "-o", str(board),
        # the built-in families' cases; an installed plugin family's paper cases take
        # the same path (run_case), and its contract suite checks the family itself
        "--", "-k", " or ".join(node.split("::")[-1] for node, _ in chosen),
        cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    assert f"{len(chosen)} passed" in run.stdout, run.stdout[-2000:]
    records = _records(results)
    expected = {case.case_id for _, case in chosen}
    # each pixel family's Tables 1 and 2, the latent family's MedMNIST+ case
    assert len(expected) == 2 * (len(REHEARSED_PATHMNIST) + len(TABLE2)) + 1
    assert set(records) == expected
    for case_id, m in records.items():
        assert m[TIER] == "paper" and m[N_GEN] == 8, case_id
        assert m[PARAM_COUNT] > 25e6, f"{case_id}: the paper network, not a small one"
        assert -1 <= m[TSTAR] < 1 and m[TSTAR_NFE] > 0, case_id
        assert m[C_SAF_ENTRY(entry="val_size")] == 20 and Q_CONCLUSIVE in m, case_id
        assert m[MIA_RUNS], case_id
        for run in m[MIA_RUNS]:
            assert 0 <= m[MIA_AUC(attack=run)] <= 1, (case_id, run)
        assert FID_GAP in m and m[REPLICATION_EXTRACTOR].endswith("-classifier"), case_id
    assert records["subvp-pathmnist1000-none"][NLL_N] == [2, 2]
    # PathMNIST 1000 trains a shadow model and runs the shadow-trained GSA on it; 50000
    # leaves no images for one
    for family in ("ddim", "subvp"):
        small, large = (records[f"{family}-pathmnist{n}-none"] for n in REHEARSED_PATHMNIST)
        assert "gsa-shadow_weights" in small[MIA_RUNS] and small[MIA_SHADOW_MODEL], family
        assert "gsa-shadow_weights" not in large[MIA_RUNS] and large[MIA_SHADOW_MODEL] is None
    html = board.read_text()
    assert all(case_id in html for case_id in expected)
    assert 'id="rehearsal"' in html, "the leaderboard says its rows are a rehearsal's"


@pytest.mark.slow
def test_smoke_tier_on_a_users_medmnist_file(tmp_path):
    """`memobench run --dataset pneumoniamnist --data-root DIR` on a 28x28 grey file: a
    leaderboard with Carlini, MIA and FID for both families; with detectors under their
    accuracy gate (here a gate of 1.0 no detector passes), |q| and t* are withheld and
    every other figure is still there (counts rehearsed)."""
    data = tmp_path / "data"
    data.mkdir()
    write_medmnist_npz(data / "pneumoniamnist.npz", n_train=1100, n_test=200)
    results = tmp_path / "mine.json"
    board = tmp_path / "board" / "leaderboard.html"
    run = memobench(
        "run", "--dataset", "pneumoniamnist", "--data-root", str(data), "--rehearse",
        "--detector-min-accuracy", "1.0",
        "--cache", str(tmp_path / "cache"), "--results", str(results), "-o", str(board),
        "--", "-k", "test_leakage",
        cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    records = _records(results)
    families = {m[FAMILY] for m in records.values()}
    assert {"ddim", "subvp"} <= families
    for case_id, m in records.items():
        assert m[DATASET] == "pneumoniamnist" and case_id.split("-")[1].startswith("pneum")
        assert m[N_TRAIN] in (64, 1024)
        for key in (CARLINI_L2, FID_GAP, MIA_AUC(attack="loss_weights")):
            assert key in m, (case_id, key)
        reason = m[METRIC_SKIPPED(metric="fingerprint")]
        assert "below the required 1.00" in reason and Q not in m and TSTAR not in m, case_id
        assert C_SAF_ENTRY(entry="accuracy") in m, "the detectors' accuracy is recorded"
    html = board.read_text()
    assert "pneumoniamnist" in html and "t*" in html and "withheld" in html


@pytest.mark.slow
def test_the_validation_tier_runs_in_rehearsal(tmp_path):
    """`memobench run --tier validation --rehearse`: each tuned setting and the paper's
    CPSample setting on the selection model and on the evaluation model (another split,
    x_p and seeds, its own case id), each record saying which model it is; the science
    checks skip, since a rehearsal cannot show them."""
    from benchmark.record import TUNING_ROLE
    from benchmark.suites.test_heldout_settings import CASES, EVALUATION, SELECTION

    results = tmp_path / "validation.json"
    board = tmp_path / "board" / "leaderboard.html"
    run = memobench(
        "run", "--tier", "validation", "--rehearse", "--cache", str(tmp_path / "cache"),
        "--results", str(results), "-o", str(board),
        cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    assert f"{2 * len(CASES)} passed, 6 skipped" in run.stdout, run.stdout[-2000:]
    records = _records(results)
    roles = {case_id: m[TUNING_ROLE] for case_id, m in records.items()}
    assert sorted(roles.values()) == [EVALUATION] * len(CASES) + [SELECTION] * len(CASES)
    for case_id, role in roles.items():
        assert case_id.endswith("~split1-saf1-train1-seed1") == (role == EVALUATION), case_id
        assert records[case_id][TIER] == "validation"
    assert any("alpha=0.001" in c for c in roles), "the paper's CPSample setting runs too"
    html = board.read_text()
    assert all(case_id in html for case_id in records)
