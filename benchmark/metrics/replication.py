"""Replication in feature space (SPEC section 7; CPSample's Fig. 3, Carlini et al.).

For every sample: cosine similarity to its nearest training image in the
extractor's feature space; the fraction above tau (CPSample used 0.97 on
CIFAR-10, 0.95 on CelebA); Carlini's l2 criterion on the same features; and
the top-k most similar (sample, training image) pairs for the report.
Computed in chunks of samples so 50000 x 50000 fits in memory.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def nearest_cosine(
    samples: torch.Tensor, train: torch.Tensor, chunk: int = 1024
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cosine similarity of each (N, D) sample feature to its nearest (M, D) training feature.

    Returns:
        similarity (N,) and the nearest training index (N,).
    """
    if samples.ndim != 2 or train.ndim != 2 or samples.shape[1] != train.shape[1]:
        raise ValueError(
            f"features must be 2-D with equal width, got {tuple(samples.shape)} and "
            f"{tuple(train.shape)}"
        )
    b = F.normalize(train.float(), dim=1)
    sims, idx = [], []
    for part in samples.split(chunk):
        s = F.normalize(part.float(), dim=1) @ b.T
        v, i = s.max(dim=1)
        sims.append(v)
        idx.append(i)
    return torch.cat(sims), torch.cat(idx)


def heldout_threshold(
    heldout_features: torch.Tensor, train_features: torch.Tensor, quantile: float, chunk: int = 1024
) -> tuple[float, torch.Tensor]:
    """The ``quantile`` of held-out images' nearest-training cosine similarity, and those
    similarities: a fresh image of the distribution exceeds it with probability 1 - quantile."""
    held, _ = nearest_cosine(heldout_features, train_features, chunk)
    return float(torch.quantile(held.double(), quantile)), held


def replication(
    sample_features: torch.Tensor,
    train_features: torch.Tensor,
    tau: float = 0.95,
    top_k: int = 8,
    chunk: int = 1024,
    heldout_features: torch.Tensor | None = None,
    heldout_quantile: float = 0.99,
) -> dict:
    """Fraction of samples above ``tau`` cosine similarity, Carlini's criterion, top-k pairs.

    A fixed tau means different things in different feature spaces: in a
    classifier's space, two digits of one class are already > 0.95 similar. With
    ``heldout_features`` the threshold is also calibrated on data: tau_heldout is
    the ``heldout_quantile`` of held-out images' nearest-training similarity, so a
    fresh image of the distribution exceeds it 1% of the time, and
    ``replication_fraction_heldout`` is the share of samples above it.
    """
    from benchmark.metrics.carlini import nearest_two

    if not -1 <= tau <= 1:
        raise ValueError(f"tau is a cosine similarity threshold in [-1, 1], got {tau}")
    if not 0 < heldout_quantile < 1:
        raise ValueError(f"heldout_quantile must be in (0, 1), got {heldout_quantile}")
    sim, idx = nearest_cosine(sample_features, train_features, chunk)
    d1, d2, _ = nearest_two(sample_features, train_features, chunk=chunk)
    order = sim.argsort(descending=True)[:top_k]
    record = {
        "replication_tau": tau,
        "replication_fraction": float((sim > tau).float().mean()),
        "carlini_l2_features": float((d1 < d2 / 3).float().mean()),
        "similarity_mean": float(sim.mean()),
        "top_pairs": [(int(i), int(idx[i]), float(sim[i])) for i in order],
        "similarity_hist": similarity_histogram(sim),
    }
    if heldout_features is not None:
        tau_h, held = heldout_threshold(heldout_features, train_features, heldout_quantile, chunk)
        record.update(
            replication_tau_heldout=tau_h,
            replication_heldout_quantile=heldout_quantile,
            replication_fraction_heldout=float((sim > tau_h).float().mean()),
            heldout_similarity_hist=similarity_histogram(held),
        )
    return record


def similarity_histogram(sim: torch.Tensor, bins: int = 100) -> list[int]:
    """Counts of nearest-neighbour similarities in ``bins`` equal bins over [-1, 1]."""
    return torch.histc(sim.float().clamp(-1, 1), bins=bins, min=-1, max=1).long().tolist()
