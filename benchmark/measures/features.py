"""Feature extractors for FID and replication, swappable like torchmetrics FID's ``feature=``.

The default works offline: a classifier trained on the dataset's own labels
(digits' 10 classes, MedMNIST's labels) on the whole labelled pool, so every
case of a dataset is measured with the same extractor; its penultimate layer
gives the features. Inception-v3 (torchmetrics' FID network) is used when its
weights file is on disk. Every extractor has a ``name`` that metrics record.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from benchmark.cache import Cache
from benchmark.config import stable_hash
from benchmark.data.base import DatasetSource
from benchmark.detectors.networks import SmallResNet
from benchmark.environment import library_versions
from benchmark.errors import ConfigError, DataError
from benchmark.fitting import fit_classifier

VERSION = "1"


class ClassifierFeatures(nn.Module):
    """Penultimate-layer features (N, D) of a small ResNet classifier; input in [-1, 1]."""

    def __init__(self, in_channels: int, num_classes: int, name: str) -> None:
        super().__init__()
        self.net = SmallResNet(in_channels)
        self.net.head = nn.Linear(self.net.head.in_features, num_classes)
        self.num_features = self.net.head.in_features
        self.name = name

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.blocks(self.net.stem(x.float())).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.head(self.features(x))


class Precomputed(nn.Module):
    """Identity on (N, D) features already extracted: torchmetrics' FID and KID take it as
    ``feature=``, so each set's features are computed once and shared."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def extractor_name(extractor: nn.Module) -> str:
    """The name metrics record for ``extractor`` (its ``name``, else its class)."""
    return getattr(extractor, "name", type(extractor).__name__)


def check_features(out: torch.Tensor, extractor: nn.Module, n: int) -> torch.Tensor:
    """Refuse an extractor that does not return one feature vector per image."""
    if out.ndim != 2 or out.shape[0] != n:
        name = extractor_name(extractor)
        raise ConfigError(
            f"feature extractor {name!r} returned shape {tuple(out.shape)} for {n} images; it "
            f"must return a 2-D (N, D) tensor (flatten or pool its output)"
        )
    return out


@torch.no_grad()
def extract(extractor: nn.Module, images: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """(N, D) features of (N, C, H, W) images, in batches."""
    extractor.eval()
    device = next(extractor.parameters(), torch.empty(0)).device  # parameter-free: CPU
    out = torch.cat([extractor(x.to(device)).cpu() for x in images.split(batch_size)])
    return check_features(out, extractor, images.shape[0])


def classifier_features(
    source: DatasetSource,
    cache: Cache,
    steps: int = 800,
    batch_size: int = 128,
    seed: int = 0,
    device: str | torch.device = "cpu",
    progress: bool = True,
    max_images: int = 20000,
) -> ClassifierFeatures:
    """The dataset's own classifier features: trained once per dataset, then cached."""
    pools = source.load_pools()
    images = pools.member_images[:max_images].float() * 2 - 1
    labels = pools.member_labels[:max_images]
    if source.num_classes < 2:
        raise DataError(f"dataset {source.name!r} has no class labels to train features on")
    name = f"{source.name}-classifier"
    key = stable_hash(
        "features",
        VERSION,
        source.name,
        steps,
        batch_size,
        seed,
        images.shape,
        float(images.sum()),
        library_versions("torch"),
    )

    def build():
        gen = torch.Generator().manual_seed(seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = ClassifierFeatures(images.shape[1], source.num_classes, name).to(device)

        def batch_loss() -> torch.Tensor:
            idx = torch.randint(0, images.shape[0], (batch_size,), generator=gen)
            x = images[idx]  # no flips: digit classes are not mirror-symmetric
            return F.cross_entropy(model.logits(x.to(device)), labels[idx].to(device))

        fit_classifier(
            model, batch_loss, steps=steps, lr=2e-3, cosine=False,
            desc=f"train features {name}", progress=progress,
        )  # fmt: skip
        with torch.no_grad():
            acc = model.logits(images[:2000].to(device)).argmax(1).cpu() == labels[:2000]
        return {
            "state_dict": model.state_dict(),
            "train_accuracy": acc.float().mean().item(),
            "in_channels": images.shape[1],
            "num_classes": source.num_classes,
        }

    payload, _ = cache.get_or_create("features", key, build, what=f"feature extractor {name}")
    model = ClassifierFeatures(payload["in_channels"], payload["num_classes"], name)
    model.load_state_dict(payload["state_dict"])
    model.train_accuracy = payload["train_accuracy"]
    return model.to(device).eval()


class InceptionFeatures(nn.Module):
    """torchmetrics' FID Inception-v3 (2048-d pool features) from a weights file on disk."""

    num_features = 2048
    name = "inception-v3"

    def __init__(self, weights_path: str | Path) -> None:
        super().__init__()
        path = Path(weights_path).expanduser()
        if not path.exists():
            raise DataError(
                f"Inception-v3 FID weights not found at {path}; download "
                f"pt_inception-2015-12-05-6726825d.pth (torch-fidelity's release) there, or use "
                f"the default offline extractor (the dataset's classifier features)"
            )
        from torchmetrics.image.fid import NoTrainInceptionV3

        self.net = NoTrainInceptionV3(
            name="inception-v3-compat",
            features_list=["2048"],
            feature_extractor_weights_path=str(path),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        return self.net(x).reshape(x.shape[0], -1)


class EncoderFeatures(nn.Module):
    """A user's own encoder from a TorchScript file (``torch.jit.save``): (N, C, H, W) images
    in [-1, 1] to (N, D) features. Named ``identity`` (``encoder:<file>:<hash>``)."""

    def __init__(self, path: str | Path, identity: str) -> None:
        super().__init__()
        file = Path(path).expanduser()
        try:
            self.net = torch.jit.load(str(file), map_location="cpu")
        except (RuntimeError, ValueError, OSError) as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ConfigError(
                f"--feature-encoder {file}: not a TorchScript file ({first}); save the encoder "
                f"with torch.jit.save(torch.jit.script(model), path) or torch.jit.trace"
            ) from None
        self.name = identity

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.float())
