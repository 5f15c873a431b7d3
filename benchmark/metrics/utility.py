"""Utility and feature-space replication as a case metric: FID gap, replication (docs/science.md).

Both measure in the session's feature extractor (the dataset's own classifier,
or Inception-v3 when its weights are given); the members' features are
extracted once per session and split.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from benchmark.data.base import ImageDataset
from benchmark.display import Column, Figure, new_figure, to_data_uri, with_interval
from benchmark.measures.feature_replication import (
    HELDOUT_SIMILARITY_HIST,
    REPLICATION_FIELDS,
    REPLICATION_FRACTION,
    REPLICATION_FRACTION_HELDOUT,
    REPLICATION_TAU,
    REPLICATION_TAU_HELDOUT,
    SIMILARITY_HIST,
    replication,
)
from benchmark.measures.features import extract, extractor_name
from benchmark.measures.fid import (
    FID_EXTRACTOR,
    FID_FIELDS,
    FID_GAP,
    FID_GAP_CI,
    FID_TEST,
    FID_TRAIN,
    fid_gap_from_features,
)
from benchmark.measures.kid import KID_GAP, KID_GAP_CI
from benchmark.metrics.base import AuditInputs, CaseMetric
from benchmark.models.base import SampleResult
from benchmark.record import Field

REPLICATION_EXTRACTOR = Field(
    "replication_extractor", "str", "the feature extractor replication was measured in"
)


def utility_audit(
    data: ImageDataset,
    samples: SampleResult,
    extractor: nn.Module,
    tau: float = 0.95,
    top_k: int = 8,
    seed: int = 0,
    train_features: torch.Tensor | None = None,
    device=None,
) -> dict[str, Any]:
    """FID against members and against held-out images, their gap, replication (docs/science.md).

    ``train_features``: the members' features, when the caller already has them (every
    family's cases on one split share them: 50000 PathMNIST images take a while on a CPU).
    """
    sample_features = extract(extractor, samples.images)
    if train_features is None:
        train_features = extract(extractor, data.train)
    heldout_features = extract(extractor, data.heldout)
    record = fid_gap_from_features(sample_features, train_features, heldout_features, seed=seed)
    record[FID_EXTRACTOR] = extractor_name(extractor)
    record.update(
        replication(
            sample_features,
            train_features,
            tau=tau,
            top_k=top_k,
            heldout_features=heldout_features,
            device=device,  # the nearest-neighbour searches on the session's device
        )
    )
    record[REPLICATION_EXTRACTOR] = record[FID_EXTRACTOR]
    return record


def draw_similarity_histogram(record: dict[str, Any]) -> str | None:
    """Nearest-training similarity of samples (and held-out images) against the thresholds."""
    hist = record.get(SIMILARITY_HIST)
    if not hist:
        return None
    bins = len(hist)
    edges = [-1 + 2 * i / bins for i in range(bins + 1)]
    lo = next((i for i, c in enumerate(hist) if c), 0)
    held = record.get(HELDOUT_SIMILARITY_HIST) or []
    if held:
        lo = min(lo, next((i for i, c in enumerate(held) if c), lo))
    fig, ax = new_figure()
    total = max(sum(hist), 1)
    ax.stairs([c / total for c in hist], edges, fill=True, alpha=0.6, label="samples")
    if held:
        held_total = max(sum(held), 1)
        ax.stairs([c / held_total for c in held], edges, label="held-out images")
    for key, style, name in (
        (REPLICATION_TAU, "--", "τ"),
        (REPLICATION_TAU_HELDOUT, ":", "calibrated"),
    ):
        if record.get(key) is not None:
            ax.axvline(record[key], color="C3", ls=style, label=f"{name} = {record[key]:.3f}")
    ax.set(xlim=(edges[lo], 1), xlabel="cosine similarity to nearest training image")
    ax.set(ylabel="share")
    ax.legend(loc="upper left", fontsize=8)
    ax.set_title("replication")
    return to_data_uri(fig)


class Utility(CaseMetric):
    """FID against members and held-out images, their gap, and replication."""

    name = "utility"
    order = 30
    fields = (*FID_FIELDS, *REPLICATION_FIELDS, REPLICATION_EXTRACTOR)

    def compute(self, inputs: AuditInputs) -> dict[str, Any]:
        context, case = inputs.context, inputs.case
        return utility_audit(
            inputs.data,
            inputs.samples,
            context.extractor(case.data),
            seed=case.seed,
            train_features=context.train_features(case.data),
            device=inputs.device,
        )

    @classmethod
    def columns(cls):

        return [
            Column(FID_TRAIN, "FID train", "FID of the samples against the training images"),
            Column(
                FID_TEST,
                "FID test",
                "FID against as many held-out images (lower = better)",
                False,
            ),
            Column(
                FID_GAP,
                "FID gap",
                "FID test − FID train with a bootstrap 95% interval: > 0 when samples sit on "
                "the training set",
                False,
                "{:.2f}",
                with_interval(FID_GAP, FID_GAP_CI, "{:.2f}"),
            ),
            Column(
                KID_GAP,
                "KID gap",
                "KID test − KID train (kernel inception distance, unbiased at small sets) "
                "with a bootstrap 95% interval: > 0 when samples sit on the training set",
                False,
                "{:.4f}",
                with_interval(KID_GAP, KID_GAP_CI, "{:.4f}"),
            ),
            Column(
                REPLICATION_FRACTION_HELDOUT,
                "replication",
                "share of samples whose nearest training image (cosine, extractor features) is "
                "more similar than 99% of held-out images' nearest",
                False,
            ),
            Column(
                REPLICATION_FRACTION,
                "replication >τ",
                "share of samples with nearest-training cosine similarity above the fixed τ "
                "(replication_tau, CPSample's criterion)",
                False,
            ),
        ]

    @classmethod
    def figures(cls) -> list[Figure]:

        return [Figure("Replication", draw_similarity_histogram, "CPSample's Fig. 3")]
