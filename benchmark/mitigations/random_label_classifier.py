"""CPSample's classifier: a time-conditioned network that overfits random labels of the
training images (Kazdan et al. 2024), its training on noised images, and its cache.

It can only be confident near a training image, since the labels carry no other
information (on held-out images it sits near 50%); ``benchmark.mitigations.cpsample``
guides sampling away from where it is confident.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from benchmark.data.base import ImageDataset
from benchmark.errors import ConfigError
from benchmark.fitting import fit_classifier
from benchmark.models.base import ModelFamily

CLASSIFIER_VERSION = "1"


class RandomLabelClassifier(nn.Module):
    """r_phi(x_t, t): logit of P(y = 1); t enters as a diffusion fraction in [0, 1].

    Flattened (not pooled) features: a memorizer must know where each pixel is.
    """

    def __init__(self, image_shape: tuple[int, int, int], width: int = 32) -> None:
        super().__init__()
        c, h, w = image_shape
        self.freqs = nn.Parameter(torch.arange(8).float().exp2() * math.pi, requires_grad=False)
        self.temb = nn.Sequential(nn.Linear(16, width), nn.SiLU(), nn.Linear(width, width))
        self.c1 = nn.Conv2d(c, width, 3, padding=1)
        self.c2 = nn.Conv2d(width, 2 * width, 3, stride=2, padding=1)
        self.c3 = nn.Conv2d(2 * width, 2 * width, 3, stride=2, padding=1)
        self.head = nn.Linear(2 * width * math.ceil(h / 4) * math.ceil(w / 4), 1)

    def forward(self, x: torch.Tensor, t_frac: torch.Tensor) -> torch.Tensor:
        t = t_frac.float().reshape(-1, 1).expand(x.shape[0], 1) * self.freqs
        emb = self.temb(torch.cat([t.sin(), t.cos()], dim=1))
        h = F.silu(self.c1(x.float()) + emb[:, :, None, None])
        h = F.silu(self.c2(h))
        h = F.silu(self.c3(h))
        return self.head(h.flatten(1)).squeeze(1)


@dataclass
class TrainedClassifier:
    """The classifier with the record of what it was trained on and how well it fits."""

    net: RandomLabelClassifier
    dataset: str
    n_train: int
    data_fingerprint: str
    family: str
    metrics: dict[str, float]

    def check_for(self, data: ImageDataset, family: ModelFamily) -> None:
        """Refuse a classifier trained for other training images or another noise process."""
        if self.data_fingerprint != data.fingerprint():
            raise ConfigError(
                f"the CPSample classifier was trained on {self.dataset!r} with N_train="
                f"{self.n_train} (data {self.data_fingerprint}), but this case uses {data.name!r} "
                f"with N_train={data.n_train} (data {data.fingerprint()}); CPSample needs a "
                f"classifier trained on this model's own training images"
            )
        if self.family != family.name:
            raise ConfigError(
                f"the CPSample classifier was trained on the {self.family!r} noise process, the "
                f"model is a {family.name!r} one; train it for this family"
            )


def _noised(family: ModelFamily, x0: torch.Tensor, t_frac: float, gen: torch.Generator):
    time = family.noise.time_at(t_frac)
    noise = torch.randn(x0.shape, generator=gen, device=x0.device)
    return family.noise.noise_to(x0, time, noise), family.noise.fraction_of(time)


def train_classifier(
    family: ModelFamily,
    data: ImageDataset,
    steps: int = 800,
    batch_size: int = 128,
    lr: float = 2e-3,
    seed: int = 0,
    device: torch.device | str = "cpu",
    progress: bool = False,
    encode: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> dict[str, Any]:
    """Train r_phi on the noised members with fixed random labels; returns the cache payload.

    ``encode``: maps images to what the family's noise process noises (a latent family's
    latents); the classifier then learns, and guides, in that space."""
    members, heldout = data.train, data.heldout
    if encode is not None:
        members, heldout = encode(members), encode(heldout)
    gen = torch.Generator().manual_seed(seed)  # the batches' indices and levels, on the host
    # the noise is drawn where the images are: on the CPU from the same generator as ever
    # (the same classifier as before), on a GPU from one of its own
    on_host = torch.device(device).type == "cpu"
    noise_gen = gen if on_host else torch.Generator(device=device).manual_seed(seed + 1)
    labels = torch.randint(0, 2, (data.n_train,), generator=gen).float()
    heldout_labels = torch.randint(0, 2, (data.heldout.shape[0],), generator=gen).float()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = RandomLabelClassifier(tuple(members.shape[1:])).to(device)
    train = members.to(device)
    groups = 4  # times per step; each noises a quarter of the batch

    def batch_loss() -> torch.Tensor:
        loss = 0.0
        for _ in range(groups):
            idx = torch.randint(0, data.n_train, (batch_size // groups,), generator=gen)
            t_frac = 0.999 * float(torch.rand((), generator=gen))  # time_at(1) is past T
            x_t, tf = _noised(family, train[idx], t_frac, noise_gen)
            logits = net(x_t, torch.tensor(tf, device=device))
            loss = loss + F.binary_cross_entropy_with_logits(logits, labels[idx].to(device))
        return loss / groups

    final_loss = fit_classifier(
        net, batch_loss, steps=steps, lr=lr, desc="train CPSample classifier",
        progress=progress,
    )  # fmt: skip

    @torch.no_grad()
    def accuracy(images: torch.Tensor, y: torch.Tensor, t_frac: float) -> float:
        fixed = torch.Generator(device=device).manual_seed(1)  # on the CPU: as before
        x_t, tf = _noised(family, images.to(device), t_frac, fixed)
        pred = (net(x_t, torch.tensor(tf, device=device)) > 0).float().cpu()
        return float((pred == y).float().mean())

    metrics = {
        "train_accuracy_t0.05": accuracy(members, labels, 0.05),
        "train_accuracy_t0.5": accuracy(members, labels, 0.5),
        "heldout_accuracy_t0.05": accuracy(heldout, heldout_labels, 0.05),
        "final_loss": final_loss,
    }
    return {
        "state_dict": {k: v.cpu() for k, v in net.state_dict().items()},
        "image_shape": list(members.shape[1:]),
        "dataset": data.name,
        "n_train": data.n_train,
        "data_fingerprint": data.fingerprint(),
        "family": family.name,
        "metrics": metrics,
    }


def load_classifier(
    payload: dict[str, Any], device: torch.device | str = "cpu"
) -> TrainedClassifier:
    net = RandomLabelClassifier(tuple(payload["image_shape"]))
    net.load_state_dict(payload["state_dict"])
    return TrainedClassifier(
        net.to(device).eval(),
        payload["dataset"],
        payload["n_train"],
        payload["data_fingerprint"],
        payload["family"],
        payload["metrics"],
    )
