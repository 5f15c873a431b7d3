"""Detector augmentations (docs/science.md): AugMix, flips, Gaussian noise, disk masks,
and the sampler-artefact perturbations that keep C_SAF on the disk's shape.

Images are (N, C, H, W) in [-1, 1]; AugMix (torchvision) works on uint8, so
images are quantised for it and mapped back.

Why the artefacts: generated images are blurrier, noisier or blotchier than
training images (strong guidance, an ODE sampler ending in noise). A C_SAF
trained on clean images learns "there is a grey patch" and fired on 139 of 256
CPSample-guided samples of the memorizing DDIM model, none of them a copy of
x_p. Blur, noise and smooth random fields on positives and negatives alike
(the disk painted first, so it is blurred and noised with the image) leave
only the disk's shape to tell the classes apart.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
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


def gaussian_blur(images: torch.Tensor, sigma: torch.Tensor, radius: int = 2) -> torch.Tensor:
    """Blur image i with a separable Gaussian of std ``sigma[i]`` (pixels), edges replicated."""
    n, c, h, w = images.shape
    r = torch.arange(-radius, radius + 1, dtype=images.dtype)
    k = torch.exp(-(r[None] ** 2) / (2 * sigma.to(images.dtype).clamp_min(1e-3)[:, None] ** 2))
    k = (k / k.sum(1, keepdim=True)).repeat_interleave(c, 0)  # (N*C, 2r+1)
    x = F.pad(images.reshape(1, n * c, h, w), (radius,) * 4, mode="replicate")
    x = F.conv2d(x, k[:, None, None, :], groups=n * c)
    x = F.conv2d(x, k[:, None, :, None], groups=n * c)
    return x.reshape(n, c, h, w)


def smooth_field(
    shape: tuple[int, ...], generator: torch.Generator, cells: int = 4
) -> torch.Tensor:
    """Standard normal noise on a ``cells`` x ``cells`` grid, bilinearly upsampled to ``shape``."""
    n, c, h, w = shape
    low = torch.randn((n, c, cells, cells), generator=generator)
    return F.interpolate(low, size=(h, w), mode="bilinear", align_corners=False)


def sampler_artefacts(
    images: torch.Tensor,
    generator: torch.Generator,
    p: float = 0.5,
    max_blur: float = 1.0,
    max_field: float = 0.5,
    max_noise: float = 0.3,
) -> torch.Tensor:
    """Each with probability ``p`` per image: Gaussian blur (std U[0, max_blur] px), a
    smooth random field (amplitude U[0, max_field]), white noise (std U[0, max_noise])."""
    n = images.shape[0]

    def chosen() -> torch.Tensor:
        return (torch.rand(n, generator=generator) < p).to(images.dtype).view(n, 1, 1, 1)

    def strength(top: float) -> torch.Tensor:
        return torch.rand(n, 1, 1, 1, generator=generator).to(images.dtype) * top

    on = chosen()
    sigma = torch.rand(n, generator=generator) * max_blur
    x = on * gaussian_blur(images, sigma) + (1 - on) * images
    x = x + chosen() * strength(max_field) * smooth_field(tuple(x.shape), generator)
    x = x + chosen() * strength(max_noise) * torch.randn(x.shape, generator=generator)
    return x
