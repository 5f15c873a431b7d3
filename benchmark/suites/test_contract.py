"""The contract every plugin must keep, run for every registered family and mitigation.

Cheap (no real training): a plugin that breaks the interface fails here in
seconds instead of minutes into a leakage case.
"""

from __future__ import annotations

import dataclasses
from dataclasses import replace

import pytest
import torch

from benchmark import registry
from benchmark.attacks.threat import SAMPLES_ONLY, THREAT_MODELS
from benchmark.config import DataConfig, SamplerConfig, TrainConfig
from benchmark.mitigations.base import MitigationContext, Prepared
from benchmark.models.base import ModelFamily, TrainedModel, seeded_latents
from benchmark.models.training import build_network, train
from benchmark.tiers import suite_names

FAMILIES = suite_names(registry.models)
MITIGATIONS = suite_names(registry.mitigations)
ATTACKS = registry.attacks.names()


@pytest.mark.smoke
@pytest.mark.parametrize("family_name", FAMILIES)
def test_family_contract(family_name, memobench_session):
    family_cls = registry.models.get(family_name)
    assert issubclass(family_cls, ModelFamily) and family_cls.name == family_name
    model_cfg, train_cfg, sampler_cfg = family_cls.smoke_configs()
    family = family_cls(model_cfg)
    data = memobench_session.dataset(DataConfig(n_train=8))
    net = build_network(family, data.image_shape, seed=0)

    loss = family.loss(net, data.train[:4], torch.Generator().manual_seed(0))
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    assert any(p.grad is not None for p in net.parameters())

    latent_shape = family.latent_shape(data.image_shape)
    assert family.latent or latent_shape == data.image_shape, "a pixel family diffuses pixels"
    latents = seeded_latents(torch.tensor([0, 1]), latent_shape)
    with torch.no_grad():
        images, nfe = family.sample(net.eval(), latents, replace(sampler_cfg, num_steps=2))
    assert images.shape == (2, *data.image_shape) and torch.isfinite(images).all()
    assert nfe >= 1
    with torch.no_grad():  # encode and decode keep the shapes they promise
        z = family.encode(net, data.train[:2])
        assert z.shape == (2, *latent_shape)
        assert family.decode(net, z).shape == (2, *data.image_shape)

    # what the membership attacks use: eps at a family time, and x0 back from it
    x0 = z
    time = family.noise.time_at(0.3)
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(0))
    x_t = family.noise.noise_to(x0, time, noise)
    with torch.no_grad():
        eps = family.predict_eps(net, x_t, time)
    assert eps.shape == x0.shape and torch.isfinite(eps).all()
    torch.testing.assert_close(family.noise.predict_x0(x_t, time, noise), x0, atol=1e-4, rtol=1e-4)


def contract_model(family, data, mitigation, folder) -> TrainedModel:
    """The untrained network, or, for a mitigation that changes training (DP-SGD), the
    network after two steps of the shared loop through the mitigation's hook."""
    net = build_network(family, data.image_shape, 0).eval()
    if not mitigation.changes_training:
        return TrainedModel(family, net, "contract", data.image_shape)
    two_steps = TrainConfig(steps=2, batch_size=4, warmup_steps=1, checkpoint_every=2)
    cfg = replace(mitigation.train_config(two_steps), steps=2, batch_size=4)
    net, stats = train(family, data.train, cfg, folder, progress=False)
    assert stats["train_steps"] == 2
    return TrainedModel(family, net, "contract", data.image_shape, stats)


@pytest.mark.smoke
@pytest.mark.parametrize("mitigation_name", MITIGATIONS)
def test_mitigation_contract(mitigation_name, memobench_session, tmp_path):
    from benchmark.models.dummy import DummyFamily

    cls = registry.mitigations.get(mitigation_name)
    assert cls.name == mitigation_name
    family = DummyFamily(DummyFamily.smoke_configs()[0])
    data = memobench_session.dataset(DataConfig(n_train=8))
    params = cls.Params
    assert dataclasses.is_dataclass(params) and params.__dataclass_params__.frozen, (
        f"{mitigation_name}: Params must be a frozen dataclass of the parameters"
    )
    for settings in (*cls.suite_settings, cls.quick_params):
        cls(**settings)  # the settings it declares are its own, of the right types
    mitigation = cls(**cls.quick_params)
    model = contract_model(family, data, mitigation, tmp_path)
    features = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(data.train[0].numel(), 8))
    context = MitigationContext(data=data, features=features)
    state = dict(vars(mitigation))
    prepared = mitigation.prepare(model, context)
    assert isinstance(prepared, Prepared), (
        f"{mitigation_name}.prepare() must return a Prepared (what sampling needs), got "
        f"{type(prepared).__name__}"
    )
    out = mitigation.generate(model, prepared, torch.arange(3), SamplerConfig(num_steps=2))
    assert out.images.shape == (3, *data.image_shape) and torch.isfinite(out.images).all()
    assert out.nfe >= 2
    assert isinstance(out.mitigation, dict)
    assert vars(mitigation) == state, "what prepare builds travels in Prepared, not on self"
    guidance = prepared.guidance()
    if guidance is not None:  # the hook keeps the shape of eps
        x, eps = torch.randn(2, *data.image_shape), torch.randn(2, *data.image_shape)
        t = torch.tensor(family.noise.time_at(0.5))
        assert guidance(x, t, eps).shape == eps.shape


