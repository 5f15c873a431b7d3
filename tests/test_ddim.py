"""Our DDIM loop against diffusers' own DDIMPipeline on the same weights and noise."""

import pytest
import torch
from diffusers import DDIMPipeline, DDIMScheduler

from benchmark.config import SamplerConfig
from benchmark.models.base import seeded_latents
from benchmark.models.ddpm import DDIMFamily
from benchmark.samplers.ddim import ddim_sample, ddim_timesteps
from tests.helpers import TINY_MODEL


@pytest.fixture(scope="module")
def family_and_net():
    family = DDIMFamily(TINY_MODEL)
    torch.manual_seed(0)
    net = family.build_network((1, 8, 8)).eval()
    # random init leaves the output conv at zero: perturb every weight so eps is non-trivial
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return family, net


@pytest.mark.parametrize("steps", [1, 10, 50])
def test_matches_diffusers_pipeline(family_and_net, steps):
    family, net = family_and_net
    seeds = [11, 12, 13, 14]
    latents = seeded_latents(torch.tensor(seeds), (1, 8, 8))
    with torch.no_grad():
        ours, nfe = family.sample(net, latents, SamplerConfig(num_steps=steps))
    pipe = DDIMPipeline(unet=net, scheduler=DDIMScheduler.from_config(family.scheduler().config))
    pipe.set_progress_bar_config(disable=True)
    ref = pipe(
        batch_size=4,
        generator=[torch.Generator().manual_seed(s) for s in seeds],
        num_inference_steps=steps,
        output_type="np",
    ).images
    ref = torch.from_numpy(ref).permute(0, 3, 1, 2)
    assert nfe == steps
    assert ours.std() > 0.1, "the comparison must not be trivial"
    torch.testing.assert_close((ours / 2 + 0.5).clamp(0, 1), ref, atol=1e-5, rtol=0)


def test_timesteps_and_start():
    assert ddim_timesteps(4, 1000).tolist() == [750, 500, 250, 0]
    assert ddim_timesteps(4, 1000, start=600).tolist() == [600, 500, 250, 0]
    assert ddim_timesteps(4, 1000, start=0).tolist() == [0]
    with pytest.raises(ValueError, match="start timestep"):
        ddim_timesteps(4, 1000, start=1000)


def test_start_from_clean_image_is_identity_at_t0():
    """Starting at t = 0 with eps = 0 returns x_0 itself (one step to alpha = 1)."""
    abar = torch.linspace(0.9999, 0.01, 1000)
    x = torch.rand(2, 1, 4, 4) * 2 - 1
    out, nfe = ddim_sample(lambda x, t: torch.zeros_like(x), x, abar, torch.tensor([0]))
    torch.testing.assert_close(out, x / abar[0].sqrt())
    assert nfe == 1


def test_guidance_hook_changes_eps():
    abar = torch.linspace(0.9999, 0.01, 1000)
    x = torch.randn(2, 1, 4, 4)
    seen = []

    def guidance(x_t, t, eps):
        seen.append(int(t))
        return eps + 0.1

    base, _ = ddim_sample(lambda x, t: torch.zeros_like(x), x, abar, ddim_timesteps(5))
    guided, _ = ddim_sample(
        lambda x, t: torch.zeros_like(x), x, abar, ddim_timesteps(5), guidance=guidance
    )
    assert seen == ddim_timesteps(5).tolist()
    assert not torch.allclose(base, guided)
