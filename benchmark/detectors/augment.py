"""Detector augmentations (SPEC section 2): AugMix, flips, Gaussian noise, disk masks.

Images are (N, C, H, W) in [-1, 1]; AugMix (torchvision) works on uint8, so
images are quantised for it and mapped back.
"""

from __future__ import annotations

import torch
from torchvision.transforms import AugMix

from benchmark.data.saf import disk_mask, random_centre


def augmix(images: torch.Tensor, generator: torch.Generator, chunk: int = 8) -> torch.Tensor:
    """AugMix each chunk of ``chunk`` images (ops shared within a chunk, mixing weights not)."""
    aug = AugMix()
    out = []
    as_uint8 = ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    state = torch.get_rng_state()
    torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=generator)))
    try:
        for part in as_uint8.split(chunk):
            out.append(aug(part))
    finally:
        torch.set_rng_state(state)
    return torch.cat(out).float() / 127.5 - 1


def random_flips(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    flip = torch.rand(images.shape[0], generator=generator) < 0.5
    out = images.clone()
    out[flip] = out[flip].flip(-1)
    return out


def gaussian_noise(
    images: torch.Tensor, generator: torch.Generator, std: float = 0.1
) -> torch.Tensor:
    return images + std * torch.randn(images.shape, generator=generator)


def paint_random_disks(
    images: torch.Tensor,
    which: torch.Tensor,
    radius: int,
    generator: torch.Generator,
    value: float = 0.0,
) -> torch.Tensor:
    """Copy of ``images`` with a disk of ``radius`` at a random place on rows where ``which``."""
    out = images.clone()
    size = images.shape[-1]
    for i in torch.nonzero(which).flatten().tolist():
        mask = disk_mask(size, random_centre(size, radius, generator), radius)
        out[i][:, mask] = value
    return out
