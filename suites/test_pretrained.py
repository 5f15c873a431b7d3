"""Audit a model people already have: a diffusers checkpoint folder and its training data.

Runs only with ``--memobench-model-path FOLDER`` (plus ``--memobench-model-dataset``,
``--memobench-model-n-train`` and ``--memobench-model-split-seed`` describing the
data it was trained on); otherwise skipped with that instruction.
"""

from __future__ import annotations

import pytest

from benchmark import registry
from benchmark.audit import generate, make_mitigation, measure
from benchmark.config import CaseConfig, DataConfig, MitigationConfig
from benchmark.mitigations.base import MitigationContext
from benchmark.tiers import suite_names


@pytest.mark.smoke
@pytest.mark.parametrize("mitigation", suite_names(registry.mitigations))
def test_audit_pretrained(
    mitigation, request, memobench_context, model_store, feature_store, benchmark
):
    opt = request.config.getoption
    folder = opt("--memobench-model-path")
    if not folder:
        pytest.skip("no --memobench-model-path given: nothing pretrained to audit")
    ctx = memobench_context
    data_cfg = DataConfig(
        name=opt("--memobench-model-dataset"),
        n_train=opt("--memobench-model-n-train"),
        split_seed=opt("--memobench-model-split-seed"),
    )
    model = model_store.pretrained(folder, opt("--memobench-model-family"), data_cfg)
    case = CaseConfig(
        data=data_cfg,
        model=model.family.config,
        mitigation=MitigationConfig(mitigation),
        n_gen=ctx.n_gen,
    )
    data = ctx.dataset(data_cfg)
    context = MitigationContext(
        data=data,
        cache=ctx.cache,
        features=lambda: feature_store.extractor(data_cfg),  # built if the mitigation needs it
        device=ctx.device,
        progress=ctx.progress,
    )
    mit = make_mitigation(case)
    samples = benchmark.pedantic(
        generate,
        args=(case, model, mit, context),
        kwargs={"device": ctx.device, "progress": ctx.progress},
        rounds=1,
        iterations=1,
    )
    metrics = measure(case, model, data, samples)
    metrics.update({f"mitigation_{k}": v for k, v in mit.metrics().items()})
    metrics["case_id"] = f"pretrained:{case.case_id}"
    benchmark.extra_info.update(metrics, tier="pretrained")
    assert samples.images.shape == (case.n_gen, *model.image_shape)
    assert 0.0 <= metrics["carlini_l2"] <= 1.0
