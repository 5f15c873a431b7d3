"""Train-or-load through the cache, and auditing a user's own diffusers checkpoint."""

import json
import logging
from dataclasses import replace

import pytest
import torch

from benchmark.cache import Cache
from benchmark.config import DataConfig, ModelConfig
from benchmark.data import load_dataset
from benchmark.errors import CheckpointError, ConfigError
from benchmark.models.ddpm import DDIMFamily
from benchmark.models.store import get_trained, load_pretrained
from tests.helpers import TINY_MODEL, TINY_SAMPLER, TINY_TRAIN

DUMMY = replace(TINY_MODEL, family="dummy")


@pytest.fixture(scope="module")
def data():
    return load_dataset(DataConfig(n_train=16))


def test_second_run_reuses_the_cache(tmp_path, data, caplog):
    cache = Cache(tmp_path)
    first = get_trained(DUMMY, TINY_TRAIN, data, cache, progress=False)
    with caplog.at_level(logging.INFO):
        second = get_trained(DUMMY, TINY_TRAIN, data, cache, progress=False)
    assert not first.stats["reused"] and second.stats["reused"]
    assert "reusing cached dummy model" in caplog.text
    for k, v in first.net.state_dict().items():
        assert torch.equal(v, second.net.state_dict()[k])
    assert second.stats["train_seconds"] == first.stats["train_seconds"]
    # another config is another entry
    third = get_trained(DUMMY, replace(TINY_TRAIN, lr=5e-4), data, cache, progress=False)
    assert third.key != first.key and not third.stats["reused"]


def test_truncated_model_entry_is_moved_aside_and_retrained(tmp_path, data, caplog):
    cache = Cache(tmp_path)
    model = get_trained(DUMMY, TINY_TRAIN, data, cache, progress=False)
    path = cache.path("models", model.key)
    path.write_bytes(path.read_bytes()[:200])
    with caplog.at_level(logging.WARNING):
        again = get_trained(DUMMY, TINY_TRAIN, data, cache, progress=False)
    assert not again.stats["reused"]
    assert "corrupt or truncated" in caplog.text and "rebuilding" in caplog.text
    assert list(path.parent.glob(f"{path.name}.corrupt-*"))


def test_cache_entry_of_another_config_is_moved_aside(tmp_path, data, caplog):
    cache = Cache(tmp_path)
    a = get_trained(DUMMY, TINY_TRAIN, data, cache, progress=False)
    b_train = replace(TINY_TRAIN, seed=1)
    b = get_trained(DUMMY, b_train, data, cache, progress=False)
    cache.path("models", a.key).replace(cache.path("models", b.key))  # wrong file under b's key
    with caplog.at_level(logging.WARNING):
        again = get_trained(DUMMY, b_train, data, cache, progress=False)
    assert "another config" in caplog.text and not again.stats["reused"]


@pytest.fixture()
def saved_model(tmp_path):
    """A tiny 16x16 DDIM model saved the way a user would (DDPMPipeline layout)."""
    family = DDIMFamily(ModelConfig(block_out_channels=(4, 8), norm_num_groups=4))
    torch.manual_seed(0)
    net = family.build_network((1, 16, 16))
    folder = tmp_path / "my-model"
    family.save_pretrained(net, folder)
    return folder, net


def test_load_pretrained_audits_the_users_model(saved_model, data):
    folder, net = saved_model
    model = load_pretrained(folder, "ddim", data)
    for k, v in net.state_dict().items():
        assert torch.equal(v, model.net.state_dict()[k])
    out = model.generate([0, 1], TINY_SAMPLER)
    assert out.images.shape == (2, 1, 16, 16) and out.nfe == 3
    assert model.stats["source"].startswith("pretrained")


def test_bare_unet_folder_loads(tmp_path, saved_model, data):
    folder, _ = saved_model
    model = load_pretrained(folder / "unet", "ddim", data)
    assert model.family.config.block_out_channels == (4, 8)


def test_pretrained_errors(tmp_path, saved_model, data):
    folder, _ = saved_model
    with pytest.raises(CheckpointError, match="does not exist"):
        load_pretrained(tmp_path / "nope", "ddim", data)
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="not a diffusers checkpoint"):
        load_pretrained(tmp_path / "empty", "ddim", data)
    cfg = folder / "unet" / "config.json"
    cfg.write_text(json.dumps(dict(json.loads(cfg.read_text()), _class_name="VQModel")))
    with pytest.raises(CheckpointError, match="VQModel"):
        load_pretrained(folder, "ddim", data)


