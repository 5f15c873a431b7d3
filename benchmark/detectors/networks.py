"""Detector networks: a small ResNet for the smoke tier, ResNet-50 for the paper tier.

Both output one logit per image; a detector fires when sigmoid(logit) > 0.5.
"""

from __future__ import annotations

import torch
from torch import nn


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.skip = (
            nn.Identity()
            if stride == 1 and cin == cout
            else nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(h)) + self.skip(x))


class SmallResNet(nn.Module):
    """Three stages of basic blocks (widths ``widths``), global pooling, one logit."""

    def __init__(self, in_channels: int, widths: tuple[int, ...] = (16, 32, 64)) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(),
        )
        blocks, cin = [], widths[0]
        for i, w in enumerate(widths):
            blocks.append(BasicBlock(cin, w, 1 if i == 0 else 2))
            cin = w
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Linear(cin, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.blocks(self.stem(x))
        return self.head(h.mean(dim=(2, 3))).squeeze(1)


class ResNet50Detector(nn.Module):
    """torchvision ResNet-50, random init (docs/science.md), one logit."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        from torchvision.models import resnet50

        net = resnet50(weights=None, num_classes=1)
        if in_channels != 3:
            net.conv1 = nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(1)


def build_detector(arch: str, in_channels: int) -> nn.Module:
    if arch == "small-resnet":
        return SmallResNet(in_channels)
    if arch == "resnet50":
        return ResNet50Detector(in_channels)
    raise ValueError(f"unknown detector arch {arch!r}; use 'small-resnet' or 'resnet50'")
