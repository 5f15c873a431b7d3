"""Membership inference as a case metric: every registered attack on every case (docs/science.md).

Members are the training images minus x_p, non-members as many held-out
images. Each attack runs under every threat model its needs allow
(``benchmark.attacks.threat``): a query attack on the raw eps_theta (``weights``) and
through the mitigation's guided eps-hat (``denoiser-api``), a samples-only attack on
the case's samples, GSA on the weights. The leaderboard shows a column group per
threat model.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import torch

from benchmark import registry
from benchmark.attacks.base import AttackRun, Shadow, get_attack, membership_sets, run_attack
from benchmark.attacks.threat import (
    DENOISER_API,
    SAMPLES_ONLY,
    THREAT_LABELS,
    THREAT_MODELS,
    WEIGHTS,
    run_name,
    threat_models_for,
)
from benchmark.data.base import ImageDataset
from benchmark.display import Column, Figure, new_figure, to_data_uri, with_interval
from benchmark.measures.auc_interval import advantage
from benchmark.measures.dp_bound import tpr_bound
from benchmark.measures.membership_scores import (
    ATTACK_FIELDS,
    MIA_AUC,
    MIA_AUC_CI,
    MIA_FPR_ACHIEVED,
    MIA_ROC,
    MIA_SETS,
    MIA_TPR,
    MIA_TPR_TRANSFER,
    MIA_TPR_TRANSFER_CI,
    fpr_tag,
)
from benchmark.measures.paired import images_digest
from benchmark.metrics.base import AuditInputs, CaseMetric
from benchmark.models.base import Guidance, TrainedModel
from benchmark.record import MITIGATION_ENTRY, Field
from benchmark.tiers import shadow_training

MIA_ATTACKS = Field("mia_attacks", "list", "the attacks run on the case, by registry name")
MIA_RUNS = Field(
    "mia_runs", "list", "each attack under each threat model it ran under: <attack>_<threat tag>"
)
MIA_SHADOW_MODEL = Field(
    "mia_shadow_model",
    "str",
    "the shadow model the shadow attacks learned on (its cache key); None: no shadow",
    nullable=True,
)


def membership_audit(
    model: TrainedModel,
    data: ImageDataset,
    guidance: Guidance | None,
    attacks: list[str] | None = None,
    max_per_set: int = 512,
    quick: bool = False,
    seed: int = 0,
    device: torch.device | str = "cpu",
    progress: bool = False,
    batch_size: int = 256,
    samples: torch.Tensor | None = None,
    shadow: Shadow | None = None,
) -> dict[str, Any]:
    """Every registered membership attack under every threat model it can run under.

    Members are the training images minus x_p, non-members the held-out images,
    equally many (at most ``max_per_set`` each). Under ``weights`` a query attack sees
    the raw eps_theta; under ``denoiser-api`` the mitigation's guided eps-hat (where the
    mitigation does not guide, the deployed denoiser is eps_theta and the figures are
    the ``weights`` run's); under ``samples-only`` an attack reads ``samples``, the
    case's generated images (skipped without them). An attack that learns on a shadow
    model runs on ``shadow`` (skipped without one). ``quick``: each attack with its
    ``quick_params`` (fewer queries; a rehearsal's counts).
    """
    members, nonmembers = membership_sets(data, max_per_set=max_per_set, seed=seed)
    record: dict[str, Any] = {
        MIA_ATTACKS: [],
        MIA_RUNS: [],
        MIA_SETS: images_digest(members, nonmembers),
    }
    for name in attacks if attacks is not None else registry.attacks.names():
        cls = registry.attacks.get(name)
        if cls.trains_on_shadow and shadow is None:
            continue
        attack = get_attack(name, **(cls.quick_params if quick else {}))
        record[MIA_ATTACKS].append(name)
        runs: dict[str, AttackRun] = {}
        for threat in threat_models_for(attack.needs):
            as_name = run_name(name, threat)
            if threat == SAMPLES_ONLY and samples is None:
                continue
            if threat == DENOISER_API and guidance is None and WEIGHTS in runs:
                run = replace(runs[WEIGHTS], name=as_name)  # the deployed denoiser is eps_theta
            else:
                run = run_attack(
                    attack,
                    model,
                    members,
                    nonmembers,
                    guidance=guidance if threat == DENOISER_API else None,
                    samples=samples,
                    seed=seed,
                    device=device,
                    progress=progress,
                    batch_size=batch_size,
                    name=as_name,
                    shadow=shadow,
                )
            runs[threat] = run
            record[MIA_RUNS].append(as_name)
            record.update(run.as_record())
    return record


def shadow_sets(inputs: AuditInputs, max_per_set: int) -> Shadow:
    """The case's shadow model (its training on the shadow split of its data; trained
    once, then cached like any model, and called through the run's speed switches as
    the case's model is) and the shadow's members and non-members."""
    case = inputs.case
    train, data = shadow_training(case)
    model = inputs.context.fast(inputs.context.model(case.model, train, data))
    members, nonmembers = membership_sets(
        inputs.context.dataset(data), max_per_set=max_per_set, seed=case.seed
    )
    return Shadow(model, members, nonmembers)


def _show_transferred(run: str, point: float):
    tag = fpr_tag(point)

    def display(record: dict) -> str | None:
        tpr = record.get(MIA_TPR_TRANSFER(attack=run, fpr=tag))
        fpr = record.get(MIA_FPR_ACHIEVED(attack=run, fpr=tag))
        oracle = record.get(MIA_TPR(attack=run, fpr=tag))
        ci = record.get(MIA_TPR_TRANSFER_CI(attack=run, fpr=tag))
        if tpr is None or fpr is None:
            return None
        text = f"{tpr:.3f}"
        if (
            isinstance(ci, (list, tuple))
            and len(ci) == 2
            and all(isinstance(v, (int, float)) for v in ci)
        ):
            text += f" [{ci[0]:.3f}, {ci[1]:.3f}]"
        text += f" at FPR {fpr:.3f}"
        return text if oracle is None else f"{text} (oracle {oracle:.3f})"

    return display


def draw_roc_curves(record: dict[str, Any]) -> str | None:
    """The membership attacks' ROC curves under each threat model, AUC in the legend (a
    run identical to one drawn, e.g. ``api`` where the mitigation does not guide, once)."""
    runs = [a for a in record.get(MIA_RUNS) or [] if record.get(MIA_ROC(attack=a))]
    if not runs:
        return None
    fig, ax = new_figure(4.2, 3.6)
    drawn = []
    for name in runs:
        fpr, tpr = record[MIA_ROC(attack=name)]
        if (fpr, tpr) in drawn:
            continue
        drawn.append((fpr, tpr))
        auc = record.get(MIA_AUC(attack=name), float("nan"))
        ax.plot(fpr, tpr, label=f"{name} (AUC {auc:.3f})")
    ax.plot([0, 1], [0, 1], color="0.6", ls=":", lw=1)
    epsilon = record.get(MITIGATION_ENTRY(entry="epsilon"))
    delta = record.get(MITIGATION_ENTRY(entry="delta"))
    if isinstance(epsilon, (int, float)) and isinstance(delta, (int, float)):
        # a model trained with a DP guarantee: no attack can lie above this curve
        grid = np.linspace(0, 1, 401)
        ax.plot(grid, tpr_bound(grid, epsilon, delta), color="k", ls="--", lw=1,
                label=f"(ε = {epsilon:.2f}, δ = {delta:g})-DP bound")  # fmt: skip
    ax.set(xlabel="false positive rate", ylabel="true positive rate", xlim=(0, 1), ylim=(0, 1))
    ax.legend(loc="lower right", fontsize=6)
    ax.set_title("membership inference")
    return to_data_uri(fig)


class MembershipInference(CaseMetric):
    """ROC AUC, TPR at low FPR (oracle and transferred) and intervals of each registered
    attack under each threat model."""

    name = "membership"
    order = 40
    fields = (MIA_ATTACKS, MIA_RUNS, MIA_SETS, MIA_SHADOW_MODEL, *ATTACK_FIELDS)

    def compute(self, inputs: AuditInputs) -> dict[str, Any]:
        counts = inputs.context.counts
        shadow = None
        if inputs.case.shadow:
            shadow = shadow_sets(inputs, counts.mia_max_per_set)
        record = membership_audit(
            inputs.model,
            inputs.data,
            inputs.guidance(),
            max_per_set=counts.mia_max_per_set,
            quick=counts.quick_attacks,
            seed=inputs.case.seed,
            device=inputs.device,
            progress=inputs.progress,
            batch_size=inputs.batch_size(256),
            samples=inputs.samples.images,
            shadow=shadow,
        )
        record[MIA_SHADOW_MODEL] = shadow.model.key if shadow is not None else None
        return record

    @classmethod
    def columns(cls):

        cols = []
        for threat in THREAT_MODELS:
            for name in registry.attacks.names():
                attack = registry.attacks.get(name)
                if threat not in threat_models_for(attack.needs):
                    continue
                label = getattr(attack, "label", name)
                run = run_name(name, threat)
                auc, auc_ci = MIA_AUC(attack=run), MIA_AUC_CI(attack=run)
                cols.append(
                    Column(
                        auc,
                        f"{label} AUC",
                        f"{THREAT_LABELS[threat]}: membership-inference ROC AUC with "
                        f"Newcombe's 95% interval (0.5 = chance; ranked two-sided, as an AUC "
                        f"below 0.5 leaks as much once the score is flipped): "
                        f"{getattr(attack, 'description', '')}",
                        False,
                        "{:.3f}",
                        with_interval(auc, auc_ci),
                        group=threat,
                        rank=advantage,
                        rank_label="|AUC − 0.5|",
                        only_measured=attack.trains_on_shadow,
                    )
                )
                cols.append(
                    Column(
                        MIA_TPR_TRANSFER(attack=run, fpr=fpr_tag(0.01)),
                        f"{label} TPR@1%",
                        f"{THREAT_LABELS[threat]}: share of members found with the threshold "
                        f"fixed for 1% FPR on a calibration half of the non-members and applied "
                        f"to the other half, with its Clopper-Pearson 95% interval; 'FPR' is the "
                        f"false-positive rate it achieved there, 'oracle' the TPR at a threshold "
                        f"picked on the scores it is judged on. A calibration half of fewer than "
                        f"100 non-members cannot resolve 1%: its threshold admits none of them, "
                        f"and the TPR is the one at FPR 0",
                        False,
                        "{:.3f}",
                        _show_transferred(run, 0.01),
                        group=threat,
                        only_measured=attack.trains_on_shadow,
                    )
                )
        return cols

    @classmethod
    def figures(cls) -> list[Figure]:

        return [Figure("Membership inference", draw_roc_curves, "ROC of each attack")]