SAMPLERS = registry.samplers.names()
MU, S = 0.5, 0.3  # the contract's data: every pixel N(MU, S^2), whose score is known


def gaussian_eps(sde):
    """The exact noise estimate of that data under ``sde``: a perfect network."""

    def eps_fn(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        m, sd = sde.mean_coef(t), sde.std(t)
        return (sd * (x - m * MU) / (m**2 * S**2 + sd**2)).to(x.dtype)

    return eps_fn


@pytest.mark.smoke
@pytest.mark.parametrize("sampler_name", SAMPLERS)
def test_sampler_contract(sampler_name, memobench_session):
    """A score-SDE sampler draws the contract's Gaussian data from its exact score; any
    other sampler draws images of the right shape through every family that lists it."""
    from benchmark.models.subvp_sde import SubVPSDE
    from benchmark.samplers.base import ScoreSampler

    cls = registry.samplers.get(sampler_name)
    assert cls.name == sampler_name
    assert dataclasses.is_dataclass(cls.Params) and cls.Params.__dataclass_params__.frozen, (
        f"sampler {sampler_name}: Params must be a frozen dataclass of its settings"
    )
    sampler = cls(SamplerConfig(name=sampler_name, num_steps=100))
    if issubclass(cls, ScoreSampler):
        sde, gen = SubVPSDE(), torch.Generator().manual_seed(0)
        x = torch.randn(512, 1, 4, 4, generator=gen)

        def randn_like(v: torch.Tensor) -> torch.Tensor:
            return torch.randn(v.shape, generator=gen, dtype=v.dtype)

        with torch.no_grad():
            out, nfe = sampler.sample(gaussian_eps(sde), sde, x, None, randn_like)
        assert out.shape == x.shape and torch.isfinite(out).all() and nfe >= 1
        assert abs(float(out.mean()) - MU) < 0.05 and abs(float(out.std()) - S) < 0.05, (
            f"{sampler_name} drew mean {float(out.mean()):.3f}, std {float(out.std()):.3f} "
            f"from the exact score of N({MU}, {S}^2)"
        )
        if not cls.adaptive:
            grid = sampler.grid(sde)
            assert (grid[1:] < grid[:-1]).all(), "the grid descends"
            step = sampler.step(gaussian_eps(sde), sde, x, grid[0], grid[1], randn_like)
            assert step.shape == x.shape and sampler.step_nfe() >= 1
        return
    families = [n for n in FAMILIES if sampler_name in registry.models.get(n).samplers]
    assert families, (
        f"sampler {sampler_name!r} is not a score-SDE sampler and no registered family lists "
        f"it in its samplers: nothing would ever call it"
    )
    for name in families:
        family_cls = registry.models.get(name)
        family = family_cls(family_cls.smoke_configs()[0])
        data = memobench_session.dataset(DataConfig(n_train=8))
        net = build_network(family, data.image_shape, 0).eval()
        config = replace(family_cls.smoke_configs()[2], name=sampler_name, num_steps=3)
        latents = seeded_latents(torch.arange(2), family.latent_shape(data.image_shape))
        with torch.no_grad():
            images, nfe = family.sample(net, latents, config)
        assert images.shape == (2, *data.image_shape) and torch.isfinite(images).all(), name
        assert nfe == 3 * sampler.step_nfe(), name


def shadow_for(cls, family, data, members) -> dict:
    """``shadow=`` for an attack that learns on a shadow model (another network of the
    family, on other images), nothing for the rest."""
    from benchmark.attacks.base import Shadow

    if not cls.trains_on_shadow:
        return {}
    net = build_network(family, data.image_shape, 1).eval()
    shadow = TrainedModel(family, net, "contract-shadow", data.image_shape)
    return {"shadow": Shadow(shadow, members, data.heldout[-members.shape[0] :])}


@pytest.mark.smoke
@pytest.mark.parametrize("attack_name", ATTACKS)
def test_attack_contract(attack_name, memobench_session):
    from benchmark.attacks.base import MembershipAttack
    from benchmark.models.dummy import DummyFamily

    cls = registry.attacks.get(attack_name)
    assert issubclass(cls, MembershipAttack) and cls.name == attack_name
    attack = cls()
    assert cls.needs in THREAT_MODELS, f"{attack_name} needs an unknown threat model"
    least = 0 if cls.needs == SAMPLES_ONLY else 1  # a samples-only attack queries nothing
    assert isinstance(attack.queries_per_image, int) and attack.queries_per_image >= least
    family = DummyFamily(DummyFamily.smoke_configs()[0])
    data = memobench_session.dataset(DataConfig(n_train=8))
    model = TrainedModel(
        family, build_network(family, data.image_shape, 0).eval(), "contract", data.image_shape
    )
    members, nonmembers, samples = data.train[:4], data.heldout[:4], data.train[4:8]
    kw = dict(samples=samples, seed=0, **shadow_for(cls, family, data, samples))
    m, h = attack.score_sets(model, members, nonmembers, **kw)
    assert m.shape == (4,) and h.shape == (4,) and torch.isfinite(torch.cat([m, h])).all()
    again = attack.score_sets(model, members, nonmembers, **kw)
    torch.testing.assert_close(torch.cat([m, h]), torch.cat(again), check_dtype=False)


@pytest.mark.smoke
@pytest.mark.parametrize("family_name", FAMILIES)
def test_family_runs_tstar_every_attack_and_every_mitigation(
    family_name, memobench_session, tmp_path
):
    """What the audit asks of a family beyond sampling, on its untrained smoke network:
    t* runs its solver from a noised image, every attack scores through its noise
    process, and every mitigation's guidance hook goes through its sampler."""
    from benchmark.attacks.base import get_attack
    from benchmark.measures.tstar import tstar

    family_cls = registry.models.get(family_name)
    model_cfg, _, sampler_cfg = family_cls.smoke_configs()
    family = family_cls(model_cfg)
    sampler = replace(sampler_cfg, num_steps=2)
    data = memobench_session.dataset(DataConfig(n_train=8, saf=True))
    net = build_network(family, data.image_shape, seed=0).eval()
    model = TrainedModel(family, net, "contract", data.image_shape)

    result = tstar(model, data, lambda x: torch.zeros(len(x), dtype=torch.bool), sampler, m=1,
                   levels=[0.5, 0.0])  # fmt: skip
    assert result.t_star == -1 and result.hits == [0, 0], "no hit from a detector that never fires"

    for name in ATTACKS:
        cls = registry.attacks.get(name)
        attack = get_attack(name, **cls.quick_params)
        shadow = shadow_for(cls, family, data, data.train[3:6])
        m, h = attack.score_sets(
            model, data.train[:3], data.heldout[:3], samples=data.train[3:6], **shadow
        )
        assert m.shape == h.shape == (3,) and torch.isfinite(torch.cat([m, h])).all(), name

    features = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(data.train[0].numel(), 8))
    for name in MITIGATIONS:
        cls = registry.mitigations.get(name)
        mitigation = cls(**cls.quick_params)
        joins = family_cls.suite_mitigations
        if mitigation.changes_training and joins is not None and name not in joins:
            continue  # a training-time mitigation the family refuses (its prepare says why)
        # a training-time mitigation trains the family's own network through its hook
        mitigated = contract_model(family, data, mitigation, tmp_path / name)
        prepared = mitigation.prepare(mitigated, MitigationContext(data=data, features=features))
        out = mitigation.generate(mitigated, prepared, torch.arange(2), sampler)
        assert out.images.shape == (2, *data.image_shape), name
        assert torch.isfinite(out.images).all(), name


