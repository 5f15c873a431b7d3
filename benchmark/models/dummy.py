"""A tiny model family for tests: the DDIM family on a two-layer conv net.

Registered (``dummy``) like every family but kept out of the suites
(``in_suites = False``); it trains in seconds so harness tests stay fast.
"""

from __future__ import annotations

import torch
from torch import nn

from benchmark.config import ModelConfig, SamplerConfig, TrainConfig
from benchmark.models.ddpm import DDIMFamily


class _Output:
    def __init__(self, sample: torch.Tensor) -> None:
        self.sample = sample


class TinyDenoiser(nn.Module):
    """eps_theta(x, t) = conv(conv(x) + embed(t)); enough to run every code path."""

    def __init__(self, channels: int, width: int = 8) -> None:
        super().__init__()
        self.inp = nn.Conv2d(channels, width, 3, padding=1)
        self.emb = nn.Embedding(1000, width)
        self.out = nn.Conv2d(width, channels, 3, padding=1)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> _Output:
        t = torch.as_tensor(t, device=x.device).long().expand(x.shape[0]).clamp(0, 999)
        h = torch.relu(self.inp(x) + self.emb(t)[:, :, None, None])
        return _Output(self.out(h))


class DummyFamily(DDIMFamily):
    name = "dummy"
    version = "1"
    in_suites = False

    @classmethod
    def smoke_configs(cls) -> tuple[ModelConfig, TrainConfig, SamplerConfig]:
        return (
            ModelConfig(family=cls.name),
            TrainConfig(steps=20, batch_size=16, checkpoint_every=10),
            SamplerConfig(num_steps=5),
        )

    def build_network(self, image_shape: tuple[int, int, int]) -> nn.Module:
        return TinyDenoiser(image_shape[0])

    def save_pretrained(self, net: nn.Module, folder) -> None:
        raise NotImplementedError("the dummy family is for tests; it has no diffusers folder")
