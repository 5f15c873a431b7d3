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


def replication(
    sample_features: torch.Tensor,
    train_features: torch.Tensor,
    tau: float = 0.95,
    top_k: int = 8,
    chunk: int = 1024,
) -> dict:
    """Fraction of samples above ``tau`` cosine similarity, Carlini's criterion, top-k pairs."""
    from benchmark.metrics.carlini import nearest_two

    if not -1 <= tau <= 1:
        raise ValueError(f"tau is a cosine similarity threshold in [-1, 1], got {tau}")
    sim, idx = nearest_cosine(sample_features, train_features, chunk)
    d1, d2, _ = nearest_two(sample_features, train_features, chunk=chunk)
    order = sim.argsort(descending=True)[:top_k]
    return {
        "replication_tau": tau,
        "replication_fraction": float((sim > tau).float().mean()),
        "carlini_l2_features": float((d1 < d2 / 3).float().mean()),
        "similarity_mean": float(sim.mean()),
        "top_pairs": [(int(i), int(idx[i]), float(sim[i])) for i in order],
        "similarities": sim.tolist(),
    }
