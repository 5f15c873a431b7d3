"""C_SAF / C_ID: training data as SPEC section 2 says, the accuracy gate, foreign data."""

import pytest
import torch

from benchmark.cache import Cache
from benchmark.config import DataConfig, DetectorConfig
from benchmark.data import load_dataset
from benchmark.data.saf import disk_mask
from benchmark.detectors.detector import (
    Detector,
    DetectorAccuracyError,
    detector_key,
    get_detector,
    id_batch,
    saf_batch,
)
from benchmark.detectors.networks import build_detector
from benchmark.errors import ConfigError

FAST = DetectorConfig(steps=3, batch_size=8, val_size=20)


@pytest.fixture(scope="module")
def data():
    return load_dataset(DataConfig(n_train=32, saf=True))


def test_saf_batch_labels_disks_and_the_fingerprinted_image(data):
    gen = torch.Generator().manual_seed(0)
    pool = data.train[data.saf.index : data.saf.index + 1]  # only SAF(x_p)
    _, y = saf_batch(data, 16, 0.0, pool, gen, saf_index=0)
    assert y.all(), "SAF(x_p) carries a disk: always positive"
    x, y = saf_batch(data, 400, 0.5, data.heldout, gen)
    assert 0.4 < y.mean() < 0.6
    grey = (x == 0).flatten(1).sum(1)
    assert (grey[y.bool()] >= disk_mask(16, (8, 8), 2).sum()).all()


def test_id_batch_is_balanced_and_masked(data):
    x, y = id_batch(data, 64, data.train[1:], torch.Generator().manual_seed(0))
    assert y.sum() == 32
    pos = x[y.bool()]
    masked = [not torch.equal(p, data.saf.original) for p in pos]
    assert 0 < sum(masked) < 32, "random disks on some positives"


def test_cached_and_checked_against_the_data(tmp_path, data):
    cache = Cache(tmp_path)
    det = get_detector("saf", FAST, data, cache, progress=False)
    again = get_detector("saf", FAST, data, cache, progress=False)
    assert not det.metrics["reused"] and again.metrics["reused"]
    assert set(det.metrics) >= {"accuracy", "balanced_accuracy", "heldout_positive_rate"}
    other = load_dataset(DataConfig(n_train=32, saf=True, split_seed=1))
    with pytest.raises(ConfigError, match="train detectors for this case's data"):
        det.check_for(other)


def test_needs_a_fingerprint(tmp_path):
    plain = load_dataset(DataConfig(n_train=32))
    with pytest.raises(ConfigError, match="DataConfig\\(saf=True\\)"):
        get_detector("id", FAST, plain, Cache(tmp_path), progress=False)


def test_weak_detector_is_refused(data):
    det = Detector(
        "saf",
        build_detector("small-resnet", 1),
        "digits",
        data.fingerprint(),
        {"accuracy": 0.9, "balanced_accuracy": 0.5, "fires_on_saf_xp": True},
    )
    with pytest.raises(DetectorAccuracyError, match=r"C_SAF .* accuracy 0.900 \(balanced 0.500\)"):
        det.require_accuracy(0.95)
    det.metrics.update(accuracy=1.0, balanced_accuracy=1.0, fires_on_saf_xp=False)
    with pytest.raises(DetectorAccuracyError, match="does not flag SAF"):
        det.require_accuracy(0.95)


def test_bad_detector_config():
    with pytest.raises(ConfigError, match="arch"):
        DetectorConfig(arch="vgg")
    with pytest.raises(ConfigError, match="min_accuracy"):
        DetectorConfig(min_accuracy=0)


def test_a_foreign_entry_under_the_key_is_moved_aside_and_rebuilt(tmp_path, data, caplog):
    import logging

    cache = Cache(tmp_path)
    c_id = get_detector("id", FAST, data, cache, progress=False)
    saf_path = cache.path("detectors", detector_key("saf", FAST, data))
    cache.path("detectors", detector_key("id", FAST, data)).replace(saf_path)  # C_ID as C_SAF
    with caplog.at_level(logging.WARNING):
        c_saf = get_detector("saf", FAST, data, cache, progress=False)
    assert c_saf.kind == "saf" and not c_saf.metrics["reused"] and c_id.kind == "id"
    assert "another config" in caplog.text and "rebuilding" in caplog.text
    assert list(saf_path.parent.glob(f"{saf_path.name}.corrupt-*"))


def test_fingerprint_is_memoized_and_follows_reassignment(data):
    first = data.fingerprint()
    assert data.fingerprint() == first
    other = load_dataset(DataConfig(n_train=32, saf=True))
    assert other.fingerprint() == first
    other.train = other.train.flip(-1)
    assert other.fingerprint() != first
