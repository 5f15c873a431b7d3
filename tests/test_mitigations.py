"""CPSample and rejection sampling: parameters, the guidance rule, the checks on their inputs."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F

from benchmark.cache import Cache
from benchmark.config import DataConfig, MitigationConfig, SamplerConfig
from benchmark.data import load_dataset
from benchmark.errors import ConfigError
from benchmark.mitigations.base import MitigationContext, Prepared
from benchmark.mitigations.cpsample import CPSample
from benchmark.mitigations.none import NoMitigation
from benchmark.mitigations.random_label_classifier import load_classifier, train_classifier
from benchmark.mitigations.rejection import RejectionSampling
from benchmark.models.base import TrainedModel
from benchmark.models.dummy import DummyFamily
from benchmark.models.training import build_network


@pytest.fixture(scope="module")
def data():
    return load_dataset(DataConfig(n_train=16, saf=True))


@pytest.fixture(scope="module")
def model(data):
    family = DummyFamily(DummyFamily.smoke_configs()[0])
    return TrainedModel(
        family, build_network(family, data.image_shape, 0).eval(), "t", data.image_shape
    )


@pytest.fixture(scope="module")
def classifier_payload(model, data):
    return train_classifier(model.family, data, steps=150, batch_size=64, seed=0)


@pytest.mark.parametrize("alpha", [0.0, 0.5, 0.7, -0.1])
def test_cpsample_alpha_must_be_in_open_zero_half(alpha):
    with pytest.raises(ConfigError, match=r"alpha is the confidence threshold in \(0, 1/2\)"):
        CPSample(alpha=alpha)


def test_cpsample_rejects_negative_scale_and_unknown_parameters():
    with pytest.raises(ConfigError, match="scale s must be >= 0, got -1"):
        CPSample(scale=-1)
    with pytest.raises(ConfigError, match="no parameter.*'beta'.*takes"):
        CPSample(beta=1)


def test_parameters_are_typed_and_frozen():
    """A value of the wrong type is refused on construction, naming the parameter and the
    type; an int passes for a float; the built parameters cannot change afterwards."""
    with pytest.raises(ConfigError, match="'alpha' must be a number, got '0.1'"):
        CPSample(alpha="0.1")
    with pytest.raises(ConfigError, match="'classifier_steps' must be a whole number, got 2.5"):
        CPSample(classifier_steps=2.5)
    with pytest.raises(ConfigError, match="'tau' must be a number or None"):
        RejectionSampling(tau="high")
    cp = CPSample(scale=3)
    assert cp.params.scale == 3 and cp.params.alpha == CPSample.defaults()["alpha"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        cp.params.alpha = 0.4
    assert cp.config == MitigationConfig(
        "cpsample", {"alpha": 0.001, "scale": 3, "classifier_steps": 800}
    )


def test_cpsample_needs_its_data_before_sampling(model):
    cp = CPSample()
    with pytest.raises(TypeError, match="takes what prepare\\(\\) returned"):
        cp.generate(model, None, torch.arange(2), SamplerConfig(num_steps=2))
    with pytest.raises(ConfigError, match="needs the case's training images"):
        cp.prepare(model)


def test_classifier_overfits_the_random_labels(classifier_payload):
    m = classifier_payload["metrics"]
    assert m["train_accuracy_t0.05"] >= 0.9, m
    assert 0.15 <= m["heldout_accuracy_t0.05"] <= 0.85, "labels carry no signal off the train set"


def test_classifier_for_other_data_is_refused(model, data, classifier_payload):
    clf = load_classifier(classifier_payload)
    other = load_dataset(DataConfig(n_train=32, saf=True))
    with pytest.raises(ConfigError, match="trained on 'digits' with N_train=16.*N_train=32"):
        CPSample().with_classifier(clf, model, other)
    clf.family = "subvp"
    with pytest.raises(ConfigError, match="'subvp' noise process"):
        CPSample().with_classifier(clf, model, data)


def test_guidance_is_the_papers_rule(model, data, classifier_payload):
    """eps_hat = eps + s * sigma_t * grad log c where c > 1 - alpha, else eps."""
    clf = load_classifier(classifier_payload)
    cp = CPSample(alpha=0.1, scale=3.0)
    guide = cp.with_classifier(clf, model, data).guidance()
    time = model.family.noise.time_at(0.05)
    t = torch.tensor(time)
    x = model.family.noise.noise_to(data.train[:8], time, torch.randn(8, *data.image_shape))
    eps = torch.randn_like(x)
    out = guide(x, t, eps)

    x_in = x.clone().requires_grad_(True)
    logit = clf.net(x_in, torch.tensor(model.family.noise.fraction_of(time)))
    (grad,) = torch.autograd.grad(F.logsigmoid(logit.abs()).sum(), x_in)
    fire = (logit.abs() > math.log(0.9 / 0.1)).view(-1, 1, 1, 1)
    expected = eps + 3.0 * model.family.noise.noise_std(time) * grad * fire
    torch.testing.assert_close(out, expected)
    assert fire.any(), "the overfit classifier is confident on training images at small t"

    # the guided eps moves the predicted x0 towards lower confidence
    x0 = model.family.noise.predict_x0(x, time, out)
    x0_plain = model.family.noise.predict_x0(x, time, eps)
    tf = torch.tensor(model.family.noise.fraction_of(time))
    with torch.no_grad():
        c_guided = F.logsigmoid(clf.net(x0, tf).abs())
        c_plain = F.logsigmoid(clf.net(x0_plain, tf).abs())
    assert (c_guided[fire.flatten()] <= c_plain[fire.flatten()] + 1e-6).all()

    nothing = CPSample(alpha=1e-12, scale=3.0).with_classifier(clf, model, data)
    torch.testing.assert_close(nothing.guidance()(x, t, eps), eps)


def test_cpsample_caches_its_classifier_and_records_what_it_did(model, data, tmp_path):
    ctx = MitigationContext(data=data, cache=Cache(tmp_path))
    cp = CPSample(alpha=0.1, scale=1.0, classifier_steps=5)
    prepared = cp.prepare(model, ctx)
    assert len(list((tmp_path / "mitigations").glob("*.safetensors"))) == 1
    out = cp.generate(model, prepared, torch.arange(5), SamplerConfig(num_steps=3))
    rec = out.mitigation
    assert out.images.shape == (5, *data.image_shape)
    assert 0 <= rec["guided_step_fraction"] <= 1 and 0 <= rec["guided_sample_fraction"] <= 1
    assert {"classifier_train_accuracy_t0.05", "guidance_seconds"} <= set(rec)
    again = CPSample(alpha=0.1, scale=1.0, classifier_steps=5).prepare(model, ctx)
    assert len(list((tmp_path / "mitigations").glob("*.safetensors"))) == 1, "from the cache"
    x, t, eps = data.train[:4], torch.tensor(20), torch.randn(4, *data.image_shape)
    torch.testing.assert_close(again.guidance()(x, t, eps), prepared.guidance()(x, t, eps))


def test_what_a_guidance_did_is_counted_per_draw(model, data):
    """The record of a draw is that draw's alone: querying the same guidance again (as t*
    and the attacks do after sampling) or drawing again counts nothing twice."""
    acted_on_first = {"n": 0}

    def hook(x, t, eps):  # acts on the first image of every call
        fire = torch.zeros(x.shape[0], dtype=torch.bool)
        fire[0] = True
        acted_on_first["n"] += 1
        return eps, fire

    prepared = Prepared(hook=hook, stats={"known": 1})
    sampler, mitigation = SamplerConfig(num_steps=4), NoMitigation()
    first = mitigation.generate(model, prepared, torch.arange(6), sampler, batch_size=3)
    for _ in range(5):
        prepared.guidance()(data.train[:6], torch.tensor(10), torch.zeros(6, *data.image_shape))
    second = mitigation.generate(model, prepared, torch.arange(6), sampler, batch_size=3)
    assert first.mitigation["known"] == 1
    assert first.mitigation["guided_step_fraction"] == pytest.approx(1 / 3)  # 1 of each 3
    assert first.mitigation["guided_sample_fraction"] == pytest.approx(2 / 6)
    drop = ("guidance_seconds", "guidance_seconds_per_image_step")
    assert {k: v for k, v in second.mitigation.items() if k not in drop} == {
        k: v for k, v in first.mitigation.items() if k not in drop
    }
    assert acted_on_first["n"] == 2 * 2 * 4 + 5  # 2 draws x 2 batches x 4 steps, and 5 queries


# -- rejection sampling --------------------------------------------------------------------
def _flatten():
    return torch.nn.Flatten()


def test_rejection_parameters_are_checked(model, data):
    with pytest.raises(ConfigError, match="quantile must be in"):
        RejectionSampling(quantile=1.5)
    with pytest.raises(ConfigError, match="budget"):
        RejectionSampling(budget=0)
    with pytest.raises(ConfigError, match="tau is a cosine similarity"):
        RejectionSampling(tau=2)
    with pytest.raises(ConfigError, match="needs the replication feature extractor"):
        RejectionSampling().prepare(model, MitigationContext(data=data))


def test_rejection_accepts_what_passes_and_stops_at_the_budget(model, data):
    sampler = SamplerConfig(num_steps=2)
    keep_all = RejectionSampling(tau=1.0)
    ready = keep_all.prepare(model, MitigationContext(data=data, features=_flatten()))
    out = keep_all.generate(model, ready, torch.arange(4), sampler)
    assert out.mitigation["draws"] == 4 and out.mitigation["acceptance_rate"] == 1.0
    assert out.nfe == 2

    reject_all = RejectionSampling(tau=-1.0, budget=3)
    ready = reject_all.prepare(model, MitigationContext(data=data, features=_flatten()))
    out = reject_all.generate(model, ready, torch.arange(4), sampler)
    rec = out.mitigation
    assert rec["draws"] == 12 and rec["budget_exhausted"] and rec["accepted_fraction"] == 0.0
    assert out.images.shape == (4, *data.image_shape) and out.nfe == 6  # 3 draws x 2 steps
    assert torch.isfinite(out.images).all()


def test_rejection_threshold_is_calibrated_on_heldout_images(model, data):
    rs = RejectionSampling(quantile=0.5).prepare(
        model, MitigationContext(data=data, features=_flatten())
    )
    from benchmark.measures.feature_replication import nearest_cosine

    held, _ = nearest_cosine(data.heldout.flatten(1), data.train.flatten(1))
    assert rs.threshold == pytest.approx(float(torch.quantile(held.double(), 0.5)))


def test_an_identical_plain_draw_is_shared_and_a_guided_one_is_not(data):
    """Cases of one model drawing the same seeds (``none`` and rejection's first round)
    share the images; they are the images a fresh model object would draw."""
    family = DummyFamily(DummyFamily.smoke_configs()[0])

    def fresh() -> TrainedModel:
        net = build_network(family, data.image_shape, 0).eval()
        return TrainedModel(family, net, "k", data.image_shape)

    model = fresh()
    calls = []
    sample = family.sample

    def counting(*args, **kwargs):
        calls.append(1)
        return sample(*args, **kwargs)

    family.sample = counting
    sampler = SamplerConfig(num_steps=3)
    first = model.generate(torch.arange(6), sampler)
    again = model.generate(torch.arange(6), sampler)
    assert len(calls) == 1 and again.reused and not first.reused
    assert torch.equal(first.images, again.images) and again.seconds == first.seconds
    again.images.add_(1)  # a caller's change does not reach the shared copy
    assert torch.equal(model.generate(torch.arange(6), sampler).images, first.images)

    model.generate(torch.arange(1, 7), sampler)  # other seeds: drawn
    model.generate(torch.arange(1, 7), sampler, guidance=lambda x, t, eps: eps)  # guided: drawn
    model.generate(torch.arange(1, 7), SamplerConfig(num_steps=4))  # other sampler: drawn
    assert len(calls) == 4

    family.sample = sample
    assert torch.equal(fresh().generate(torch.arange(6), sampler).images, first.images)
