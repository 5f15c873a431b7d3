"""Utility and feature-space replication as a case metric: FID gap and replication (SPEC 7).

Both measure in the session's feature extractor (the dataset's own classifier,
or Inception-v3 when its weights are given); the members' features are
extracted once per session and split.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from benchmark.data.base import ImageDataset
from benchmark.metrics.base import AuditInputs, CaseMetric, Figure
from benchmark.metrics.features import extract, extractor_name
from benchmark.metrics.fid import (
    FID_EXTRACTOR,
    FID_FIELDS,
    FID_GAP,
    FID_GAP_CI,
    FID_TEST,
    FID_TRAIN,
    fid_gap_from_features,
)
from benchmark.metrics.replication import (
    REPLICATION_FIELDS,
    REPLICATION_FRACTION,
    REPLICATION_FRACTION_HELDOUT,
    replication,
)
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
    """FID against members and against held-out images, their gap, and replication (SPEC 7).

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


class Utility(CaseMetric):
    """FID against members and held-out images, their gap, and replication."""

    name = "utility"
    order = 30
    fields = (*FID_FIELDS, *REPLICATION_FIELDS, REPLICATION_EXTRACTOR)

    def compute(self, inputs: AuditInputs) -> dict[str, Any]:
        session, case = inputs.session, inputs.case
        return utility_audit(
            inputs.data,
            inputs.samples,
            session.extractor(case.data),
            seed=case.seed,
            train_features=session.train_features(case.data),
            device=inputs.device,
        )

    @classmethod
    def columns(cls):
        from benchmark.report.columns import Column, with_interval

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
        from benchmark.report import plots

        return [Figure("Replication", plots.similarity_histogram, "CPSample's Fig. 3")]
