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
from benchmark.metrics.fid import fid_gap_from_features
from benchmark.metrics.replication import replication
from benchmark.models.base import SampleResult


def utility_audit(
    data: ImageDataset,
    samples: SampleResult,
    extractor: nn.Module,
    tau: float = 0.95,
    top_k: int = 8,
    seed: int = 0,
    train_features: torch.Tensor | None = None,
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
    record["fid_extractor"] = extractor_name(extractor)
    record.update(
        replication(
            sample_features, train_features, tau=tau, top_k=top_k, heldout_features=heldout_features
        )
    )
    record["replication_extractor"] = record["fid_extractor"]
    return record


class Utility(CaseMetric):
    """FID against members and held-out images, their gap, and replication."""

    name = "utility"
    order = 30

    def compute(self, inputs: AuditInputs) -> dict[str, Any]:
        session, case = inputs.session, inputs.case
        return utility_audit(
            inputs.data,
            inputs.samples,
            session.extractor(case.data),
            seed=case.seed,
            train_features=session.train_features(case.data),
        )

    @classmethod
    def columns(cls):
        from benchmark.report.columns import Column, with_interval

        return [
            Column("fid_train", "FID train", "FID of the samples against the training images"),
            Column(
                "fid_test",
                "FID test",
                "FID against as many held-out images (lower = better)",
                False,
            ),
            Column(
                "fid_gap",
                "FID gap",
                "FID test − FID train with a bootstrap 95% interval: > 0 when samples sit on "
                "the training set",
                False,
                "{:.2f}",
                with_interval("fid_gap", "fid_gap_ci", "{:.2f}"),
            ),
            Column(
                "replication_fraction_heldout",
                "replication",
                "share of samples whose nearest training image (cosine, extractor features) is "
                "more similar than 99% of held-out images' nearest",
                False,
            ),
            Column(
                "replication_fraction",
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
