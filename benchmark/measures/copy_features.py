"""A feature space for images with no labels: a copy-detection encoder trained on them.

FID and feature replication need a space where "the same picture" lies close and
"another picture of the same kind" does not. A set memobench ships has class labels
and gets a classifier's features (``classifier_features``); a user's own members
and held-out images have none. For them memobench trains a small encoder
self-supervised, contrastively (SimCLR's NT-Xent loss), on the members and the
held-out images together: two strongly augmented views of one image (shifted,
scaled, rotated, flipped, contrast-jittered, noised) must be nearer each other
than to any other image of the batch. What survives the augmentations is the
identity of the image, which is what a copy detector needs (the approach of SSCD
for natural images and of Dar et al. 2025 for medical ones; docs/science.md).

The encoder is trained once per set of images (cached under their content) and
its name records which images it was trained on.
"""

from __future__ import annotations

import hashlib
import math

import torch
import torch.nn.functional as F

from benchmark.cache import Cache
from benchmark.config import stable_hash
from benchmark.environment import library_versions
from benchmark.fitting import fit_classifier
from benchmark.measures.features import ClassifierFeatures

VERSION = "1"
PROJECTION = 64  # the contrastive head's width (features are the layer before it)
TEMPERATURE = 0.2


def augment(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """One random view of each (N, C, H, W) image in [-1, 1]: a random affine map
    (scale 0.7-1.0, shift up to 10%, rotation up to 15 degrees, a flip half the time),
    then contrast and brightness jitter and Gaussian noise."""
    n = images.shape[0]

    def uniform(lo: float, hi: float) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(n, generator=generator)

    scale = uniform(0.7, 1.0)
    angle = uniform(-15, 15) * math.pi / 180
    flip = torch.where(torch.rand(n, generator=generator) < 0.5, -1.0, 1.0)
    cos, sin = torch.cos(angle) * scale, torch.sin(angle) * scale
    theta = torch.stack(
        [
            torch.stack([cos * flip, -sin, uniform(-0.1, 0.1)], dim=1),
            torch.stack([sin * flip, cos, uniform(-0.1, 0.1)], dim=1),
        ],
        dim=1,
    )
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    out = F.grid_sample(images, grid, padding_mode="border", align_corners=False)
    contrast = uniform(0.7, 1.3).view(n, 1, 1, 1)
    brightness = uniform(-0.15, 0.15).view(n, 1, 1, 1)
    mean = out.mean(dim=(1, 2, 3), keepdim=True)
    out = (out - mean) * contrast + mean + brightness
    out = out + 0.05 * torch.randn(out.shape, generator=generator)
    return out.clamp(-1, 1)


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float = TEMPERATURE) -> torch.Tensor:
    """SimCLR's loss: each view's partner is its positive, the batch's other 2N-2 views
    its negatives (cosine similarity over ``temperature``)."""
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    sim = z @ z.T / temperature
    n = z1.shape[0]
    sim.fill_diagonal_(float("-inf"))
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(sim, target)


def copy_detection_features(
    images: torch.Tensor,
    cache: Cache,
    steps: int = 800,
    batch_size: int = 64,
    seed: int = 0,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> ClassifierFeatures:
    """The copy-detection encoder of ``images`` (N, C, H, W) in [-1, 1]: trained once on
    them (members and held-out together), then cached under their content."""
    images = images.float().cpu()
    digest = hashlib.sha256(images.numpy().tobytes()).hexdigest()[:16]
    name = f"copy-detection-{digest[:8]}"
    batch = min(batch_size, images.shape[0])
    key = stable_hash(
        "copy-features",
        VERSION,
        digest,
        tuple(images.shape),
        steps,
        batch,
        seed,
        library_versions("torch"),
    )

    def build():
        gen = torch.Generator().manual_seed(seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = ClassifierFeatures(images.shape[1], PROJECTION, name).to(device)

        def batch_loss() -> torch.Tensor:
            x = images[torch.randperm(images.shape[0], generator=gen)[:batch]]
            v1, v2 = augment(x, gen).to(device), augment(x, gen).to(device)
            return nt_xent(model.logits(v1), model.logits(v2))

        loss = fit_classifier(
            model, batch_loss, steps=steps, lr=2e-3, cosine=True,
            desc=f"train features {name}", progress=progress,
        )  # fmt: skip
        return {
            "state_dict": model.state_dict(),
            "final_loss": loss,
            "in_channels": images.shape[1],
        }

    payload, _ = cache.get_or_create("features", key, build, what=f"feature extractor {name}")
    model = ClassifierFeatures(payload["in_channels"], PROJECTION, name)
    model.load_state_dict(payload["state_dict"])
    return model.to(device).eval()
