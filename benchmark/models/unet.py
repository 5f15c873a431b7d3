"""The diffusers ``UNet2DModel`` every built-in family uses, built from a ``ModelConfig``.

Image sizes the UNet's levels do not divide (MedMNIST's 28 px under the paper
network's three downsamplings: 28 -> 14 -> 7 -> 4, and 8 against 7 on the way up)
are zero-padded to the next multiple and the output is cropped back
(``unet_forward``). We pad rather than resize the data to 32 px or drop a level:

- the diffusion process, the SAF disk (r = 4 at 28 px, docs/science.md, the fingerprint), the
  detectors, Carlini's distances and every attack stay on the dataset's own
  pixels, with no interpolation that would blur the fingerprint or the copies;
- the network stays the paper's (four levels, attention at the lowest one);
- the loss only sees the cropped output, so the border carries no training
  signal, and zeros are what the convolutions already pad with at the edges.

The same holds for any size a dataset plugin declares; a size whose padding would
be as large as the image itself is refused with a ``ConfigError`` before training.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from diffusers import UNet2DModel

from benchmark.config import ModelConfig
from benchmark.errors import CheckpointError, ConfigError

MARKER = "memobench.json"  # written beside the weights by every built-in family


def size_multiple(block_out_channels: tuple[int, ...]) -> int:
    """The UNet halves the resolution between levels: sides must divide by 2^(levels - 1)."""
    return 2 ** (len(block_out_channels) - 1)


def padded_side(side: int, multiple: int) -> int:
    return -(-side // multiple) * multiple


def check_image_shape(cfg: ModelConfig, image_shape: tuple[int, ...]) -> None:
    """Refuse an image shape the UNet cannot take, naming the size and the fix.

    Raises:
        ConfigError: not (C, H, W), or a side so small that padding it to a multiple of
            2^(levels - 1) would at least double it (the network would see mostly border).
    """
    if len(image_shape) != 3 or min(image_shape) < 1:
        raise ConfigError(f"image shape must be (channels, height, width), got {image_shape}")
    multiple = size_multiple(cfg.block_out_channels)
    for side in image_shape[1:]:
        if padded_side(side, multiple) >= 2 * side:
            levels = len(cfg.block_out_channels)
            fit = (2 * side - 1).bit_length()  # most levels with 2^(levels - 1) < 2 side
            raise ConfigError(
                f"a {side} px image side is too small for a UNet with {levels} levels "
                f"(block_out_channels={cfg.block_out_channels}: it downsamples by "
                f"{multiple}, so {side} px would be padded to {padded_side(side, multiple)}); "
                f"use images of at least {multiple // 2 + 1} px or at most {fit} levels in "
                f"block_out_channels"
            )


def unet_forward(net: torch.nn.Module, x: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
    """``net(x, timesteps).sample`` for any image size: zero-pad H and W to what the
    UNet's levels divide, centred, and crop the output back (see the module docstring).

    A network without a diffusers UNet config (an analytic denoiser) is called as is.
    """
    # Opacus' GradSampleModule (DP-SGD training) wraps the UNet as ``_module`` and does
    # not forward its attributes
    inner = getattr(net, "_module", net)
    levels = getattr(getattr(inner, "config", None), "block_out_channels", None)
    if levels is None:
        return net(x, timesteps).sample
    multiple = size_multiple(tuple(levels))
    h, w = x.shape[-2:]
    ph, pw = padded_side(h, multiple) - h, padded_side(w, multiple) - w
    if not (ph or pw):
        return net(x, timesteps).sample
    top, left = ph // 2, pw // 2
    out = net(F.pad(x, (left, pw - left, top, ph - top)), timesteps).sample
    return out[..., top : top + h, left : left + w]


def build_unet(cfg: ModelConfig, image_shape: tuple[int, int, int]) -> UNet2DModel:
    """A UNet for (C, H, W) images; attention at the lowest resolution if ``cfg.attention``.

    Its ``sample_size`` is the padded size that ``unet_forward`` feeds it.
    """
    check_image_shape(cfg, image_shape)
    channels, height, width = image_shape
    n = len(cfg.block_out_channels)
    multiple = size_multiple(cfg.block_out_channels)
    height, width = padded_side(height, multiple), padded_side(width, multiple)
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


class UNetNetwork:
    """The network half of a family built on ``build_unet`` (DDIM and sub-VP share it):
    mix in before ``ModelFamily``, which supplies ``self.config``."""

    config: ModelConfig

    def build_network(self, image_shape: tuple[int, int, int]) -> UNet2DModel:
        return build_unet(self.config, image_shape)

    def check_image_shape(self, image_shape: tuple[int, int, int]) -> None:
        check_image_shape(self.config, image_shape)


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
    if not any(Path(unet_dir).glob("*.safetensors")) and not any(Path(unet_dir).glob("*.bin")):
        raise CheckpointError(
            f"{unet_dir} has a config.json but no weights (diffusion_pytorch_model.safetensors); "
            f"save the model with save_pretrained, which writes both"
        )
    try:
        # safetensors only: diffusers would unpickle a diffusion_pytorch_model.bin
        # low_cpu_mem_usage off: what diffusers falls back to without accelerate, said once
        return UNet2DModel.from_pretrained(unet_dir, use_safetensors=True, low_cpu_mem_usage=False)
    except Exception as err:
        if any(Path(unet_dir).glob("*.bin")) and not any(Path(unet_dir).glob("*.safetensors")):
            raise CheckpointError(
                f"{unet_dir} holds pickle weights (.bin) only; memobench loads safetensors "
                f"only, since unpickling a downloaded file can run any code. Convert it once "
                f"where you trust the file: UNet2DModel.from_pretrained(dir).save_pretrained(dir)"
            ) from err
        raise CheckpointError(
            f"could not load the UNet weights in {unet_dir} ({type(err).__name__}: {err}); "
            f"the file is corrupt or does not match config.json"
        ) from err
