"""Replication in feature space (docs/science.md; CPSample's Fig. 3, Carlini et al.).

For every sample: cosine similarity to its nearest training image in the
extractor's feature space; the fraction above tau (CPSample used 0.97 on
CIFAR-10, 0.95 on CelebA); Carlini's l2 criterion on the same features; and
the top-k most similar (sample, training image) pairs for the report.
Computed in chunks of samples so 50000 x 50000 fits in memory.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from benchmark.measures.carlini_l2 import nearest_two
from benchmark.record import Field
from benchmark.speed import STRICT_FP32

REPLICATION_TAU = Field("replication_tau", "float", "the fixed cosine threshold τ")
REPLICATION_FRACTION = Field(
    "replication_fraction", "float", "share of samples with nearest-training similarity > τ"
)
CARLINI_L2_FEATURES = Field(
    "carlini_l2_features", "float", "Carlini's 1/3 criterion on extractor features"
)
SIMILARITY_MEAN = Field("similarity_mean", "float", "mean nearest-training cosine similarity")
TOP_PAIRS = Field("top_pairs", "list", "the most similar (sample, training index, similarity)")
SIMILARITY_HIST = Field(
    "similarity_hist", "list", "counts of samples' nearest similarity in 100 bins over [-1, 1]"
)
REPLICATION_TAU_HELDOUT = Field(
    "replication_tau_heldout", "float", "held-out images' nearest-similarity quantile"
)
REPLICATION_HELDOUT_QUANTILE = Field(
    "replication_heldout_quantile", "float", "the quantile replication_tau_heldout is"
)
REPLICATION_FRACTION_HELDOUT = Field(
    "replication_fraction_heldout",
    "float",
    "share of samples more similar to a member than 99% of held-out images are",
)
HELDOUT_SIMILARITY_HIST = Field(
    "heldout_similarity_hist", "list", "similarity_hist of held-out images against members"
)
REPLICATION_FIELDS = (
    REPLICATION_TAU,
    REPLICATION_FRACTION,
    CARLINI_L2_FEATURES,
    SIMILARITY_MEAN,
    TOP_PAIRS,
    SIMILARITY_HIST,
    REPLICATION_TAU_HELDOUT,
    REPLICATION_HELDOUT_QUANTILE,
    REPLICATION_FRACTION_HELDOUT,
    HELDOUT_SIMILARITY_HIST,
)


def nearest_cosine(
    samples: torch.Tensor, train: torch.Tensor, chunk: int = 1024, device=None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cosine similarity of each (N, D) sample feature to its nearest (M, D) training feature,
    searched chunk by chunk on ``device`` (default: the samples') in IEEE float32.

    Returns:
        similarity (N,) and the nearest training index (N,), on the samples' device.
    """
    if samples.ndim != 2 or train.ndim != 2 or samples.shape[1] != train.shape[1]:
        raise ValueError(
            f"features must be 2-D with equal width, got {tuple(samples.shape)} and "
            f"{tuple(train.shape)}"
        )
    out = samples.device
    device = torch.device(device) if device is not None else out
    sims, idx = [], []
    with STRICT_FP32.backends():  # no TF32: a threshold compares these to 1e-3
        b = F.normalize(train.to(device).float(), dim=1)
        for part in samples.split(chunk):
            s = F.normalize(part.to(device).float(), dim=1) @ b.T
            v, i = s.max(dim=1)
            sims.append(v)
            idx.append(i)
    return torch.cat(sims).to(out), torch.cat(idx).to(out)


def heldout_threshold(
    heldout_features: torch.Tensor,
    train_features: torch.Tensor,
    quantile: float,
    chunk: int = 1024,
    device=None,
) -> tuple[float, torch.Tensor]:
    """The ``quantile`` of held-out images' nearest-training cosine similarity, and those
    similarities: a fresh image of the distribution exceeds it with probability 1 - quantile."""
    held, _ = nearest_cosine(heldout_features, train_features, chunk, device)
    return float(torch.quantile(held.double(), quantile)), held


def replication(
    sample_features: torch.Tensor,
    train_features: torch.Tensor,
    tau: float = 0.95,
    top_k: int = 8,
    chunk: int = 1024,
    heldout_features: torch.Tensor | None = None,
    heldout_quantile: float = 0.99,
    device=None,
) -> dict:
    """Fraction of samples above ``tau`` cosine similarity, Carlini's criterion, top-k pairs.

    A fixed tau means different things in different feature spaces: in a
    classifier's space, two digits of one class are already > 0.95 similar. With
    ``heldout_features`` the threshold is also calibrated on data: tau_heldout is
    the ``heldout_quantile`` of held-out images' nearest-training similarity, so a
    fresh image of the distribution exceeds it 1% of the time, and
    ``replication_fraction_heldout`` is the share of samples above it.
    """
    if not -1 <= tau <= 1:
        raise ValueError(f"tau is a cosine similarity threshold in [-1, 1], got {tau}")
    if not 0 < heldout_quantile < 1:
        raise ValueError(f"heldout_quantile must be in (0, 1), got {heldout_quantile}")
    sim, idx = nearest_cosine(sample_features, train_features, chunk, device)
    d1, d2, _ = nearest_two(sample_features, train_features, chunk=chunk, device=device)
    order = sim.argsort(descending=True)[:top_k]
    record = {
        REPLICATION_TAU: tau,
        REPLICATION_FRACTION: float((sim > tau).float().mean()),
        CARLINI_L2_FEATURES: float((d1 < d2 / 3).float().mean()),
        SIMILARITY_MEAN: float(sim.mean()),
        TOP_PAIRS: [(int(i), int(idx[i]), float(sim[i])) for i in order],
        SIMILARITY_HIST: similarity_histogram(sim),
    }
    if heldout_features is not None:
        tau_h, held = heldout_threshold(
            heldout_features, train_features, heldout_quantile, chunk, device
        )
        record[REPLICATION_TAU_HELDOUT] = tau_h
        record[REPLICATION_HELDOUT_QUANTILE] = heldout_quantile
        record[REPLICATION_FRACTION_HELDOUT] = float((sim > tau_h).float().mean())
        record[HELDOUT_SIMILARITY_HIST] = similarity_histogram(held)
    return record


def similarity_histogram(sim: torch.Tensor, bins: int = 100) -> list[int]:
    """Counts of nearest-neighbour similarities in ``bins`` equal bins over [-1, 1]."""
    return torch.histc(sim.float().clamp(-1, 1), bins=bins, min=-1, max=1).long().tolist()
