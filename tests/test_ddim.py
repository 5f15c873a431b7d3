"""Our DDIM loop against diffusers' own DDIMPipeline on the same weights and noise."""

import pytest
import torch
from diffusers import DDIMPipeline, DDIMScheduler

from benchmark.config import SamplerConfig
from benchmark.models.base import seeded_latents
from benchmark.models.ddpm import DDIMFamily
from benchmark.samplers.base import guided
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
    eps_hat = guided(lambda x, t: torch.zeros_like(x), guidance)
    steered, _ = ddim_sample(eps_hat, x, abar, ddim_timesteps(5))
    assert seen == ddim_timesteps(5).tolist()
    assert not torch.allclose(base, steered)


@pytest.mark.parametrize("kind", ["v_prediction", "sample"])
def test_v_and_sample_prediction_match_diffusers_pipeline(family_and_net, kind):
    """A checkpoint of another prediction type samples as diffusers' own DDIMPipeline
    samples it: memobench turns v and x_0 into eps the way the scheduler does."""
    from dataclasses import replace

    base, net = family_and_net
    family = DDIMFamily(replace(base.config, prediction_type=kind))
    seeds = [21, 22, 23]
    latents = seeded_latents(torch.tensor(seeds), (1, 8, 8))
    with torch.no_grad():
        ours, _ = family.sample(net, latents, SamplerConfig(num_steps=10))
    scheduler = DDIMScheduler.from_config(family.scheduler().config, prediction_type=kind)
    pipe = DDIMPipeline(unet=net, scheduler=scheduler)
    pipe.set_progress_bar_config(disable=True)
    ref = pipe(
        batch_size=3,
        generator=[torch.Generator().manual_seed(s) for s in seeds],
        num_inference_steps=10,
        output_type="np",
    ).images
    ref = torch.from_numpy(ref).permute(0, 3, 1, 2)
    assert ours.std() > 0.1
    torch.testing.assert_close((ours / 2 + 0.5).clamp(0, 1), ref, atol=1e-4, rtol=0)


def test_a_pipeline_folder_of_each_prediction_type_loads_with_it(family_and_net, tmp_path):
    _, net = family_and_net
    for kind in ("epsilon", "v_prediction", "sample"):
        scheduler = DDIMScheduler(prediction_type=kind, beta_schedule="squaredcos_cap_v2")
        DDIMPipeline(unet=net, scheduler=scheduler).save_pretrained(tmp_path / kind)
        family, _ = DDIMFamily.load_pretrained(tmp_path / kind)
        assert family.config.prediction_type == kind
        assert family.config.beta_schedule == "squaredcos_cap_v2"
        torch.testing.assert_close(family.alphas_cumprod, scheduler.alphas_cumprod)


def test_a_scheduler_memobench_cannot_read_is_one_line(family_and_net, tmp_path):
    from benchmark.errors import CheckpointError, ConfigError

    _, net = family_and_net
    DDIMPipeline(unet=net, scheduler=DDIMScheduler()).save_pretrained(tmp_path / "m")
    config = tmp_path / "m" / "scheduler" / "scheduler_config.json"
    for text, message in [
        ("{not json", "is not valid JSON"),
        ('["a"]', "holds a list"),
        ('{"_class_name": "EulerDiscreteScheduler"}', "describes a 'EulerDiscreteScheduler'"),
        ('{"trained_betas": [0.1, 0.2]}', "a list of trained betas"),
        ('{"prediction_type": "flow"}', "prediction_type 'flow' is not one of"),
        ('{"beta_schedule": "quadratic"}', "quadratic is not implemented"),
        ('{"rescale_betas_zero_snr": true}', "rescale_betas_zero_snr is set"),
    ]:
        config.write_text(text)
        with pytest.raises(CheckpointError) as err:
            DDIMFamily.load_pretrained(tmp_path / "m")
        assert message in str(err.value) and "\n" not in str(err.value), str(err.value)
    config.write_text('{"prediction_type": "sample"}')
    family, net = DDIMFamily.load_pretrained(tmp_path / "m")
    with pytest.raises(ConfigError, match="memobench trains eps-prediction models"):
        family.loss(net, torch.zeros(2, 1, 8, 8), torch.Generator().manual_seed(0))
