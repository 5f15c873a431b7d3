"""The GPU path's device discipline, checked on the CPU (``tests/cuda_discipline.py``).

Every registered family's loss and sampler, every mitigation's preparation and sampling
(its guidance hook, its classifier's training), every attack's scoring and the
detectors run on a fake CUDA device: an op mixing CUDA and CPU tensors, or a random
draw whose generator is on another device than its output, fails here as it would on
a GPU. A plugin family, mitigation or attack is checked the same way.

Found by it (fixed): CPSample's classifier drew its training noise and its accuracy
check's noise with CPU generators into CUDA tensors (``Expected a 'cuda' device type
for generator`` on every GPU run of a CPSample case).
"""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from benchmark import registry
from benchmark.attacks.base import Shadow
from benchmark.config import DataConfig, SamplerConfig
from benchmark.data import load_dataset
from benchmark.mitigations.base import MitigationContext
from benchmark.mitigations.dp_sgd import STATS as DP_STATS
from benchmark.models.base import TrainedModel
from benchmark.models.store import family_for
from benchmark.tiers import smoke_case, suite_names
from tests.cuda_discipline import DeviceDisciplineError, on_fake_cuda

FAMILIES = [f for f in registry.models.names()]
MITIGATIONS = suite_names(registry.mitigations)
ATTACKS = registry.attacks.names()


@pytest.fixture(scope="module")
def data():
    return load_dataset(DataConfig(n_train=16, saf=True))


def _model(family_name: str, data, stats: dict | None = None) -> TrainedModel:
    family = family_for(smoke_case(family_name, 16).model)
    net = family.build_network(data.image_shape).to("cuda").eval()
    return TrainedModel(family, net, f"fake-{family_name}", tuple(data.image_shape), stats or {})


def _sampler(family_name: str) -> SamplerConfig:
    return replace(smoke_case(family_name, 16).sampler, num_steps=2)


def test_the_check_fails_on_a_cpu_generator_drawing_into_cuda():
    cpu_generator = pytest.raises(DeviceDisciplineError, match="generator on cpu, output on cuda")
    with cpu_generator, on_fake_cuda():
        torch.randn(2, generator=torch.Generator().manual_seed(0), device="cuda")
    with pytest.raises(RuntimeError, match="same device"), on_fake_cuda():
        torch.zeros(2, device="cuda") + torch.zeros(2)
    with on_fake_cuda() as mode:  # the right way passes, and a host sync is counted
        x = torch.randn(2, generator=torch.Generator(device="cuda").manual_seed(0), device="cuda")
        assert x.device.type == "cuda"
        float(x.sum())
    assert sum(mode.syncs.values()) == 1


@pytest.mark.parametrize("family", FAMILIES)
def test_training_loss_on_cuda(family, data):
    with on_fake_cuda():
        model = _model(family, data)
        gen = torch.Generator(device="cuda").manual_seed(0)  # as the training loop makes it
        loss = model.family.loss(model.net, data.train[:4].to("cuda"), gen)
        assert loss.device.type == "cuda"


@pytest.mark.parametrize("mitigation", MITIGATIONS)
@pytest.mark.parametrize("family", FAMILIES)
def test_sampling_through_each_mitigation_on_cuda(family, mitigation, data):
    cls = registry.mitigations.get(mitigation)
    with on_fake_cuda():
        # a training-time mitigation's model carries its training's record (DP-SGD's epsilon)
        model = _model(family, data, {f"dp_{k}": 1e-5 if k == "delta" else 1.0 for k in DP_STATS})
        mit = cls(**cls.quick_params)
        context = MitigationContext(data=data, cache=None, device="cuda", features=_features)
        prepared = mit.prepare(model, context)
        result = mit.generate(model, prepared, torch.arange(4), _sampler(family), device="cuda",
                              batch_size=4)  # fmt: skip
        # (a loop that runs until a condition read on the host stops at the first read:
        # rejection's redraws are checked up to there)
        assert result.images.dim() in (1, 4)


