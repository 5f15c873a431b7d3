"""``--memobench-seeds K``: K models of every case, each with its own training and sampling
seed, and the leaderboard's mean and spread of each figure across them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmark.errors import ConfigError
from benchmark.options import run_settings, seeds
from benchmark.report.seeds import across_seeds, configuration_id, spread
from benchmark.settings import RunSettings
from benchmark.tiers import (
    PAPER_GPU_SEEDS,
    default_seeds,
    paper_cases,
    seed_ids,
    seeded,
    smoke_case,
)
from tests.test_rehearsal import _records, memobench

ROOT = Path(__file__).resolve().parents[1]
pytest_plugins = ["pytester"]  # the node-id test collects the real suites


def test_a_seeded_case_is_another_model_of_the_same_configuration():
    case = smoke_case("ddim", 64)
    assert seeded(case, 0) is case
    other = seeded(case, 2)
    assert (other.train.seed, other.seed) == (2, 2)
    assert other.data == case.data  # same split, same x_p
    assert other.case_id == f"{case.case_id}~train2-seed2"
    assert configuration_id(other.case_id) == case.case_id
    # a split or x_p seed is another configuration, not another draw of this one
    assert configuration_id("ddim-digits64-none~split1-saf1-train1-seed1") == (
        "ddim-digits64-none~split1-saf1"
    )
    with pytest.raises(ConfigError, match=">= 0"):
        seeded(case, -1)


def test_the_paper_tier_trains_three_models_per_case_on_a_gpu_only():
    assert default_seeds("paper", "cuda") == PAPER_GPU_SEEDS == 3
    assert default_seeds("paper", "cpu") == 1
    assert default_seeds("paper", "cuda", rehearse=True) == 1
    assert default_seeds("smoke", "cuda") == 1

    def getter(**given):
        return lambda name: given.get(name.replace("-", "_"))

    assert seeds(getter(tier="smoke", device="cpu")) == 1
    assert seeds(getter(tier="paper", device="cpu", seeds=2)) == 2
    assert run_settings(getter(tier="smoke", device="cpu", seeds=4)).seeds == 4
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ConfigError, match="seeds"):
            RunSettings(seeds=bad)


def test_seeds_zero_is_refused_by_name(tmp_path):
    run = memobench("run", "--seeds", "0", "--cache", str(tmp_path), cwd=tmp_path)
    assert run.returncode != 0
    assert "--seeds must be >= 1, got 0" in run.stdout + run.stderr


def test_the_suites_run_each_case_once_per_seed(pytester):
    """Collected with --memobench-seeds 2: every paper case twice (the node ids ``memobench
    plan --seeds 2`` lists, so shards agree), the smoke cases twice; at one seed the node
    ids are as they were."""
    args = [f"--rootdir={ROOT}", "-p", "no:cacheprovider", "--collect-only", "-q"]
    paper = str(ROOT / "suites" / "test_paper_fingerprint.py")
    result = pytester.runpytest(paper, *args, "-m", "not across_cases", "--memobench-seeds=2")
    collected = {line.strip() for line in result.outlines if "::test_" in line}
    assert collected == {node for node, _ in paper_cases(seeds=2)}
    assert len(collected) == 2 * len(paper_cases())
    assert all(node.endswith(("-seed0]", "-seed1]")) for node in collected)

    smoke = str(ROOT / "suites" / "test_smoke_leakage.py")
    result = pytester.runpytest(smoke, *args, "-k", "test_leakage", "--memobench-seeds=2")
    ids = [line.strip() for line in result.outlines if "::test_leakage[" in line]
    assert "suites/test_smoke_leakage.py::test_leakage[ddim-64-none-seed1]" in ids
    result = pytester.runpytest(smoke, *args, "-k", "test_leakage")
    one = [line.strip() for line in result.outlines if "::test_leakage[" in line]
    assert (
        len(ids) == 2 * len(one)
        and "suites/test_smoke_leakage.py::test_leakage[ddim-64-none]" in one
    )
    assert seed_ids(1) == [] and seed_ids(3) == ["seed0", "seed1", "seed2"]


def test_the_plan_lists_three_seeds_by_default(monkeypatch, tmp_path):
    """`memobench plan` plans the paper tier as a GPU runs it: three seeds per case unless
    --seeds says otherwise (the plan itself is tests/test_plan.py's)."""
    import benchmark.plan
    from benchmark.cli import main

    planned = []
    monkeypatch.setattr(
        benchmark.plan, "plan_cases", lambda cases, *a, **k: planned.append(cases) or []
    )
    monkeypatch.setattr(benchmark.plan, "format_plan", lambda *a, **k: "")
    assert main(["plan", "--cache", str(tmp_path)]) == 0
    assert main(["plan", "--seeds", "1", "--cache", str(tmp_path)]) == 0
    three, one = ([node for node, _ in cases] for cases in planned)
    assert len(three) == 3 * len(one)
    assert "suites/test_paper_fingerprint.py::test_pathmnist_table1[ddim-1000-seed2]" in three
    assert not any("seed" in node for node in one)
    assert main(["plan", "--seeds", "0"]) == 2  # a usage error, as --n-gen 0


def test_the_spread_is_pandas_mean_and_standard_deviation():
    rng = np.random.default_rng(0)
    rows = []
    for config in ("ddim-digits64-none", "ddim-digits64-cpsample(alpha=0.1)"):
        for k in range(3):
            case_id = config if k == 0 else f"{config}~train{k}-seed{k}"
            rows.append({"case_id": case_id, "config": config, "carlini_l2": rng.random(),
                         "q": int(rng.integers(0, 20)), "fid_test": rng.random() * 10})  # fmt: skip
    rows.append({"case_id": "subvp-digits64-none", "carlini_l2": 0.7})  # one seed: no row
    groups = {g.configuration: g for g in across_seeds(rows)}
    assert set(groups) == {"ddim-digits64-none", "ddim-digits64-cpsample(alpha=0.1)"}
    df = pd.DataFrame(rows[:-1])
    stats = df.groupby("config")[["carlini_l2", "q", "fid_test"]].agg(["mean", "std", "min", "max"])
    for config, g in groups.items():
        assert len(g.case_ids) == 3
        for key in ("carlini_l2", "q", "fid_test"):
            s = g.figures[key]
            assert (s.mean, s.sd, s.low, s.high) == pytest.approx(
                tuple(stats.loc[config, (key, f)] for f in ("mean", "std", "min", "max"))
            )
        assert g.figures["tstar"] is None  # measured by no seed
    assert spread([0.5]).text("{:.2f}") == "0.50 (1 seed)"
    assert spread([float("nan"), None]) is None


@pytest.mark.slow
def test_two_seeds_end_to_end_in_rehearsal(tmp_path):
    """`memobench run --rehearse --seeds 2` on one smoke case: two models, two records
    (the second's id ends in ~train1-seed1 and its seeds say so), and the leaderboard's
    "Across seeds" table with that configuration's mean and spread."""
    results = tmp_path / "seeds.json"
    board = tmp_path / "board" / "leaderboard.html"
    run = memobench(
        "run", "--rehearse", "--seeds", "2", "--cache", str(tmp_path / "cache"),
        "--results", str(results), "-o", str(board),
        "--", "-k", "test_leakage and ddim-64-none",
        cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    assert "2 passed" in run.stdout, run.stdout[-2000:]
    records = _records(results)
    assert set(records) == {"ddim-digits64-none", "ddim-digits64-none~train1-seed1"}
    second = records["ddim-digits64-none~train1-seed1"]
    assert second["seeds"]["train"] == 1 and second["seeds"]["case"] == 1
    assert second["model_key"] != records["ddim-digits64-none"]["model_key"]
    html = board.read_text()
    assert 'id="across-seeds"' in html
    row = html.split('data-configuration="ddim-digits64-none"')[1].split("</tr>")[0]
    carlini = [records[c]["carlini_l2"] for c in sorted(records)]
    assert f"{np.mean(carlini):.3f} ± {np.std(carlini, ddof=1):.3f}" in row
