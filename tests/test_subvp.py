"""The sub-VP score SDE family against closed forms (docs/science.md, model families).

Data from a known Gaussian N(mu, s^2 I) has the analytic score at every t:
p_t = N(m(t) mu, m(t)^2 s^2 + std(t)^2). With that score in place of the
network, the samplers must return N(mu, s^2) and the likelihood ODE the exact
log-density.
"""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from benchmark.config import ModelConfig, SamplerConfig, TrainConfig
from benchmark.errors import CheckpointError, ConfigError, UnknownNameError
from benchmark.metrics.likelihood import bits_per_dim, log_likelihood
from benchmark.models import training
from benchmark.models.ddpm import DDIMFamily
from benchmark.models.subvp_sde import SubVPFamily, SubVPSDE
from benchmark.samplers.base import get_sampler, time_grid
from benchmark.samplers.euler_maruyama import em_sample
from benchmark.samplers.ode_adaptive import rk45_sample
from benchmark.samplers.pf_ode import heun_sample

MU, S = 0.5, 0.3
SHAPE = (1, 16, 16)  # the digits' size: the Langevin step size depends on the dimension
SDE = SubVPSDE()
TINY = ModelConfig(family="subvp", block_out_channels=(4, 8), norm_num_groups=4)


def gaussian_eps(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """-std(t) * score of p_t for data N(MU, S^2 I)."""
    m, sd = SDE.mean_coef(t), SDE.std(t)
    var = m**2 * S**2 + sd**2
    return (sd * (x - m * MU) / var).to(x.dtype)


class _Out:
    def __init__(self, sample):
        self.sample = sample


class GaussianNet(torch.nn.Module):
    """The analytic model behind the family's own interface: input timestep 999 t."""

    def forward(self, x, steps):
        t = (torch.as_tensor(steps, dtype=torch.float64) / 999).reshape(-1)[0]
        return _Out(gaussian_eps(x, t))


def noise(n: int, seed: int = 0) -> torch.Tensor:
    return torch.randn((n, *SHAPE), generator=torch.Generator().manual_seed(seed))


def randn_from(seed: int):
    gen = torch.Generator().manual_seed(seed)
    return lambda x: torch.randn(x.shape, generator=gen, dtype=x.dtype)


# -- the SDE itself -------------------------------------------------------------------
def test_marginal_std_solves_the_forward_variance_ode():
    """d Var/dt = -beta Var + g^2 for x_0 fixed, Var(0) = 0: the marginal and the SDE agree."""
    t = torch.linspace(0.01, 1.0, 50, dtype=torch.float64)
    h = 1e-6
    var = lambda s: SDE.std(s) ** 2  # noqa: E731
    dvar = (var(t + h) - var(t - h)) / (2 * h)
    torch.testing.assert_close(dvar, -SDE.beta(t) * var(t) + SDE.diffusion(t) ** 2)
    dmean = (SDE.mean_coef(t + h) - SDE.mean_coef(t - h)) / (2 * h)
    torch.testing.assert_close(dmean, -0.5 * SDE.beta(t) * SDE.mean_coef(t))


@pytest.mark.parametrize("t_end", [0.3, 1.0])
def test_forward_sde_simulation_matches_the_marginal(t_end):
    """Euler–Maruyama on the forward SDE from N(MU, S^2) lands on N(m MU, m^2 S^2 + std^2)."""
    x = MU + S * noise(2000, 1)
    gen = torch.Generator().manual_seed(2)
    times = torch.linspace(0, t_end, 1001, dtype=torch.float64)
    for t, nxt in zip(times[:-1], times[1:], strict=True):
        dt = nxt - t
        x = (
            x
            + SDE.drift(x, t) * dt
            + SDE.diffusion(t) * dt.sqrt() * torch.randn(x.shape, generator=gen)
        )
    t = torch.tensor(t_end, dtype=torch.float64)
    m, sd = float(SDE.mean_coef(t)), float(SDE.std(t))
    assert float(x.mean()) == pytest.approx(m * MU, abs=0.01)
    assert float(x.std()) == pytest.approx(math.sqrt(m**2 * S**2 + sd**2), rel=0.02)
    assert sd == pytest.approx(1 - math.exp(-(0.1 * t_end + 0.5 * t_end**2 * 19.9)))


# -- samplers against the analytic score -----------------------------------------------
SAMPLERS = {
    "em": lambda x, times: em_sample(gaussian_eps, SDE, x, times, randn_like=randn_from(3)),
    "pc": lambda x, times: em_sample(
        gaussian_eps, SDE, x, times, corrector_steps=1, randn_like=randn_from(3)
    ),
    "ode_heun": lambda x, times: heun_sample(gaussian_eps, SDE, x, times),
    "ode_rk45": lambda x, times: rk45_sample(gaussian_eps, SDE, x, float(times[0])),
}


@pytest.mark.parametrize("name", list(SAMPLERS))
@pytest.mark.parametrize("start", [1.0, 0.5])
def test_sampler_recovers_the_data_distribution(name, start):
    """From p_start (pure noise at 1, the noised Gaussian at 0.5) back to N(MU, S^2)."""
    n = 400 if name == "ode_rk45" else 1000
    if start == 1.0:
        x = noise(n)
    else:
        x = SDE.marginal(MU + S * noise(n, 5), torch.tensor(start, dtype=torch.float64), noise(n))
    steps = {"em": 500, "pc": 250, "ode_heun": 50, "ode_rk45": 2}[name]
    out, nfe = SAMPLERS[name](x, time_grid(steps, start))
    assert float(out.mean()) == pytest.approx(MU, abs=0.01), name
    assert float(out.std()) == pytest.approx(S, rel=0.03), name
    expected = {"em": steps, "pc": 2 * steps, "ode_heun": 2 * steps - 1}.get(name)
    if expected is not None:
        assert nfe == expected
    else:
        assert 5 < nfe < 500  # adaptive: the solver's own count


@pytest.mark.parametrize("name", ["ode_heun", "em", "pc", "ode_rk45"])
def test_family_sampler_uses_timestep_999t_and_clips(name):
    """The family's ``sample`` on the analytic net: right distribution, in [-1, 1]."""
    family = SubVPFamily(TINY)
    sampler = SamplerConfig(name=name, num_steps={"ode_heun": 40, "ode_rk45": 1}.get(name, 300))
    out, nfe = family.sample(GaussianNet(), noise(300), sampler)
    assert out.min() >= -1 and out.max() <= 1
    assert float(out.mean()) == pytest.approx(MU, abs=0.02)
    assert float(out.std()) == pytest.approx(S, rel=0.05)
    assert nfe >= 2


def test_same_latents_same_images_for_stochastic_samplers():
    family = SubVPFamily(TINY)
    sampler = SamplerConfig(name="em", num_steps=20)
    a, _ = family.sample(GaussianNet(), noise(4), sampler)
    b, _ = family.sample(GaussianNet(), noise(4), sampler)
    torch.testing.assert_close(a, b)


def test_guidance_hook_changes_the_score_it_sees():
    family = SubVPFamily(TINY)
    seen = []

    def hook(x, t, eps):
        seen.append(float(t))
        return eps + 0.5  # a constant eps shift pulls every sample down

    base, _ = family.sample(GaussianNet(), noise(64), SamplerConfig(name="ode_heun", num_steps=10))
    guided, nfe = family.sample(
        GaussianNet(), noise(64), SamplerConfig(name="ode_heun", num_steps=10), guidance=hook
    )
    assert len(seen) == nfe and max(seen) == pytest.approx(1.0) and min(seen) > 0
    assert float(guided.mean()) < float(base.mean()) - 0.05


def test_lockstep_steps_match_the_sampler():
    """t*'s per-step interface walks the same path as ``sample`` from the same start."""
    family = SubVPFamily(TINY)
    sampler = SamplerConfig(name="ode_heun", num_steps=10)
    grid = family.solver_grid(sampler)
    x = noise(8)
    out, _ = family.sample(GaussianNet(), x, sampler)
    for time, nxt in zip(grid, grid[1:] + [None], strict=True):
        x = family.solver_step(family.noise_estimate(GaussianNet()), x, time, nxt, sampler)
    torch.testing.assert_close(x, out, atol=1e-5, rtol=1e-5)
    assert family.step_nfe(sampler) == 2


# -- likelihood ------------------------------------------------------------------------
def exact_logp(x: torch.Tensor, t: float) -> torch.Tensor:
    tt = torch.tensor(t, dtype=torch.float64)
    m, sd = SDE.mean_coef(tt), SDE.std(tt)
    var = float(m**2 * S**2 + sd**2)
    d = x[0].numel()
    return -0.5 * ((x.double() - float(m) * MU) ** 2).flatten(1).sum(1) / var - 0.5 * d * math.log(
        2 * math.pi * var
    )


def test_likelihood_matches_the_exact_gaussian_density():
    x = MU + S * noise(16, 7)
    logp, nfe = log_likelihood(gaussian_eps, SDE, x, generator=torch.Generator().manual_seed(0))
    dims = x[0].numel()
    # error per dimension: the prior at t = 1 is taken as N(0, I) (true: mean 0.007 MU)
    torch.testing.assert_close(logp / dims, exact_logp(x, 1e-5) / dims, atol=2e-3, rtol=0)
    assert nfe > 10


def test_hutchinson_estimate_equals_the_exact_trace_where_the_jacobian_is_diagonal():
    x = MU + S * torch.randn((3, 1, 2, 2), generator=torch.Generator().manual_seed(1))
    gen = torch.Generator().manual_seed(0)
    est, _ = log_likelihood(gaussian_eps, SDE, x, generator=gen)
    exact, _ = log_likelihood(gaussian_eps, SDE, x, exact_divergence=True)
    torch.testing.assert_close(est, exact, atol=1e-4, rtol=0)


def test_bits_per_dim_of_a_gaussian_model():
    """Dequantized [-1, 1] images: bpd = -log p / (D ln 2) + 7, against the exact density."""
    x = (MU + S * noise(8, 9)).clamp(-1, 1)
    bpd, cost = bits_per_dim(gaussian_eps, SDE, x, seed=0)
    # same dequantization noise as bits_per_dim draws
    from benchmark.metrics.likelihood import dequantize

    deq = dequantize(x, torch.Generator().manual_seed(0))
    ref = -exact_logp(deq, 1e-5) / (x[0].numel() * math.log(2)) + 7
    torch.testing.assert_close(bpd, ref.float().double(), atol=5e-3, rtol=0)
    assert cost["nfe"] > 0 and cost["seconds"] > 0


# -- training and folders -------------------------------------------------------------
def test_training_lowers_the_loss_and_resumes(tmp_path):
    family = SubVPFamily(TINY)
    images = MU + S * noise(16, 11)
    cfg = TrainConfig(steps=30, batch_size=8, lr=3e-3, warmup_steps=1, checkpoint_every=10)
    with pytest.raises(training.TrainingInterrupted):
        training.train(family, images, cfg, tmp_path, progress=False, stop_after=10)
    resumed, stats = training.train(family, images, cfg, tmp_path, progress=False)
    straight, _ = training.train(family, images, cfg, tmp_path / "again", progress=False)
    for a, b in zip(resumed.state_dict().values(), straight.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b)
    history = [loss for _, loss in stats["loss_history"]]
    assert history[-1] < history[0]


def test_save_and_load_pretrained_round_trip(tmp_path):
    family = SubVPFamily(TINY)
    net = training.build_network(family, SHAPE, seed=0).eval()
    family.save_pretrained(net, tmp_path / "m")
    loaded_family, loaded = SubVPFamily.load_pretrained(tmp_path / "m")
    x, t = noise(2), 0.4
    with torch.no_grad():
        torch.testing.assert_close(
            loaded_family.predict_eps(loaded, x, t), family.predict_eps(net, x, t)
        )


def test_sde_checkpoint_loaded_as_ddim_is_refused(tmp_path):
    family = SubVPFamily(TINY)
    family.save_pretrained(training.build_network(family, SHAPE, 0), tmp_path / "sde")
    with pytest.raises(CheckpointError, match="'subvp' model, not a 'ddim'"):
        DDIMFamily.load_pretrained(tmp_path / "sde")


def test_ddim_checkpoint_loaded_as_sde_is_refused(tmp_path):
    ddim = DDIMFamily(replace(TINY, family="ddim"))
    ddim.save_pretrained(training.build_network(ddim, SHAPE, 0), tmp_path / "ddim")
    with pytest.raises(CheckpointError, match="'ddim' model, not a 'subvp'"):
        SubVPFamily.load_pretrained(tmp_path / "ddim")
    (tmp_path / "ddim" / "memobench.json").unlink()  # a plain diffusers folder
    with pytest.raises(CheckpointError, match="load it with model family 'ddim'"):
        SubVPFamily.load_pretrained(tmp_path / "ddim")


# -- bad input ---------------------------------------------------------------------------
@pytest.mark.parametrize("start", [0.0, -0.1, 1.5])
def test_sampler_start_outside_0_1_is_refused(start):
    family = SubVPFamily(TINY)
    with pytest.raises(ConfigError, match=r"starts at a time in \(0, 1\]"):
        family.sample(GaussianNet(), noise(2), SamplerConfig(name="ode_heun"), start=start)
    with pytest.raises(ConfigError, match=r"\(0, 1\]"):
        heun_sample(gaussian_eps, SDE, noise(2), torch.tensor([start, 0.001]))


class NaNAfter(torch.nn.Module):
    """The analytic net until t drops below ``t_bad``, then NaN."""

    def __init__(self, t_bad: float):
        super().__init__()
        self.t_bad = t_bad

    def forward(self, x, steps):
        out = GaussianNet()(x, steps).sample
        t = float(torch.as_tensor(steps).reshape(-1)[0]) / 999
        return _Out(out * float("nan") if t < self.t_bad else out)


@pytest.mark.parametrize("name", ["ode_heun", "em", "pc", "ode_rk45"])
def test_non_finite_score_names_the_step(name):
    family = SubVPFamily(TINY)
    with pytest.raises(FloatingPointError, match=r"(step \d+|evaluation \d+) \(t = 0\.[0-9]"):
        family.sample(NaNAfter(0.5), noise(2), SamplerConfig(name=name, num_steps=10))


def test_unknown_sampler_and_tstar_on_the_adaptive_solver_are_refused():
    family = SubVPFamily(TINY)
    with pytest.raises(ConfigError, match="no sampler 'ddim'.*ode_heun, em, pc, ode_rk45"):
        family.sample(GaussianNet(), noise(2), SamplerConfig(name="ddim"))
    with pytest.raises(ConfigError, match="t\\* cannot run trajectories in lockstep"):
        family.solver_grid(SamplerConfig(name="ode_rk45"))


@pytest.mark.parametrize("name", ["ode_heun", "em", "pc"])
def test_tstar_lockstep_counts_each_solvers_evaluations(name):
    """t* charges a Heun step two evaluations, a PC step 1 + corrector, the last step one."""
    from benchmark.measures.tstar import expected_exhaustive_nfe, run_lockstep
    from benchmark.models.base import TrainedModel

    family = SubVPFamily(TINY)
    model = TrainedModel(family, GaussianNet(), "analytic", SHAPE)
    sampler = SamplerConfig(name=name, num_steps=10)
    starts = [family.noise.time_at(t) for t in (0.55, 0.2, 0.0)]
    images, nfe = run_lockstep(model, torch.zeros(SHAPE), starts, sampler, noise(3))
    per_step = {"ode_heun": 2, "em": 1, "pc": 2}[name]
    final = 2 if name == "pc" else 1
    grid = family.solver_grid(sampler)
    expected = sum(per_step * sum(g < s for g in grid) + final for s in starts)
    assert nfe == expected
    assert expected_exhaustive_nfe(model, sampler, m=1, levels=[0.55, 0.2, 0.0]) == expected
    assert torch.isfinite(images).all()


def test_an_image_does_not_depend_on_its_batch():
    """The SDE samplers' noise is per image: image 3 alone equals image 3 of a batch of 6."""
    family = SubVPFamily(TINY)
    sampler = SamplerConfig(name="pc", num_steps=10)
    x = noise(6)
    batch, _ = family.sample(GaussianNet(), x, sampler)
    alone, _ = family.sample(GaussianNet(), x[3:4], sampler)
    torch.testing.assert_close(alone[0], batch[3])


def test_every_declared_sampler_is_registered():
    from benchmark import registry

    assert set(SubVPFamily.samplers) <= set(registry.samplers.names())
    with pytest.raises(UnknownNameError, match="unknown sampler 'nope'.*em, ode_heun"):
        get_sampler(SamplerConfig(name="nope"))


def test_a_registered_sampler_serves_a_family_that_declares_it():
    """A third party's sampler: registered by name, listed by a family, used by sample and
    by t*'s lockstep steps, with no change to the family's code; its own setting is
    checked by its ``Params`` and reaches its steps."""
    from dataclasses import dataclass

    from benchmark import registry
    from benchmark.samplers.base import ScoreParams, ScoreSampler, denoise
    from benchmark.samplers.pf_ode import ode_velocity

    @dataclass(frozen=True)
    class EulerParams(ScoreParams):
        stride: int = 1  # take every stride-th grid time

        def __post_init__(self):
            super().__post_init__()
            if self.stride < 1:
                raise ConfigError(f"ode_euler: stride must be >= 1, got {self.stride}")

    class Euler(ScoreSampler):
        name = "ode_euler"
        Params = EulerParams
        calls = 0

        def grid(self, process=None, start=None):
            return super().grid(process, start)[:: self.params.stride]

        def sample(self, eps_fn, process, x, start, randn_like):
            times = self.grid(process, start)
            for t, nxt in zip(times, [*times[1:], None], strict=True):
                x = self.step(eps_fn, process, x, t, nxt, randn_like)
            return x, len(times)

        def step(self, eps_fn, process, x, t, next_t, randn_like):
            Euler.calls += 1
            eps = eps_fn(x, t)
            if next_t is None:
                return denoise(process, x, t, eps)
            return x + (next_t - t) * ode_velocity(process, x, t, eps)

    class EulerSubVP(SubVPFamily):
        samplers = (*SubVPFamily.samplers, "ode_euler")

    registry.samplers.register("ode_euler", Euler)
    try:
        family = EulerSubVP(TINY)
        config = SamplerConfig(name="ode_euler", num_steps=200)
        out, nfe = family.sample(GaussianNet(), noise(2000), config)
        assert nfe == 200 and Euler.calls == 200
        assert abs(float(out.mean()) - MU) < 0.02 and abs(float(out.std()) - S) < 0.03
        assert len(family.solver_grid(config)) == 200
        x = family.solver_step(family.noise_estimate(GaussianNet()), noise(2), 1.0, 0.5, config)
        assert x.shape == (2, *SHAPE) and Euler.calls == 201
        strided = SamplerConfig(name="ode_euler", num_steps=200, params={"stride": 4})
        assert len(family.solver_grid(strided)) == 50
        with pytest.raises(ConfigError, match="stride must be >= 1"):
            family.check_sampler(SamplerConfig(name="ode_euler", params={"stride": 0}))
        with pytest.raises(ConfigError, match="sampler 'ode_euler' has no parameter.*'eta'"):
            family.check_sampler(SamplerConfig(name="ode_euler", params={"eta": 0.5}))
    finally:
        registry.samplers.unregister("ode_euler")
