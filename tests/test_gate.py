"""The release gate (benchmark/gate.py): rules over any recorded key, one line per
broken rule, and a key that was not measured fails rather than passes."""

from __future__ import annotations

import pytest

from benchmark.errors import ConfigError
from benchmark.gate import Rule, parse_rules, violations

RECORD = {
    "carlini_l2": 0.64,
    "mia_loss_weights_auc": 0.97,
    "q": 14,
    "q_conclusive": True,
    "family": "ddim",
    "fid_gap": float("nan"),
    "nll_skipped": "the ddim family has no probability-flow ODE",
}


@pytest.mark.parametrize(
    ("rule", "broken"),
    [
        ("carlini_l2 > 0", True),
        ("carlini_l2 > 0.7", False),
        ("carlini_l2>=0.64", True),
        ("mia_loss_weights_auc >= 0.6", True),
        ("mia_loss_weights_auc < 0.6", False),
        ("q != 0", True),
        ("q == 14", True),
        ("q_conclusive == true", True),
        ("family == 'ddim'", True),
        ('family != "ddim"', False),
    ],
)
def test_a_rule_breaks_exactly_when_its_comparison_holds(rule, broken):
    found = violations(parse_rules([rule]), RECORD)
    assert bool(found) == broken, found
    if broken:
        assert found[0].startswith(rule.strip()) and "\n" not in found[0]


def test_an_unmeasured_key_fails_the_gate_with_the_reason():
    """The gate never passes because nothing was measured: a skipped metric's key fails,
    with the metric's own reason; a NaN fails; a key no record holds fails."""
    found = violations(parse_rules(["nll_gap > 0.5", "fid_gap > 1"]), RECORD)
    assert len(found) == 2
    assert "nll_gap was not measured (the ddim family has no probability-flow ODE)" in found[0]
    assert "fid_gap is NaN" in found[1]
    assert (
        "not_in_this_record was not measured"
        in violations([Rule.parse("not_in_this_record < 1")], RECORD)[0]
    )


def test_a_misspelt_key_a_list_and_a_nan_threshold_are_refused():
    with pytest.raises(ConfigError, match="no record holds 'carlni_l2'"):
        parse_rules(["carlni_l2 > 0"])
    with pytest.raises(ConfigError, match="finite number"):
        Rule.parse("carlini_l2 > nan")
    found = violations(parse_rules(["tstar_curve > 0"]), {"tstar_curve": {"t": [0.5]}})
    assert "holds a dict, not one value" in found[0]


def test_a_text_and_a_number_are_not_compared():
    found = violations([Rule.parse("family > 3")], RECORD)
    assert "not comparable" in found[0]


@pytest.mark.parametrize("text", ["carlini_l2", "carlini_l2 >> 0", "> 0", "q > many"])
def test_a_malformed_rule_names_itself_and_the_form(text):
    with pytest.raises(ConfigError) as err:
        Rule.parse(text)
    assert text in str(err.value) and "\n" not in str(err.value)


def test_the_record_of_a_real_audit_passes_and_fails_rules_on_its_own_keys(tmp_path):
    """On a record the audit wrote: every numeric key can be gated, and the gate's verdict
    is the comparison's."""
    from dataclasses import replace

    from benchmark.audit import run_case
    from benchmark.config import SamplerConfig
    from benchmark.session import Session
    from benchmark.tiers import Rehearsal, smoke_case

    session = Session(tmp_path, n_gen=4, rehearsal=Rehearsal(), progress=False)
    base = smoke_case("dummy", 32, n_gen=4)
    case = replace(base, train=replace(base.train, steps=2), sampler=SamplerConfig(num_steps=2))
    record = run_case(case, session).metrics
    numbers = {k: v for k, v in record.items() if isinstance(v, float) and v == v}
    assert "carlini_l2" in numbers
    for key, value in numbers.items():
        assert violations(parse_rules([f"{key} >= {value!r}"]), record), key
        assert not violations(parse_rules([f"{key} > {value!r}"]), record), key
