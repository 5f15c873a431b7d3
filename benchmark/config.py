"""Frozen configuration dataclasses and the stable identity hash of a case.

Every field has a default that means something (the smoke tier). A case's
identity is the hash of its configs plus a fingerprint of its data, so the
cache can key trained models, samples and features on it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from benchmark.errors import ConfigError

# Fields tagged with this metadata locate things but do not change results.
NOT_IDENTITY = {"identity": False}
# part of the identity only when set to something else than its default: a switch added
# later keys new models without changing the keys of the models cached before it
UNLESS_DEFAULT = {"identity": "unless-default"}


PREDICTION_TYPES = ("epsilon", "v_prediction", "sample")  # as diffusers names them
PRECISIONS = ("fp32", "bf16")  # autocast of a network's calls (benchmark.speed)


def check_precision(precision: str, what: str = "precision") -> None:
    _check(
        precision in PRECISIONS,
        f"{what} must be one of {', '.join(PRECISIONS)}, got {precision!r}",
    )


def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise ConfigError(msg)


@dataclass(frozen=True)
class DataConfig:
    """Which images a model is trained on.

    Attributes:
        name: registered dataset name (``digits``, ``pathmnist``, ...).
        n_train: number of training images (members).
        n_heldout: number of held-out images (non-members); 0 means "as many as
            n_train, capped by what the dataset has left".
        split_seed: seed of the train / held-out split.
        saf: replace one training image by its synthetic anatomic fingerprint.
        saf_seed: seed choosing x_p and the disk's centre.
        shadow: the shadow split of this split: as many other training images, none of
            them a member or a non-member of the split itself (a shadow model's data,
            for the attacks that learn on one).
        root: folder with local data files (location only, not identity).
    """

    name: str = "digits"
    n_train: int = 64
    n_heldout: int = 0
    split_seed: int = 0
    saf: bool = False
    saf_seed: int = 0
    shadow: bool = field(default=False, metadata=UNLESS_DEFAULT)
    root: str | None = field(default=None, metadata=NOT_IDENTITY)

    def __post_init__(self) -> None:
        _check(self.n_train >= 1, f"n_train must be >= 1, got {self.n_train}")
        _check(self.n_heldout >= 0, f"n_heldout must be >= 0, got {self.n_heldout}")


@dataclass(frozen=True)
class AutoencoderConfig:
    """A latent family's autoencoder (diffusers' ``AutoencoderKL``) and its training.

    ``block_out_channels`` has one entry per level; each level after the first halves
    the image side, so (32, 64) maps 16 x 16 images to 8 x 8 latents of
    ``latent_channels`` channels. The loss is the reconstruction's mean squared error
    plus ``kl_weight`` times the posterior's KL divergence from N(0, I) per latent value.
    """

    block_out_channels: tuple[int, ...] = (32, 64)
    latent_channels: int = 2
    layers_per_block: int = 1
    norm_num_groups: int = 8
    kl_weight: float = 1e-4
    steps: int = 2000
    batch_size: int = 64
    lr: float = 1e-3
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "block_out_channels", tuple(self.block_out_channels))
        _check(len(self.block_out_channels) >= 1, "autoencoder block_out_channels is empty")
        for c in self.block_out_channels:
            _check(
                c % self.norm_num_groups == 0,
                f"each of the autoencoder's block_out_channels {self.block_out_channels} must "
                f"be divisible by its norm_num_groups={self.norm_num_groups}",
            )
        _check(
            self.latent_channels >= 1, f"latent_channels must be >= 1, got {self.latent_channels}"
        )
        _check(self.layers_per_block >= 1, "autoencoder layers_per_block must be >= 1")
        _check(self.kl_weight >= 0, f"kl_weight must be >= 0, got {self.kl_weight}")
        _check(self.steps >= 1, f"autoencoder steps must be >= 1, got {self.steps}")
        _check(self.batch_size >= 1, f"autoencoder batch_size must be >= 1, got {self.batch_size}")
        _check(self.lr > 0, f"autoencoder lr must be > 0, got {self.lr}")

    @property
    def factor(self) -> int:
        """How many pixels a latent value spans along each side."""
        return 2 ** (len(self.block_out_channels) - 1)


@dataclass(frozen=True)
class ModelConfig:
    """Architecture and noise schedule of a model family (docs/science.md, model families)."""

    family: str = "ddim"
    block_out_channels: tuple[int, ...] = (32, 64)
    layers_per_block: int = 1
    attention: bool = False
    norm_num_groups: int = 8
    num_train_timesteps: int = 1000
    beta_start: float = 1e-4
    beta_end: float = 0.02
    beta_schedule: str = "linear"
    # what the network predicts (diffusers' scheduler ``prediction_type``): memobench trains
    # ``epsilon``; a user's checkpoint may be ``v_prediction`` or ``sample``
    prediction_type: str = field(default="epsilon", metadata=UNLESS_DEFAULT)
    # a latent family's autoencoder (``None``: a pixel family, or the latent family's
    # defaults)
    autoencoder: AutoencoderConfig | None = field(default=None, metadata=UNLESS_DEFAULT)

    def __post_init__(self) -> None:
        object.__setattr__(self, "block_out_channels", tuple(self.block_out_channels))
        if isinstance(self.autoencoder, dict):  # read back from a record's JSON
            object.__setattr__(self, "autoencoder", AutoencoderConfig(**self.autoencoder))
        _check(
            self.prediction_type in PREDICTION_TYPES,
            f"prediction_type must be one of {', '.join(PREDICTION_TYPES)}, "
            f"got {self.prediction_type!r}",
        )
        _check(len(self.block_out_channels) >= 1, "block_out_channels must not be empty")
        for c in self.block_out_channels:
            _check(
                c % self.norm_num_groups == 0,
                f"each of block_out_channels {self.block_out_channels} must be divisible by "
                f"norm_num_groups={self.norm_num_groups}",
            )
        _check(
            self.layers_per_block >= 1,
            f"layers_per_block must be >= 1, got {self.layers_per_block}",
        )
        _check(
            self.num_train_timesteps >= 2,
            f"num_train_timesteps must be >= 2, got {self.num_train_timesteps}",
        )
        _check(
            0 < self.beta_start < self.beta_end < 1,
            f"need 0 < beta_start < beta_end < 1, got {self.beta_start}, {self.beta_end}",
        )


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings shared by every trained family."""

    steps: int = 3000
    batch_size: int = 64
    lr: float = 2e-3
    warmup_steps: int = 100
    lr_schedule: str = "constant"
    weight_decay: float = 0.0
    ema_decay: float = 0.995
    checkpoint_every: int = field(default=500, metadata=NOT_IDENTITY)
    seed: int = 0
    precision: str = field(default="fp32", metadata=UNLESS_DEFAULT)  # or bf16 autocast
    # a training-time mitigation (DP-SGD) that wraps the loop, with its parameters: set
    # from the case's mitigation (``Mitigation.train_config``), so the model is cached
    # under them; ``None`` trains plainly
    mitigation: MitigationConfig | None = field(default=None, metadata=UNLESS_DEFAULT)

    def __post_init__(self) -> None:
        _check(self.steps >= 1, f"train steps must be >= 1, got {self.steps}")
        _check(self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}")
        _check(self.lr > 0, f"lr must be > 0, got {self.lr}")
        _check(0 <= self.ema_decay < 1, f"ema_decay must be in [0, 1), got {self.ema_decay}")
        _check(self.warmup_steps >= 0, f"warmup_steps must be >= 0, got {self.warmup_steps}")
        _check(
            self.lr_schedule in ("constant", "cosine"),
            f"lr_schedule must be 'constant' or 'cosine', got {self.lr_schedule!r}",
        )
        _check(
            self.checkpoint_every >= 1,
            f"checkpoint_every must be >= 1, got {self.checkpoint_every}",
        )
        check_precision(self.precision, "train precision")


