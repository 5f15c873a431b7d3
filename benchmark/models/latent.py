"""Latent diffusion (Rombach et al. 2022; docs/science.md, model families): an
autoencoder and a DDPM in its latent space.

diffusers' ``AutoencoderKL`` is trained first on the case's training images by the
shared training loop (reconstruction error plus a small KL term) and cached under a
key of its own; a ``UNet2DModel`` is then trained as an eps-prediction DDPM on the
autoencoder's posterior means, scaled to unit variance over the training set (the
scale is stored with the model, as diffusers' ``scaling_factor``). Samples are DDIM
in latent space, decoded to pixels.

Through the family contract: the noise process, t*, the denoising attacks and the
guidance hooks act on latents (``encode``), the fingerprint detectors, replication
and FID on decoded pixels. The autoencoder alone is a leakage path too: the
``autoencoder`` metric records its reconstruction error on members and held-out
images and the loss attack on that error.

A user's model in the layout of diffusers' ``LDMPipeline`` (``vqvae/`` or ``vae/``
holding an ``AutoencoderKL``, ``unet/``, ``scheduler/``) loads through
``load_pretrained``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL
from diffusers.models.unets.unet_2d import UNet2DOutput
from torch import nn

from benchmark.cache import Cache
from benchmark.config import AutoencoderConfig, ModelConfig, SamplerConfig, TrainConfig, stable_hash
from benchmark.data.base import ImageDataset
from benchmark.environment import TRAINING_LIBRARIES, library_versions
from benchmark.errors import CheckpointError, ConfigError
from benchmark.models import training
from benchmark.models.ddpm import DDIMFamily, read_scheduler_config
from benchmark.models.unet import (
    MARKER,
    build_unet,
    check_image_shape,
    load_unet,
    read_marker,
    unet_forward,
)
from benchmark.samplers.base import Guidance, get_sampler

AUTOENCODER_VERSION = "1"
SCALE_IMAGES = 1024  # training images whose latents set the scale to unit variance


def build_autoencoder(cfg: AutoencoderConfig, image_shape: tuple[int, int, int]) -> AutoencoderKL:
    """An ``AutoencoderKL`` for (C, H, W) images: one down block per level, no attention."""
    n = len(cfg.block_out_channels)
    return AutoencoderKL(
        in_channels=image_shape[0],
        out_channels=image_shape[0],
        down_block_types=("DownEncoderBlock2D",) * n,
        up_block_types=("UpDecoderBlock2D",) * n,
        block_out_channels=cfg.block_out_channels,
        layers_per_block=cfg.layers_per_block,
        latent_channels=cfg.latent_channels,
        norm_num_groups=cfg.norm_num_groups,
        sample_size=image_shape[1],
        mid_block_add_attention=False,
    )


class LatentDiffusionNet(nn.Module):
    """The autoencoder (frozen) and the latent UNet as one module, so the model is cached,
    moved and wrapped as one network. Called as ``net(z, t)``, it is the UNet.

    ``latent_scale`` multiplies the posterior mean (diffusers' ``scaling_factor``)."""

    def __init__(self, vae: AutoencoderKL, unet: nn.Module, latent_scale: float = 1.0) -> None:
        super().__init__()
        self.vae = vae.requires_grad_(False).eval()
        self.unet = unet
        self.register_buffer("latent_scale", torch.tensor(float(latent_scale)))

    def forward(self, z: torch.Tensor, timesteps: torch.Tensor) -> UNet2DOutput:
        return UNet2DOutput(sample=unet_forward(self.unet, z, timesteps))

    def train(self, mode: bool = True) -> LatentDiffusionNet:
        super().train(mode)
        self.vae.eval()  # the autoencoder is fitted before and stays as it is
        return self


class AutoencoderStage:
    """The first stage, as the shared training loop sees a family: its network and loss.

    The loss: mean squared reconstruction error of z ~ q(z | x) decoded, plus
    ``kl_weight`` x KL(q(z | x) || N(0, I)) per latent value (the LDM paper's KL-reg)."""

    name = "latent-autoencoder"

    def __init__(self, cfg: AutoencoderConfig) -> None:
        self.cfg = cfg

    def build_network(self, image_shape: tuple[int, int, int]) -> AutoencoderKL:
        return build_autoencoder(self.cfg, image_shape)

    def loss(self, net: nn.Module, x0: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        posterior = net.encode(x0).latent_dist
        noise = torch.randn(posterior.mean.shape, generator=generator, device=x0.device)
        recon = net.decode(posterior.mean + posterior.std * noise).sample
        kl = 0.5 * (posterior.mean.pow(2) + posterior.var - 1.0 - posterior.logvar).mean()
        return F.mse_loss(recon, x0) + self.cfg.kl_weight * kl


def autoencoder_key(cfg: AutoencoderConfig, data: ImageDataset) -> str:
    return stable_hash(
        "autoencoder",
        AUTOENCODER_VERSION,
        cfg,
        data.fingerprint(),
        library_versions(*TRAINING_LIBRARIES),
    )


def train_autoencoder(
    cfg: AutoencoderConfig,
    data: ImageDataset,
    cache: Cache | None,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> dict[str, Any]:
    """The autoencoder of ``cfg`` fitted on ``data.train`` by the shared loop (checkpoints,
    resume, progress), cached under its own key; the payload holds its weights, the latent
    scale (1 / the standard deviation of the first ``SCALE_IMAGES`` training images'
    posterior means) and its stats."""
    stage = AutoencoderStage(cfg)
    train_cfg = TrainConfig(
        steps=cfg.steps, batch_size=cfg.batch_size, lr=cfg.lr, warmup_steps=50,
        lr_schedule="cosine", ema_decay=0.99, seed=cfg.seed,
    )  # fmt: skip
    key = autoencoder_key(cfg, data)

    def build() -> dict[str, Any]:
        folder = (cache or Cache()).dir("checkpoints", key)
        net, stats = training.train(stage, data.train, train_cfg, folder, device, progress)
        with torch.no_grad():  # the scale from the first images (LDM: its first batch)
            means = torch.cat([net.encode(x.to(device)).latent_dist.mean.cpu()
                               for x in data.train[:SCALE_IMAGES].split(256)])  # fmt: skip
        return {
            "state_dict": {k: v.detach().cpu() for k, v in net.state_dict().items()},
            "latent_scale": float(1.0 / means.std().clamp_min(1e-6)),
            "stats": {
                "autoencoder_train_seconds": stats["train_seconds"],
                "autoencoder_final_loss": stats["final_loss"],
                "autoencoder_param_count": stats["param_count"],
            },
        }

    if cache is None:
        return build()
    payload, _ = cache.get_or_create(
        "autoencoders", key, build, identity={"autoencoder": cfg}, what="latent autoencoder"
    )
    return payload


class LatentFamily(DDIMFamily):
    """A DDPM on an autoencoder's latents (eps-prediction, DDIM sampling in latent space)."""

    name = "latent"
    version = "1"
    samplers = ("ddim",)
    latent = True
    # the smoke tier: `none` at both sizes and one sampling-time mitigation
    suite_mitigations = ("none", "cpsample")

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config)
        self._prepared: dict[str, Any] | None = None

    @property
    def autoencoder(self) -> AutoencoderConfig:
        return self.config.autoencoder or AutoencoderConfig()

    @classmethod
    def smoke_configs(cls) -> tuple[ModelConfig, TrainConfig, SamplerConfig]:
        return (
            # 16 x 16 digits to 2 x 8 x 8 latents (53k-parameter autoencoder, 1500 steps);
            # the pixel families' 0.27M-parameter UNet on them
            ModelConfig(
                family=cls.name, block_out_channels=(16, 32, 32), layers_per_block=1,
                autoencoder=AutoencoderConfig(block_out_channels=(16, 16), steps=1500),
            ),
            TrainConfig(steps=2500, batch_size=64, lr=2e-3, lr_schedule="cosine", ema_decay=0.99),
            # latents are not in [-1, 1]: DDIM must not clip its x_0 estimate
            SamplerConfig(num_steps=50, params={"clip_sample": False}),
        )  # fmt: skip

    @classmethod
    def paper_sampler(cls) -> SamplerConfig:
        return SamplerConfig(num_steps=100, params={"clip_sample": False})

    def check_sampler(self, sampler: SamplerConfig) -> None:
        super().check_sampler(sampler)
        if get_sampler(sampler).params.clip_sample:
            raise ConfigError(
                "the latent family samples latents, which are not in [-1, 1]: set "
                'SamplerConfig(params={"clip_sample": False})'
            )

    # -- the autoencoder ----------------------------------------------------------------
    def latent_shape(self, image_shape: tuple[int, int, int]) -> tuple[int, int, int]:
        f = self.autoencoder.factor
        return (self.autoencoder.latent_channels, image_shape[1] // f, image_shape[2] // f)

    def check_image_shape(self, image_shape: tuple[int, int, int]) -> None:
        f = self.autoencoder.factor
        if image_shape[1] % f or image_shape[2] % f:
            raise ConfigError(
                f"the latent family's autoencoder halves the image side "
                f"{len(self.autoencoder.block_out_channels) - 1} time(s) (a factor {f}); "
                f"{image_shape[1]} x {image_shape[2]} px is not divisible by {f}: resize the "
                f"images or use fewer autoencoder levels"
            )
        check_image_shape(self.config, self.latent_shape(image_shape))

    def prepare(
        self,
        data: ImageDataset,
        train_cfg: TrainConfig,
        cache: Cache | None,
        device: str | torch.device = "cpu",
        progress: bool = True,
    ) -> dict[str, Any]:
        if train_cfg.mitigation is not None:
            raise ConfigError(
                f"{train_cfg.mitigation.name!r} changes how the latent UNet trains, but the "
                f"latent family's autoencoder would still see the training images without "
                f"it; run {train_cfg.mitigation.name!r} on a pixel family (ddim, subvp)"
            )
        self._prepared = train_autoencoder(self.autoencoder, data, cache, device, progress)
        return {**self._prepared["stats"], "latent_scale": self._prepared["latent_scale"]}

    def build_network(self, image_shape: tuple[int, int, int]) -> LatentDiffusionNet:
        vae = build_autoencoder(self.autoencoder, image_shape)
        scale = 1.0
        if self._prepared is not None:
            vae.load_state_dict(self._prepared["state_dict"])
            scale = self._prepared["latent_scale"]
        unet = build_unet(self.config, self.latent_shape(image_shape))
        return LatentDiffusionNet(vae, unet, scale)

    def encode(self, net: nn.Module, images: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            mean = net.vae.encode(images.float()).latent_dist.mean
        return mean * net.latent_scale

    def decode(self, net: nn.Module, latents: torch.Tensor) -> torch.Tensor:
        return net.vae.decode(latents.float() / net.latent_scale).sample

    def denoiser(self, net: nn.Module) -> nn.Module:
        return net.unet

    def reconstruct(self, net: nn.Module, images: torch.Tensor) -> torch.Tensor:
        """The autoencoder's reconstruction of ``images`` (posterior mean, decoded)."""
        with torch.no_grad():
            return self.decode(net, self.encode(net, images))

    # -- the latent DDPM --------------------------------------------------------------
    def loss(self, net: nn.Module, x0: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return super().loss(net, self.encode(net, x0), generator)

    def sample(
        self,
        net: nn.Module,
        latents: torch.Tensor,
        sampler: SamplerConfig,
        guidance: Guidance | None = None,
        start: int | None = None,
    ) -> tuple[torch.Tensor, int]:
        z, nfe = super().sample(net, latents, sampler, guidance, start)
        return self.decode(net, z).clamp(-1, 1), nfe

    # -- diffusers folders ----------------------------------------------------------
    def save_pretrained(self, net: nn.Module, folder: Path) -> None:
        """Write an ``LDMPipeline``-layout folder (``vqvae/`` holding the ``AutoencoderKL``
        with its ``scaling_factor``, ``unet/``, ``scheduler/``) plus memobench's marker."""
        folder = Path(folder)
        net.vae.register_to_config(scaling_factor=float(net.latent_scale))
        net.vae.save_pretrained(folder / "vqvae")
        net.unet.save_pretrained(folder / "unet")
        self.scheduler().save_pretrained(folder / "scheduler")
        (folder / "model_index.json").write_text(
            json.dumps(
                {
                    "_class_name": "LDMPipeline",
                    "scheduler": ["diffusers", "DDPMScheduler"],
                    "unet": ["diffusers", "UNet2DModel"],
                    "vqvae": ["diffusers", "AutoencoderKL"],
                },
                indent=2,
            )
        )
        (folder / MARKER).write_text(json.dumps({"family": self.name}, indent=2))

    @classmethod
    def load_pretrained(cls, folder: Path) -> tuple[LatentFamily, nn.Module]:
        """Load an ``LDMPipeline``-style folder: an ``AutoencoderKL`` in ``vqvae/`` or
        ``vae/`` (its ``scaling_factor`` scales the latents), an eps-, v- or x0-prediction
        ``UNet2DModel`` in ``unet/``, a DDPM-family scheduler in ``scheduler/``.

        Raises:
            CheckpointError: a part is missing, of another kind, or unreadable.
        """
        folder = Path(folder).expanduser()
        read_marker(folder, cls.name)
        vae_dir = next((folder / d for d in ("vqvae", "vae") if (folder / d).is_dir()), None)
        if vae_dir is None or not (folder / "unet").is_dir():
            raise CheckpointError(
                f"{folder} is not a latent diffusion folder: it needs vqvae/ (or vae/) and "
                f"unet/ as LDMPipeline.save_pretrained writes them"
            )
        vae_cfg = _read_config(vae_dir / "config.json")
        if vae_cfg.get("_class_name") != "AutoencoderKL":
            raise CheckpointError(
                f"{vae_dir}/config.json describes a {vae_cfg.get('_class_name')!r}; memobench's "
                f"latent family reads AutoencoderKL autoencoders (a VQModel is not supported)"
            )
        unet_cfg = _read_config(folder / "unet" / "config.json")
        if unet_cfg.get("_class_name") != "UNet2DModel":
            raise CheckpointError(
                f"{folder}/unet/config.json describes a {unet_cfg.get('_class_name')!r}; the "
                f"latent family audits unconditional UNet2DModel denoisers"
            )
        sched = read_scheduler_config(folder / "scheduler" / "scheduler_config.json")
        try:
            vae = AutoencoderKL.from_pretrained(vae_dir)
        except Exception as err:
            raise CheckpointError(
                f"{vae_dir}: the autoencoder's weights cannot be read ({type(err).__name__}: {err})"
            ) from None
        unet = load_unet(folder / "unet")
        if unet.config.in_channels != vae.config.latent_channels:
            raise CheckpointError(
                f"{folder}: the UNet takes {unet.config.in_channels} channels but the "
                f"autoencoder makes {vae.config.latent_channels}-channel latents"
            )
        blocks = tuple(vae.config.block_out_channels)
        config = ModelConfig(
            family=cls.name,
            block_out_channels=tuple(unet_cfg["block_out_channels"]),
            layers_per_block=unet_cfg.get("layers_per_block", 2),
            attention=any("Attn" in b for b in unet_cfg.get("down_block_types", [])),
            norm_num_groups=unet_cfg.get("norm_num_groups", 32),
            num_train_timesteps=sched.get("num_train_timesteps", 1000),
            beta_start=sched.get("beta_start", 1e-4),
            beta_end=sched.get("beta_end", 0.02),
            beta_schedule=sched.get("beta_schedule", "linear"),
            prediction_type=sched.get("prediction_type", "epsilon"),
            autoencoder=AutoencoderConfig(
                block_out_channels=blocks,
                latent_channels=vae.config.latent_channels,
                layers_per_block=vae.config.layers_per_block,
                norm_num_groups=vae.config.norm_num_groups,
            ),
        )
        scale = float(vae.config.scaling_factor)
        if not math.isfinite(scale) or scale <= 0:
            raise CheckpointError(f"{vae_dir}: scaling_factor {scale} is not a positive number")
        return cls(config), LatentDiffusionNet(vae, unet, scale).eval()


def _read_config(path: Path) -> dict:
    if not path.exists():
        raise CheckpointError(f"{path} is missing; save that part with save_pretrained(folder)")
    try:
        cfg = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{path} is not valid JSON ({err})") from None
    if not isinstance(cfg, dict):
        raise CheckpointError(f"{path} holds a {type(cfg).__name__}, not a config")
    return cfg
