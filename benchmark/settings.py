"""A run's settings: one frozen object, checked when made, applied by the audit itself.

``RunSettings`` is everything a run is told (the ``--memobench-*`` options, or
``Session(...)``'s keywords): where its cache is, the device, the tier and its
counts, a rehearsal's scaling, the speed switches. It holds no built thing and
does no work; ``benchmark.session.Session`` builds what it describes, and
``benchmark.audit.run_case`` applies ``scaled`` to every case it audits, so no
caller can forget the rehearsal or the training precision.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass, replace
from pathlib import Path

from benchmark.config import CaseConfig, DataConfig, DetectorConfig, check_precision
from benchmark.errors import ConfigError
from benchmark.speed import Speed, check_batch_size
from benchmark.tiers import (
    N_GEN_DEFAULT,
    SMOKE,
    TIERS,
    AuditCounts,
    Rehearsal,
    audit_counts,
    detector_config,
)


@dataclass(frozen=True)
class RunSettings:
    """What a run measures with.

    Attributes:
        cache: cache folder (None: ``$MEMOBENCH_CACHE`` or ``~/.cache/memobench``).
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"`` or ``"auto"`` (a rehearsal runs on the
            CPU whatever this says).
        tier: the tier whose detectors and sample counts apply (``smoke``, ``paper``,
            ``validation``).
        n_gen: samples per case (None: the rehearsal's or the tier's).
        data_root: folder with the datasets' local files.
        smoke_dataset: the dataset the smoke tier's cases run on.
        rehearsal: run every count scaled down (``Rehearsal()``).
        inception_weights: Inception-v3 weights for FID, instead of the dataset's classifier.
        feature_encoder: a TorchScript encoder file for FID and replication, instead.
        reaudit: measure every case again instead of reusing stored audits.
        progress: show progress bars (None: on a terminal).
        speed: the switches of the audit's network calls (``benchmark.speed``).
        batch_size: images per network call, instead of choosing it from free memory.
        train_precision: train every case's model with this autocast (``bf16``) instead of
            its ``TrainConfig.precision`` (a new model, keyed by it).
        tstar_curve: compute q_M(t) on the whole t* grid (``exhaustive``).
        detector_steps: training steps of C_SAF and C_ID instead of the tier's.
        detector_min_accuracy: the detectors' held-out accuracy gate instead of the tier's
            (below it |q| and t* are withheld; 0 turns the gate off).
        seeds: models trained and audited per configuration, each with its own training
            and sampling seed (``benchmark.tiers.seeded``); the leaderboard gives each
            figure's mean and spread across them.
    """

    cache: str | None = None
    device: str = "cpu"
    tier: str = SMOKE
    n_gen: int | None = None
    data_root: str | None = None
    smoke_dataset: str = "digits"
    rehearsal: Rehearsal | None = None
    inception_weights: str | None = None
    feature_encoder: str | None = None
    reaudit: bool = False
    progress: bool | None = None
    speed: Speed = Speed()
    batch_size: int | None = None
    train_precision: str | None = None
    tstar_curve: bool = False
    detector_steps: int | None = None
    detector_min_accuracy: float | None = None
    seeds: int = 1

    def __post_init__(self) -> None:
        if isinstance(self.seeds, bool) or not isinstance(self.seeds, int) or self.seeds < 1:
            raise ConfigError(
                f"seeds (models per configuration) must be an int >= 1, got {self.seeds!r}"
            )
        if self.tier not in TIERS:
            raise ConfigError(f"tier must be one of {', '.join(TIERS)}, got {self.tier!r}")
        if self.n_gen is not None and self.n_gen < 1:
            raise ConfigError(f"n_gen (samples per case) must be >= 1, got {self.n_gen}")
        check_batch_size(self.batch_size)
        if self.train_precision is not None:
            check_precision(self.train_precision, "--memobench-train-precision")
        if self.speed is None:
            object.__setattr__(self, "speed", Speed())
        if self.cache is not None:
            object.__setattr__(self, "cache", str(self.cache))
        object.__setattr__(self, "device", str(self.device))  # a torch.device too
        self.detector_config  # noqa: B018  (checks the detector overrides now)

    @property
    def samples(self) -> int:
        """Samples per case: ``n_gen``, else the rehearsal's, else the tier's."""
        if self.n_gen is not None:
            return self.n_gen
        return self.rehearsal.n_gen if self.rehearsal else N_GEN_DEFAULT[self.tier]

    @property
    def counts(self) -> AuditCounts:
        """What each audit measures: the rehearsal's counts, or the tier's (with the whole
        q_M(t) curve where ``tstar_curve``)."""
        counts = self.rehearsal.audit if self.rehearsal else audit_counts(self.tier)
        return replace(counts, tstar_strategy="exhaustive") if self.tstar_curve else counts

    @property
    def detector_config(self) -> DetectorConfig:
        return detector_config(
            self.tier,
            self.rehearsal,
            steps=self.detector_steps,
            min_accuracy=self.detector_min_accuracy,
        )

    def scaled(self, case: CaseConfig) -> CaseConfig:
        """``case`` as this run measures it: with the run's training precision and a
        rehearsal's counts, where set. Applying it twice changes nothing more."""
        if self.train_precision is not None:
            case = replace(case, train=replace(case.train, precision=self.train_precision))
        return self.rehearsal.case(case) if self.rehearsal else case

    def feature_space(self) -> str | None:
        """The feature space FID and replication measure in, where the run names one
        (part of a stored audit's key): Inception-v3's weights or an encoder's file with
        a hash of its content; None: the dataset's own (classifier or copy detection)."""
        if self.feature_encoder:
            return encoder_id(self.feature_encoder)
        return self.inception_weights

    def resolve(self, cfg: DataConfig) -> DataConfig:
        """``cfg`` with the run's ``data_root`` filled in."""
        if cfg.root is None and self.data_root:
            return replace(cfg, root=self.data_root)
        return cfg

    def for_worker(self, cache_root: str) -> RunSettings:
        """These settings in a CPU pool's worker process: the CPU, no bars, the same cache."""
        return replace(self, cache=cache_root, device="cpu", progress=False)


def encoder_id(path: str) -> str:
    """``encoder:<file name>:<sha256 of its bytes, 12 hex>``: the encoder's identity,
    so an edited file under the same name is another feature space."""
    file = Path(path).expanduser()
    try:
        stat = file.stat()
        digest = _file_digest(str(file.resolve()), stat.st_mtime_ns, stat.st_size)
    except OSError as err:
        raise ConfigError(
            f"--feature-encoder {path}: cannot be read ({err.strerror or err}); pass a "
            f"TorchScript file written by torch.jit.save"
        ) from None
    return f"encoder:{file.name}:{digest}"


@functools.lru_cache(maxsize=8)
def _file_digest(path: str, mtime_ns: int, size: int) -> str:
    """A file's content hash, read once while its time stamp and size stay the same."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:12]
