"""C_SAF and C_ID (docs/science.md, the fingerprint): how each is trained, measured and cached.

C_SAF answers "does this image carry the fingerprint disk": trained on the
members with a disk painted at a random place on 50% of them, then blurred,
noised and blotched like generated images (``sampler_artefacts``); validated on
held-out images with disks on 10%, and, recorded beside it, on the same
validation images with those artefacts.

C_ID answers "is this image x_p": positives are x_p (replicated to balance),
negatives the other members; random disks of the SAF's shape (value 0) on
half of both make it blind to the fingerprint; AugMix, flips and Gaussian
noise. Validated on fresh augmentations of x_p against held-out images.

A detector below ``min_accuracy`` (accuracy and balanced accuracy, so a
detector that never fires cannot pass on the 10%-positive C_SAF validation
set) makes the audit refuse to report.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from benchmark.cache import Cache
from benchmark.config import DetectorConfig, stable_hash
from benchmark.data.base import ImageDataset
from benchmark.detectors.augment import (
    augmix,
    gaussian_noise,
    paint_random_disks,
    random_flips,
    sampler_artefacts,
)
from benchmark.detectors.networks import build_detector
from benchmark.environment import library_versions
from benchmark.errors import CacheError, ConfigError, MemobenchError
from benchmark.fitting import fit_classifier

log = logging.getLogger("memobench.detectors")

VERSION = "2"  # 2: artefact augmentation for C_SAF, cosine learning rate


class DetectorAccuracyError(MemobenchError):
    """A detector is too weak for its verdicts to mean anything."""


@dataclass
class Detector:
    """A trained binary detector and how well it did on held-out data."""

    kind: str  # "saf" or "id"
    net: nn.Module
    dataset: str
    data_fingerprint: str
    metrics: dict[str, Any] = field(default_factory=dict)

    @torch.no_grad()
    def probabilities(self, images: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
        """sigmoid(logit) for (N, C, H, W) images in [-1, 1] -> (N,)."""
        self.net.eval()
        device = next(self.net.parameters()).device
        return torch.cat(
            [torch.sigmoid(self.net(x.to(device))).cpu() for x in images.split(batch_size)]
        )

    def predict(self, images: torch.Tensor) -> torch.Tensor:
        return self.probabilities(images) > 0.5

    def check_for(self, data: ImageDataset) -> None:
        """Refuse a detector trained on other data."""
        if self.data_fingerprint != data.fingerprint():
            raise ConfigError(
                f"C_{self.kind.upper()} was trained on dataset {self.dataset!r} (data "
                f"{self.data_fingerprint}), but this case uses {data.name!r} (data "
                f"{data.fingerprint()}); train detectors for this case's data"
            )

    def require_accuracy(self, minimum: float) -> None:
        """Refuse a detector below ``minimum`` or blind to SAF(x_p); 0 checks nothing."""
        if minimum <= 0:
            return
        acc = self.metrics["accuracy"]
        bal = self.metrics["balanced_accuracy"]
        if not self.metrics.get("fires_on_saf_xp", True):
            raise DetectorAccuracyError(
                f"detector C_{self.kind.upper()} on {self.dataset!r} does not flag SAF(x_p) "
                f"itself, so no reproduction could ever count; |q| and t* are withheld. "
                f"Train it longer (memobench run --detector-steps N, "
                f"--memobench-detector-steps in pytest)"
            )
        if min(acc, bal) < minimum:
            raise DetectorAccuracyError(
                f"detector C_{self.kind.upper()} on {self.dataset!r} has held-out accuracy "
                f"{acc:.3f} (balanced {bal:.3f}) below the required {minimum:.2f}; its "
                f"verdicts would be meaningless, so |q| and t* are withheld. Train it "
                f"longer (memobench run --detector-steps N) or lower the gate "
                f"(--detector-min-accuracy X; in pytest --memobench-detector-steps and "
                f"--memobench-detector-min-accuracy)"
            )


def _require_saf(data: ImageDataset) -> None:
    if data.saf is None:
        raise ConfigError(
            f"dataset {data.name!r} (n_train={data.n_train}) carries no SAF; the fingerprint "
            f"audit needs a model trained with DataConfig(saf=True)"
        )


def saf_batch(
    data: ImageDataset,
    n: int,
    positive_rate: float,
    pool: torch.Tensor,
    gen: torch.Generator,
    saf_index: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Images from ``pool`` with a disk painted on ``positive_rate`` of them, and labels.

    ``saf_index``: the pool's row that already carries the fingerprint (always positive).
    """
    idx = torch.randint(0, pool.shape[0], (n,), generator=gen)
    which = torch.rand(n, generator=gen) < positive_rate
    images = paint_random_disks(pool[idx], which, data.saf.radius, gen)
    if saf_index is not None:
        which = which | (idx == saf_index)
    return images, which.float()


