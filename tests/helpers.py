"""Small builders shared by the tests: tiny configs (STYLE: 8x8 images, (4, 8) channels)."""

from __future__ import annotations

import numpy as np

from benchmark.config import ModelConfig, SamplerConfig, TrainConfig

TINY_MODEL = ModelConfig(family="ddim", block_out_channels=(4, 8), norm_num_groups=4)
TINY_TRAIN = TrainConfig(steps=6, batch_size=4, lr=1e-3, warmup_steps=2, checkpoint_every=2)
TINY_SAMPLER = SamplerConfig(num_steps=3)


def write_medmnist_npz(path, n_train=40, n_test=12, size=28, channels=1, seed=0):
    """A small file in MedMNIST's own layout: uint8 (N, H, W[, C]) images, (N, 1) labels."""
    rng = np.random.default_rng(seed)
    shape = (size, size) if channels == 1 else (size, size, channels)
    parts = {}
    for split, n in (("train", n_train), ("val", 4), ("test", n_test)):
        parts[f"{split}_images"] = rng.integers(0, 256, (n, *shape), dtype=np.uint8)
        parts[f"{split}_labels"] = rng.integers(0, 2, (n, 1), dtype=np.int64)
    np.savez(path, **parts)
    return path