def test_pretrained_of_another_family_or_corrupt(tmp_path, saved_model, data):
    folder, _ = saved_model
    weights = next((folder / "unet").glob("diffusion_pytorch_model.*"))
    weights.write_bytes(weights.read_bytes()[:64])
    with pytest.raises(CheckpointError, match="could not load the UNet weights"):
        load_pretrained(folder, "ddim", data)
    (folder / "memobench.json").write_text(json.dumps({"family": "subvp"}))
    with pytest.raises(CheckpointError, match="holds a 'subvp' model"):
        load_pretrained(folder, "ddim", data)


def test_pretrained_for_another_image_size(saved_model):
    folder, _ = saved_model
    other = load_dataset(DataConfig(n_train=16))
    other.train = other.train[:, :, :8, :8]
    other.heldout = other.heldout[:, :, :8, :8]
    with pytest.raises(ConfigError, match="pass the dataset the model was trained on"):
        load_pretrained(folder, "ddim", other)


def test_stored_audits_are_keyed_on_the_code_that_measured_them(tmp_path, monkeypatch):
    """A change to a plugin's file (or to memobench) must not reuse an audit it measured."""
    import importlib
    import sys

    from benchmark.audit import code_fingerprint

    mod = tmp_path / "my_mitigation.py"
    mod.write_text("class M:\n    scale = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    first = importlib.import_module("my_mitigation")
    before = code_fingerprint(first.M)
    assert code_fingerprint(first.M) == before, "stable while nothing changes"
    mod.write_text("class M:\n    scale = 2\n")
    del sys.modules["my_mitigation"]
    second = importlib.import_module("my_mitigation")
    assert code_fingerprint(second.M) != before


def test_prefetch_builds_the_classifiers_and_audits_beside_the_models(tmp_path):
    """A cold prefetch trains the models, builds C_SAF, C_ID and the feature classifier and
    audits the cases in the pool; the run's own calls then load them, under the keys they
    would have built them with, and the workers' audits give the figures an audit in
    this process gives (marked as audited in this run, not reused)."""
    from benchmark.audit import run_case
    from benchmark.pool import TrainSpec
    from benchmark.prefetch import prefetch
    from benchmark.record import AUDIT_REUSED
    from benchmark.session import Session
    from benchmark.tiers import Rehearsal, smoke_case

    session = Session(tmp_path, rehearsal=Rehearsal(), progress=False)
    cases = [session.settings.scaled(smoke_case("dummy", n, n_gen=4)) for n in (32, 64)]
    specs = [TrainSpec(c.model, c.train, c.data) for c in cases]
    prefetch(session, specs, cases)
    stored = {p.parent.name for p in tmp_path.rglob("*.safetensors")}
    assert {"models", "detectors", "features", "audits"} <= stored, stored
    assert len(list((tmp_path / "detectors").glob("*.safetensors"))) == 4  # 2 kinds x 2 splits
    assert len(session.log.trained) == 2 and len(session.log.audited) == 2
    for case in cases:
        c_saf, c_id = session.detectors(case.data)
        assert c_saf.metrics["reused"] and c_id.metrics["reused"]
    assert len(list((tmp_path / "features").glob("*.safetensors"))) == 1
    session.extractor(cases[0].data)  # loads, builds nothing
    assert len(list((tmp_path / "features").glob("*.safetensors"))) == 1

    here = Session(tmp_path, rehearsal=Rehearsal(), progress=False, reaudit=True)
    for case in cases:
        pooled, own = run_case(case, session), run_case(case, here)
        assert pooled.metrics[AUDIT_REUSED] is False and not pooled.reused
        assert len(list((tmp_path / "audits").glob("*.safetensors"))) == 2, "one key each"
        assert (pooled.samples.images == own.samples.images).all()
        for key, value in own.metrics.items():
            if isinstance(value, float) and "seconds" not in key and "per_second" not in key:
                assert pooled.metrics[key] == pytest.approx(value, abs=1e-6, nan_ok=True), key
