"""A run's resources: cache, device, counts, and everything an audit needs, built once.

``Session`` is what ``benchmark.audit.run_case`` audits a case with. It loads
each dataset split once, trains or loads each model once (from the on-disk cache
when it has it), and builds each split's detectors and feature extractor once.
The pytest fixtures (``fixtures/``) make one from the ``--memobench-*`` options;
Python code makes its own::

    from benchmark import Session, run_case, smoke_case
    result = run_case(smoke_case("ddim", 64), Session())
    print(result.metrics["carlini_l2"])
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from benchmark import registry
from benchmark.cache import Cache
from benchmark.config import CaseConfig, DataConfig, DetectorConfig, ModelConfig, TrainConfig
from benchmark.config import replace as replace_config
from benchmark.data import ImageDataset, load_dataset
from benchmark.detectors.detector import get_detector
from benchmark.device import resolve_device
from benchmark.errors import DeviceError
from benchmark.measures.features import InceptionFeatures, classifier_features, extract
from benchmark.models.store import get_trained, load_pretrained
from benchmark.pool import TrainSpec
from benchmark.progress import enabled_by_default
from benchmark.speed import (
    Speed,
    activation_bytes,
    check_batch_size,
    check_precision,
    choose_batch,
    free_memory,
)
from benchmark.tiers import (
    N_GEN_DEFAULT,
    SMOKE,
    AuditCounts,
    Rehearsal,
    audit_counts,
    detector_config,
)


class Session:
    """The run's settings and its memo of datasets, models, detectors and extractors.

    Args:
        cache: cache folder (default ``$MEMOBENCH_CACHE`` or ``~/.cache/memobench``).
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"`` or ``"auto"``.
        tier: the tier whose detectors and sample counts apply (``smoke``/``paper``).
        n_gen: samples per case (default: the tier's).
        data_root: folder with the datasets' local files.
        smoke_dataset: the dataset the smoke tier's cases run on.
        rehearsal: run every count scaled down (``Rehearsal()``); forces the CPU.
        inception_weights: Inception-v3 weights for FID, instead of the dataset's classifier.
        reaudit: measure every case again instead of reusing stored audits.
        progress: show progress bars (default: on a terminal).
        speed: the switches of the audit's network calls (bf16, TF32, channels_last,
            compile; ``benchmark.speed``).
        batch_size: images per network call, instead of choosing it from free memory.
        train_precision: train every case's model with this autocast (``bf16``) instead of
            its ``TrainConfig.precision`` (a new model, keyed by it).
        tstar_curve: compute q_M(t) on the whole t* grid (``exhaustive``) for the case
            pages' figure, instead of the adaptive search's few levels.
        detector_steps: training steps of C_SAF and C_ID instead of the tier's.
        detector_min_accuracy: the detectors' held-out accuracy gate instead of the tier's
            (below it |q| and t* are withheld; 0 turns the gate off).
    """

    def __init__(
        self,
        cache: Cache | str | Path | None = None,
        device: str | torch.device = "cpu",
        tier: str = SMOKE,
        n_gen: int | None = None,
        data_root: str | None = None,
        smoke_dataset: str = "digits",
        rehearsal: Rehearsal | None = None,
        inception_weights: str | None = None,
        reaudit: bool = False,
        progress: bool | None = None,
        speed: Speed | None = None,
        batch_size: int | None = None,
        train_precision: str | None = None,
        tstar_curve: bool = False,
        detector_steps: int | None = None,
        detector_min_accuracy: float | None = None,
    ) -> None:
        self.cache = cache if isinstance(cache, Cache) else Cache(cache)
        # what a pool's worker process builds its own session from (``_audit_jobs``)
        self.worker_settings = dict(
            cache=str(self.cache.root), device="cpu", tier=tier, n_gen=n_gen,
            data_root=data_root, smoke_dataset=smoke_dataset, rehearsal=rehearsal,
            inception_weights=inception_weights, reaudit=reaudit, progress=False,
            speed=speed, batch_size=batch_size, train_precision=train_precision,
            tstar_curve=tstar_curve, detector_steps=detector_steps,
            detector_min_accuracy=detector_min_accuracy,
        )  # fmt: skip
        # a rehearsal runs the GPU path on the CPU, whatever the machine has
        self.device = resolve_device("cpu" if rehearsal else str(device))
        self.tier = tier
        self.rehearsal = rehearsal
        self.n_gen = n_gen or (rehearsal.n_gen if rehearsal else N_GEN_DEFAULT[tier])
        self.data_root = data_root
        self.smoke_dataset = smoke_dataset
        self.inception_weights = inception_weights
        self.reaudit = reaudit
        self.progress = enabled_by_default() if progress is None else progress
        self.detector_config: DetectorConfig = detector_config(
            tier, rehearsal, steps=detector_steps, min_accuracy=detector_min_accuracy
        )
        self.speed = speed or Speed()
        check_batch_size(batch_size)
        self.batch_override = batch_size
        if train_precision is not None:
            check_precision(train_precision, "--memobench-train-precision")
        self.train_precision = train_precision
        self.tstar_curve = tstar_curve
        self._fast: dict = {}
        self._batches: dict = {}
        self._datasets: dict = {}
        self._models: dict = {}
        self.trained_here: set = set()  # trained by this run's worker processes
        self.audited_by_workers: set = set()  # audit keys stored by this run's worker processes
        self._detectors: dict = {}
        self._extractors: dict = {}
        self._train_features: dict = {}
        self.audits: dict = {}
        self.failed_audits: dict = {}  # audit key -> JobFailure of a worker, deterministic
        logging.getLogger("memobench").setLevel(logging.INFO)

    # -- counts -------------------------------------------------------------------
    @property
    def counts(self) -> AuditCounts:
        """What each audit measures: the rehearsal's counts, or the tier's (with the whole
        q_M(t) curve where ``tstar_curve``)."""
        counts = self.rehearsal.audit if self.rehearsal else audit_counts(self.tier)
        return replace_config(counts, tstar_strategy="exhaustive") if self.tstar_curve else counts

    def scaled(self, case: CaseConfig) -> CaseConfig:
        """``case`` as this run measures it: with a rehearsal's counts and the run's training
        precision, where set."""
        if self.train_precision is not None:
            case = replace_config(
                case, train=replace_config(case.train, precision=self.train_precision)
            )
        return self.rehearsal.case(case) if self.rehearsal else case

    # -- data ---------------------------------------------------------------------
    def resolve(self, cfg: DataConfig) -> DataConfig:
        """``cfg`` with the run's ``data_root`` filled in."""
        if cfg.root is None and self.data_root:
            return replace_config(cfg, root=self.data_root)
        return cfg

    def dataset(self, cfg: DataConfig) -> ImageDataset:
        """The split for ``cfg``, loaded once per session."""
        cfg = self.resolve(cfg)
        if cfg not in self._datasets:
            self._datasets[cfg] = load_dataset(cfg, cache_root=self.cache.root)
        return self._datasets[cfg]

    # -- models -------------------------------------------------------------------
    def model(self, model: ModelConfig, train: TrainConfig, data: DataConfig):
        """The trained model (``TrainedModel``): from this session, the cache, or trained."""
        key = (model, train, self.resolve(data))
        if key not in self._models:
            trained = get_trained(
                model, train, self.dataset(data), self.cache, self.device, self.progress
            )
            if TrainSpec(model, train, self.resolve(data)) in self.trained_here:
                trained.stats["reused"] = False  # trained moments ago by a worker process
            self._models[key] = trained
        return self._models[key]

    def audited_here(self, key: str) -> bool:
        """Whether this run's worker processes stored the audit ``key`` moments ago."""
        return key in self.audited_by_workers

    def failed_audit(self, key: str):
        """The ``JobFailure`` of the audit ``key`` in a worker that the same inputs would
        repeat, or None."""
        return self.failed_audits.get(key)

    def pretrained(self, folder: str, family: str, data: DataConfig):
        """A user's checkpoint folder as a ``TrainedModel``, loaded once per session."""
        key = ("pretrained", folder, family, self.resolve(data))
        if key not in self._models:
            self._models[key] = load_pretrained(folder, family, self.dataset(data))
        return self._models[key]

    # -- how the audit calls a model's network ------------------------------------------
    def fast(self, model):
        """``model`` with its network wrapped in the run's ``speed`` (once per model): what
        sampling, t* and the attacks call. Its last plain draw is shared as before."""
        if model.key not in self._fast:
            net = self.speed.wrap(model.net, self.device)
            self._fast[model.key] = (
                model if net is model.net else replace_config(model, net=net, _last_plain=None)
            )
        return self._fast[model.key]

    def batch_size(self, model, default: int) -> int:
        """Images per network call for ``model``: ``--memobench-batch-size`` when given, else
        as many as fit in half the device's free memory, measured on one probe forward
        (``benchmark.speed``). At most ``default`` on the CPU, where bigger calls gain
        nothing, and at most ``max(default, GPU_BATCH_CAP)`` on a GPU."""
        if self.batch_override is not None:
            return self.batch_override
        memo = (model.key, default)
        if memo not in self._batches:
            per_image = image_bytes(self.fast(model), self.device)
            cap = default if self.device.type == "cpu" else max(default, GPU_BATCH_CAP)
            self._batches[memo] = choose_batch(
                per_image, free_memory(self.device), floor=BATCH_FLOOR, cap=cap
            )
        return self._batches[memo]

    def halve_batches(self, model) -> int:
        """After an out-of-memory error on ``model``'s network: halve every batch chosen
        for it, so the retried call fits; returns the largest batch left.

        Raises:
            DeviceError: the batch was given (``--memobench-batch-size``), or is already
                down to the floor: free memory on the device or pass a smaller batch.
        """
        if self.batch_override is not None:
            raise DeviceError(
                f"out of memory on {self.device} at a batch of {self.batch_override} images; "
                f"pass a smaller one (memobench run --batch-size N, --memobench-batch-size "
                f"in pytest), or leave it out (the batch is then chosen from free memory "
                f"and halved on out-of-memory)"
            )
        mine = [memo for memo in self._batches if memo[0] == model.key]
        if not mine or all(self._batches[m] <= BATCH_FLOOR for m in mine):
            raise DeviceError(
                f"out of memory on {self.device} even at {BATCH_FLOOR} images per call; "
                f"free memory on the device (another process?) or use a larger GPU"
            )
        for memo in mine:
            self._batches[memo] = max(BATCH_FLOOR, self._batches[memo] // 2)
        return max(self._batches[m] for m in mine)

    # -- what the metrics measure with ----------------------------------------------
    def detectors(self, data: DataConfig) -> tuple[Any, Any]:
        """(C_SAF, C_ID) for the split ``data`` describes."""
        data = self.resolve(data)
        if data not in self._detectors:
            ds = self.dataset(data)
            self._detectors[data] = tuple(
                get_detector(kind, self.detector_config, ds, self.cache, self.device, self.progress)
                for kind in ("saf", "id")
            )
        return self._detectors[data]

    def extractor(self, data: DataConfig) -> nn.Module:
        """The feature extractor of FID and replication: the dataset's classifier, or
        Inception-v3 when ``inception_weights`` is given."""
        data = self.resolve(data)
        key = "inception" if self.inception_weights else (data.name, data.root)
        if key not in self._extractors:
            if self.inception_weights:
                ext = InceptionFeatures(self.inception_weights).to(self.device)
            else:
                source = registry.datasets.get(data.name)(
                    root=data.root, cache_root=self.cache.root
                )
                ext = classifier_features(
                    source,
                    self.cache,
                    steps=self.counts.feature_steps,
                    device=self.device,
                    progress=self.progress,
                )
            self._extractors[key] = ext
        return self._extractors[key]

    def train_features(self, data: DataConfig) -> torch.Tensor:
        """The extractor's features of a split's members, extracted once per session."""
        space = f"inception:{self.inception_weights}" if self.inception_weights else "classifier"
        return self.member_features(data, space, lambda: self.extractor(data))

    def member_features(
        self, data: DataConfig, space: str, extractor: Callable[[], nn.Module]
    ) -> torch.Tensor:
        """A split's members in the feature space named ``space``, extracted once per
        session: every case on the split shares them (the members of a 78k-image MedMNIST
        set take seconds to minutes to extract). ``extractor`` builds the network, on
        the device it should run on, the first time only."""
        key = (self.resolve(data), space)
        if key not in self._train_features:
            self._train_features[key] = extract(extractor(), self.dataset(data).train)
        return self._train_features[key]


GPU_BATCH_CAP = 4096  # 28 px images: past this, a bigger call does not raise occupancy
BATCH_FLOOR = 4
PROBE_IMAGES = 2


def image_bytes(model, device: torch.device) -> float:
    """Bytes one image needs in a call of ``model``'s network (as the audit calls it), from
    a probe forward of ``PROBE_IMAGES`` images at mid diffusion."""
    net = model.net.to(device).eval()
    x = torch.zeros(PROBE_IMAGES, *model.image_shape, device=device)
    time = model.family.noise.time_at(0.5)
    used = activation_bytes(lambda: model.family.predict_eps(net, x, time), net)
    return max(used, 1) / PROBE_IMAGES