def _features():
    from benchmark.metrics.independent_replication import RandomFeatures

    return RandomFeatures(1).to("cuda")


@pytest.mark.parametrize("attack", ATTACKS)
@pytest.mark.parametrize("family", FAMILIES)
def test_attack_scoring_on_cuda(family, attack, data):
    cls = registry.attacks.get(attack)
    with on_fake_cuda():
        model = _model(family, data)
        samples = torch.zeros(4, *data.image_shape)  # the audit keeps samples on the host
        # an attack that learns on a shadow model gets one (the model itself will do here)
        shadow = {"shadow": Shadow(model, data.train[8:12], data.heldout[8:12])}
        members, nonmembers = cls(**cls.quick_params).score_sets(
            model, data.train[:8], data.heldout[:8], samples=samples, device="cuda", batch_size=4,
            **(shadow if cls.trains_on_shadow else {}),
        )  # fmt: skip
        assert members.shape == nonmembers.shape == (8,)


# Host syncs per sampler step on a GPU, measured with this check (``Discipline.syncs``),
# each with its reason. A new sync in a step loop shows here; the budget is the count
# today, to be lowered as the loops move onto the device.
SYNCS_PER_STEP = {
    # none: alpha-bar is looked up by host timesteps (it was indexed by the device
    # timestep, one sync a step)
    "ddim": 0,
    # none: the finiteness of every step is watched on the device and read once at the
    # end (it was read every step)
    "subvp": 0,
}


@pytest.mark.parametrize("family", list(SYNCS_PER_STEP))
def test_host_syncs_per_sampler_step_stay_within_their_budget(family, data):
    counts = []
    for steps in (2, 4):
        with on_fake_cuda() as mode:
            model = _model(family, data)
            sampler = replace(_sampler(family), num_steps=steps)
            model.generate(torch.arange(4), sampler, device="cuda", batch_size=4)
        counts.append(sum(mode.syncs.values()))
    per_step = (counts[1] - counts[0]) / 2
    assert per_step <= SYNCS_PER_STEP[family], (family, per_step, dict(mode.syncs))


def test_gsa_syncs_once_per_image(data):
    """GSA's gradient norms are stacked on the device and copied once an image (they were
    read one parameter tensor at a time: one sync per tensor per image)."""
    cls = registry.attacks.get("gsa")
    counts = []
    for n in (4, 8):
        with on_fake_cuda() as mode:
            model = _model("ddim", data)
            cls(**cls.quick_params).gradient_features(model, data.train[:n], device="cuda")
        counts.append(sum(mode.syncs.values()))
    assert (counts[1] - counts[0]) / 4 <= 1, counts


@pytest.mark.parametrize("family", ["ddim", "subvp"])
def test_the_training_loop_runs_on_cuda_with_one_sync_per_logging_window(family, tmp_path):
    """The shared training loop on a fake GPU: no device error, and the loss read on the
    host once per LOSS_LOG_EVERY steps (it was read, and checked, every step)."""
    from benchmark.models.store import family_for
    from benchmark.models.training import LOSS_LOG_EVERY, train
    from tests.helpers import TINY_TRAIN

    data = load_dataset(DataConfig(n_train=16))
    images = torch.nn.functional.avg_pool2d(data.train, 2)
    counts = []
    for steps in (LOSS_LOG_EVERY, 3 * LOSS_LOG_EVERY):
        cfg = replace(TINY_TRAIN, steps=steps, checkpoint_every=10_000)
        with on_fake_cuda() as mode:
            model = family_for(replace(smoke_case(family, 16).model, block_out_channels=(8, 8)))
            train(model, images, cfg, tmp_path / f"{family}-{steps}", device="cuda", progress=False)
        counts.append(sum(mode.syncs.values()))
    assert (counts[1] - counts[0]) / (2 * LOSS_LOG_EVERY) <= 1 / LOSS_LOG_EVERY, counts
