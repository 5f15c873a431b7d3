"""Audit a model people already have: a diffusers checkpoint folder and its training data.

Runs only with ``--memobench-model-path FOLDER`` (plus ``--memobench-model-dataset``,
``--memobench-model-n-train`` and ``--memobench-model-split-seed`` describing the
data it was trained on); otherwise skipped with that instruction.
"""

from __future__ import annotations

import pytest

from benchmark import registry
from benchmark.audit import run_case
from benchmark.config import CaseConfig, DataConfig, MitigationConfig
from benchmark.measures.carlini_l2 import CARLINI_L2
from benchmark.measures.membership_scores import MIA_AUC
from benchmark.metrics.membership_inference import MIA_RUNS
from benchmark.record import CASE_ID
from benchmark.report.thumbnails import case_record
from benchmark.tiers import suite_names


@pytest.mark.smoke
@pytest.mark.parametrize("mitigation", suite_names(registry.mitigations))
def test_audit_pretrained(mitigation, request, memobench_session, benchmark):
    opt = request.config.getoption
    folder = opt("--memobench-model-path")
    if not folder:
        pytest.skip("no --memobench-model-path given: nothing pretrained to audit")
    ctx = memobench_session
    data_cfg = DataConfig(
        name=opt("--memobench-model-dataset"),
        n_train=opt("--memobench-model-n-train"),
        split_seed=opt("--memobench-model-split-seed"),
    )
    model = ctx.pretrained(folder, opt("--memobench-model-family"), data_cfg)
    case = CaseConfig(
        data=data_cfg,
        model=model.family.config,
        mitigation=MitigationConfig(mitigation),
        n_gen=ctx.settings.samples,
    )
    result = benchmark.pedantic(
        run_case, args=(case, ctx), kwargs={"model": model}, rounds=1, iterations=1
    )
    metrics = case_record(result, tier="pretrained")
    metrics[CASE_ID] = f"pretrained:{case.case_id}"
    benchmark.extra_info.update(metrics)
    assert result.samples.images.shape == (case.n_gen, *model.image_shape)
    assert 0.0 <= metrics[CARLINI_L2] <= 1.0
    for attack in metrics[MIA_RUNS]:
        assert 0.0 <= metrics[MIA_AUC(attack=attack)] <= 1.0, attack
