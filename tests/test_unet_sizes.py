"""The UNet at every image size a dataset declares: the paper network at MedMNIST's 28 px."""

import pytest
import torch
import torch.nn.functional as F

from benchmark import registry
from benchmark.cache import Cache
from benchmark.config import DataConfig, ModelConfig
from benchmark.data import load_dataset
from benchmark.errors import ConfigError
from benchmark.models.store import get_trained
from benchmark.models.unet import build_unet, check_image_shape, unet_forward
from benchmark.tiers import PAPER_MODEL, paper_case
from tests.helpers import TINY_TRAIN, write_medmnist_npz


def _declared_shapes() -> list[tuple[int, int, int]]:
    shapes = set()
    for name in registry.datasets.names():
        src = registry.datasets.get(name)
        shapes.add((src.channels, src.image_size, src.image_size))
    return sorted(shapes)


@pytest.mark.parametrize("shape", _declared_shapes())
@pytest.mark.parametrize("family", ["ddim", "subvp"])
def test_paper_network_trains_and_predicts_at_every_declared_size(family, shape):
    """The paper's 4-level UNet (28 -> 14 -> 7 -> 4 crashed on the way up) takes every
    registered dataset's images: a loss with a gradient, and eps of the images' own shape."""
    fam = registry.models.get(family)(ModelConfig(family=family, **PAPER_MODEL))
    fam.check_image_shape(shape)
    torch.manual_seed(0)
    net = fam.build_network(shape)
    x0 = torch.rand(2, *shape) * 2 - 1
    loss = fam.loss(net, x0, torch.Generator().manual_seed(0))
    loss.backward()
    assert torch.isfinite(loss)
    assert all(p.grad is not None for p in net.parameters() if p.requires_grad)
    with torch.no_grad():
        eps = fam.predict_eps(net, x0, fam.noise.time_at(0.5))
    assert eps.shape == x0.shape


@pytest.mark.parametrize("size", [17, 23, 28, 30])
def test_odd_sizes_are_padded_and_cropped_back(size):
    """The network sees the image zero-padded (centred) to a multiple of its downsampling,
    and what comes back is exactly the crop of its output over the image."""
    cfg = ModelConfig(block_out_channels=(4, 8, 8), norm_num_groups=4)
    torch.manual_seed(0)
    net = build_unet(cfg, (1, size, size)).eval()
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.05 * torch.randn_like(p))
        x, t = torch.randn(2, 1, size, size), torch.tensor(10)
        out = unet_forward(net, x, t)
        pad = -size % 4
        top = pad // 2
        full = net(F.pad(x, (top, pad - top, top, pad - top)), t).sample
    assert out.shape == x.shape
    assert net.config.sample_size == size + pad
    torch.testing.assert_close(out, full[..., top : top + size, top : top + size])


def test_divisible_sizes_call_the_network_unchanged():
    cfg = ModelConfig(block_out_channels=(4, 8), norm_num_groups=4)
    net = build_unet(cfg, (1, 8, 8)).eval()
    x, t = torch.randn(3, 1, 8, 8), torch.tensor(5)
    with torch.no_grad():
        torch.testing.assert_close(unet_forward(net, x, t), net(x, t).sample)


def test_a_size_the_network_cannot_take_is_a_config_error_naming_size_and_fix():
    cfg = ModelConfig(**PAPER_MODEL)
    with pytest.raises(ConfigError, match=r"a 4 px image side .* at least 5 px or at most 3"):
        check_image_shape(cfg, (1, 4, 4))
    check_image_shape(cfg, (1, 5, 5))  # padded to 8: the border is smaller than the image


def test_a_bad_size_fails_before_any_training(tmp_path):
    """get_trained refuses the shape before it trains or writes a checkpoint."""
    write_medmnist_npz(tmp_path / "breastmnist.npz", n_train=8, size=28)
    data = load_dataset(DataConfig("breastmnist", n_train=4, root=str(tmp_path)))
    data.train = data.train[..., :3, :3]  # a 3 px set, as a plugin might declare
    cache = Cache(tmp_path / "cache")
    case = paper_case("ddim", "breastmnist", 4)
    with pytest.raises(ConfigError, match="3 px image side"):
        get_trained(case.model, TINY_TRAIN, data, cache)
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").rglob("*.safetensors"))