@dataclass(frozen=True)
class SamplerConfig:
    """How samples are drawn (docs/science.md): a registered sampler and its settings.

    Attributes:
        name: a sampler of the ``memobench.samplers`` registry that the family lists:
            ``ddim`` (DDIM family); ``em``, ``pc``, ``ode_heun``, ``ode_rk45``
            (score-SDE families: Euler–Maruyama, predictor–corrector, probability-flow
            ODE with Heun steps or adaptive RK45).
        num_steps: solver steps over the whole diffusion (grid points for SDE samplers;
            ignored by ``ode_rk45``, which picks its own).
        params: the sampler's own settings as sorted (key, value) pairs, checked by the
            sampler's ``Params`` when it is built (``benchmark.samplers.base.get_sampler``):
            ``ddim``'s ``eta``, ``clip_sample``; ``pc``'s ``snr``, ``corrector_steps``;
            ``ode_rk45``'s ``tol``; every score-SDE sampler's ``t_end``.
    """

    name: str = "ddim"
    num_steps: int = 50
    params: tuple[tuple[str, Any], ...] = ()

    def __post_init__(self) -> None:
        _check(self.num_steps >= 1, f"sampler num_steps must be >= 1, got {self.num_steps}")
        params = self.params.items() if isinstance(self.params, dict) else self.params
        object.__setattr__(self, "params", tuple(sorted((str(k), v) for k, v in params)))

    @property
    def kwargs(self) -> dict[str, Any]:
        return dict(self.params)


