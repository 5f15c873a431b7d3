"""Membership inference as a case metric: every registered attack on every case (SPEC 7).

Members are the training images minus x_p, non-members as many held-out
images. A mitigated model is attacked through its guided noise prediction.
"""

from __future__ import annotations

from typing import Any

import torch

from benchmark import registry
from benchmark.attacks.base import get_attack, membership_sets, run_attack
from benchmark.data.base import ImageDataset
from benchmark.metrics.base import AuditInputs, CaseMetric, Figure
from benchmark.metrics.membership import ATTACK_FIELDS, MIA_AUC, MIA_AUC_CI, MIA_TPR, fpr_tag
from benchmark.mitigations.base import Mitigation
from benchmark.models.base import TrainedModel
from benchmark.record import Field

MIA_ATTACKS = Field("mia_attacks", "list", "the attacks run on the case, by registry name")


def membership_audit(
    model: TrainedModel,
    data: ImageDataset,
    mitigation: Mitigation,
    attacks: list[str] | None = None,
    max_per_set: int = 512,
    quick: bool = False,
    seed: int = 0,
    device: torch.device | str = "cpu",
    progress: bool = False,
    batch_size: int = 256,
) -> dict[str, Any]:
    """Every registered membership attack on the model as the mitigation leaves it.

    Members are the training images minus x_p, non-members the held-out images,
    equally many (at most ``max_per_set`` each). ``quick``: each attack with its
    ``quick_params`` (fewer queries; a rehearsal's counts).
    """
    members, nonmembers = membership_sets(data, max_per_set=max_per_set, seed=seed)
    record: dict[str, Any] = {MIA_ATTACKS: []}
    for name in attacks if attacks is not None else registry.attacks.names():
        params = registry.attacks.get(name).quick_params if quick else {}
        run = run_attack(
            get_attack(name, **params),
            model,
            members,
            nonmembers,
            guidance=mitigation.guidance(),
            seed=seed,
            device=device,
            progress=progress,
            batch_size=batch_size,
        )
        record[MIA_ATTACKS].append(name)
        record.update(run.as_record())
    return record


class MembershipInference(CaseMetric):
    """ROC AUC, TPR at low FPR and intervals of each registered attack."""

    name = "membership"
    order = 40
    fields = (MIA_ATTACKS, *ATTACK_FIELDS)

    def compute(self, inputs: AuditInputs) -> dict[str, Any]:
        counts = inputs.session.counts
        return membership_audit(
            inputs.model,
            inputs.data,
            inputs.mitigation,
            max_per_set=counts.mia_max_per_set,
            quick=counts.quick_attacks,
            seed=inputs.case.seed,
            device=inputs.device,
            progress=inputs.progress,
            batch_size=inputs.batch_size(256),
        )

    @classmethod
    def columns(cls):
        from benchmark.report.columns import Column, with_interval

        cols = []
        for name in registry.attacks.names():
            attack = registry.attacks.get(name)
            label = getattr(attack, "label", name)
            auc, auc_ci = MIA_AUC(attack=name), MIA_AUC_CI(attack=name)
            cols.append(
                Column(
                    auc,
                    f"{label} AUC",
                    f"membership-inference ROC AUC with a bootstrap 95% interval (0.5 = "
                    f"chance): {getattr(attack, 'description', '')}",
                    False,
                    "{:.3f}",
                    with_interval(auc, auc_ci),
                )
            )
            cols.append(
                Column(
                    MIA_TPR(attack=name, fpr=fpr_tag(0.01)),
                    f"{label} TPR@1%",
                    "share of members the attack finds at 1% false positives",
                    False,
                )
            )
        return cols

    @classmethod
    def figures(cls) -> list[Figure]:
        from benchmark.report import plots

        return [Figure("Membership inference", plots.roc_curves, "ROC of each attack")]
