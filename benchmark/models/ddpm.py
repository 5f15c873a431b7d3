"""DDPM training with eps-prediction, DDIM sampling (docs/science.md, model families).

diffusers ``UNet2DModel`` + ``DDPMScheduler`` (1000 steps, linear beta
1e-4 ... 0.02); samples drawn with our own DDIM loop (``benchmark.samplers.ddim``).
A user's own diffusers checkpoint (``save_pretrained`` folder of a
``DDPMPipeline``/``DDIMPipeline``, or of a bare ``UNet2DModel``) loads through
``load_pretrained`` so it can be audited without retraining.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler
from torch import nn

from benchmark.config import PREDICTION_TYPES, ModelConfig, SamplerConfig, TrainConfig
from benchmark.errors import CheckpointError, ConfigError
from benchmark.models.base import ModelFamily
from benchmark.models.noise import DiscreteVP
from benchmark.models.unet import MARKER, UNetNetwork, load_unet, read_marker, unet_forward
from benchmark.samplers.base import EpsFn, Guidance, get_sampler


class DDIMFamily(UNetNetwork, ModelFamily):
    name = "ddim"
    version = "1"
    samplers = ("ddim",)

    @classmethod
    def smoke_configs(cls) -> tuple[ModelConfig, TrainConfig, SamplerConfig]:
        return (
            # 0.27M parameters (docs/science.md, the data); 64 digits memorize within 2500 steps.
            ModelConfig(family=cls.name, block_out_channels=(16, 32, 32), layers_per_block=1),
            # cosine decay and a short EMA: 64 digits 64% replicated at 2500 steps,
            # against 52% with a constant lr and EMA 0.995 (same cost)
            TrainConfig(steps=2500, batch_size=64, lr=2e-3, lr_schedule="cosine", ema_decay=0.99),
            SamplerConfig(num_steps=50),
        )

    def scheduler(self) -> DDPMScheduler:
        c = self.config
        return DDPMScheduler(
            num_train_timesteps=c.num_train_timesteps,
            beta_start=c.beta_start,
            beta_end=c.beta_end,
            beta_schedule=c.beta_schedule,
        )

    @property
    def alphas_cumprod(self) -> torch.Tensor:
        if not hasattr(self, "_alphas_cumprod"):
            self._alphas_cumprod = self.scheduler().alphas_cumprod
        return self._alphas_cumprod

    @property
    def noise(self) -> DiscreteVP:
        if not hasattr(self, "_noise"):
            self._noise = DiscreteVP(self.alphas_cumprod)
        return self._noise

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Forward process q(x_t | x_0) = N(sqrt(abar_t) x_0, (1 - abar_t) I) (DDPM eq. 4)."""
        a = self.alphas_cumprod.to(x0.device)[t].view(-1, *([1] * (x0.ndim - 1)))
        return a.sqrt() * x0 + (1 - a).sqrt() * noise

    def eps(self, net: nn.Module, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """eps_theta(x_t, t), whatever the network predicts (``prediction_type``): v and
        x_0 predictions are turned into eps as diffusers' schedulers do (with
        x_t = sqrt(abar) x_0 + sqrt(1 - abar) eps and v = sqrt(abar) eps - sqrt(1 - abar) x_0)."""
        out = unet_forward(net, x_t, t)
        kind = self.config.prediction_type
        if kind == "epsilon":
            return out
        a = self.alphas_cumprod.to(x_t.device)[t].view(-1, *([1] * (x_t.ndim - 1)))
        if kind == "v_prediction":
            return a.sqrt() * out + (1 - a).sqrt() * x_t
        return (x_t - a.sqrt() * out) / (1 - a).sqrt()  # "sample": out is x_0

    def loss(self, net: nn.Module, x0: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        # DDPM Algorithm 1: t ~ U{0..T-1}, eps ~ N(0, I), || eps - eps_theta(x_t, t) ||^2
        if self.config.prediction_type != "epsilon":
            raise ConfigError(
                f"memobench trains eps-prediction models; prediction_type "
                f"{self.config.prediction_type!r} is for auditing a checkpoint that has it"
            )
        t = torch.randint(
            0,
            self.config.num_train_timesteps,
            (x0.shape[0],),
            generator=generator,
            device=x0.device,
        )
        noise = torch.randn(x0.shape, generator=generator, device=x0.device)
        return F.mse_loss(self.eps(net, self.add_noise(x0, noise, t), t), noise)

    def sample(
        self,
        net: nn.Module,
        latents: torch.Tensor,
        sampler: SamplerConfig,
        guidance: Guidance | None = None,
        start: int | None = None,
    ) -> tuple[torch.Tensor, int]:
        self.check_sampler(sampler)
        return get_sampler(sampler).sample(
            self.noise_estimate(net, guidance),
            self.alphas_cumprod,
            latents,
            start,
            torch.randn_like,
        )

    # -- t* and the membership attacks ---------------------------------------------------
    def solver_grid(self, sampler: SamplerConfig) -> list[int]:
        self.check_sampler(sampler)
        return get_sampler(sampler).grid(self.alphas_cumprod).tolist()

    def solver_step(
        self,
        estimate: EpsFn,
        x: torch.Tensor,
        time: int,
        next_time: int | None,
        sampler: SamplerConfig,
    ) -> torch.Tensor:
        return get_sampler(sampler).step(
            estimate, self.alphas_cumprod, x, time, next_time, torch.randn_like
        )

    def time_tensor(self, time: int, device: torch.device | str) -> torch.Tensor:
        return torch.tensor(int(time), device=device)  # 0-d, as the sampler passes it

    # -- diffusers folders ---------------------------------------------------------
    def save_pretrained(self, net: nn.Module, folder: Path) -> None:
        """Write a ``DDPMPipeline``-layout folder (``unet/``, ``scheduler/``) plus our marker."""
        folder = Path(folder)
        net.save_pretrained(folder / "unet")
        self.scheduler().save_pretrained(folder / "scheduler")
        (folder / "model_index.json").write_text(
            json.dumps(
                {
                    "_class_name": "DDPMPipeline",
                    "scheduler": ["diffusers", "DDPMScheduler"],
                    "unet": ["diffusers", "UNet2DModel"],
                },
                indent=2,
            )
        )
        (folder / MARKER).write_text(json.dumps({"family": self.name}, indent=2))

    @classmethod
    def load_pretrained(cls, folder: Path) -> tuple[DDIMFamily, nn.Module]:
        """Load a diffusers eps-prediction UNet (and its scheduler config, if present).

        Raises:
            CheckpointError: the folder is missing, not a diffusers UNet2DModel folder,
                of another memobench family, or its weights cannot be read.
        """
        folder = Path(folder).expanduser()
        read_marker(folder, cls.name)  # a plain diffusers folder has none
        for part in ("vqvae", "vae"):
            if (folder / part).is_dir():
                raise CheckpointError(
                    f"{folder} holds an autoencoder ({part}/): it is a latent diffusion "
                    f"model, which the {cls.name!r} family would misread; audit it with "
                    f"--family latent (pytest: --memobench-model-family latent)"
                )
        unet_dir = folder / "unet" if (folder / "unet").is_dir() else folder
        config_file = unet_dir / "config.json"
        if not config_file.exists():
            raise CheckpointError(
                f"{folder} is not a diffusers checkpoint: no unet/config.json or config.json. "
                f"Save the model with DDPMPipeline.save_pretrained(folder) or "
                f"UNet2DModel.save_pretrained(folder)"
            )
        try:
            unet_cfg = json.loads(config_file.read_text())
        except json.JSONDecodeError as err:
            raise CheckpointError(f"{config_file} is not valid JSON: {err}") from err
        if unet_cfg.get("_class_name") != "UNet2DModel":
            raise CheckpointError(
                f"{config_file} describes a {unet_cfg.get('_class_name')!r}; memobench's "
                f"{cls.name!r} family audits unconditional UNet2DModel checkpoints"
            )
        sched_cfg = read_scheduler_config(folder / "scheduler" / "scheduler_config.json")
        net = load_unet(unet_dir)  # after the cheap checks: a bad scheduler stops first
        config = ModelConfig(
            family=cls.name,
            block_out_channels=tuple(unet_cfg["block_out_channels"]),
            layers_per_block=unet_cfg.get("layers_per_block", 2),
            attention=any("Attn" in b for b in unet_cfg.get("down_block_types", [])),
            norm_num_groups=unet_cfg.get("norm_num_groups", 32),
            num_train_timesteps=sched_cfg.get("num_train_timesteps", 1000),
            beta_start=sched_cfg.get("beta_start", 1e-4),
            beta_end=sched_cfg.get("beta_end", 0.02),
            beta_schedule=sched_cfg.get("beta_schedule", "linear"),
            prediction_type=sched_cfg.get("prediction_type", "epsilon"),
        )
        family = cls(config)
        try:
            family.alphas_cumprod  # noqa: B018  (the schedule diffusers builds from the config)
        except NotImplementedError as err:
            raise CheckpointError(
                f"{folder}/scheduler: {err}; memobench reads the beta schedules diffusers' "
                f"DDPMScheduler builds (linear, scaled_linear, squaredcos_cap_v2, sigmoid)"
            ) from None
        return family, net.eval()


SCHEDULERS = ("DDPMScheduler", "DDIMScheduler", "PNDMScheduler", "DDPMParallelScheduler")


def read_scheduler_config(path: Path) -> dict:
    """A diffusers ``scheduler_config.json``, checked for what memobench can read: a
    beta schedule (not a list of trained betas) and a known prediction type. No file:
    diffusers' DDPMScheduler defaults.

    Raises:
        CheckpointError: the file is not JSON, describes another kind of scheduler, or
            holds something memobench cannot audit; naming the file and the fix.
    """
    if not path.exists():
        return {}
    try:
        cfg = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(
            f"{path} is not valid JSON ({err}); save the scheduler again with "
            f"scheduler.save_pretrained(folder / 'scheduler')"
        ) from None
    except OSError as err:
        raise CheckpointError(f"{path} cannot be read ({err.strerror or err})") from None
    if not isinstance(cfg, dict):
        raise CheckpointError(f"{path} holds a {type(cfg).__name__}, not a scheduler config")
    name = cfg.get("_class_name")
    if name is not None and name not in SCHEDULERS:
        raise CheckpointError(
            f"{path} describes a {name!r}; memobench audits models of a discrete DDPM noise "
            f"schedule ({', '.join(SCHEDULERS)})"
        )
    if cfg.get("rescale_betas_zero_snr"):
        raise CheckpointError(
            f"{path}: rescale_betas_zero_snr is set; memobench builds the schedule from "
            f"beta_start, beta_end and beta_schedule alone and would misread this model's "
            f"noise levels"
        )
    if cfg.get("trained_betas") is not None:
        raise CheckpointError(
            f"{path}: a list of trained betas; memobench reads beta_start, beta_end and "
            f"beta_schedule"
        )
    kind = cfg.get("prediction_type", "epsilon")
    if kind not in PREDICTION_TYPES:
        raise CheckpointError(
            f"{path}: prediction_type {kind!r} is not one of {', '.join(PREDICTION_TYPES)}"
        )
    return cfg
