"""Standard normal noise keyed per image, drawn on the device the images are on.

A sampler draws fresh noise at every step, and an image's noise must depend on that
image alone (the same latents give the same image in any batch, of any size, on any
worker). One ``torch.Generator`` per image did that, but on the host: a Python loop of
``randn`` calls per step and a host-to-device copy (50 000 images x 1000 steps per paper
case). Here each value is a counter-based hash of (image key, call counter, element
index), all in int64 tensor arithmetic on the device in one pass, turned into normals
by Box-Muller: no loop, no generator, the same numbers on the CPU and on a GPU.
"""

from __future__ import annotations

import math

import torch

_M32 = 0xFFFFFFFF


def _mul32(x: torch.Tensor, c: int) -> torch.Tensor:
    """(x * c) mod 2**32 for uint32 values held in int64, in 16-bit halves of ``c`` so no
    product leaves int64's range (no reliance on signed overflow)."""
    low = x * (c & 0xFFFF)
    high = ((x * (c >> 16)) & 0xFFFF) << 16
    return (low + high) & _M32


def _mix32(x: torch.Tensor) -> torch.Tensor:
    """A 32-bit integer hash (lowbias32, C. Wellons) on int64 tensors holding uint32."""
    x = x ^ (x >> 16)
    x = _mul32(x, 0x7FEB352D)
    x = x ^ (x >> 15)
    x = _mul32(x, 0x846CA68B)
    return x ^ (x >> 16)


def _uniform(h: torch.Tensor) -> torch.Tensor:
    """uint32 hashes -> uniforms in (0, 1), float64."""
    return (h.double() + 0.5) / 4294967296.0


def keyed_normal(
    keys: torch.Tensor,
    counter: int,
    shape: tuple[int, ...],
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """(B, *shape) standard normals; row i is a function of (keys[i], counter) only.

    Args:
        keys: (B,) int64 keys, one per image, on the device the noise is wanted on.
        counter: which draw of the image this is (a sampler step).
    """
    keys = keys.to(torch.int64)
    n = math.prod(shape)
    idx = torch.arange(n, device=keys.device, dtype=torch.int64)
    lo, hi = keys & _M32, (keys >> 32) & _M32
    # the counter is hashed before it meets the key: two images' streams never coincide
    # as a whole (an XOR of the raw counter made keys d apart permutations of each other)
    counter = torch.tensor(int(counter) & _M32, dtype=torch.int64, device=keys.device)
    base = _mix32(_mix32(_mix32(counter) ^ lo) ^ hi)[:, None]
    u1 = _uniform(_mix32(base ^ _mix32(2 * idx)[None]))
    u2 = _uniform(_mix32(base ^ _mix32(2 * idx + 1)[None]))
    z = torch.sqrt(-2.0 * torch.log(u1)) * torch.cos(2.0 * math.pi * u2)
    return z.to(dtype).reshape(keys.shape[0], *shape)


def content_keys(x: torch.Tensor) -> torch.Tensor:
    """(B,) int64 keys of images from their own values (the first 64 of each), on their
    device: an image's noise follows from the image, whatever batch it is in."""
    rows = x.detach().flatten(1)[:, :64].double().abs().sum(1)
    return (rows * 1e6).to(torch.int64) % (2**62)


class KeyedRandnLike:
    """``randn_like`` for a sampler: each call draws the next counter's keyed noise."""

    def __init__(self, keys: torch.Tensor) -> None:
        self.keys = keys
        self.counter = 0

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        z = keyed_normal(self.keys.to(x.device), self.counter, tuple(x.shape[1:]), x.dtype)
        self.counter += 1
        return z