@pytest.mark.smoke
def test_every_registered_metric_is_computed_on_a_case(tmp_path):
    """A registered metric (``CaseMetric``) appears in every audited case's record: its
    columns' keys, or ``<name>_skipped`` with the reason."""
    from benchmark.audit import run_case
    from benchmark.display import Column
    from benchmark.metrics.base import CaseMetric, metric_classes
    from benchmark.metrics.base import schema as record_schema
    from benchmark.record import METRIC_SECONDS, METRIC_SKIPPED, resolve
    from benchmark.session import Session
    from benchmark.tiers import Rehearsal, smoke_case

    session = Session(tmp_path, n_gen=4, rehearsal=Rehearsal(), progress=False)
    base = smoke_case("dummy", 32, n_gen=4)
    # with a shadow model, so the attacks that learn on one run too
    case = replace(
        base, train=replace(base.train, steps=2), sampler=SamplerConfig(num_steps=2), shadow=True
    )
    record = run_case(case, session).metrics
    schema = record_schema()
    for key, value in record.items():  # every entry is declared, with a value of its kind
        field = resolve(key, schema)
        assert field is not None, f"record entry {key!r} is declared by no field"
        assert field.problem(value) is None, (key, field.problem(value))
    for cls in metric_classes():
        assert issubclass(cls, CaseMetric) and cls.name in registry.metrics
        cols = cls.columns()
        assert all(isinstance(c, Column) for c in cols), cls.name
        undeclared = [c.key for c in cols if resolve(c.key, cls.fields) is None]
        assert not undeclared, f"metric {cls.name!r} shows columns it does not declare"
        skipped = record.get(METRIC_SKIPPED(metric=cls.name))
        if skipped is None:
            missing = [c.key for c in cols if c.key not in record]
            assert not missing, f"metric {cls.name!r} did not record its columns {missing}"
            assert record[METRIC_SECONDS(metric=cls.name)] >= 0
        else:
            assert isinstance(skipped, str) and skipped, cls.name
