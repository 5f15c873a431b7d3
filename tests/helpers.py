"""Small builders shared by the tests: tiny configs (STYLE: 8x8 images, (4, 8) channels)."""

from __future__ import annotations

import numpy as np
import torch

from benchmark.config import ModelConfig, SamplerConfig, TrainConfig

TINY_MODEL = ModelConfig(family="ddim", block_out_channels=(4, 8), norm_num_groups=4)
TINY_TRAIN = TrainConfig(steps=6, batch_size=4, lr=1e-3, warmup_steps=2, checkpoint_every=2)
TINY_SAMPLER = SamplerConfig(num_steps=3)


def write_medmnist_npz(path, n_train=40, n_test=12, size=28, channels=1, seed=0):
    """A small file in MedMNIST's own layout: uint8 (N, H, W[, C]) images, (N, 1) labels."""
    rng = np.random.default_rng(seed)
    shape = (size, size) if channels == 1 else (size, size, channels)
    parts = {}
    for split, n in (("train", n_train), ("val", 4), ("test", n_test)):
        parts[f"{split}_images"] = rng.integers(0, 256, (n, *shape), dtype=np.uint8)
        parts[f"{split}_labels"] = rng.integers(0, 2, (n, 1), dtype=np.int64)
    np.savez(path, **parts)
    return path


class _Out:
    def __init__(self, sample):
        self.sample = sample


class MixtureDenoiser(torch.nn.Module):
    """The exact eps-prediction for data that is a mixture of point masses (no training).

    Under the DDPM forward process x_t = sqrt(abar) x_0 + sqrt(1 - abar) eps, the
    posterior over the points is a softmax of log w_k - |x_t - sqrt(abar) p_k|^2 / (2 (1 - abar)),
    E[x_0 | x_t] its weighted mean, and eps = (x_t - sqrt(abar) E[x_0 | x_t]) / sqrt(1 - abar).
    """

    def __init__(self, points: torch.Tensor, weights: torch.Tensor, alphas_cumprod: torch.Tensor):
        super().__init__()
        # parameters (frozen), so a white-box attack (GSA) has gradients to read
        self.points = torch.nn.Parameter(points.flatten(1).clone(), requires_grad=False)
        self.logw = torch.nn.Parameter(weights.log(), requires_grad=False)
        self.register_buffer("abar", alphas_cumprod)
        self.shape = points.shape[1:]

    def forward(self, x, t):
        a = self.abar[torch.as_tensor(t).long()].reshape(-1, 1)
        flat = x.flatten(1)
        d2 = torch.cdist(flat, a.sqrt() * self.points if a.numel() == 1 else self.points) ** 2
        post = torch.softmax(self.logw - d2 / (2 * (1 - a)), dim=1)
        x0 = post @ self.points
        eps = (flat - a.sqrt() * x0) / (1 - a).sqrt()
        return _Out(eps.view(x.shape))


def mixture_model(data, weight_of_xp: float):
    """A DDIM 'model' whose data is {SAF(x_p) with weight w, another image with 1 - w}."""
    from benchmark.models.base import TrainedModel
    from benchmark.models.ddpm import DDIMFamily

    family = DDIMFamily(ModelConfig())
    other = data.train[(data.saf.index + 1) % data.n_train]
    points = torch.stack([data.saf.fingerprinted(), other])
    weights = torch.tensor([weight_of_xp, 1 - weight_of_xp])
    net = MixtureDenoiser(points, weights, family.alphas_cumprod)
    model = TrainedModel(family, net, "mixture", tuple(data.image_shape))

    def is_hit(images):
        flat = images.flatten(1)
        d = torch.cdist(flat, points.flatten(1))
        return d[:, 0] < d[:, 1]

    return model, is_hit


def analytic_memorizer(data):
    """A DDIM 'model' that reproduces exactly the training images of ``data`` (uniform
    mixture of point masses): the memorizing model whose answer is known."""
    from benchmark.models.base import TrainedModel
    from benchmark.models.ddpm import DDIMFamily

    family = DDIMFamily(ModelConfig())
    weights = torch.full((data.n_train,), 1 / data.n_train)
    net = MixtureDenoiser(data.train, weights, family.alphas_cumprod)
    return TrainedModel(family, net, "memorizer", tuple(data.image_shape))
