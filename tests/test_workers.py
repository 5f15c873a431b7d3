"""pytest-xdist: a GPU per worker, cases grouped by model, one results file, the same
results as a serial run, and every model trained once."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import torch

from benchmark.device import worker_device
from benchmark.errors import DeviceError
from benchmark.measures.carlini_l2 import CARLINI_L2
from benchmark.measures.fid import FID_TEST
from benchmark.measures.membership_scores import MIA_AUC
from benchmark.measures.reproduction import Q
from benchmark.record import CASE_ID, MODEL_KEY

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "device, worker, n_gpus, expected",
    [
        ("cuda", "gw0", 2, "cuda:0"),
        ("cuda", "gw1", 2, "cuda:1"),
        ("cuda", "gw5", 2, "cuda:1"),  # more workers than GPUs: round-robin
        ("cuda", "gw3", 4, "cuda:3"),
        ("cuda:1", "gw0", 2, "cuda:1"),  # an explicit GPU stays
        ("cpu", "gw1", 2, "cpu"),
        ("cuda", None, 2, "cuda"),  # not under xdist
    ],
)
def test_each_worker_takes_one_gpu(device, worker, n_gpus, expected):
    assert worker_device(torch.device(device), worker, n_gpus) == torch.device(expected)


def test_an_unexpected_worker_id_is_refused():
    with pytest.raises(DeviceError, match="worker id 'main'"):
        worker_device(torch.device("cuda"), "main", 2)


def test_workers_share_the_cores_between_them(monkeypatch):
    from benchmark.workers import share_cores

    before = torch.get_num_threads()
    monkeypatch.setattr("os.cpu_count", lambda: 8)
    try:
        assert share_cores(2) == 4 and torch.get_num_threads() == 4
        assert share_cores(16) == 1 and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def _run(tmp_path: Path, name: str, *extra: str) -> tuple[dict, str]:
    """The rehearsed smoke suite's unmitigated ddim cases (two models) into their own cache
    and results file."""
    results = tmp_path / f"{name}.json"
    proc = subprocess.run(
        [
            sys.executable, "-m", "pytest", "suites/test_smoke_leakage.py",
            "--memobench-tier", "smoke", "--memobench-rehearse",
            "--memobench-cache", str(tmp_path / f"cache-{name}"),
            "--memobench-results", str(results),
            "-k", "test_leakage and ddim and none", "-p", "no:cacheprovider", "-q", *extra,
        ],
        cwd=REPO, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    return json.loads(results.read_text()), log


@pytest.mark.slow
def test_two_workers_give_the_serial_results_and_train_each_model_once(tmp_path):
    serial, _ = _run(tmp_path, "serial")
    spread, log = _run(tmp_path, "xdist", "-n", "2", "--dist", "loadgroup")

    assert spread.get("xdist") is True and spread["memobench"]["rehearsal"] is True
    by_case = {}
    for doc in (serial, spread):
        by_case[id(doc)] = {b["extra_info"][CASE_ID]: b["extra_info"] for b in doc["benchmarks"]}
    one, two = by_case[id(serial)], by_case[id(spread)]
    assert set(one) == set(two) and len(one) == 2, (sorted(one), sorted(two))
    for case_id, a in one.items():
        b = two[case_id]
        assert a[MODEL_KEY] == b[MODEL_KEY], case_id
        assert a[Q] == b[Q], case_id
        for field in (CARLINI_L2, FID_TEST, MIA_AUC(attack="loss_weights")):
            assert b[field] == pytest.approx(a[field], abs=1e-3), (case_id, field)

    # each of the two models trained once over both workers (and their training pools)
    trained = Counter(re.findall(r"model \S+ (\w+): trained", log))
    assert len(trained) == 2 and set(trained.values()) == {1}, trained


def test_every_paper_case_has_its_own_xdist_group(pytestconfig):
    """Each paper case trains its own model: with --dist loadgroup they spread over the
    workers (they shared one group, 'ddim-digits-any', and trained one after another)."""
    from benchmark.tiers import paper_cases
    from benchmark.workers import model_group

    class Item:  # what model_group reads of a collected paper case
        def __init__(self, node: str, family: str) -> None:
            self.name = node.split("::")[-1]
            self.callspec = type("C", (), {"params": {"family": family}})()
            self.config = pytestconfig

        def get_closest_marker(self, name: str):
            return object() if name == "paper" else None

    groups = [model_group(Item(node, case.model.family)) for node, case in paper_cases()]
    assert len(set(groups)) == len(groups), groups
    assert "paper-test_medmnist_table2[ddim-chestmnist]" in groups
