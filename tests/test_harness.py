"""The pytest plugin as users meet it: markers, tiers, GPU skips, options, results JSON."""

from __future__ import annotations

import json

import pytest
import torch

pytest_plugins = ["pytester"]


def test_markers_are_registered_and_strict(pytester):
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.smoke
        def test_ok():
            pass

        @pytest.mark.not_a_marker
        def test_typo():
            pass
        """
    )
    result = pytester.runpytest("--strict-markers")
    result.stdout.fnmatch_lines(["*'not_a_marker' not found in `markers`*"])
    assert result.ret != 0
    result = pytester.runpytest("--markers")
    result.stdout.fnmatch_lines(["@pytest.mark.smoke:*", "@pytest.mark.gpu:*"])


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU skip")
def test_gpu_case_skips_with_reason(pytester):
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.gpu
        def test_needs_gpu():
            raise AssertionError("must not run without a GPU")

        @pytest.mark.paper
        def test_paper():
            raise AssertionError("must not run in the smoke tier")
        """
    )
    result = pytester.runpytest("-rs")
    result.assert_outcomes(skipped=2)
    result.stdout.fnmatch_lines(["*needs a CUDA GPU*", "*paper tier: run with --memobench-tier*"])


def test_paper_tier_runs_paper_cases_and_skips_smoke(pytester):
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.paper
        def test_paper():
            pass

        @pytest.mark.smoke
        def test_smoke():
            pass
        """
    )
    result = pytester.runpytest("--memobench-tier=paper", "-rs")
    result.assert_outcomes(passed=1, skipped=1)


def test_bad_option_values_are_usage_errors(pytester):
    pytester.makepyfile("def test_x():\n    pass\n")
    result = pytester.runpytest("--memobench-tier=huge")
    assert result.ret != 0
    result.stderr.fnmatch_lines(["*invalid choice: 'huge'*"])
    result = pytester.runpytest("--memobench-n-gen=0")
    result.stderr.fnmatch_lines(["*--memobench-n-gen must be >= 1, got 0*"])


def test_results_json_carries_metrics_machine_and_versions(pytester, tmp_path):
    pytester.makepyfile(
        """
        def test_case(benchmark):
            benchmark.pedantic(lambda: sum(range(100)), rounds=1, iterations=1)
            benchmark.extra_info.update(case_id="x-digits64-none", carlini_l2=0.5)
        """
    )
    out = tmp_path / "res.json"
    result = pytester.runpytest(f"--memobench-results={out}")
    result.assert_outcomes(passed=1)
    doc = json.loads(out.read_text())
    assert doc["benchmarks"][0]["extra_info"]["carlini_l2"] == 0.5
    assert "machine_info" in doc and "commit_info" in doc and "datetime" in doc
    assert doc["memobench"]["torch"] == torch.__version__


def test_shards_split_the_cases_and_keep_the_tests(pytester):
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.paper
        @pytest.mark.parametrize("i", range(5))
        def test_case(i):
            pass

        def test_unit():
            pass
        """
    )
    seen = []
    for k in (1, 2):
        result = pytester.runpytest(
            "--memobench-shard", f"{k}/2", "--memobench-tier", "paper", "-v"
        )
        ran = result.stdout.lines
        cases = [line.split()[0] for line in ran if "test_case[" in line and "PASSED" in line]
        assert any("test_unit PASSED" in line for line in ran), k
        seen.append(cases)
    assert len(seen[0]) == 3 and len(seen[1]) == 2
    assert not set(seen[0]) & set(seen[1])
    result = pytester.runpytest("--memobench-shard", "3/2")
    result.stderr.fnmatch_lines(["*--memobench-shard must be K/N with 1 <= K <= N*"])
    assert result.ret != 0


def test_example_gpu_workflow_uses_real_options(pytester):
    """examples/ci: valid YAML, one matrix entry per shard, only options the plugin has."""
    import re
    from pathlib import Path

    import yaml

    path = Path(__file__).resolve().parents[1] / "examples" / "ci" / "gpu-paper-tier.yml"
    flow = yaml.safe_load(path.read_text())
    shards = flow["jobs"]["shard"]["strategy"]["matrix"]["shard"]
    assert shards == list(range(1, int(flow["env"]["SHARDS"]) + 1))
    text = path.read_text()
    help_text = "\n".join(pytester.runpytest("--help").stdout.lines)
    used = set(re.findall(r"--memobench-[a-z-]+", text))
    assert used and all(opt in help_text for opt in used), used
    assert "memobench report results/*.json" in text
