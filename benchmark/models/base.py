"""The interface every model family implements, and the trained-model record.

A family supplies its network, its training loss, its noise process and noise
estimate, and its sampler; the training services (EMA, checkpoints, resume, progress, cache) are
shared in ``benchmark.models.training``. A third-party family subclasses
``ModelFamily`` in one file and registers it under the ``memobench.models``
entry-point group.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn

from benchmark.config import ModelConfig, SamplerConfig, TrainConfig
from benchmark.errors import CheckpointError, ConfigError
from benchmark.models.noise import NoiseProcess
from benchmark.progress import bar
from benchmark.registry import samplers as sampler_registry
from benchmark.samplers.base import EpsFn, Guidance, get_sampler, guided

if TYPE_CHECKING:
    from benchmark.cache import Cache
    from benchmark.data.base import ImageDataset


@dataclass
class SampleResult:
    """Generated images and what they cost.

    Attributes:
        images: (N, C, H, W) in [-1, 1].
        seeds: (N,) the seed of each image's starting noise.
        nfe: network evaluations per image.
        seconds: wall time of sampling.
        reused: the images are an earlier identical draw's (``seconds`` is that draw's).
        mitigation: what the mitigation did on this draw (``Mitigation.generate``).
    """

    images: torch.Tensor
    seeds: torch.Tensor
    nfe: int
    seconds: float
    reused: bool = False
    mitigation: dict[str, Any] = field(default_factory=dict)

    @property
    def images_per_second(self) -> float:
        return self.images.shape[0] / max(self.seconds, 1e-9)


class ModelFamily(ABC):
    """Base class of model-family plugins.

    A family must supply (abstract): its network (``build_network``), its training
    ``loss``, its noise estimate ``eps``, its ``noise`` process
    (``benchmark.models.noise.NoiseProcess``), and its sampler as a time grid and one
    step (``solver_grid``, ``solver_step``). From those the base class samples
    (``sample``), t* runs the sampler from any noise level, every membership attack
    and CPSample work. A mitigation's guidance is wrapped around the network once
    (``noise_estimate``); the steps, t* and the attacks call what that returns.
    Optional: a faster ``sample``, ``time_tensor``, ``check_image_shape``,
    ``save_pretrained``/``load_pretrained`` (auditing a user's checkpoint folder).

    Class attributes:
        name: registry name.
        version: code version; bump when a change alters trained weights or samples
            (it is part of every cache key).
        samplers: the ``SamplerConfig.name`` values the family supports: registered
            samplers (``memobench.samplers``), or names its own ``solver_step`` handles.
        in_suites: whether suite cases are generated for this family.
        suite_mitigations: the mitigations whose smoke cases the family joins (``None``:
            every registered one).
        latent: the family diffuses an autoencoder's latents (``encode``/``decode``).
    """

    name: ClassVar[str] = "base"
    version: ClassVar[str] = "1"
    samplers: ClassVar[tuple[str, ...]] = ()
    in_suites: ClassVar[bool] = True
    suite_mitigations: ClassVar[tuple[str, ...] | None] = None
    latent: ClassVar[bool] = False  # encode/decode are not the identity

    def __init__(self, config: ModelConfig) -> None:
        self.config = config

    # -- smoke-tier defaults (a plugin overrides these to fit its model) -----
    @classmethod
    def smoke_configs(cls) -> tuple[ModelConfig, TrainConfig, SamplerConfig]:
        return ModelConfig(family=cls.name), TrainConfig(), SamplerConfig()

    @classmethod
    def paper_sampler(cls) -> SamplerConfig:
        """The sampler of the paper tier (the source papers' settings)."""
        return SamplerConfig(num_steps=100)

    # -- what a family must supply --------------------------------------------
    @abstractmethod
    def build_network(self, image_shape: tuple[int, int, int]) -> nn.Module:
        """A freshly initialised network for images of ``image_shape`` (C, H, W)."""

    @abstractmethod
    def loss(self, net: nn.Module, x0: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Training loss on a batch ``x0`` (B, C, H, W) in [-1, 1]; noise from ``generator``."""

    @property
    @abstractmethod
    def noise(self) -> NoiseProcess:
        """The forward process: x_t = a(t) x_0 + s(t) eps, and the family's time."""

    @abstractmethod
    def eps(self, net: nn.Module, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The network's noise estimate at ``t`` (the family's time as a tensor, 0-d or (B,)).

        A score-based family returns -sigma(t) * score, a flow family converts its
        velocity, so attacks that compare noise with noise work on every family.
        """

    def time_tensor(self, time: Any, device: torch.device | str) -> torch.Tensor:
        """The family's ``time`` (a number) as the tensor ``eps`` and the guidance take."""
        if isinstance(time, torch.Tensor):
            return time
        return torch.tensor(float(time), dtype=torch.float64)

    def noise_estimate(self, net: nn.Module, guidance: Guidance | None = None) -> EpsFn:
        """``net`` as eps(x, t), with ``guidance(x, t, eps) -> eps_hat`` wrapped around it
        once: what ``solver_step``, t* and the attacks call (``predict_eps``)."""

        def eps_fn(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            return self.eps(net, x, t)

        return guided(eps_fn, guidance)

    def predict_eps(self, estimate: EpsFn | nn.Module, x: torch.Tensor, time: Any) -> torch.Tensor:
        """``estimate`` (``noise_estimate``'s; a network: its raw estimate) at the family's
        ``time``."""
        if isinstance(estimate, nn.Module):
            estimate = self.noise_estimate(estimate)
        return estimate(x, self.time_tensor(time, x.device))

    @abstractmethod
    def solver_grid(self, sampler: SamplerConfig) -> list[Any]:
        """Descending times the family's sampler visits over the whole diffusion."""

    @abstractmethod
    def solver_step(
        self,
        estimate: EpsFn,
        x: torch.Tensor,
        time: Any,
        next_time: Any | None,
        sampler: SamplerConfig,
    ) -> torch.Tensor:
        """One step of the sampler from ``time`` to ``next_time`` (``None``: to x_0), on
        ``estimate`` (``noise_estimate``'s: the network, any guidance inside)."""

    # -- a latent family's autoencoder (a pixel family: the identity) ----------------
    # The noise process, the sampler, t*, the denoising attacks and the guidance hooks
    # work on what ``encode`` gives (latents); the fingerprint detectors, the replication
    # measures and FID on what ``decode`` gives back (pixels). ``sample`` returns pixels.
    def latent_shape(self, image_shape: tuple[int, int, int]) -> tuple[int, int, int]:
        """The (C, H, W) the noise process and the sampler run on for images of
        ``image_shape``."""
        return tuple(image_shape)

    def encode(self, net: nn.Module, images: torch.Tensor) -> torch.Tensor:
        """Images (B, C, H, W) in [-1, 1] to what the noise process noises."""
        return images

    def decode(self, net: nn.Module, latents: torch.Tensor) -> torch.Tensor:
        """What the sampler returns, back to images (B, C, H, W), about [-1, 1]."""
        return latents

    def denoiser(self, net: nn.Module) -> nn.Module:
        """The part of ``net`` that estimates the noise (a white-box attack's parameters)."""
        return net

    def prepare(
        self,
        data: ImageDataset,
        train_cfg: TrainConfig,
        cache: Cache | None,
        device: str | torch.device = "cpu",
        progress: bool = True,
    ) -> dict[str, Any]:
        """Fit what the network needs before it trains on ``data`` (a latent family's
        autoencoder, cached under its own key); returns stats recorded beside the
        training's. Called once before training; a model loaded from the cache holds it."""
        return {}

    # -- what a family may override ----------------------------------------------
    def step_nfe(self, sampler: SamplerConfig, final: bool = False) -> int:
        """Network evaluations of one ``solver_step`` (2 for a Heun step); ``final``: the
        last step, to x_0 (``next_time`` None). A registered sampler says; else 1."""
        if sampler.name in sampler_registry:
            return get_sampler(sampler).step_nfe(final)
        return 1

    def check_sampler(self, sampler: SamplerConfig) -> None:
        """Raise ``ConfigError`` for a sampler name the family does not declare, or settings
        the sampler refuses (a registered sampler's ``Params``)."""
        if self.samplers and sampler.name not in self.samplers:
            raise ConfigError(
                f"the {self.name!r} family has no sampler {sampler.name!r}; choose one of "
                f"{', '.join(self.samplers)}"
            )
        if sampler.name in sampler_registry:
            get_sampler(sampler)
        elif sampler.params:
            raise ConfigError(
                f"the {self.name!r} family's own sampler {sampler.name!r} takes no settings; "
                f"got {sampler.kwargs} (a registered sampler of that name is not installed: "
                f"registered ones are {', '.join(sampler_registry.names())})"
            )

    def sample(
        self,
        net: nn.Module,
        latents: torch.Tensor,
        sampler: SamplerConfig,
        guidance: Guidance | None = None,
    ) -> tuple[torch.Tensor, int]:
        """Denoise ``latents`` (B, *latent_shape) to images; returns ``(images, nfe_per_image)``.

        The default walks ``solver_grid`` with ``solver_step``; a family may override it
        with a faster loop that gives the same images.
        """
        self.check_sampler(sampler)
        grid = self.solver_grid(sampler)
        estimate = self.noise_estimate(net, guidance)
        x, nfe = latents, 0
        for i, now in enumerate(grid):
            next_time = grid[i + 1] if i + 1 < len(grid) else None
            x = self.solver_step(estimate, x, now, next_time, sampler)
            nfe += self.step_nfe(sampler, final=next_time is None)
        return self.decode(net, x).clamp(-1, 1), nfe

    def check_image_shape(self, image_shape: tuple[int, int, int]) -> None:
        """Raise ``ConfigError`` (naming the size and the fix) for images the network cannot
        take; called before any training starts. The default accepts every shape."""
        return None

    def save_pretrained(self, net: nn.Module, folder: Path) -> None:
        """Write ``net`` as a checkpoint folder that ``load_pretrained`` reads."""
        raise CheckpointError(
            f"the {self.name!r} family does not write checkpoint folders (it has no "
            f"save_pretrained); its models live in memobench's cache"
        )

    @classmethod
    def load_pretrained(cls, folder: Path) -> tuple[ModelFamily, nn.Module]:
        """Read a checkpoint folder: the family (with its config) and the network."""
        raise CheckpointError(
            f"the {cls.name!r} family cannot audit a checkpoint folder (it has no "
            f"load_pretrained); audit a ddim or subvp checkpoint, or implement it"
        )


@dataclass
class TrainedModel:
    """A family with its (EMA) network in eval mode, and where it came from.

    It keeps its last unguided draw: cases of one model that draw the same seeds
    with the same sampler (``none``, and the rejection baseline's first round) share
    those images instead of sampling them again. An image depends only on its seed
    (each has its own noise generator), so the shared images are the ones a fresh
    draw would give.
    """

    family: ModelFamily
    net: nn.Module
    key: str
    image_shape: tuple[int, int, int]
    stats: dict[str, Any] = field(default_factory=dict)
    _last_plain: tuple[Any, SampleResult] | None = field(default=None, repr=False, compare=False)

    def with_net(self, net: nn.Module) -> TrainedModel:
        """This model calling ``net`` (e.g. the network wrapped in the run's speed switches),
        with a memo of plain draws of its own."""
        return replace(self, net=net, _last_plain=None)

    def generate(
        self,
        seeds: torch.Tensor | list[int],
        sampler: SamplerConfig,
        guidance: Guidance | None = None,
        batch_size: int = 256,
        device: str | torch.device = "cpu",
        progress: bool = False,
    ) -> SampleResult:
        """Draw one image per seed; each image's noise comes from its own generator."""

        seeds = torch.as_tensor(seeds, dtype=torch.long)
        memo = (sampler, str(torch.device(device)), seeds.numpy().tobytes())
        if guidance is None and self._last_plain is not None and self._last_plain[0] == memo:
            done = self._last_plain[1]  # the seconds stay those of the draw that made them
            return SampleResult(done.images.clone(), seeds, done.nfe, done.seconds, reused=True)
        self.net.to(device).eval()
        out, nfe = [], 0
        start = time.perf_counter()
        with bar(
            total=len(seeds), desc=f"sample {self.family.name}", unit="img", enabled=progress
        ) as pbar:
            for chunk in seeds.split(batch_size):
                shape = self.family.latent_shape(self.image_shape)
                latents = seeded_latents(chunk, shape).to(device)
                # no autograd graph over the trajectory: a hook that needs gradients (CPSample)
                # enables them for itself on a detached x_t
                with torch.no_grad():
                    images, nfe = self.family.sample(self.net, latents, sampler, guidance)
                out.append(images.detach().cpu())
                pbar.update(len(chunk))
        result = SampleResult(torch.cat(out), seeds, nfe, time.perf_counter() - start)
        if guidance is None:
            self._last_plain = (
                memo,
                SampleResult(result.images.clone(), seeds, nfe, result.seconds),
            )
        return result


def seeded_latents(seeds: torch.Tensor, image_shape: tuple[int, int, int]) -> torch.Tensor:
    """(B, C, H, W) standard normal noise, row i drawn from ``Generator().manual_seed(seeds[i])``.

    The same layout diffusers' ``randn_tensor`` uses with a list of generators.
    """
    return torch.cat(
        [
            torch.randn((1, *image_shape), generator=torch.Generator().manual_seed(int(s)))
            for s in seeds
        ]
    )
