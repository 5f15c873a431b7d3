"""The blind baseline: can members be told from non-members without the model at all?

A membership-inference figure measures leakage only if the member and non-member sets
come from one distribution. Where they do not (non-members scanned later, brighter,
from another site), an attack separates them without learning anything from the model.
A classifier that sees only the images (standardised pixels and their mean and
spread, a regularised logistic regression, cross-validated so every image is scored
by a classifier that never saw it) tries to tell the two sets apart; its AUC with a
score interval is recorded. A case whose interval lies above 0.5 is flagged: its
attack figures then measure distribution shift, not the model.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from benchmark.attacks.base import membership_sets
from benchmark.display import Column
from benchmark.measures.membership_scores import cross_fitted_scores, score_attack
from benchmark.metrics.base import AuditInputs, CaseMetric
from benchmark.record import Field

BLIND_AUC = Field("blind_auc", "float", "AUC of an images-only classifier, members vs non-members")
BLIND_AUC_CI = Field("blind_auc_ci", "list", "Newcombe's score 95% interval of the blind AUC")
BLIND_SHIFT = Field(
    "blind_shift",
    "bool",
    "the blind AUC's interval lies above 0.5: the sets differ without the model, and the "
    "attacks' figures measure that shift",
)
BLIND_N = Field("blind_n", "int", "members (and as many non-members) the blind classifier saw")


def image_features(images: torch.Tensor) -> np.ndarray:
    """Pixels, and each image's mean and standard deviation."""
    flat = images.reshape(images.shape[0], -1).double()
    return torch.cat([flat, flat.mean(1, keepdim=True), flat.std(1, keepdim=True)], 1).numpy()


def blind_scores(
    members: torch.Tensor, nonmembers: torch.Tensor, folds: int = 5, c: float = 0.1, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Out-of-fold member scores of an images-only classifier (higher = member)."""
    folds = min(folds, members.shape[0], nonmembers.shape[0])
    if folds < 2:
        raise ValueError(
            f"the blind baseline needs at least 2 members and 2 non-members, got "
            f"{members.shape[0]} and {nonmembers.shape[0]}"
        )
    return cross_fitted_scores(image_features(members), image_features(nonmembers), folds, c, seed)


def blind_baseline(
    members: torch.Tensor, nonmembers: torch.Tensor, seed: int = 0, n_boot: int = 500
) -> dict[str, Any]:
    m, h = blind_scores(members, nonmembers, seed=seed)
    score = score_attack(m, h, n_boot=n_boot, seed=seed)
    return {
        BLIND_AUC: score.auc,
        BLIND_AUC_CI: list(score.auc_ci),
        BLIND_SHIFT: bool(score.auc_ci[0] > 0.5),
        BLIND_N: score.n,
    }


def _show_blind(record: dict) -> str | None:
    auc, ci = record.get(BLIND_AUC), record.get(BLIND_AUC_CI)
    if auc is None or not isinstance(ci, (list, tuple)):
        return None
    text = f"{auc:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]"
    return f"⚠ {text} shift" if record.get(BLIND_SHIFT) else text


class BlindBaseline(CaseMetric):
    """AUC of a classifier that tells the membership sets apart from the images alone."""

    name = "blind"
    order = 39  # beside the attacks, on the same member and non-member sets
    fields = (BLIND_AUC, BLIND_AUC_CI, BLIND_SHIFT, BLIND_N)

    def compute(self, inputs: AuditInputs) -> dict[str, Any]:
        members, nonmembers = membership_sets(
            inputs.data, max_per_set=inputs.context.counts.mia_max_per_set, seed=inputs.case.seed
        )
        return blind_baseline(members, nonmembers, seed=inputs.case.seed)

    @classmethod
    def columns(cls):

        return [
            Column(
                BLIND_AUC,
                "blind AUC",
                "an images-only classifier's AUC at telling the attacks' members from their "
                "non-members, with a 95% interval; '⚠ shift': the interval lies above 0.5, "
                "so this case's attack figures measure a difference between the sets, not "
                "leakage",
                None,
                "{:.3f}",
                _show_blind,
            )
        ]
