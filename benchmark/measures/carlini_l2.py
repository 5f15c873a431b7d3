"""Carlini et al. (2023)'s l2 replication criterion (docs/science.md).

A sample counts as a replication when its nearest training image is closer
than 1/3 of the distance to the second-nearest one (Extracting Training Data
from Diffusion Models, section 4: "eq. (1)" with alpha = 1/3, on pixels).
Distances are computed in chunks, so large sample and training sets fit in memory.
"""

from __future__ import annotations

import torch
from torchmetrics import Metric

from benchmark.record import Field
from benchmark.speed import STRICT_FP32

CARLINI_L2 = Field(
    "carlini_l2",
    "float",
    "share of samples whose nearest training image (pixels) is closer than 1/3 of the "
    "second-nearest one",
)
CARLINI_L2_FLAGGED = Field(
    "carlini_l2_flagged",
    "list",
    "indices of the samples counted as replications (for changes paired on the same seeds)",
)


def nearest_two(
    samples: torch.Tensor,
    train: torch.Tensor,
    chunk: int = 4096,
    device: torch.device | str | None = None,
    candidates: int = 8,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """l2 distances to the nearest and second-nearest training image, exact in float64.

    The search runs on ``device`` (default: the samples') in float32 matrix products,
    chunk by chunk, for ``candidates`` nearest training images per sample; their exact
    float64 distances then decide the nearest two. A row whose float32 ranking could have
    missed one (its last candidate within float32 error of the second-nearest) is
    searched again exactly, so the result is the exact search's.

    Args:
        samples: (N, ...) images or features.
        train: (M, ...) with M >= 2.

    Returns:
        d1 (N,), d2 (N,), index of the nearest training image (N,), on the samples' device.
    """
    if train.shape[0] < 2:
        raise ValueError(f"need at least 2 training images, got {train.shape[0]}")
    if candidates < 2:
        raise ValueError(f"candidates must be >= 2 (the nearest two), got {candidates}")
    with STRICT_FP32.backends():  # the float32 products' error bound assumes IEEE, not TF32
        return _nearest_two(samples, train, chunk, device, candidates)


def _nearest_two(samples, train, chunk, device, candidates):
    out_device = samples.device
    device = torch.device(device) if device is not None else samples.device
    a = samples.reshape(samples.shape[0], -1)
    b64 = train.reshape(train.shape[0], -1).to(device, torch.float64)
    b32 = b64.float()
    b_norm = (b32 * b32).sum(1)
    k = min(candidates, b64.shape[0])
    d1, d2, idx = [], [], []
    for part in a.split(chunk):
        p64 = part.to(device, torch.float64)
        p32 = p64.float()
        p_norm = (p32 * p32).sum(1)
        approx = (p_norm[:, None] + b_norm[None, :] - 2 * p32 @ b32.T).clamp_min(0)
        far, cand = approx.topk(k, dim=1, largest=False)
        exact = torch.stack([(p64 - b64[cand[:, j]]).norm(dim=1) for j in range(k)], dim=1)
        exact, order = exact.sort(dim=1)
        nearest = cand.gather(1, order)
        if k < b64.shape[0]:  # could a training image outside the candidates be nearer?
            # float32 products' error, with room: grows with the dimension
            slack = (1e-5 + 1e-7 * b64.shape[1]) * (p_norm + b_norm.max()) + 1e-12
            unsure = (far[:, -1] - slack < exact[:, 1].float() ** 2).nonzero().flatten()
            for row in unsure.tolist():  # rare: every training image, in float64
                full = (b64 - p64[row]).norm(dim=1).topk(2, largest=False)
                exact[row, :2], nearest[row, :2] = full[0], full[1]
        d1.append(exact[:, 0])
        d2.append(exact[:, 1])
        idx.append(nearest[:, 0])
    return tuple(torch.cat(x).to(out_device) for x in (d1, d2, idx))


class CarliniL2(Metric):
    """Fraction of samples whose nearest training image is < ratio x the second nearest."""

    higher_is_better = False
    is_differentiable = False
    full_state_update = False
    label = "Carlini ℓ2 fraction"
    description = (
        "share of samples whose nearest training image is closer than ⅓ of the second-nearest one"
    )

    def __init__(
        self, train: torch.Tensor, ratio: float = 1 / 3, search_device=None, **kwargs
    ) -> None:
        super().__init__(**kwargs)
        if not 0 < ratio < 1:
            raise ValueError(f"ratio must be in (0, 1), got {ratio}")
        self.train_images = train
        self.ratio = ratio
        self.search_device = search_device  # where the nearest-neighbour search runs
        self.add_state("hits", default=torch.tensor(0), dist_reduce_fx="sum")
        self.add_state("total", default=torch.tensor(0), dist_reduce_fx="sum")
        self.add_state("flags", default=[], dist_reduce_fx="cat")

    def update(self, samples: torch.Tensor) -> None:
        d1, d2, _ = nearest_two(samples, self.train_images, device=self.search_device)
        hit = d1 < self.ratio * d2
        self.hits += int(hit.sum())
        self.total += samples.shape[0]
        self.flags.append(hit.cpu())

    def compute(self) -> torch.Tensor:
        if self.total == 0:
            raise ValueError("CarliniL2.compute() called before any update()")
        return self.hits.float() / self.total

    def flagged(self) -> list[int]:
        """Indices (in update order) of the samples counted as replications."""
        if not self.flags:
            return []
        flags = self.flags if isinstance(self.flags, torch.Tensor) else torch.cat(self.flags)
        return torch.nonzero(flags).flatten().tolist()
