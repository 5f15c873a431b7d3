"""Time ``memobench audit`` on a model it did not make: 64 images at 28x28, 1024 samples.

Trains (once, kept in ``--work``) a UNet on 64 images with diffusers' own API only
(``tests/diffusers_training.py``, as diffusers' ``train_unconditional.py``), writes
the 64 members and 64 held-out images as PNG folders, then runs the command a user
runs and prints its verdict and wall time:

    python benchmarks/audit_own_model.py [--work DIR] [--steps 3000] [--samples 1024]

The images are scikit-learn's digits brought to 28x28 (bilinear), MedMNIST's size,
so the script needs no download; with MedMNIST files on disk, pass ``--npz
pneumoniamnist.npz`` to train and audit on its first 128 training images instead.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmark.cli import main as memobench  # noqa: E402
from fixtures.user_model import train_unconditional, write_pngs  # noqa: E402


def images_28(n: int, npz: str | None) -> np.ndarray:
    if npz:
        return np.load(npz)["train_images"][:n]
    from sklearn.datasets import load_digits

    d = torch.from_numpy(load_digits().images[:n] / 16.0).float().unsqueeze(1)
    up = F.interpolate(d, size=(28, 28), mode="bilinear", align_corners=False)
    return (up[:, 0].clamp(0, 1) * 255).round().to(torch.uint8).numpy()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", default="benchmarks/_audit_own_model", help="model, images, output")
    p.add_argument("--steps", type=int, default=3000, help="training steps (AdamW, batch 16)")
    p.add_argument("--samples", type=int, default=1024)
    p.add_argument("--npz", help="a MedMNIST .npz to take the 128 images from")
    p.add_argument("--device", default="auto")
    args = p.parse_args()
    work = Path(args.work)
    images = images_28(128, args.npz)
    members = write_pngs(images[:64], work / "members")
    heldout = write_pngs(images[64:], work / "heldout")
    model = work / f"model-{args.steps}"
    if not (model / "model_index.json").exists():
        start = time.perf_counter()
        loss = train_unconditional(images[:64], model, steps=args.steps, batch_size=16)
        print(f"trained with diffusers in {time.perf_counter() - start:.0f} s (loss {loss:.4f})")
    start = time.perf_counter()
    code = memobench(
        ["audit", str(model), "--members", str(members), "--heldout", str(heldout), "-o",
         str(work / "audit"), "--samples", str(args.samples), "--device", args.device,
         "--cache", str(work / "cache")]
    )  # fmt: skip
    print(f"memobench audit: {time.perf_counter() - start:.0f} s wall, exit {code}")
    return code


if __name__ == "__main__":
    sys.exit(main())
