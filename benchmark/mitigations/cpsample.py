"""CPSample (Kazdan et al. 2024; docs/science.md, mitigations): guide sampling away from the
regions a random-label classifier is sure about.

Every training image gets a fixed random label y_i ~ Bernoulli(1/2). A
time-conditioned classifier r_phi(x_t, t) -> P(y = 1) is trained on noised
training images until it overfits: it can only be confident near a training
image, since the labels carry no other information (on held-out images it sits
near 50%). While sampling, where c = max(p, 1 - p) exceeds 1 - alpha,

    eps_hat = eps_theta(x_t, t) + s * sigma_t * grad_{x_t} log c(x_t, t)

(sigma_t = sqrt(1 - abar_t) for DDPM; the family's ``noise_std``), which moves
x_t towards lower confidence, i.e. away from the training image; elsewhere
eps_hat = eps_theta. The classifier is cached like a model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from benchmark.attacks.threat import DENOISER_API, SAMPLES_ONLY
from benchmark.config import stable_hash
from benchmark.data.base import ImageDataset
from benchmark.environment import library_versions
from benchmark.errors import ConfigError
from benchmark.mitigations.base import Mitigation, MitigationContext, Prepared
from benchmark.mitigations.guided import GuidanceHook
from benchmark.mitigations.random_label_classifier import (
    CLASSIFIER_VERSION,
    TrainedClassifier,
    load_classifier,
    train_classifier,
)
from benchmark.models.base import ModelFamily, TrainedModel


@dataclass(frozen=True)
class CPSampleParams:
    """alpha: act where max(p, 1 - p) > 1 - alpha; scale: s; classifier_steps: the
    random-label classifier's training steps."""

    alpha: float = 0.001
    scale: float = 1.0
    # 800 steps: train accuracy 1.00 at t = 0.05 on 64 digits, held-out 0.48 (28 s on CPU)
    classifier_steps: int = 800

    def __post_init__(self) -> None:
        if not 0 < self.alpha < 0.5:
            raise ConfigError(
                f"CPSample: alpha is the confidence threshold in (0, 1/2) (guidance acts where "
                f"max(p, 1-p) > 1 - alpha), got {self.alpha}"
            )
        if self.scale < 0:
            raise ConfigError(f"CPSample: the guidance scale s must be >= 0, got {self.scale}")
        if self.classifier_steps < 1:
            raise ConfigError(
                f"CPSample: classifier_steps must be a positive integer, got "
                f"{self.classifier_steps}"
            )


class CPSample(Mitigation):
    """Classifier-guided privacy sampling with confidence threshold alpha and scale s."""

    name = "cpsample"
    version = "1"
    Params = CPSampleParams
    quick_params = {"classifier_steps": 5}
    # The smoke suite's setting: the paper's CelebA scale s = 1000 with LSUN's alpha = 0.1.
    # On the 64-digit models it cuts the Carlini fraction to 0.004 (ddim) and 0.027
    # (subvp); s = 300 did that for ddim (0.043) but only halved it for subvp (0.434 ->
    # 0.211). The paper's CIFAR-10 setting (alpha = 0.001, s = 1, the defaults) acted on
    # 7-11% of the steps and gave figures identical to `none` at 235 s per case (more
    # than twice `none`'s), so the suite leaves it to `benchmarks/mitigation_table.py`
    # (or run_case(smoke_case(family, 64, "cpsample", {"alpha": 0.001}), Session())).
    suite_settings = [{"alpha": 0.1, "scale": 1000.0}]
    # It changes the deployed denoiser and the samples, not the weights: under
    # `weights` its model is `none`'s, and the leaderboard says so.
    addresses = (DENOISER_API, SAMPLES_ONLY)

    def prepare(self, model: TrainedModel, context: MitigationContext | None = None) -> Prepared:
        if context is None:
            raise ConfigError(
                "CPSample needs the case's training images to train its classifier: call "
                "prepare(model, MitigationContext(data=...))"
            )
        data, family = context.data, model.family
        latent = family.latent  # its classifier reads noised latents, as its sampler does

        def encode(images: torch.Tensor) -> torch.Tensor:
            net = model.net.to(context.device)
            return torch.cat([family.encode(net, x.to(context.device)).cpu()
                              for x in images.split(256)])  # fmt: skip

        key = stable_hash(
            "cpsample-classifier",
            CLASSIFIER_VERSION,
            library_versions("torch"),
            family.name,
            family.version,
            family.config,
            data.fingerprint(),
            self.params.classifier_steps,
            context.seed,
            *([model.key] if latent else []),  # the latents are that model's autoencoder's
        )

        def build() -> dict[str, Any]:
            return train_classifier(
                family,
                data,
                steps=self.params.classifier_steps,
                seed=context.seed,
                device=context.device,
                progress=context.progress,
                encode=encode if latent else None,
            )

        if context.cache is None:
            payload = build()
        else:
            payload, _ = context.cache.get_or_create(
                "mitigations", key, build, what="CPSample classifier"
            )
        return self.with_classifier(load_classifier(payload, context.device), model, data)

    def with_classifier(
        self, classifier: TrainedClassifier, model: TrainedModel, data: ImageDataset
    ) -> Prepared:
        """The guidance through ``classifier`` (checked against the model's data and
        family), and the classifier's own figures."""
        classifier.check_for(data, model.family)
        stats = {f"classifier_{k}": v for k, v in classifier.metrics.items()}
        return Prepared(hook=self.hook(classifier, model.family), stats=stats)

    def hook(self, classifier: TrainedClassifier, family: ModelFamily) -> GuidanceHook:
        net = classifier.net
        threshold = math.log((1 - self.params.alpha) / self.params.alpha)  # |logit| > this
        scale = float(self.params.scale)

        def guide(x: torch.Tensor, t: torch.Tensor, eps: torch.Tensor):
            t_frac = torch.tensor(family.noise.fraction_of(t), device=x.device)
            with torch.enable_grad():
                x_in = x.detach().requires_grad_(True)
                logit = net(x_in, t_frac)
                fire = logit.detach().abs() > threshold
                if fire.any():
                    # d log max(p, 1-p) / d logit = sigmoid(-|z|) sign(z); only where the
                    # guidance acts, and values below 1e-20 flushed to 0 (they would move
                    # nothing, and as float32 denormals they slow the backward pass ~3x)
                    z = logit.detach()
                    w = torch.sigmoid(-z.abs()) * z.sign() * fire
                    w = torch.where(w.abs() > 1e-20, w, torch.zeros_like(w))
                    (grad,) = torch.autograd.grad(logit, x_in, grad_outputs=w)
                else:
                    grad = torch.zeros_like(x)
            step = scale * family.noise.noise_std(t) * grad
            return eps + step.to(eps.dtype), fire

        return guide