@dataclass(frozen=True)
class DetectorConfig:
    """C_SAF / C_ID training (docs/science.md); ``min_accuracy`` gates the audit (0: no gate,
    as in a rehearsal, whose detectors train a few steps)."""

    arch: str = "small-resnet"
    steps: int = 800
    batch_size: int = 64
    lr: float = 1e-3
    val_size: int = 400
    min_accuracy: float = 0.95
    seed: int = 0

    def __post_init__(self) -> None:
        _check(
            self.arch in ("small-resnet", "resnet50"),
            f"detector arch must be 'small-resnet' or 'resnet50', got {self.arch!r}",
        )
        _check(self.steps >= 1, f"detector steps must be >= 1, got {self.steps}")
        _check(self.val_size >= 10, f"detector val_size must be >= 10, got {self.val_size}")
        _check(
            0 <= self.min_accuracy <= 1, f"min_accuracy must be in [0, 1], got {self.min_accuracy}"
        )


@dataclass(frozen=True)
class MitigationConfig:
    """A registered mitigation and its parameters as sorted (key, value) pairs."""

    name: str = "none"
    params: tuple[tuple[str, Any], ...] = ()

    def __post_init__(self) -> None:
        params = self.params.items() if isinstance(self.params, dict) else self.params
        object.__setattr__(self, "params", tuple(sorted((str(k), v) for k, v in params)))

    @property
    def kwargs(self) -> dict[str, Any]:
        return dict(self.params)


@dataclass(frozen=True)
class CaseConfig:
    """One benchmark case: model family x dataset x mitigation, and how it is sampled.

    ``shadow``: also train a shadow model (this case's training on ``data``'s shadow
    split) for the attacks that learn on one (the paper tier's shadow GSA).
    """

    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    sampler: SamplerConfig = SamplerConfig()
    mitigation: MitigationConfig = MitigationConfig()
    n_gen: int = 256
    seed: int = 0
    shadow: bool = field(default=False, metadata=UNLESS_DEFAULT)

    def __post_init__(self) -> None:
        _check(not self.data.shadow, "a case's data is its own split; shadow=True is for "
               "the shadow model the case trains (set CaseConfig.shadow instead)")  # fmt: skip
        _check(self.n_gen >= 1, f"n_gen must be >= 1, got {self.n_gen}")

    @property
    def case_id(self) -> str:
        mit = self.mitigation.name
        if self.mitigation.params:
            mit += "(" + ",".join(f"{k}={v}" for k, v in self.mitigation.params) + ")"
        base = f"{self.model.family}-{self.data.name}{self.data.n_train}-{mit}"
        # another split, x_p, training or sampling seed is another case (``~split1-...``)
        seeds = (
            ("split", self.data.split_seed),
            ("saf", self.data.saf_seed),
            ("train", self.train.seed),
            ("seed", self.seed),
        )
        tags = [f"{name}{value}" for name, value in seeds if value]
        return base + ("~" + "-".join(tags) if tags else "")


def identity(obj: Any) -> Any:
    """The part of a config that determines results, as JSON-able data."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {
            f.name: identity(getattr(obj, f.name))
            for f in dataclasses.fields(obj)
            if _in_identity(f, getattr(obj, f.name))
        }
    if isinstance(obj, (list, tuple)):
        return [identity(v) for v in obj]
    if isinstance(obj, dict):
        return {str(k): identity(v) for k, v in sorted(obj.items())}
    if isinstance(obj, float):
        return repr(obj)  # exact, platform independent
    return obj


def _in_identity(f: dataclasses.Field, value: Any) -> bool:
    rule = f.metadata.get("identity", True)
    if rule == "unless-default":
        return value != f.default
    return bool(rule)


def stable_hash(*parts: Any, length: int = 16) -> str:
    """A short, stable hex digest of configs and other JSON-able parts."""
    blob = json.dumps([identity(p) for p in parts], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:length]
