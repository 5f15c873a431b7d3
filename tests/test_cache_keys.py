"""What a cache entry is keyed on beyond its configs: the versions of the libraries that
compute it, so an upgrade of torch, diffusers, scipy or scikit-learn measures again
instead of reusing what the older version stored."""

from __future__ import annotations

import importlib.metadata

import pytest

from benchmark import environment
from benchmark.config import DataConfig, DetectorConfig
from benchmark.data import load_dataset
from benchmark.detectors.detector import detector_key
from benchmark.environment import library_versions
from benchmark.models.ddpm import DDIMFamily
from benchmark.models.store import model_key
from tests.helpers import TINY_MODEL, TINY_TRAIN


@pytest.fixture
def pretend_version(monkeypatch):
    """Make ``importlib.metadata`` report ``version`` for ``library``."""
    real = importlib.metadata.version

    def pretend(library: str, version: str) -> None:
        monkeypatch.setattr(
            environment.importlib.metadata,
            "version",
            lambda name: version if name == library else real(name),
        )
        library_versions.cache_clear()

    yield pretend
    library_versions.cache_clear()


def _keys():
    from benchmark.mitigations.dp_sgd import DPSGD

    data = load_dataset(DataConfig(n_train=16))
    family = DDIMFamily(TINY_MODEL)
    return {
        "model": model_key(family, TINY_TRAIN, data),
        "dp-model": model_key(family, DPSGD(epsilon=2.0).train_config(TINY_TRAIN), data),
        "detector": detector_key("saf", DetectorConfig(steps=3), data),
    }


def test_library_versions_are_the_installed_ones():
    assert dict(library_versions("torch", "scipy")) == {
        "torch": importlib.metadata.version("torch"),
        "scipy": importlib.metadata.version("scipy"),
    }
    assert library_versions("no-such-library-here") == (("no-such-library-here", None),)


@pytest.mark.parametrize(
    ("library", "changes"),
    [
        ("torch", {"model", "dp-model", "detector"}),
        ("diffusers", {"model", "dp-model"}),
        ("opacus", {"dp-model"}),  # only where it trains
        ("scipy", set()),
    ],
)
def test_an_upgrade_keys_what_it_computes_anew(pretend_version, library, changes):
    before = _keys()
    pretend_version(library, "999.0")
    after = _keys()
    assert {k for k in before if before[k] != after[k]} == changes


def test_the_audit_key_follows_scipy_and_scikit_learn(pretend_version):
    from benchmark.audit import case_audit_key
    from benchmark.models.store import family_for
    from benchmark.session import Session
    from benchmark.tiers import smoke_case

    case = smoke_case("ddim", 64)
    session = Session()
    family = family_for(case.model)
    base = case_audit_key(case, session, "m", family)
    for library in ("scipy", "scikit-learn", "numpy"):
        installed = importlib.metadata.version(library)
        pretend_version(library, "999.0")
        assert case_audit_key(case, session, "m", family) != base, library
        pretend_version(library, installed)
        assert case_audit_key(case, session, "m", family) == base, library


def test_a_training_time_mitigation_shares_its_base_model_with_none():
    """The record's base_model: DP-SGD's case at the suite's setting (its own 500 steps
    of batch 16) and none's share it; another N_train or a loaded checkpoint does not."""
    from types import SimpleNamespace

    from benchmark import registry
    from benchmark.audit import base_model
    from benchmark.tiers import smoke_case

    trained = SimpleNamespace(stats={}, key="weights")
    suite = registry.mitigations.get("dpsgd").suite_settings[-1]  # its own steps and batch
    plain, dp = smoke_case("ddim", 64), smoke_case("ddim", 64, "dpsgd", suite)
    assert (dp.train.steps, dp.train.batch_size) != (plain.train.steps, plain.train.batch_size)
    assert base_model(dp, trained) == base_model(plain, trained)  # ...from none's setup
    assert base_model(smoke_case("ddim", 1024), trained) != base_model(plain, trained)
    loaded = SimpleNamespace(stats={"source": "pretrained: ./my-model"}, key="digest")
    assert base_model(plain, loaded) == "digest"
