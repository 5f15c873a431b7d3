"""The minimal examples of docs/plugins.md run as written: the sampler, mitigation,
attack and metric examples are taken from the page's code blocks, registered as a third party's
plugins would be, and put through the contract suite. A doc example that no longer
fits the contract fails here, not in a reader's repository."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "plugins.md"
pytest_plugins = ["pytester"]  # runs the contract suite with the examples registered

# the example classes, by the registry they join and the name they declare
EXAMPLES = {
    "ShrinkEps": ("mitigations", "shrink"),
    "NoiseNormAttack": ("attacks", "eps-norm"),
    "MeanBrightness": ("metrics", "brightness"),
    "EulerODE": ("samplers", "ode_euler"),
}
# what the page's examples take as given: the base classes its prose names
PRELUDE = """\
from dataclasses import dataclass

import torch

from benchmark.attacks.base import MembershipAttack
from benchmark.errors import ConfigError
from benchmark.mitigations.base import Mitigation, Prepared
from benchmark.samplers.base import ScoreParams, ScoreSampler
"""


def example_blocks() -> dict[str, str]:
    """{class name: the code block that defines it} from docs/plugins.md."""
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    found = {}
    for name in EXAMPLES:
        (block,) = [b for b in blocks if re.search(rf"^class {name}\(", b, flags=re.M)]
        found[name] = block
    return found


def test_the_pages_examples_pass_the_contract_suite(pytester, tmp_path):
    blocks = example_blocks()
    module = PRELUDE + "\n\n".join(textwrap.dedent(b) for b in blocks.values())
    pytester.makepyfile(doc_plugins=module)
    registrations = "\n".join(
        f"registry.{kind}.register({name!r}, doc_plugins.{cls}, origin='docs/plugins.md')"
        for cls, (kind, name) in EXAMPLES.items()
    )
    # registered as a plugin module the run loads (-p), before the suite is collected, in
    # a process of its own (the registry is global: the examples must not join other tests)
    pytester.makepyfile(doc_registrations="import doc_plugins\nfrom benchmark import registry\n"
                        + registrations + "\n")  # fmt: skip
    pytester.syspathinsert()
    suite = ROOT / "suites" / "test_contract.py"
    result = pytester.runpytest_subprocess(
        str(suite), f"--rootdir={pytester.path}", "-p", "no:cacheprovider",
        "-p", "doc_registrations", f"--memobench-cache={tmp_path / 'cache'}",
        "-k", "shrink or eps-norm or ode_euler or every_registered_metric",
    )  # fmt: skip
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed", 0) == 0 and outcomes.get("errors", 0) == 0, result.stdout.str()[
        -4000:
    ]
    # the mitigation's, the attack's and the sampler's own contract tests, and the metric's
    ran = result.stdout.str()
    assert outcomes.get("passed", 0) >= 4, ran[-2000:]
    collected = pytester.runpytest_subprocess(
        str(suite), f"--rootdir={pytester.path}", "-p", "no:cacheprovider",
        "-p", "doc_registrations", "--collect-only",
        "-q", "-k", "shrink or eps-norm or ode_euler",
    )  # fmt: skip
    ids = collected.stdout.str()
    assert "test_mitigation_contract[shrink]" in ids and "test_attack_contract[eps-norm]" in ids
    assert "test_sampler_contract[ode_euler]" in ids
