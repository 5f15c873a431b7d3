"""Train-or-load: trained models cached under the hash of what determines them.

The key covers the family (name and code version), its model and training
configs, and the data's fingerprint. Training checkpoints live beside the
cache entry and are resumed after an interruption.
"""

from __future__ import annotations

import contextlib
import logging
import time
from pathlib import Path

import torch

from benchmark import registry
from benchmark.cache import Cache
from benchmark.config import ModelConfig, TrainConfig, stable_hash
from benchmark.data.base import ImageDataset
from benchmark.environment import DP_LIBRARIES, TRAINING_LIBRARIES, library_versions
from benchmark.errors import CacheError, ConfigError
from benchmark.models import training
from benchmark.models.base import ModelFamily, TrainedModel
from benchmark.progress import line

log = logging.getLogger("memobench.models")

# (event, family, key, path) of this process: "reused" or "trained"; the pytest
# plugin prints them at the end of a run.
EVENTS: list[tuple[str, str, str, str]] = []


def model_key(family: ModelFamily, train_cfg: TrainConfig, data: ImageDataset) -> str:
    return stable_hash(
        "model",
        family.name,
        family.version,
        family.config,
        train_cfg,
        data.fingerprint(),
        library_versions(*TRAINING_LIBRARIES),
        *([library_versions(*DP_LIBRARIES)] if train_cfg.mitigation is not None else []),
    )


def family_for(model_cfg: ModelConfig) -> ModelFamily:
    return registry.models.get(model_cfg.family)(model_cfg)


def get_trained(
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    data: ImageDataset,
    cache: Cache,
    device: torch.device | str = "cpu",
    progress: bool = True,
    position: int | None = None,
) -> TrainedModel:
    """The trained model for these configs and data: from the cache, or trained now."""
    family = family_for(model_cfg)
    family.check_image_shape(data.image_shape)
    key = model_key(family, train_cfg, data)
    path = cache.path("models", key)
    ckpt_dir = cache.dir("checkpoints", key)

    def validate(entry: dict) -> None:
        if entry.get("family") != family.name:
            raise CacheError(
                f"cache entry {path} holds family {entry.get('family')!r}, expected {family.name!r}"
            )

    def build() -> dict:
        # what the network needs first (a latent family's autoencoder, cached on its own)
        prepared = family.prepare(data, train_cfg, cache, device=device, progress=progress)
        net, stats = training.train(
            family,
            data.train,
            train_cfg,
            ckpt_dir,
            device=device,
            progress=progress,
            position=position,
        )
        return {
            "family": family.name,
            "image_shape": list(data.image_shape),
            "state_dict": {k: v.detach().cpu() for k, v in net.state_dict().items()},
            "stats": {**prepared, **stats},
        }

    start = time.perf_counter()
    entry, reused = cache.get_or_create(
        "models",
        key,
        build,
        identity={"family": family.name, "model": family.config, "train": train_cfg},
        what=f"{family.name} model",
        validate=validate,
    )
    with contextlib.suppress(OSError):
        ckpt_dir.rmdir()
    trained_here = any(e[0] == "trained" and e[2] == key for e in EVENTS)
    if not (reused and trained_here):  # a worker's training is already listed and logged
        EVENTS.append(("reused" if reused else "trained", family.name, key, str(path)))
        trained = entry["stats"].get("train_seconds") or 0.0
        how = "loaded from the cache" if reused else "trained"
        line(
            f"model {family.name} {key}: {how} ({trained:.0f} s of training; "
            f"{time.perf_counter() - start:.0f} s here)"
        )
    shape = tuple(entry["image_shape"])
    net = family.build_network(shape)
    net.load_state_dict(entry["state_dict"])
    return TrainedModel(
        family, net.to(device).eval(), key, shape, dict(entry["stats"], reused=reused)
    )


def is_cached(
    model_cfg: ModelConfig, train_cfg: TrainConfig, data: ImageDataset, cache: Cache
) -> bool:
    return cache.path("models", model_key(family_for(model_cfg), train_cfg, data)).exists()


def load_pretrained(folder: str | Path, family_name: str, data: ImageDataset) -> TrainedModel:
    """A user's own diffusers checkpoint, checked against the dataset it was trained on."""
    family_cls = registry.models.get(family_name)
    family, net = family_cls.load_pretrained(Path(folder))
    cfg = getattr(net, "config", None)
    if cfg is not None and hasattr(cfg, "in_channels"):
        size = cfg.sample_size if isinstance(cfg.sample_size, int) else cfg.sample_size[0]
        shape = (cfg.in_channels, size, size)
        if shape != tuple(data.image_shape):
            raise ConfigError(
                f"the model in {folder} makes {shape} images but dataset {data.name!r} has "
                f"{tuple(data.image_shape)}; pass the dataset the model was trained on"
            )
    stats = {
        "reused": True,
        "source": f"pretrained: {folder}",
        "param_count": sum(p.numel() for p in net.parameters()),
    }
    key = stable_hash("pretrained", str(Path(folder).resolve()), data.fingerprint())
    return TrainedModel(family, net.eval(), key, tuple(data.image_shape), stats)
