"""A model trained the way a user trains one: with diffusers' own API only.

As diffusers' ``train_unconditional.py`` example does: a ``UNet2DModel``, a
``DDPMScheduler`` that noises the images, AdamW with a cosine schedule and
warm-up, the MSE between the network's output and the scheduler's target, and
``DDPMPipeline(unet, scheduler).save_pretrained(folder)``. Nothing of memobench's
own training code is used, so an audit of the folder is an audit of a stranger's
model.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import DDPMPipeline, DDPMScheduler, UNet2DModel
from diffusers.optimization import get_cosine_schedule_with_warmup
from PIL import Image


def train_unconditional(
    images: np.ndarray,
    folder: str | Path,
    steps: int,
    prediction_type: str = "epsilon",
    block_out_channels: tuple[int, ...] = (32, 64),
    lr: float = 2e-3,
    batch_size: int = 16,
    seed: int = 0,
) -> float:
    """Train on ``images`` (N, H, W) or (N, H, W, C) uint8 and save the pipeline in
    ``folder``; returns the last loss."""
    torch.manual_seed(seed)
    x = torch.from_numpy(images).float() / 127.5 - 1
    x = x.unsqueeze(1) if x.ndim == 3 else x.permute(0, 3, 1, 2)
    unet = UNet2DModel(
        sample_size=x.shape[-1],
        in_channels=x.shape[1],
        out_channels=x.shape[1],
        layers_per_block=1,
        block_out_channels=block_out_channels,
        down_block_types=("DownBlock2D",) * len(block_out_channels),
        up_block_types=("UpBlock2D",) * len(block_out_channels),
        norm_num_groups=8,
    )
    scheduler = DDPMScheduler(num_train_timesteps=1000, prediction_type=prediction_type)
    opt = torch.optim.AdamW(unet.parameters(), lr=lr, weight_decay=1e-6)
    schedule = get_cosine_schedule_with_warmup(
        opt, num_warmup_steps=steps // 20, num_training_steps=steps
    )
    gen = torch.Generator().manual_seed(seed)
    unet.train()
    for _ in range(steps):
        batch = x[torch.randint(0, x.shape[0], (batch_size,), generator=gen)]
        noise = torch.randn(batch.shape, generator=gen)
        t = torch.randint(0, 1000, (batch.shape[0],), generator=gen)
        noisy = scheduler.add_noise(batch, noise, t)
        target = noise if prediction_type == "epsilon" else scheduler.get_velocity(batch, noise, t)
        loss = F.mse_loss(unet(noisy, t).sample, target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        schedule.step()
    DDPMPipeline(unet=unet.eval(), scheduler=scheduler).save_pretrained(str(folder))
    return float(loss.detach())


def write_pngs(images: np.ndarray, folder: str | Path) -> Path:
    """Each (H, W) or (H, W, C) uint8 image as ``folder/NNNN.png``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for i, img in enumerate(images):
        Image.fromarray(img).save(folder / f"{i:04d}.png")
    return folder


def digits_16(n: int, offset: int = 0) -> np.ndarray:
    """``n`` of scikit-learn's 8x8 digits from ``offset``, as (n, 16, 16) uint8 (each
    pixel doubled): images that ship with a package, so the test needs no download."""
    from sklearn.datasets import load_digits

    d = load_digits().images[offset : offset + n] / 16.0
    up = np.kron(d, np.ones((2, 2)))
    return (up * 255).round().astype(np.uint8)
