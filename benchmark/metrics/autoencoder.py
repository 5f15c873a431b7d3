"""The autoencoder as a leakage path of its own (a latent family's).

A latent model is released with its autoencoder. If the autoencoder reconstructs its
training images better than new ones, it gives membership away without the diffusion
model: the loss attack on the reconstruction error (lower error = member) reads it.
Recorded on the membership attacks' own sets: each set's mean squared reconstruction
error, the attack's AUC with Newcombe's score interval, and the advantage |AUC - 0.5|,
so the report can say how much of the model's leakage the autoencoder alone explains.
A pixel family has no autoencoder; the metric records why it is skipped.
"""

from __future__ import annotations

from typing import Any

import torch

from benchmark.attacks.base import membership_sets
from benchmark.display import Column, with_interval
from benchmark.measures.membership_scores import score_attack
from benchmark.metrics.base import AuditInputs, CaseMetric
from benchmark.models.base import TrainedModel
from benchmark.record import Field

AE_MSE_MEMBERS = Field(
    "autoencoder_mse_members", "float", "the autoencoder's mean squared reconstruction error "
    "on the members (images in [-1, 1])"
)  # fmt: skip
AE_MSE_HELDOUT = Field("autoencoder_mse_heldout", "float", "the same on the held-out images")
AE_AUC = Field(
    "autoencoder_mia_auc", "float",
    "AUC of the loss attack on the autoencoder alone (lower reconstruction error = member)",
)  # fmt: skip
AE_AUC_CI = Field("autoencoder_mia_auc_ci", "list", "Newcombe's score 95% interval [lo, hi]")
AE_ADVANTAGE = Field(
    "autoencoder_mia_advantage", "float", "|AUC - 0.5| of the autoencoder's loss attack"
)
AE_N = Field("autoencoder_mia_n", "int", "members (and as many non-members) attacked")
AE_TRAIN_SECONDS = Field(
    "autoencoder_train_seconds", "float",
    "wall time of the autoencoder's training (none for a model loaded from a folder)",
    nullable=True,
)  # fmt: skip


def reconstruction_errors(
    model: TrainedModel, images: torch.Tensor, device: torch.device | str = "cpu", batch: int = 256
) -> torch.Tensor:
    """(N,) mean squared error of each image's reconstruction (encode, then decode)."""
    net, family = model.net.to(device).eval(), model.family
    out = []
    with torch.no_grad():
        for x in images.split(batch):
            x = x.to(device)
            recon = family.decode(net, family.encode(net, x)).clamp(-1, 1)
            out.append((recon - x).flatten(1).pow(2).mean(1).cpu())
    return torch.cat(out)


class AutoencoderLeakage(CaseMetric):
    """Reconstruction error on members and held-out images, and the attack on it."""

    name = "autoencoder"
    order = 38  # beside the attacks, on the same member and non-member sets
    fields = (AE_MSE_MEMBERS, AE_MSE_HELDOUT, AE_AUC, AE_AUC_CI, AE_ADVANTAGE, AE_N,
              AE_TRAIN_SECONDS)  # fmt: skip

    def skip_reason(self, inputs: AuditInputs) -> str | None:
        if not inputs.model.family.latent:
            return f"the {inputs.model.family.name!r} family has no autoencoder"
        return None

    def compute(self, inputs: AuditInputs) -> dict[str, Any]:
        members, nonmembers = membership_sets(
            inputs.data, max_per_set=inputs.context.counts.mia_max_per_set, seed=inputs.case.seed
        )
        m = reconstruction_errors(inputs.model, members, inputs.device)
        h = reconstruction_errors(inputs.model, nonmembers, inputs.device)
        score = score_attack(-m.numpy(), -h.numpy(), seed=inputs.case.seed)
        return {
            AE_MSE_MEMBERS: float(m.mean()),
            AE_MSE_HELDOUT: float(h.mean()),
            AE_AUC: score.auc,
            AE_AUC_CI: list(score.auc_ci),
            AE_ADVANTAGE: abs(score.auc - 0.5),
            AE_N: score.n,
            AE_TRAIN_SECONDS: inputs.model.stats.get("autoencoder_train_seconds"),
        }

    @classmethod
    def columns(cls) -> list[Column]:
        return [
            Column(
                AE_AUC,
                "autoencoder AUC",
                "a latent model's autoencoder alone, attacked by its reconstruction error "
                "(members reconstructed better?), with a 95% interval; empty for pixel models",
                None,
                "{:.3f}",
                with_interval(AE_AUC, AE_AUC_CI),
            )
        ]
