"""The results record's schema: typed fields, patterns, and the audit refusing what a
metric does not declare."""

from __future__ import annotations

import json
import pickle
from dataclasses import replace

import pandas as pd
import pytest

from benchmark import registry
from benchmark.config import SamplerConfig
from benchmark.measures.carlini_l2 import CARLINI_L2
from benchmark.measures.membership_scores import (
    ATTACK_FIELDS,
    MIA_AUC,
    MIA_TPR,
    MIA_TPR_CI,
    MIA_TPR_TRANSFER,
    fpr_tag,
)
from benchmark.metrics.base import CaseMetric, schema
from benchmark.record import (
    CASE_ID,
    Field,
    Fields,
    RecordSchemaError,
    check_entries,
    resolve,
)


def test_a_field_is_the_key_itself():
    record = {"carlini_l2": 0.25}
    assert record[CARLINI_L2] == 0.25 and CARLINI_L2 in record
    assert json.loads(json.dumps({CARLINI_L2: 1})) == {"carlini_l2": 1}
    assert pd.DataFrame([{CARLINI_L2: 0.5}])[CARLINI_L2].iloc[0] == 0.5
    back = pickle.loads(pickle.dumps(CARLINI_L2))
    assert back == "carlini_l2" and type(back) is str  # a plain key once it leaves


@pytest.mark.parametrize(
    "field, value, ok",
    [
        (Field("x", "float", ""), 1, True),  # JSON keeps no 1.0 apart from 1
        (Field("x", "float", ""), 0.5, True),
        (Field("x", "float", ""), float("nan"), True),
        (Field("x", "float", ""), True, False),
        (Field("x", "float", ""), "0.5", False),
        (Field("x", "float", ""), None, False),
        (Field("x", "float", "", nullable=True), None, True),
        (Field("x", "int", ""), 2.0, False),
        (Field("x", "int", ""), False, False),
        (Field("x", "list", ""), (1, 2), True),
        (Field("x", "dict", ""), [], False),
        (Field("x", "bool", ""), 1, False),
        (Field("x", "any", ""), object(), True),
    ],
)
def test_a_field_checks_its_kind(field, value, ok):
    assert (field.problem(value) is None) is ok


def test_an_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="kind must be one of"):
        Field("x", "number", "")


def test_a_pattern_names_its_fields_and_the_most_specific_one_wins():
    assert MIA_AUC(attack="loss") == "mia_loss_auc"
    tag = fpr_tag(0.01)
    assert MIA_TPR(attack="loss", fpr=tag) == "mia_loss_tpr_1pct"
    transfer = resolve("mia_loss_weights_tpr_1pct_transfer", ATTACK_FIELDS)
    assert transfer == MIA_TPR_TRANSFER(attack="loss_weights", fpr="1pct")
    assert resolve("mia_gsa_weights_fpr_1pct_achieved_ci", ATTACK_FIELDS).kind == "list"
    ci = resolve("mia_secmi_stat_tpr_0.1pct_ci", ATTACK_FIELDS)
    assert ci == MIA_TPR_CI(attack="secmi_stat", fpr="0.1pct") and ci.kind == "list"
    tpr = resolve("mia_secmi_stat_tpr_0.1pct", ATTACK_FIELDS)
    assert tpr.kind == "float"
    assert resolve("mia_loss", ATTACK_FIELDS) is None
    assert Fields("{metric}_seconds", "float", "").match("nll_seconds") == "nll_seconds"


def test_check_entries_names_the_writer_and_the_key():
    fields = (CARLINI_L2,)
    check_entries("metric 'c'", {CARLINI_L2: 0.1}, fields)
    with pytest.raises(RecordSchemaError, match=r"metric 'c' wrote the record entry 'carlini'"):
        check_entries("metric 'c'", {"carlini": 0.1}, fields)
    with pytest.raises(RecordSchemaError, match=r"'carlini_l2' = 'high': a str, but the field"):
        check_entries("metric 'c'", {CARLINI_L2: "high"}, fields)


def test_the_schema_declares_each_key_once():
    keys = [str(f) if isinstance(f, Field) else f.template for f in schema()]
    assert len(keys) == len(set(keys)), [k for k in keys if keys.count(k) > 1]
    assert CASE_ID in keys and CARLINI_L2 in keys


def test_the_audit_refuses_an_entry_a_plugin_metric_does_not_declare(tmp_path):
    """A third-party metric that writes a key it does not declare fails on the first case,
    naming itself and the key, instead of leaving an empty column."""
    from benchmark.audit import run_case
    from benchmark.session import Session
    from benchmark.tiers import Rehearsal, smoke_case

    brightness = Field("brightness", "float", "mean pixel value")

    class Sloppy(CaseMetric):
        name = "sloppy"
        fields = (brightness,)

        def compute(self, inputs):
            return {brightness: 0.0, "brightnes": 0.0}

    registry.metrics.register("sloppy", Sloppy)
    try:
        session = Session(tmp_path, n_gen=4, rehearsal=Rehearsal(), progress=False)
        base = smoke_case("dummy", 32, n_gen=4)
        case = replace(base, train=replace(base.train, steps=2), sampler=SamplerConfig(num_steps=2))
        with pytest.raises(RecordSchemaError, match=r"metric 'sloppy' .*'brightnes'"):
            run_case(case, session)
    finally:
        registry.metrics.unregister("sloppy")
