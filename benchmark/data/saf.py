"""The synthetic anatomic fingerprint (SAF) of Dombrowski & Kainz (2023), docs/science.md.

One training image x_p is replaced by SAF(x_p): a filled grey disk (0 in
[-1, 1], all channels) of radius r = max(2, round(9 n / 64)) on an n x n image,
centred uniformly such that the disk lies inside the image.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


def saf_radius(image_size: int) -> int:
    """Disk radius for an ``image_size`` x ``image_size`` image (4 at 28, 2 at 16, 9 at 64)."""
    return max(2, round(9 * image_size / 64))


def disk_mask(image_size: int, centre: tuple[int, int], radius: int) -> torch.Tensor:
    """Boolean (H, W) mask of the pixels whose distance to ``centre`` is <= ``radius``."""
    ys = torch.arange(image_size).view(-1, 1)
    xs = torch.arange(image_size).view(1, -1)
    cy, cx = centre
    return (ys - cy) ** 2 + (xs - cx) ** 2 <= radius**2


def paint_disk(
    images: torch.Tensor, centre: tuple[int, int], radius: int, value: float = 0.0
) -> torch.Tensor:
    """Copy of ``images`` (..., C, H, W) with the disk filled with ``value`` in all channels."""
    out = images.clone()
    mask = disk_mask(images.shape[-1], centre, radius)
    out[..., mask] = value
    return out


def random_centre(image_size: int, radius: int, generator: torch.Generator) -> tuple[int, int]:
    """Uniform centre such that the whole disk lies inside the image."""
    lo, hi = radius, image_size - 1 - radius
    if hi < lo:
        raise ValueError(f"a disk of radius {radius} does not fit a {image_size}px image")
    cy = int(torch.randint(lo, hi + 1, (1,), generator=generator))
    cx = int(torch.randint(lo, hi + 1, (1,), generator=generator))
    return cy, cx


@dataclass(frozen=True)
class SAFInfo:
    """Where the fingerprint is: x_p's index in the training set and the disk.

    Attributes:
        index: position of SAF(x_p) in the training tensor.
        centre: (row, column) of the disk's centre.
        radius: disk radius in pixels.
        original: x_p before fingerprinting, (C, H, W) in [-1, 1] (kept out of the
            training set; used as the reference image by the audit).
    """

    index: int
    centre: tuple[int, int]
    radius: int
    original: torch.Tensor

    def fingerprinted(self) -> torch.Tensor:
        return paint_disk(self.original, self.centre, self.radius)


def apply_saf(train: torch.Tensor, seed: int) -> tuple[torch.Tensor, SAFInfo]:
    """Replace one seeded training image by SAF(x_p).

    Args:
        train: (N, C, H, W) members in [-1, 1].
        seed: chooses x_p and the disk's centre.

    Returns:
        The new training tensor (x_p no longer in it) and the ``SAFInfo``.
    """
    gen = torch.Generator().manual_seed(seed)
    n, _, h, w = train.shape
    if h != w:
        raise ValueError(f"SAF needs square images, got {h}x{w}")
    index = int(torch.randint(0, n, (1,), generator=gen))
    radius = saf_radius(h)
    centre = random_centre(h, radius, gen)
    original = train[index].clone()
    out = train.clone()
    out[index] = paint_disk(original, centre, radius)
    return out, SAFInfo(index=index, centre=centre, radius=radius, original=original)
