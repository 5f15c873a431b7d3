"""The contract every plugin must keep, run for every registered family and mitigation.

Cheap (no real training): a plugin that breaks the interface fails here in
seconds instead of minutes into a leakage case.
"""

from __future__ import annotations

import pytest
import torch

from benchmark import registry
from benchmark.config import DataConfig, SamplerConfig, replace
from benchmark.models.base import ModelFamily, TrainedModel, seeded_latents
from benchmark.models.training import build_network
from benchmark.tiers import suite_names

FAMILIES = suite_names(registry.models)
MITIGATIONS = suite_names(registry.mitigations)


@pytest.mark.smoke
@pytest.mark.parametrize("family_name", FAMILIES)
def test_family_contract(family_name, memobench_context):
    family_cls = registry.models.get(family_name)
    assert issubclass(family_cls, ModelFamily) and family_cls.name == family_name
    model_cfg, train_cfg, sampler_cfg = family_cls.smoke_configs()
    family = family_cls(model_cfg)
    data = memobench_context.dataset(DataConfig(n_train=8))
    net = build_network(family, data.image_shape, seed=0)

    loss = family.loss(net, data.train[:4], torch.Generator().manual_seed(0))
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    assert any(p.grad is not None for p in net.parameters())

    latents = seeded_latents(torch.tensor([0, 1]), data.image_shape)
    with torch.no_grad():
        images, nfe = family.sample(net.eval(), latents, replace(sampler_cfg, num_steps=2))
    assert images.shape == latents.shape and torch.isfinite(images).all()
    assert nfe >= 1


@pytest.mark.smoke
@pytest.mark.parametrize("mitigation_name", MITIGATIONS)
def test_mitigation_contract(mitigation_name, memobench_context):
    from benchmark.models.dummy import DummyFamily

    cls = registry.mitigations.get(mitigation_name)
    assert cls.name == mitigation_name
    family = DummyFamily(DummyFamily.smoke_configs()[0])
    data = memobench_context.dataset(DataConfig(n_train=8))
    model = TrainedModel(
        family, build_network(family, data.image_shape, 0).eval(), "contract", data.image_shape
    )
    mitigation = cls()
    mitigation.prepare(model)
    out = mitigation.generate(model, torch.arange(3), SamplerConfig(num_steps=2))
    assert out.images.shape == (3, *data.image_shape) and torch.isfinite(out.images).all()
