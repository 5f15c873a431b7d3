"""The suites as a user runs them: plugins picked up, a pretrained model audited.

Each test runs pytest in a subprocess on the real ``suites/`` folder.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import torch

from benchmark.config import ModelConfig
from benchmark.measures.carlini_l2 import CARLINI_L2
from benchmark.models.ddpm import DDIMFamily
from benchmark.record import CASE_ID, MODEL_SOURCE, N_GEN

REPO = Path(__file__).resolve().parents[1]


def run_pytest(args, extra_path=None, cache=None, timeout=600):
    env = dict(os.environ, MEMOBENCH_PROGRESS="0")
    if extra_path:
        env["PYTHONPATH"] = os.pathsep.join([str(extra_path), env.get("PYTHONPATH", "")])
    if cache:
        env["MEMOBENCH_CACHE"] = str(cache)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


PLUGIN = '''
"""A third party's model family: one file plus one entry point."""
from benchmark.config import ModelConfig, SamplerConfig, TrainConfig
from benchmark.models.ddpm import DDIMFamily


class TinyThirdPartyFamily(DDIMFamily):
    name = "thirdparty"

    @classmethod
    def smoke_configs(cls):
        return (ModelConfig(family=cls.name, block_out_channels=(4, 8), norm_num_groups=4),
                TrainConfig(steps=4, batch_size=4), SamplerConfig(num_steps=2))
'''


def install_throwaway_plugin(root: Path) -> Path:
    """A module and a dist-info with an entry point, as `pip install` would leave them."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "thirdparty_family.py").write_text(PLUGIN)
    dist = root / "thirdparty_family-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: thirdparty-family\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        "[memobench.models]\nthirdparty = thirdparty_family:TinyThirdPartyFamily\n"
    )
    return root


def test_a_plugin_family_joins_every_suite_case(tmp_path):
    site = install_throwaway_plugin(tmp_path / "site")
    listed = run_pytest(["suites", "--collect-only", "-q"], extra_path=site)
    assert listed.returncode == 0, listed.stdout + listed.stderr
    ids = listed.stdout
    assert "test_leakage[thirdparty-64-none]" in ids
    assert "test_leakage[ddim-64-none]" in ids
    assert "test_family_contract[thirdparty]" in ids
    assert "dummy" not in ids, "the test-only family stays out of suites"
    ran = run_pytest(
        ["suites/test_contract.py", "-k", "thirdparty", "-q"],
        extra_path=site,
        cache=tmp_path / "cache",
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "2 passed" in ran.stdout  # its contract, and t*, attacks, mitigations on it


def test_an_unknown_plugin_name_is_a_clear_error(tmp_path):
    root = tmp_path / "site"
    root.mkdir()
    dist = root / "broken-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[memobench.models]\nbroken = no_such_mod:Thing\n")
    listed = run_pytest(["suites", "--collect-only", "-q"], extra_path=root)
    assert listed.returncode != 0
    assert "model 'broken' is registered as 'no_such_mod:Thing'" in listed.stdout


def test_audit_a_users_saved_model(tmp_path):
    family = DDIMFamily(ModelConfig(block_out_channels=(4, 8), norm_num_groups=4))
    torch.manual_seed(0)
    family.save_pretrained(family.build_network((1, 16, 16)), tmp_path / "model")
    results = tmp_path / "res.json"
    ran = run_pytest(
        [
            "suites/test_pretrained.py",
            "-q",
            "-k",
            "none",  # the mitigations train their classifiers: covered by their own tests
            f"--memobench-model-path={tmp_path / 'model'}",
            "--memobench-model-dataset=digits",
            "--memobench-n-gen=8",
            f"--memobench-results={results}",
        ],
        cache=tmp_path / "cache",
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    record = json.loads(results.read_text())["benchmarks"][0]["extra_info"]
    assert record[CASE_ID] == "pretrained:ddim-digits64-none"
    assert record[MODEL_SOURCE].startswith("pretrained")
    assert record[N_GEN] == 8 and 0 <= record[CARLINI_L2] <= 1


def test_pretrained_suite_skips_without_a_model():
    ran = run_pytest(["suites/test_pretrained.py", "-q", "-rs"])
    assert ran.returncode == 0
    assert "no --memobench-model-path given" in ran.stdout


def test_audit_a_foreign_folder_fails_clearly(tmp_path):
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text(textwrap.dedent('{"_class_name": "VQModel"}'))
    ran = run_pytest(
        ["suites/test_pretrained.py", "-q", f"--memobench-model-path={tmp_path / 'model'}"],
        cache=tmp_path / "c",
    )
    assert ran.returncode == 1
    assert "describes a 'VQModel'" in ran.stdout
