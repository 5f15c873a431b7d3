"""Replication in a second, independent feature space.

The replication metric measures in the dataset's classifier (or Inception) features,
the space a rejection mitigation filters in: it then scores that mitigation as 0 by
construction. This metric measures the same criterion (the share of samples whose
nearest training image is more similar than 99% of held-out images' nearest, cosine
similarity) in a space nothing else uses: a seeded, untrained convolutional network
(random features keep local structure, edges and blobs, with no training that could
share a bias with the classifier). No mitigation may use it.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from benchmark.display import Column
from benchmark.measures.feature_replication import heldout_threshold, nearest_cosine
from benchmark.measures.features import extract
from benchmark.metrics.base import AuditInputs, CaseMetric
from benchmark.record import Field

REPLICATION_INDEPENDENT = Field(
    "replication_independent",
    "float",
    "share of samples above the held-out-calibrated (99%) nearest-training similarity in "
    "random convolutional features (a space no mitigation uses)",
)
REPLICATION_INDEPENDENT_TAU = Field(
    "replication_independent_tau", "float", "that space's held-out-calibrated threshold"
)
SEED = 20261128


class RandomFeatures(nn.Module):
    """Two seeded, untrained conv layers, pooled to a 4 x 4 grid, centred per image."""

    def __init__(self, channels: int, width: int = 32, seed: int = SEED) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.conv1 = nn.Conv2d(channels, width, 3, padding=1)
        self.conv2 = nn.Conv2d(width, 2 * width, 3, padding=1)
        for conv in (self.conv1, self.conv2):
            fan_in = conv.weight[0].numel()
            with torch.no_grad():
                conv.weight.copy_(torch.randn(conv.weight.shape, generator=g) / fan_in**0.5)
                conv.bias.zero_()

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.conv1(x.float()))
        h = torch.relu(self.conv2(nn.functional.avg_pool2d(h, 2)))
        f = nn.functional.adaptive_avg_pool2d(h, 4).flatten(1)
        return f - f.mean(dim=1, keepdim=True)


SPACE = f"random-conv-{SEED}"  # the session's name for the members' features in this space


def independent_replication(
    samples: torch.Tensor,
    train: torch.Tensor,
    heldout: torch.Tensor,
    quantile: float = 0.99,
    train_features: torch.Tensor | None = None,
    device: torch.device | str = "cpu",
) -> dict[str, Any]:
    """Replication of ``samples`` against ``train`` in ``RandomFeatures``, its threshold
    calibrated on ``heldout``. ``train_features``: the members' features, when the caller
    already has them (the session extracts them once per split)."""
    net = RandomFeatures(samples.shape[1]).to(device).eval()
    train_f = extract(net, train) if train_features is None else train_features
    tau, _ = heldout_threshold(extract(net, heldout), train_f, quantile)
    sim, _ = nearest_cosine(extract(net, samples), train_f)
    return {
        REPLICATION_INDEPENDENT: float((sim > tau).float().mean()),
        REPLICATION_INDEPENDENT_TAU: tau,
    }


class IndependentReplication(CaseMetric):
    """Held-out-calibrated replication in random convolutional features."""

    name = "replication_independent"
    order = 31
    fields = (REPLICATION_INDEPENDENT, REPLICATION_INDEPENDENT_TAU)

    def compute(self, inputs: AuditInputs) -> dict[str, Any]:
        data, device = inputs.data, inputs.device
        members = inputs.context.member_features(
            inputs.case.data, SPACE, lambda: RandomFeatures(data.image_shape[0]).to(device)
        )
        return independent_replication(
            inputs.samples.images, data.train, data.heldout, train_features=members, device=device
        )

    @classmethod
    def columns(cls):

        return [
            Column(
                REPLICATION_INDEPENDENT,
                "replication (indep.)",
                "replication as in 'replication' (held-out-calibrated, 99%), measured in "
                "seeded random convolutional features that no mitigation uses",
                False,
            )
        ]
