"""CPSample (Kazdan et al. 2024; SPEC section 6): guide sampling away from the
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
import time as _time
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from benchmark.config import stable_hash
from benchmark.data.base import ImageDataset
from benchmark.errors import ConfigError
from benchmark.mitigations.base import Mitigation, MitigationContext
from benchmark.models.base import Guidance, ModelFamily, SampleResult, TrainedModel
from benchmark.progress import bar

CLASSIFIER_VERSION = "1"


class RandomLabelClassifier(nn.Module):
    """r_phi(x_t, t): logit of P(y = 1); t enters as a diffusion fraction in [0, 1].

    Flattened (not pooled) features: a memorizer must know where each pixel is.
    """

    def __init__(self, image_shape: tuple[int, int, int], width: int = 32) -> None:
        super().__init__()
        c, h, w = image_shape
        self.freqs = nn.Parameter(torch.arange(8).float().exp2() * math.pi, requires_grad=False)
        self.temb = nn.Sequential(nn.Linear(16, width), nn.SiLU(), nn.Linear(width, width))
        self.c1 = nn.Conv2d(c, width, 3, padding=1)
        self.c2 = nn.Conv2d(width, 2 * width, 3, stride=2, padding=1)
        self.c3 = nn.Conv2d(2 * width, 2 * width, 3, stride=2, padding=1)
        self.head = nn.Linear(2 * width * math.ceil(h / 4) * math.ceil(w / 4), 1)

    def forward(self, x: torch.Tensor, t_frac: torch.Tensor) -> torch.Tensor:
        t = t_frac.float().reshape(-1, 1).expand(x.shape[0], 1) * self.freqs
        emb = self.temb(torch.cat([t.sin(), t.cos()], dim=1))
        h = F.silu(self.c1(x.float()) + emb[:, :, None, None])
        h = F.silu(self.c2(h))
        h = F.silu(self.c3(h))
        return self.head(h.flatten(1)).squeeze(1)


@dataclass
class TrainedClassifier:
    """The classifier with the record of what it was trained on and how well it fits."""

    net: RandomLabelClassifier
    dataset: str
    n_train: int
    data_fingerprint: str
    family: str
    metrics: dict[str, float]

    def check_for(self, data: ImageDataset, family: ModelFamily) -> None:
        """Refuse a classifier trained for other training images or another noise process."""
        if self.data_fingerprint != data.fingerprint():
            raise ConfigError(
                f"the CPSample classifier was trained on {self.dataset!r} with N_train="
                f"{self.n_train} (data {self.data_fingerprint}), but this case uses {data.name!r} "
                f"with N_train={data.n_train} (data {data.fingerprint()}); CPSample needs a "
                f"classifier trained on this model's own training images"
            )
        if self.family != family.name:
            raise ConfigError(
                f"the CPSample classifier was trained on the {self.family!r} noise process, the "
                f"model is a {family.name!r} one; train it for this family"
            )


def _noised(family: ModelFamily, x0: torch.Tensor, t_frac: float, gen: torch.Generator):
    time = family.noise.time_at(t_frac)
    noise = torch.randn(x0.shape, generator=gen, device=x0.device)
    return family.noise.noise_to(x0, time, noise), family.noise.fraction_of(time)


def train_classifier(
    family: ModelFamily,
    data: ImageDataset,
    steps: int = 800,
    batch_size: int = 128,
    lr: float = 2e-3,
    seed: int = 0,
    device: torch.device | str = "cpu",
    progress: bool = False,
) -> dict[str, Any]:
    """Train r_phi on the noised members with fixed random labels; returns the cache payload."""
    gen = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 2, (data.n_train,), generator=gen).float()
    heldout_labels = torch.randint(0, 2, (data.heldout.shape[0],), generator=gen).float()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = RandomLabelClassifier(tuple(data.image_shape)).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    train = data.train.to(device)
    groups = 4  # times per step; each noises a quarter of the batch
    net.train()
    with bar(total=steps, desc="train CPSample classifier", unit="step", enabled=progress) as pbar:
        for _ in range(steps):
            loss = 0.0
            for _ in range(groups):
                idx = torch.randint(0, data.n_train, (batch_size // groups,), generator=gen)
                t_frac = 0.999 * float(torch.rand((), generator=gen))  # time_at(1) is past T
                x_t, tf = _noised(family, train[idx], t_frac, gen)
                logits = net(x_t, torch.tensor(tf, device=device))
                loss = loss + F.binary_cross_entropy_with_logits(logits, labels[idx].to(device))
            opt.zero_grad(set_to_none=True)
            (loss / groups).backward()
            opt.step()
            sched.step()
            pbar.update(1)
    net.eval()

    @torch.no_grad()
    def accuracy(images: torch.Tensor, y: torch.Tensor, t_frac: float) -> float:
        x_t, tf = _noised(family, images.to(device), t_frac, torch.Generator().manual_seed(1))
        pred = (net(x_t, torch.tensor(tf, device=device)) > 0).float().cpu()
        return float((pred == y).float().mean())

    metrics = {
        "train_accuracy_t0.05": accuracy(data.train, labels, 0.05),
        "train_accuracy_t0.5": accuracy(data.train, labels, 0.5),
        "heldout_accuracy_t0.05": accuracy(data.heldout, heldout_labels, 0.05),
        "final_loss": float(loss.detach() / groups),
    }
    return {
        "state_dict": {k: v.cpu() for k, v in net.state_dict().items()},
        "image_shape": list(data.image_shape),
        "dataset": data.name,
        "n_train": data.n_train,
        "data_fingerprint": data.fingerprint(),
        "family": family.name,
        "metrics": metrics,
    }


def load_classifier(
    payload: dict[str, Any], device: torch.device | str = "cpu"
) -> TrainedClassifier:
    net = RandomLabelClassifier(tuple(payload["image_shape"]))
    net.load_state_dict(payload["state_dict"])
    return TrainedClassifier(
        net.to(device).eval(),
        payload["dataset"],
        payload["n_train"],
        payload["data_fingerprint"],
        payload["family"],
        payload["metrics"],
    )


class CPSample(Mitigation):
    """Classifier-guided privacy sampling with confidence threshold alpha and scale s."""

    name = "cpsample"
    version = "1"
    # 800 steps: train accuracy 1.00 at t = 0.05 on 64 digits, held-out 0.48 (28 s on CPU)
    defaults = {"alpha": 0.001, "scale": 1.0, "classifier_steps": 800}
    quick_params = {"classifier_steps": 5}
    # The smoke suite's setting: the paper's CelebA scale s = 1000 with LSUN's alpha = 0.1.
    # On the 64-digit models it cuts the Carlini fraction to 0.004 (ddim) and 0.027
    # (subvp); s = 300 did that for ddim (0.043) but only halved it for subvp (0.434 ->
    # 0.211). The paper's CIFAR-10 setting (alpha = 0.001, s = 1, the defaults) acted on
    # 7-11% of the steps and gave figures identical to `none` at 235 s per case (more
    # than twice `none`'s), so the suite leaves it to `benchmarks/mitigation_table.py`
    # (or run_case(smoke_case(family, 64, "cpsample", {"alpha": 0.001}), Session())).
    suite_settings = [{"alpha": 0.1, "scale": 1000.0}]

    def check_params(self) -> None:
        alpha, scale = self.params["alpha"], self.params["scale"]
        if not 0 < alpha < 0.5:
            raise ConfigError(
                f"CPSample: alpha is the confidence threshold in (0, 1/2) (guidance acts where "
                f"max(p, 1-p) > 1 - alpha), got {alpha}"
            )
        if scale < 0:
            raise ConfigError(f"CPSample: the guidance scale s must be >= 0, got {scale}")
        steps = self.params["classifier_steps"]
        if int(steps) != steps or steps < 1:
            raise ConfigError(f"CPSample: classifier_steps must be a positive integer, got {steps}")
        self.classifier: TrainedClassifier | None = None
        self.family: ModelFamily | None = None
        self._reset_counts()

    def _reset_counts(self) -> None:
        self.counts = {"evaluations": 0, "fired": 0, "seconds": 0.0}
        self._fired_any: torch.Tensor | None = None

    def prepare(self, model: TrainedModel, context: MitigationContext | None = None) -> None:
        if context is None:
            raise ConfigError(
                "CPSample needs the case's training images to train its classifier: call "
                "prepare(model, MitigationContext(data=...))"
            )
        data, family = context.data, model.family
        key = stable_hash(
            "cpsample-classifier",
            CLASSIFIER_VERSION,
            family.name,
            family.version,
            family.config,
            data.fingerprint(),
            self.params["classifier_steps"],
            context.seed,
        )

        def build() -> dict[str, Any]:
            return train_classifier(
                family,
                data,
                steps=int(self.params["classifier_steps"]),
                seed=context.seed,
                device=context.device,
                progress=context.progress,
            )

        if context.cache is None:
            payload = build()
        else:
            payload, _ = context.cache.get_or_create(
                "mitigations", key, build, what="CPSample classifier"
            )
        self.use_classifier(load_classifier(payload, context.device), model, data)

    def use_classifier(
        self, classifier: TrainedClassifier, model: TrainedModel, data: ImageDataset
    ) -> None:
        """Use ``classifier`` (checked against the model's data and family)."""
        classifier.check_for(data, model.family)
        self.classifier, self.family = classifier, model.family

    def guidance(self) -> Guidance:
        if self.classifier is None or self.family is None:
            raise ConfigError("CPSample.guidance() before prepare(): the classifier is not ready")
        net, family = self.classifier.net, self.family
        threshold = math.log((1 - self.params["alpha"]) / self.params["alpha"])  # |logit| > this
        scale = float(self.params["scale"])

        def guide(x: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
            start = _time.perf_counter()
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
            self.counts["evaluations"] += fire.numel()
            self.counts["fired"] += int(fire.sum())
            if self._fired_any is not None and self._fired_any.shape == fire.shape:
                self._fired_any |= fire.cpu()
            step = scale * family.noise.noise_std(t) * grad
            self.counts["seconds"] += _time.perf_counter() - start
            return eps + step.to(eps.dtype)

        return guide

    def generate(self, model: TrainedModel, seeds, sampler, **kwargs: Any) -> SampleResult:
        """Sample batch by batch, tracking which samples the guidance acted on."""
        self._reset_counts()
        guide = self.guidance()
        seeds = torch.as_tensor(seeds, dtype=torch.long)
        batch = int(kwargs.pop("batch_size", 256))
        fired, parts = [], []
        start = _time.perf_counter()
        for chunk in seeds.split(batch):
            self._fired_any = torch.zeros(chunk.shape[0], dtype=torch.bool)
            parts.append(model.generate(chunk, sampler, guidance=guide, batch_size=batch, **kwargs))
            fired.append(self._fired_any)
        self._fired_any = None
        self._sample_fired = torch.cat(fired)
        seconds = _time.perf_counter() - start
        return SampleResult(torch.cat([p.images for p in parts]), seeds, parts[0].nfe, seconds)

    def metrics(self) -> dict[str, Any]:
        c = self.counts
        rec = {
            "guided_step_fraction": c["fired"] / max(c["evaluations"], 1),
            "guided_sample_fraction": float(self._sample_fired.float().mean())
            if hasattr(self, "_sample_fired")
            else None,
            "guidance_seconds": c["seconds"],
        }
        if self.classifier is not None:
            rec.update({f"classifier_{k}": v for k, v in self.classifier.metrics.items()})
        return rec
