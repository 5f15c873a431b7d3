"""The pytest plugin as users meet it: markers, tiers, GPU skips, options, results JSON."""

from __future__ import annotations

import json

import pytest
import torch

from benchmark.measures.carlini_l2 import CARLINI_L2

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
    assert doc["benchmarks"][0]["extra_info"][CARLINI_L2] == 0.5
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

        @pytest.mark.paper
        @pytest.mark.across_cases
        def test_trend():
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
        assert not any("test_trend" in line for line in ran), k  # needs every shard's cases
        seen.append(cases)
    unsharded = pytester.runpytest("--memobench-tier", "paper", "-v").stdout.lines
    assert any("test_trend PASSED" in line for line in unsharded)
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


def test_shards_count_only_the_selected_cases(pytester):
    """Sharding runs after -m: the paper cases split evenly even with smoke cases beside."""
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.smoke
        @pytest.mark.parametrize("i", range(7))
        def test_smoke(i):
            pass

        @pytest.mark.paper
        @pytest.mark.parametrize("i", range(4))
        def test_paper(i):
            pass
        """
    )
    counts = []
    for k in (1, 2):
        result = pytester.runpytest(
            "-m", "paper", "--memobench-tier", "paper", "--memobench-shard", f"{k}/2"
        )
        counts.append(result.parseoutcomes().get("passed"))
    assert counts == [2, 2]


def test_rehearse_runs_gpu_cases_on_the_cpu(pytester):
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.paper
        @pytest.mark.gpu
        def test_paper():
            pass
        """
    )
    result = pytester.runpytest("--memobench-tier", "paper", "--memobench-rehearse", "-rs")
    result.assert_outcomes(passed=1)
    result = pytester.runpytest("--memobench-tier", "all", "--memobench-rehearse")
    result.stderr.fnmatch_lines(["*--memobench-rehearse scales one tier*"])


