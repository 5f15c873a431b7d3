"""The diffusers ``UNet2DModel`` every built-in family uses, built from a ``ModelConfig``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from diffusers import UNet2DModel

from benchmark.config import ModelConfig
from benchmark.errors import CheckpointError

MARKER = "memobench.json"  # written beside the weights by every built-in family


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


def read_marker(folder: Path, family: str) -> dict[str, Any] | None:
    """The memobench marker of a model folder, checked to name ``family``.

    Returns None when the folder has no marker (a plain diffusers folder).

    Raises:
        CheckpointError: the folder is missing, the marker is not JSON, or it names
            another family (the message says which family to load it with).
    """
    if not folder.is_dir():
        raise CheckpointError(f"model folder {folder} does not exist")
    marker = folder / MARKER
    if not marker.exists():
        return None
    try:
        meta = json.loads(marker.read_text())
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{marker} is not valid JSON: {err}") from err
    if meta.get("family") != family:
        raise CheckpointError(
            f"{folder} holds a {meta.get('family')!r} model, not a {family!r} one; "
            f"load it with model family {meta.get('family')!r}"
        )
    return meta


def load_unet(unet_dir: Path) -> UNet2DModel:
    """``UNet2DModel.from_pretrained`` with a CheckpointError that names the folder."""
    try:
        return UNet2DModel.from_pretrained(unet_dir)
    except Exception as err:
        raise CheckpointError(
            f"could not load the UNet weights in {unet_dir} ({type(err).__name__}: {err}); "
            f"the file is corrupt or does not match config.json"
        ) from err
