"""A run's built resources: each dataset split, model, detector pair and feature
extractor, built (or loaded from the cache) once.

``Session`` is what ``benchmark.audit.run_case`` audits a case with. What the run
is told lives in its frozen ``RunSettings`` (``session.settings``); the batch of
each network call in ``session.batches``; what this run already audited or built
in worker processes in ``session.log``. The pytest fixture ``memobench_session``
makes one from the ``--memobench-*`` options; Python code makes its own::

    from benchmark import Session, run_case, smoke_case
    result = run_case(smoke_case("ddim", 64), Session())
    print(result.metrics["carlini_l2"])
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from benchmark import registry
from benchmark.batching import Batches
from benchmark.cache import Cache
from benchmark.config import DataConfig, DetectorConfig, ModelConfig, TrainConfig
from benchmark.data import ImageDataset, load_dataset
from benchmark.detectors.detector import Detector, get_detector
from benchmark.device import resolve_device
from benchmark.measures.extractors import feature_extractor
from benchmark.measures.features import extract
from benchmark.models.base import TrainedModel
from benchmark.models.store import get_trained, load_pretrained
from benchmark.pool import TrainSpec
from benchmark.progress import enabled_by_default
from benchmark.settings import RunSettings
from benchmark.tiers import AuditCounts


@dataclass
class RunLog:
    """What this run already did: audits measured in this process, and what its worker
    processes trained, audited, or failed on for a reason that would repeat."""

    audits: dict = field(default_factory=dict)  # (case, model key) -> AuditResult
    trained: set = field(default_factory=set)  # TrainSpec built by a worker
    audited: set = field(default_factory=set)  # audit keys a worker stored
    failed: dict = field(default_factory=dict)  # audit key -> deterministic JobFailure


class Session:
    """The memo of one run's datasets, models, detectors and feature extractors.

    Args:
        cache: cache folder or ``Cache`` (default: ``settings.cache``, else
            ``$MEMOBENCH_CACHE`` or ``~/.cache/memobench``).
        settings: the run's settings; or give them as keywords (``RunSettings``'s fields:
            ``Session(device="cuda", rehearsal=Rehearsal())``).
    """

    def __init__(
        self,
        cache: Cache | str | Path | None = None,
        settings: RunSettings | None = None,
        **keywords: Any,
    ) -> None:
        if settings is not None and keywords:
            raise TypeError("pass either settings= or RunSettings' fields as keywords")
        if settings is None:
            root = cache.root if isinstance(cache, Cache) else cache
            settings = RunSettings(cache=root, **keywords)
        self.settings = settings
        self.cache = cache if isinstance(cache, Cache) else Cache(cache or settings.cache)
        # a rehearsal runs the GPU path on the CPU, whatever the machine has
        self.device = resolve_device("cpu" if settings.rehearsal else settings.device)
        self.progress = enabled_by_default() if settings.progress is None else settings.progress
        self.batches = Batches(self.device, settings.batch_size)
        self.log = RunLog()
        self._fast: dict = {}
        self._datasets: dict = {}
        self._given: set = set()  # DataConfigs of datasets given whole (add_dataset)
        self._models: dict = {}
        self._detectors: dict = {}
        self._extractors: dict = {}
        self._train_features: dict = {}
        logging.getLogger("memobench").setLevel(logging.INFO)

    @property
    def counts(self) -> AuditCounts:
        return self.settings.counts

    @property
    def detector_config(self) -> DetectorConfig:
        return self.settings.detector_config

    def worker_settings(self) -> RunSettings:
        """The settings a CPU pool's worker process builds its own session from."""
        return self.settings.for_worker(str(self.cache.root))

    # -- data and models ----------------------------------------------------------------
    def dataset(self, cfg: DataConfig) -> ImageDataset:
        """The split for ``cfg``, loaded once per session."""
        cfg = self.settings.resolve(cfg)
        if cfg not in self._datasets:
            self._datasets[cfg] = load_dataset(cfg, cache_root=self.cache.root)
        return self._datasets[cfg]

    def add_dataset(self, cfg: DataConfig, dataset: ImageDataset) -> None:
        """Use ``dataset`` for ``cfg``: a user's own members and held-out images, which no
        registered dataset describes (``cfg.name`` need not be registered)."""
        cfg = self.settings.resolve(cfg)
        self._datasets[cfg] = dataset
        self._given.add(cfg)

    def model(self, model: ModelConfig, train: TrainConfig, data: DataConfig) -> TrainedModel:
        """The trained model: from this session, the cache, or trained."""
        key = (model, train, self.settings.resolve(data))
        if key not in self._models:
            trained = get_trained(
                model, train, self.dataset(data), self.cache, self.device, self.progress
            )
            if TrainSpec(*key) in self.log.trained:
                trained.stats["reused"] = False  # trained moments ago by a worker process
            self._models[key] = trained
        return self._models[key]

    def pretrained(self, folder: str, family: str, data: DataConfig) -> TrainedModel:
        """A user's checkpoint folder as a ``TrainedModel``, loaded once per session."""
        key = ("pretrained", folder, family, self.settings.resolve(data))
        if key not in self._models:
            self._models[key] = load_pretrained(folder, family, self.dataset(data))
        return self._models[key]

    def fast(self, model: TrainedModel) -> TrainedModel:
        """``model`` with its network wrapped in the run's ``speed`` (once per model): what
        sampling, t* and the attacks call. Its last plain draw is shared as before."""
        if model.key not in self._fast:
            net = self.settings.speed.wrap(model.net, self.device)
            self._fast[model.key] = model if net is model.net else model.with_net(net)
        return self._fast[model.key]

    def batch_size(self, model: TrainedModel, default: int) -> int:
        """Images per network call for ``model`` (``Batches.size``)."""
        return self.batches.size(self.fast(model), default)

    # -- what the metrics measure with ----------------------------------------------------
    def detectors(self, data: DataConfig) -> tuple[Detector, Detector]:
        """(C_SAF, C_ID) for the split ``data`` describes."""
        data = self.settings.resolve(data)
        if data not in self._detectors:
            ds = self.dataset(data)
            self._detectors[data] = tuple(
                get_detector(kind, self.detector_config, ds, self.cache, self.device, self.progress)
                for kind in ("saf", "id")
            )
        return self._detectors[data]

    def extractor(self, data: DataConfig) -> nn.Module:
        """The feature extractor of FID and replication: the dataset's classifier (a
        dataset given with ``add_dataset``: a copy-detection encoder trained on its
        images), or Inception-v3 when ``inception_weights`` is given."""
        data = self.settings.resolve(data)
        weights, encoder = self.settings.inception_weights, self.settings.feature_encoder
        key = "encoder" if encoder else "inception" if weights else (data.name, data.root)
        if key not in self._extractors:
            given = self._datasets[data] if data in self._given else None  # no labels
            self._extractors[key] = feature_extractor(
                self.cache,
                steps=self.counts.feature_steps,
                device=self.device,
                progress=self.progress,
                encoder=encoder,
                encoder_id=self.settings.feature_space(),
                inception_weights=weights,
                unlabelled=None if given is None else torch.cat([given.train, given.heldout]),
                source=lambda: registry.datasets.get(data.name)(
                    root=data.root, cache_root=self.cache.root
                ),
            )
        return self._extractors[key]

    def train_features(self, data: DataConfig) -> torch.Tensor:
        """The extractor's features of a split's members, extracted once per session."""
        space = self.settings.feature_space() or "classifier"
        return self.member_features(data, space, lambda: self.extractor(data))

    def member_features(
        self, data: DataConfig, space: str, extractor: Callable[[], nn.Module]
    ) -> torch.Tensor:
        """A split's members in the feature space named ``space``, extracted once per
        session: every case on the split shares them (the members of a 78k-image MedMNIST
        set take seconds to minutes to extract). ``extractor`` builds the network, on
        the device it should run on, the first time only."""
        key = (self.settings.resolve(data), space)
        if key not in self._train_features:
            self._train_features[key] = extract(extractor(), self.dataset(data).train)
        return self._train_features[key]
