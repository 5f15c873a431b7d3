"""Carlini et al. (2023)'s l2 replication criterion (SPEC section 7).

A sample counts as a replication when its nearest training image is closer
than 1/3 of the distance to the second-nearest one (Extracting Training Data
from Diffusion Models, section 4: "eq. (1)" with alpha = 1/3, on pixels).
Distances are computed in chunks, so large sample and training sets fit in memory.
"""

from __future__ import annotations

from typing import Any

import torch
from torchmetrics import Metric

from benchmark.metrics.base import AuditInputs, CaseMetric
from benchmark.record import Field

CARLINI_L2 = Field(
    "carlini_l2",
    "float",
    "share of samples whose nearest training image (pixels) is closer than 1/3 of the "
    "second-nearest one",
)


def nearest_two(
    samples: torch.Tensor, train: torch.Tensor, chunk: int = 4096
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """l2 distances to the nearest and second-nearest training image.

    Args:
        samples: (N, ...) images or features.
        train: (M, ...) with M >= 2.

    Returns:
        d1 (N,), d2 (N,), index of the nearest training image (N,).
    """
    if train.shape[0] < 2:
        raise ValueError(f"need at least 2 training images, got {train.shape[0]}")
    a = samples.reshape(samples.shape[0], -1).double()
    b = train.reshape(train.shape[0], -1).double()
    d1, d2, idx = [], [], []
    for part in a.split(chunk):
        dist = torch.cdist(part, b)
        vals, ind = dist.topk(2, dim=1, largest=False)
        d1.append(vals[:, 0])
        d2.append(vals[:, 1])
        idx.append(ind[:, 0])
    return torch.cat(d1), torch.cat(d2), torch.cat(idx)


class CarliniL2(Metric):
    """Fraction of samples whose nearest training image is < ratio x the second nearest."""

    higher_is_better = False
    is_differentiable = False
    full_state_update = False
    label = "Carlini ℓ2 fraction"
    description = (
        "share of samples whose nearest training image is closer than ⅓ of the second-nearest one"
    )

    def __init__(self, train: torch.Tensor, ratio: float = 1 / 3, **kwargs) -> None:
        super().__init__(**kwargs)
        if not 0 < ratio < 1:
            raise ValueError(f"ratio must be in (0, 1), got {ratio}")
        self.train_images = train
        self.ratio = ratio
        self.add_state("hits", default=torch.tensor(0), dist_reduce_fx="sum")
        self.add_state("total", default=torch.tensor(0), dist_reduce_fx="sum")

    def update(self, samples: torch.Tensor) -> None:
        d1, d2, _ = nearest_two(samples, self.train_images)
        self.hits += int((d1 < self.ratio * d2).sum())
        self.total += samples.shape[0]

    def compute(self) -> torch.Tensor:
        if self.total == 0:
            raise ValueError("CarliniL2.compute() called before any update()")
        return self.hits.float() / self.total


class Carlini(CaseMetric):
    """The Carlini ℓ2 replication fraction of the case's samples against its training set."""

    name = "carlini_l2"
    order = 10
    fields = (CARLINI_L2,)

    def compute(self, inputs: AuditInputs) -> dict[str, Any]:
        metric = CarliniL2(inputs.data.train)
        metric.update(inputs.samples.images)
        return {CARLINI_L2: float(metric.compute())}

    @classmethod
    def columns(cls):
        from benchmark.report.columns import Column

        return [
            Column(CARLINI_L2, CarliniL2.label, CarliniL2.description, False, "{:.3f}"),
        ]
