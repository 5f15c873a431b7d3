"""The GPU workflow (examples/ci/gpu-paper-tier.yml), read as one would before putting it
on a self-hosted runner: valid YAML of the right shape, the pinned install, a Python the
package supports, a writable cache, one GPU per shard, a preflight, the merge on a CPU
runner; and its preflight command runs here."""

from __future__ import annotations

from pathlib import Path

import yaml

from benchmark.cli import main

WORKFLOW = Path(__file__).resolve().parents[1] / "examples" / "ci" / "gpu-paper-tier.yml"


def _workflow() -> dict:
    doc = yaml.safe_load(WORKFLOW.read_text())
    assert isinstance(doc, dict) and "jobs" in doc and "name" in doc
    return doc


def _runs(job: dict) -> list[str]:
    return [step["run"] for step in job["steps"] if "run" in step]


def test_every_job_installs_the_pinned_versions_on_a_supported_python():
    for name, job in _workflow()["jobs"].items():
        uses = [step.get("uses", "") for step in job["steps"]]
        assert any(u.startswith("actions/setup-python@") for u in uses), name
        setup = next(s for s in job["steps"] if s.get("uses", "").startswith("actions/setup-"))
        assert float(setup["with"]["python-version"]) >= 3.11, name
        installs = [
            line for run in _runs(job) for line in run.splitlines() if "pip install" in line
        ]
        assert installs and all("-c constraints.txt" in line for line in installs), name


def test_each_shard_has_its_gpu_a_writable_cache_and_a_preflight():
    doc = _workflow()
    shard = doc["jobs"]["shard"]
    matrix = shard["strategy"]["matrix"]
    gpus = {inc["shard"]: inc["gpu"] for inc in matrix["include"]}
    assert sorted(gpus) == matrix["shard"] and len(set(gpus.values())) == len(gpus)
    assert len(matrix["shard"]) == int(doc["env"]["SHARDS"])
    assert shard["env"]["CUDA_VISIBLE_DEVICES"] == "${{ matrix.gpu }}"
    runs = _runs(shard)
    # the cache in a folder of the runner's own (set through GITHUB_ENV: the runner
    # context is not available in a job's env), never a system folder
    assert any("MEMOBENCH_CACHE=$RUNNER_TOOL_CACHE/" in r and "GITHUB_ENV" in r for r in runs)
    assert "/var/cache" not in WORKFLOW.read_text()
    doctor = next(i for i, r in enumerate(runs) if "memobench doctor" in r)
    paper = next(i for i, r in enumerate(runs) if "-m paper" in r)
    assert doctor < paper, "the preflight runs before the cases"
    assert "--memobench-shard=${{ matrix.shard }}/${{ env.SHARDS }}" in runs[paper]


def test_the_merge_needs_no_gpu_runner():
    merge = _workflow()["jobs"]["leaderboard"]
    assert merge["runs-on"] == "ubuntu-latest" and merge["needs"] == "shard"
    assert any("memobench report" in r for r in _runs(merge))


def test_the_preflight_command_runs(tmp_path, capsys):
    """The workflow's doctor line, on this machine's CPU (its --device cuda fails here
    with the fix; --device cpu is ready)."""
    code = main(["doctor", "--device", "cpu", "--cache", str(tmp_path / "cache")])
    assert code == 0 and "ready" in capsys.readouterr().out
