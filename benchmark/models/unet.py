"""The diffusers ``UNet2DModel`` every built-in family uses, built from a ``ModelConfig``."""

from __future__ import annotations

from diffusers import UNet2DModel

from benchmark.config import ModelConfig


def build_unet(cfg: ModelConfig, image_shape: tuple[int, int, int]) -> UNet2DModel:
    """A UNet for (C, H, W) images; attention at the lowest resolution if ``cfg.attention``."""
    channels, height, width = image_shape
    n = len(cfg.block_out_channels)
    down = ["DownBlock2D"] * n
    up = ["UpBlock2D"] * n
    if cfg.attention:
        down[-1], up[0] = "AttnDownBlock2D", "AttnUpBlock2D"
    return UNet2DModel(
        sample_size=height if height == width else (height, width),
        in_channels=channels,
        out_channels=channels,
        block_out_channels=cfg.block_out_channels,
        layers_per_block=cfg.layers_per_block,
        down_block_types=tuple(down),
        up_block_types=tuple(up),
        norm_num_groups=cfg.norm_num_groups,
    )