def id_batch(
    data: ImageDataset, n: int, negatives: torch.Tensor, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Half x_p, half ``negatives``; random SAF-shaped disks on half of each."""
    n_pos = n // 2
    pos = data.saf.original.unsqueeze(0).expand(n_pos, -1, -1, -1)
    neg = negatives[torch.randint(0, negatives.shape[0], (n - n_pos,), generator=gen)]
    images = torch.cat([pos, neg])
    labels = torch.cat([torch.ones(n_pos), torch.zeros(n - n_pos)])
    masked = torch.rand(n, generator=gen) < 0.5
    return paint_random_disks(images, masked, data.saf.radius, gen), labels


def augment(images: torch.Tensor, gen: torch.Generator, kind: str) -> torch.Tensor:
    """C_SAF: AugMix, flips, sampler artefacts; C_ID: AugMix, flips, Gaussian noise."""
    out = random_flips(augmix(images, gen), gen)
    return sampler_artefacts(out, gen) if kind == "saf" else gaussian_noise(out, gen)


def detector_key(kind: str, cfg: DetectorConfig, data: ImageDataset) -> str:
    return stable_hash(
        "detector", VERSION, kind, cfg, data.fingerprint(), library_versions("torch")
    )


def get_detector(
    kind: str,
    cfg: DetectorConfig,
    data: ImageDataset,
    cache: Cache,
    device: torch.device | str = "cpu",
    progress: bool = True,
) -> Detector:
    """C_SAF (``kind="saf"``) or C_ID (``kind="id"``) for ``data``: cached or trained now."""
    _require_saf(data)
    if kind not in ("saf", "id"):
        raise ValueError(f"detector kind must be 'saf' or 'id', got {kind!r}")
    key = detector_key(kind, cfg, data)

    def build() -> dict[str, Any]:
        net, metrics = train_detector(kind, cfg, data, device, progress)
        return {
            "kind": kind,
            "dataset": data.name,
            "fingerprint": data.fingerprint(),
            "arch": cfg.arch,
            "state_dict": net.state_dict(),
            "metrics": metrics,
        }

    def validate(payload: dict[str, Any]) -> None:
        if payload.get("fingerprint") != data.fingerprint() or payload.get("kind") != kind:
            raise CacheError(
                f"cache entry {cache.path('detectors', key)} holds a C_{payload.get('kind')} "
                f"detector for data {payload.get('fingerprint')}, expected C_{kind} for "
                f"{data.fingerprint()}"
            )

    payload, reused = cache.get_or_create(
        "detectors", key, build, what=f"C_{kind.upper()}", validate=validate
    )
    net = build_detector(payload["arch"], data.image_shape[0])
    net.load_state_dict(payload["state_dict"])
    metrics = dict(payload["metrics"], reused=reused)
    return Detector(
        kind, net.to(device).eval(), payload["dataset"], payload["fingerprint"], metrics
    )


def train_detector(
    kind: str,
    cfg: DetectorConfig,
    data: ImageDataset,
    device: torch.device | str = "cpu",
    progress: bool = True,
) -> tuple[nn.Module, dict[str, Any]]:
    gen = torch.Generator().manual_seed(cfg.seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        net = build_detector(cfg.arch, data.image_shape[0]).to(device)
    negatives = torch.cat([data.train[: data.saf.index], data.train[data.saf.index + 1 :]])

    def batch_loss() -> torch.Tensor:
        if kind == "saf":
            x, y = saf_batch(data, cfg.batch_size, 0.5, data.train, gen, data.saf.index)
        else:
            x, y = id_batch(data, cfg.batch_size, negatives, gen)
        x = augment(x, gen, kind)
        return F.binary_cross_entropy_with_logits(net(x.to(device)), y.to(device))

    fit_classifier(
        net, batch_loss, steps=cfg.steps, lr=cfg.lr, desc=f"train C_{kind.upper()}",
        progress=progress,
    )  # fmt: skip
    return net, evaluate(kind, net, data, cfg)


@torch.no_grad()
def evaluate(kind: str, net: nn.Module, data: ImageDataset, cfg: DetectorConfig) -> dict[str, Any]:
    """Held-out accuracy, balanced accuracy, and false positives on held-out images."""
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    det = Detector(kind, net, data.name, data.fingerprint())
    if kind == "saf":
        x, y = saf_batch(data, cfg.val_size, 0.1, data.heldout, gen)
        y = y.bool()
    else:
        n_pos = cfg.val_size // 2
        pos = data.saf.original.unsqueeze(0).expand(n_pos, -1, -1, -1)
        pos = paint_random_disks(pos, torch.rand(n_pos, generator=gen) < 0.5, data.saf.radius, gen)
        pos = random_flips(pos, gen)
        neg = data.heldout[
            torch.randint(0, data.heldout.shape[0], (cfg.val_size - n_pos,), generator=gen)
        ]
        neg = paint_random_disks(
            neg, torch.rand(neg.shape[0], generator=gen) < 0.5, data.saf.radius, gen
        )
        x = torch.cat([pos, neg])
        y = torch.cat(
            [torch.ones(n_pos, dtype=torch.bool), torch.zeros(neg.shape[0], dtype=torch.bool)]
        )
    scores = _scores(det.predict(x), y)
    # The same validation images with every sampler artefact at a random strength: a
    # detector that flags blur or noise as the disk (or as x_p) shows it here.
    rough = torch.Generator().manual_seed(cfg.seed + 2)
    artefacts = _scores(det.predict(sampler_artefacts(x, rough, p=1.0)), y)
    held_rough = sampler_artefacts(data.heldout, rough, p=1.0)
    return {
        **scores,
        "heldout_positive_rate": det.predict(data.heldout).float().mean().item(),
        "artefact_accuracy": artefacts["accuracy"],
        "artefact_balanced_accuracy": artefacts["balanced_accuracy"],
        "artefact_heldout_positive_rate": det.predict(held_rough).float().mean().item(),
        "fires_on_saf_xp": bool(det.predict(data.saf.fingerprinted().unsqueeze(0))[0]),
        "val_size": int(y.numel()),
    }


def _scores(pred: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    tpr = (pred & y).sum().item() / max(1, y.sum().item())
    tnr = (~pred & ~y).sum().item() / max(1, (~y).sum().item())
    return {
        "accuracy": (pred == y).float().mean().item(),
        "balanced_accuracy": (tpr + tnr) / 2,
        "tpr": tpr,
        "tnr": tnr,
    }
