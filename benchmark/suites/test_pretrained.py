"""Audit a model people already have: a diffusers checkpoint folder and its training data.

``test_audit_own_images`` is ``memobench audit`` through pytest: the model in
``--memobench-model-path`` on the images in ``--memobench-members`` (what it was
trained on) and ``--memobench-heldout`` (what it never saw), exactly as given.
``test_audit_pretrained`` audits a model trained on a registered dataset's split
(``--memobench-model-dataset``, ``--memobench-model-n-train``,
``--memobench-model-split-seed``). Without the options each is skipped with that
instruction.
"""

from __future__ import annotations

import pytest

from benchmark import registry
from benchmark.audit import run_case
from benchmark.config import CaseConfig, DataConfig, MitigationConfig
from benchmark.measures.carlini_l2 import CARLINI_L2
from benchmark.measures.membership_scores import MIA_AUC
from benchmark.metrics.membership_inference import MIA_RUNS
from benchmark.model_audit import audit_model, changes_training
from benchmark.record import CASE_ID, MEMBERS_AUDITED, MEMBERS_REPRODUCED
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


@pytest.mark.smoke
@pytest.mark.parametrize(
    "mitigation", [n for n in suite_names(registry.mitigations) if not changes_training(n)]
)
def test_audit_own_images(mitigation, request, memobench_session, benchmark):
    """``memobench audit`` through pytest: the model in --memobench-model-path on the images
    in --memobench-members and --memobench-heldout, exactly as given."""
    opt = request.config.getoption
    folder, members, heldout = (
        opt(f"--memobench-{name}") for name in ("model-path", "members", "heldout")
    )
    if not (folder and members and heldout):
        pytest.skip(
            "needs --memobench-model-path, --memobench-members and --memobench-heldout: a "
            "model and the images it was and was not trained on"
        )
    audit = benchmark.pedantic(
        audit_model,
        args=(folder, members, heldout, memobench_session),
        kwargs={
            "family": opt("--memobench-model-family"),
            "fit": opt("--memobench-fit"),
            "n_gen": memobench_session.settings.samples,
            "mitigation": mitigation,
        },
        rounds=1,
        iterations=1,
    )
    benchmark.extra_info.update(audit.record)
    assert audit.record[MEMBERS_AUDITED] == len(audit.members)
    assert 0 <= audit.record[MEMBERS_REPRODUCED] <= len(audit.members)
    assert 0.0 <= audit.record[CARLINI_L2] <= 1.0
