"""The samples-only attack: distance to the closest generated sample (GAN-Leaks' full
black-box attack, Chen et al. 2020, in the spirit of DOMIAS; docs/science.md).

An attacker who holds only the released images asks, for each candidate, how close
the nearest of them is: a model that copies its training images leaves copies of the
members among its samples, and none of the held-out images. Score = minus the mean
l2 distance (pixels) to the ``k`` nearest samples. This is the threat that
sampling-time mitigations (CPSample, rejection) actually address.
"""

from __future__ import annotations

import torch

from benchmark.attacks.base import MembershipAttack
from benchmark.attacks.threat import SAMPLES_ONLY
from benchmark.errors import ConfigError


def nearest_distances(images: torch.Tensor, samples: torch.Tensor, k: int = 1, chunk: int = 1024):
    """(N,) mean l2 distance of each image to its ``k`` nearest samples (chunked)."""
    a = images.reshape(images.shape[0], -1).double()
    b = samples.reshape(samples.shape[0], -1).double()
    return torch.cat(
        [torch.cdist(part, b).topk(k, dim=1, largest=False)[0].mean(1) for part in a.split(chunk)]
    )


class NearestSampleAttack(MembershipAttack):
    name = "nearest"
    version = "1"
    label = "nearest sample"
    description = "l2 distance to the closest generated sample (samples only; lower = member)"
    needs = SAMPLES_ONLY
    defaults = {"k": 1}

    def check_params(self) -> None:
        k = self.params["k"]
        if int(k) != k or k < 1:
            raise ConfigError(f"nearest-sample attack: k must be a positive integer, got {k}")

    @property
    def queries_per_image(self) -> int:
        return 0  # no network query: the released samples only

    def score_sets(self, model, members, nonmembers, samples=None, **_):
        if samples is None or samples.shape[0] < self.params["k"]:
            have = 0 if samples is None else samples.shape[0]
            raise ConfigError(
                f"the nearest-sample attack reads the case's generated images and got {have}; "
                f"it needs at least k = {self.params['k']} (pass samples=...)"
            )
        k = int(self.params["k"])
        return -nearest_distances(members, samples, k), -nearest_distances(nonmembers, samples, k)