def test_bad_dataset_option_is_one_usage_error(pytester, tmp_path):
    from tests.helpers import write_medmnist_npz

    pytester.makepyfile("def test_x():\n    pass\n")
    result = pytester.runpytest("--memobench-dataset", "cifar")
    result.stderr.fnmatch_lines(["*--memobench-dataset cifar: *known datasets*"])
    assert result.ret != 0
    result = pytester.runpytest(
        "--memobench-dataset", "pneumoniamnist", f"--memobench-data-root={tmp_path}"
    )
    result.stderr.fnmatch_lines([f"*pneumoniamnist.npz not found in {tmp_path}*"])
    write_medmnist_npz(tmp_path / "pneumoniamnist.npz", n_train=100)
    result = pytester.runpytest(
        "--memobench-dataset", "pneumoniamnist", f"--memobench-data-root={tmp_path}"
    )
    result.stderr.fnmatch_lines(["*n_train=1024 is larger than*has 100 training images*"])
    write_medmnist_npz(tmp_path / "pneumoniamnist.npz", n_train=1100)
    result = pytester.runpytest(
        "--memobench-dataset", "pneumoniamnist", f"--memobench-data-root={tmp_path}"
    )
    result.assert_outcomes(passed=1)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["run", "--dataset", "cifar"], "memobench: error: unknown dataset 'cifar'"),
        (["run", "--dataset", "pneumoniamnist", "--data-root", "{root}"],
         "memobench: error: pneumoniamnist.npz not found in {root}"),
        (["run", "--tier", "paper", "--dataset", "digits"], "memobench: error: --dataset chooses"),
        (["run", "--tier", "all", "--rehearse"], "memobench: error: --rehearse scales one tier"),
        (["plan", "--shard", "3/2"], "memobench: error: --memobench-shard must be K/N"),
        (["plan", "--tflops", "0"], "memobench: error: --tflops must be > 0"),
        (["run", "--device", "cuda:7" if torch.cuda.is_available() else "cuda"],
         "memobench: error: device 'cuda"),
    ],
)  # fmt: skip
def test_cli_bad_inputs_are_one_line_before_anything_runs(argv, message, tmp_path, capsys):
    from benchmark.cli import main

    argv = [a.format(root=tmp_path) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(message.format(root=tmp_path)), err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks a machine without CUDA")
def test_no_gpu_for_a_gpu_device_is_one_usage_error(pytester):
    pytester.makepyfile("def test_x():\n    pass\n")
    result = pytester.runpytest("--memobench-device", "cuda")
    result.stderr.fnmatch_lines(["*device 'cuda' was requested but torch.cuda.is_available()*"])
    assert result.ret != 0
    result = pytester.runpytest("--memobench-device", "cuda", "--memobench-rehearse")
    result.assert_outcomes(passed=1)  # a rehearsal runs on the CPU


def test_a_missing_model_folder_is_one_usage_error(pytester, tmp_path):
    pytester.makepyfile("def test_x():\n    pass\n")
    result = pytester.runpytest(f"--memobench-model-path={tmp_path / 'nope'}")
    result.stderr.fnmatch_lines([f"*--memobench-model-path {tmp_path / 'nope'}: no such folder*"])
    assert result.ret != 0


# Every bad --memobench-* value of a pytest run, refused in one line before anything
# is collected. Grow this table with each new option.
BAD_PYTEST_OPTIONS = [
    (["--memobench-dataset", "cifar"], "unknown dataset 'cifar'"),
    (["--memobench-dataset", "pneumoniamnist", "--memobench-data-root", "{root}"],
     "--memobench-dataset pneumoniamnist: pneumoniamnist.npz not found in {root}"),
    (["--memobench-n-gen", "0"], "--memobench-n-gen must be >= 1, got 0"),
    (["--memobench-shard", "3/2"], "--memobench-shard must be K/N"),
    (["--memobench-shard", "two"], "--memobench-shard must be K/N"),
    (["--memobench-tier", "all", "--memobench-rehearse"], "--memobench-rehearse scales one tier"),
    (["--memobench-device", "tpu"], "unknown device 'tpu'"),
    (["--memobench-model-path", "{root}/nope"],
     "--memobench-model-path {root}/nope: no such folder"),
    (["--memobench-model-path", "{root}", "--memobench-model-family", "gan"],
     "unknown model 'gan'; known models: "),
    (["--memobench-model-path", "{root}", "--memobench-model-dataset", "cifar"],
     "unknown dataset 'cifar'"),
    (["--memobench-batch-size", "0"], "--memobench-batch-size must be >= 1, got 0"),
]  # fmt: skip
if not torch.cuda.is_available():
    BAD_PYTEST_OPTIONS.append(
        (["--memobench-device", "cuda"], "device 'cuda' was requested but torch.cuda")
    )


@pytest.mark.parametrize("argv, message", BAD_PYTEST_OPTIONS)
def test_pytest_bad_options_are_one_line_before_anything_runs(argv, message, pytester, tmp_path):
    pytester.makepyfile("def test_x():\n    pass\n")
    argv = [a.format(root=tmp_path) for a in argv]
    # a subprocess: in-process runs drop the modules they imported, and torch refuses
    # to import some of its own twice
    result = pytester.runpytest_subprocess(*argv)
    assert result.ret == 2  # as ``memobench`` itself exits on a bad input
    lines = [line for line in result.errlines if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Exit: memobench: error: "), lines
    assert message.format(root=tmp_path) in lines[0]
    assert "passed" not in result.stdout.str()


def test_a_rehearsal_skips_the_findings_and_says_why(pytester):
    pytester.makepyfile(
        "import pytest\n"
        "@pytest.mark.science\n"
        "def test_finding():\n"
        "    assert False, 'a few training steps show no memorization'\n"
        "def test_code_path():\n"
        "    pass\n"
    )
    result = pytester.runpytest("--memobench-rehearse", "--memobench-tier", "smoke", "-rs")
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(["*a rehearsal runs the code path with a few training steps*"])
    result = pytester.runpytest()
    result.assert_outcomes(passed=1, failed=1)
