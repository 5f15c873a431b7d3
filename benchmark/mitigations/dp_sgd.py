"""DP-SGD training through Opacus (Abadi et al., CCS 2016): a model released with a
formal (epsilon, delta) guarantee (docs/science.md, mitigations).

A training-time mitigation. ``train_config`` names it in the case's
``TrainConfig`` (so the model is cached under its parameters, beside the plain
one), and ``training_hook`` changes the shared loop (``models.training``):

- batches are Poisson-sampled, each image independently with rate
  q = batch_size / N_train (what the accountant's subsampling analysis assumes;
  a batch can be empty, and that step is noise alone);
- Opacus' ``GradSampleModule`` computes per-sample gradients, its ``DPOptimizer``
  clips each to ``max_grad_norm`` and adds Gaussian noise of
  ``noise_multiplier * max_grad_norm`` before AdamW steps;
- the noise multiplier is the smallest that keeps the RDP accountant's epsilon
  at the target after all steps (Opacus' ``get_noise_multiplier``); the epsilon
  recorded is the accountant's own after the last step.

The EMA of the weights is post-processing of the private iterates and keeps the
guarantee. The guarantee covers everything the model releases, so the mitigation
claims every threat model.

What the network needed: nothing. The diffusers ``UNet2DModel`` of the built-in
families normalises with GroupNorm, which is per sample (BatchNorm, which mixes
the samples of a batch, is refused by Opacus' ``ModuleValidator``, and so by
this hook, with the fix named). Its attention layers are ``Linear`` projections
around a functional softmax, whose per-sample gradients Opacus computes with its
``Linear`` hooks. ``unet_forward`` looks through ``GradSampleModule`` for the
UNet's config (the padding of 28 px images).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import nn

from benchmark.attacks.threat import DENOISER_API, SAMPLES_ONLY, WEIGHTS
from benchmark.config import TrainConfig
from benchmark.errors import ConfigError
from benchmark.measures.dp_bound import auc_bound
from benchmark.mitigations.base import Mitigation, MitigationContext, Prepared
from benchmark.models.base import TrainedModel
from benchmark.models.training import TrainingHook

# what the training stats carry (the model's cache entry), and the case records as
# ``mitigation_<name>``
STATS = ("epsilon", "delta", "noise_multiplier", "max_grad_norm", "sample_rate", "steps")


@dataclass(frozen=True)
class DPSGDParams:
    """The target (epsilon, delta), the per-sample clipping norm, and the training's
    steps and expected batch (``None``: the case's)."""

    epsilon: float = 10.0
    delta: float = 1e-5
    max_grad_norm: float = 1.0
    steps: int | None = None
    batch_size: int | None = None  # q = batch_size / N_train

    def __post_init__(self) -> None:
        if not self.epsilon > 0:
            raise ConfigError(f"dpsgd: epsilon must be > 0, got {self.epsilon}")
        if not 0 < self.delta < 1:
            raise ConfigError(
                f"dpsgd: delta must be in (0, 1) and well below 1/N_train, got {self.delta}"
            )
        if not self.max_grad_norm > 0:
            raise ConfigError(
                f"dpsgd: max_grad_norm (the per-sample clipping norm) must be > 0, got "
                f"{self.max_grad_norm}"
            )
        for key in ("steps", "batch_size"):
            value = getattr(self, key)
            if value is not None and value < 1:
                raise ConfigError(f"dpsgd: {key} must be a whole number >= 1 or None, got {value}")


class DPSGD(Mitigation):
    """Train with per-sample clipping and Gaussian noise to a target (epsilon, delta)."""

    name = "dpsgd"
    version = "1"
    Params = DPSGDParams
    # The smoke setting; its figures on the 64-digit models are in docs/measurements.md.
    suite_settings = [{"epsilon": 1.0, "steps": 500, "batch_size": 16}]
    quick_params = {"steps": None}  # a rehearsal keeps its own few steps
    addresses = (WEIGHTS, DENOISER_API, SAMPLES_ONLY)

    # -- training -------------------------------------------------------------------
    def train_config(self, train: TrainConfig) -> TrainConfig:
        p = self.params
        return replace(
            train,
            steps=int(p.steps or train.steps),
            batch_size=int(p.batch_size or train.batch_size),
            mitigation=self.config,
        )

    def training_hook(self, train: TrainConfig, n_train: int) -> TrainingHook:
        if train.precision != "fp32":
            raise ConfigError(
                f"dpsgd trains in fp32 (per-sample gradients and their norms); got precision "
                f"{train.precision!r}: leave --memobench-train-precision unset for it"
            )
        delta = self.params.delta
        if delta >= 1 / n_train:
            raise ConfigError(
                f"dpsgd: delta = {delta} is not below 1/N_train = {1 / n_train:.3g}; such a "
                f"guarantee allows releasing a training image outright: pass a smaller delta"
            )
        return OpacusHook(
            epsilon=self.params.epsilon,
            delta=delta,
            max_grad_norm=self.params.max_grad_norm,
            sample_rate=min(1.0, train.batch_size / n_train),
            steps=train.steps,
            n_train=n_train,
            seed=train.seed,
        )

    # -- the case -------------------------------------------------------------------
    def prepare(self, model: TrainedModel, context: MitigationContext | None = None) -> Prepared:
        stats = model.stats or {}
        if "dp_epsilon" not in stats:
            raise ConfigError(
                f"dpsgd is a training-time mitigation, and model {model.key} was not trained "
                f"with DP-SGD (its training stats carry no dp_epsilon): run the case through "
                f"memobench so that its TrainConfig names the mitigation, not on a pretrained "
                f"or plainly trained model"
            )
        dp = {k: stats[f"dp_{k}"] for k in STATS}
        dp["auc_bound"] = auc_bound(dp["epsilon"], dp["delta"])
        return Prepared(stats=dp)


class OpacusHook(TrainingHook):
    """The training loop's DP-SGD: Poisson batches, Opacus' per-sample clipping and
    noise, and its RDP accountant."""

    def __init__(
        self,
        *,
        epsilon: float,
        delta: float,
        max_grad_norm: float,
        sample_rate: float,
        steps: int,
        n_train: int,
        seed: int,
    ) -> None:
        from opacus.accountants import RDPAccountant
        from opacus.accountants.utils import get_noise_multiplier

        self.delta, self.max_grad_norm = delta, max_grad_norm
        self.sample_rate, self.steps, self.n_train = sample_rate, steps, n_train
        self.noise_multiplier = get_noise_multiplier(
            target_epsilon=epsilon,
            target_delta=delta,
            sample_rate=sample_rate,
            steps=steps,
            accountant="rdp",
        )
        self.accountant = RDPAccountant()
        self.seed = seed
        self.noise_gen: torch.Generator | None = None
        self.module = None
        self.optimizer = None

    def attach(self, net: nn.Module, opt: torch.optim.Optimizer, device: torch.device):
        from opacus import GradSampleModule
        from opacus.optimizers import DPOptimizer
        from opacus.validators import ModuleValidator

        problems = ModuleValidator.validate(net, strict=False)
        if problems:
            raise ConfigError(
                f"dpsgd cannot train this network with per-sample gradients: "
                f"{'; '.join(str(p) for p in problems)}. Build the family's network with "
                f"per-sample layers (GroupNorm instead of BatchNorm; Opacus' "
                f"ModuleValidator.fix(net) shows the replacement)"
            )
        # the noise has its own generator, seeded from the training seed and checkpointed
        self.noise_gen = torch.Generator(device=device).manual_seed(self.seed + 1)
        with warnings.catch_warnings():  # "secure_mode off": the generator above is ours
            warnings.simplefilter("ignore", UserWarning)
            self.module = GradSampleModule(net, batch_first=True, loss_reduction="mean")
            self.optimizer = DPOptimizer(
                opt,
                noise_multiplier=self.noise_multiplier,
                max_grad_norm=self.max_grad_norm,
                expected_batch_size=max(1, round(self.sample_rate * self.n_train)),
                loss_reduction="mean",
                generator=self.noise_gen,
            )
        return self.module, self.optimizer

    def batch(self, n: int, batch_size: int, gen: torch.Generator) -> torch.Tensor:
        if self.sample_rate >= 1:
            return torch.arange(n, device=gen.device)
        keep = torch.rand(n, generator=gen, device=gen.device) < self.sample_rate
        return keep.nonzero().squeeze(1)

    def empty_batch(self) -> None:
        # no image drawn: every per-sample gradient list is empty, the step adds noise only
        for p in self.optimizer.params:
            p.grad_sample = torch.zeros((0, *p.shape), device=p.device, dtype=p.dtype)

    def after_step(self) -> None:
        self.accountant.step(noise_multiplier=self.noise_multiplier, sample_rate=self.sample_rate)

    def detach(self) -> None:
        if self.module is not None:
            self.module._close()  # removes Opacus' hooks and per-sample gradients
            self.module = None

    def state_dict(self) -> dict[str, Any]:
        return {
            "history": [list(h) for h in self.accountant.history],
            "noise_gen": self.noise_gen.get_state() if self.noise_gen is not None else None,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.accountant.history = [tuple(h) for h in state.get("history", [])]
        if state.get("noise_gen") is not None and self.noise_gen is not None:
            self.noise_gen.set_state(state["noise_gen"])

    def stats(self) -> dict[str, Any]:
        taken = sum(h[2] for h in self.accountant.history)
        return {
            "dp_epsilon": float(self.accountant.get_epsilon(self.delta)) if taken else 0.0,
            "dp_delta": self.delta,
            "dp_noise_multiplier": float(self.noise_multiplier),
            "dp_max_grad_norm": self.max_grad_norm,
            "dp_sample_rate": self.sample_rate,
            "dp_steps": taken,
            "dp_accountant": "rdp",
        }
