"""FID gap and replication against direct numpy/scipy computations."""

import numpy as np
import pytest
import torch
from torch import nn

from benchmark.cache import Cache
from benchmark.data.digits import DigitsDataset
from benchmark.errors import ConfigError, DataError
from benchmark.measures.feature_replication import (
    CARLINI_L2_FEATURES,
    HELDOUT_SIMILARITY_HIST,
    REPLICATION_FRACTION,
    REPLICATION_FRACTION_HELDOUT,
    REPLICATION_TAU_HELDOUT,
    TOP_PAIRS,
    nearest_cosine,
    replication,
)
from benchmark.measures.features import InceptionFeatures, classifier_features, extract
from benchmark.measures.fid import (
    FID_EXTRACTOR,
    FID_GAP,
    FID_GAP_CI,
    FID_N,
    FID_TEST,
    FID_TRAIN,
    fid,
    fid_gap,
    frechet_distance,
)


class RandomProjection(nn.Module):
    """A fixed feature map (N, C, H, W) -> (N, 8): enough to test the FID arithmetic."""

    num_features = 8
    name = "random-projection"

    def __init__(self, dim_in: int) -> None:
        super().__init__()
        self.proj = nn.Linear(dim_in, 8)
        torch.nn.init.normal_(self.proj.weight, generator=torch.Generator().manual_seed(0))

    def forward(self, x):
        return self.proj(x.flatten(1).float())


@pytest.fixture(scope="module")
def images():
    g = torch.Generator().manual_seed(0)
    a = torch.rand(200, 1, 8, 8, generator=g) * 2 - 1
    b = (torch.rand(200, 1, 8, 8, generator=g) * 2 - 1) * 0.5 + 0.3
    return a, b


def test_fid_equals_a_direct_frechet_distance(images):
    a, b = images
    feat = RandomProjection(64)
    ours = fid(a, b, feat)
    direct = frechet_distance(extract(feat, a).double().numpy(), extract(feat, b).double().numpy())
    assert ours == pytest.approx(direct, rel=1e-4)
    assert ours > 1.0
    assert fid(a, a, feat) == pytest.approx(0.0, abs=1e-3), "identical sets give ~0"


def test_fid_equals_torchmetrics_run_on_the_images(images):
    """Features extracted once give torchmetrics' own FID with ``feature=`` the extractor."""
    from torchmetrics.image.fid import FrechetInceptionDistance

    a, b = images
    feat = RandomProjection(64)
    metric = FrechetInceptionDistance(feature=feat, input_img_size=(1, 8, 8))
    metric.update(b, real=True)
    metric.update(a, real=False)
    assert fid(a, b, feat) == pytest.approx(float(metric.compute()), rel=1e-6)


def test_fid_gap_of_a_copier_is_positive(images):
    a, b = images
    feat = RandomProjection(64)
    copies = a[:100] + 0.01 * torch.randn(100, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    out = fid_gap(copies, train=a[:100], heldout=b[:100], feature=feat, n_boot=50)
    assert out[FID_TRAIN] < out[FID_TEST] and out[FID_GAP] > 0
    lo, hi = out[FID_GAP_CI]
    assert lo <= out[FID_GAP] <= hi or abs(out[FID_GAP] - lo) < 1e-6
    assert out[FID_EXTRACTOR] == "random-projection" and out[FID_N] == 100


def test_fid_bad_inputs(images):
    a, b = images
    with pytest.raises(ValueError, match="at least 2"):
        fid(a[:1], b, RandomProjection(64))

    class FourD(nn.Module):
        num_features = 4
        name = "four-d"

        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 4, 3)

        def forward(self, x):
            return self.conv(x)

    with pytest.raises(ConfigError, match="must return a 2-D"):
        fid(a, b, FourD())


def test_nearest_cosine_matches_numpy_and_chunks():
    rng = np.random.default_rng(0)
    s, t = rng.normal(size=(57, 6)), rng.normal(size=(40, 6))
    sn = s / np.linalg.norm(s, axis=1, keepdims=True)
    tn = t / np.linalg.norm(t, axis=1, keepdims=True)
    ref = sn @ tn.T
    sim, idx = nearest_cosine(torch.from_numpy(s), torch.from_numpy(t), chunk=5)
    np.testing.assert_allclose(sim.numpy(), ref.max(1), rtol=1e-5)
    np.testing.assert_array_equal(idx.numpy(), ref.argmax(1))


def test_replication_counts_copies():
    g = torch.Generator().manual_seed(0)
    train = torch.randn(30, 16, generator=g)
    samples = torch.cat([train[:10] * 1.01, torch.randn(10, 16, generator=g)])
    out = replication(samples, train, tau=0.95, top_k=5)
    assert out[REPLICATION_FRACTION] == 0.5
    assert out[CARLINI_L2_FEATURES] == 0.5
    assert all(p[0] < 10 for p in out[TOP_PAIRS]), "the top pairs are the copies"
    assert all(p[0] == p[1] for p in out[TOP_PAIRS]), "each copy pairs with its original"
    with pytest.raises(ValueError, match="tau"):
        replication(samples, train, tau=2)
    with pytest.raises(ValueError, match="2-D"):
        nearest_cosine(samples, train[:, :8])


def test_classifier_features_are_cached_and_2d(tmp_path):
    cache = Cache(tmp_path)
    feat = classifier_features(DigitsDataset(), cache, steps=30, batch_size=32, progress=False)
    again = classifier_features(DigitsDataset(), cache, steps=30, batch_size=32, progress=False)
    x = torch.rand(5, 1, 16, 16) * 2 - 1
    out = extract(feat, x)
    assert out.shape == (5, feat.num_features) and feat.name == "digits-classifier"
    torch.testing.assert_close(out, extract(again, x))
    assert 0.0 <= feat.train_accuracy <= 1.0


def test_inception_without_weights_says_where(tmp_path):
    with pytest.raises(DataError, match="Inception-v3 FID weights not found"):
        InceptionFeatures(tmp_path / "missing.pth")


def test_replication_threshold_calibrated_on_heldout_images():
    g = torch.Generator().manual_seed(1)
    train = torch.randn(200, 8, generator=g)
    heldout = torch.randn(200, 8, generator=g)
    samples = torch.cat([train[:20] + 0.01 * torch.randn(20, 8, generator=g), heldout[:80]])
    out = replication(samples, train, tau=0.5, heldout_features=heldout, heldout_quantile=0.99)
    held_sim, _ = nearest_cosine(heldout, train)
    assert out[REPLICATION_TAU_HELDOUT] == pytest.approx(
        float(np.quantile(held_sim.double().numpy(), 0.99))
    )
    # the 20 near-copies are above the calibrated threshold, at most ~1% of the fresh ones
    assert 0.20 <= out[REPLICATION_FRACTION_HELDOUT] <= 0.20 + 0.8 * 0.05
    assert sum(out[HELDOUT_SIMILARITY_HIST]) == 200
    with pytest.raises(ValueError, match="heldout_quantile"):
        replication(samples, train, heldout_features=heldout, heldout_quantile=1.0)


def test_kid_is_torchmetrics_and_our_bootstrap_kernel_agrees(images):
    """KID of precomputed features equals torchmetrics' KernelInceptionDistance run on the
    images with ``feature=`` the extractor (one subset of all images), and the numpy
    kernel the bootstrap uses gives the same unbiased MMD^2."""
    from torchmetrics.image.kid import KernelInceptionDistance

    from benchmark.measures.kid import kid_from_features, poly_mmd2

    a, b = images
    feat = RandomProjection(64)
    metric = KernelInceptionDistance(feature=feat, subsets=1, subset_size=200)
    metric.update(b, real=True)
    metric.update(a, real=False)
    fa, fb = extract(feat, a), extract(feat, b)
    ours = kid_from_features(fa, fb)
    assert ours == pytest.approx(float(metric.compute()[0]), rel=1e-5)
    assert poly_mmd2(fa.double().numpy(), fb.double().numpy()) == pytest.approx(ours, rel=1e-9)
    # unbiased: two draws of one distribution sit near 0, unlike FID at 20 images in 8-d
    g = torch.Generator().manual_seed(3)
    x, y = (torch.randn(20, 8, generator=g, dtype=torch.float64) for _ in range(2))
    assert abs(kid_from_features(x, y)) < 0.2 * kid_from_features(x, y + 1.0)


def test_the_kid_gap_of_a_copier_is_positive(images):
    from benchmark.measures.kid import KID_GAP, KID_GAP_CI, KID_TEST, KID_TRAIN

    a, b = images
    copies = a[:100] + 0.01 * torch.randn(100, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    out = fid_gap(copies, train=a[:100], heldout=b[:100], feature=RandomProjection(64), n_boot=50)
    assert out[KID_TRAIN] < out[KID_TEST] and out[KID_GAP] > 0
    lo, hi = out[KID_GAP_CI]
    assert lo > 0 and lo <= out[KID_GAP] <= hi + 1e-9


def test_the_kid_bootstrap_resamples_as_recomputing_would():
    """The gap's bootstrap indexes kernels computed once; a resample's gap equals the one
    recomputed from its features (a resampled image twice counts as two images)."""
    from benchmark.measures.kid import kid_gap_from_features, poly_mmd2

    g = torch.Generator().manual_seed(5)
    s, tr, te = (torch.randn(30, 6, generator=g, dtype=torch.float64) for _ in range(3))
    out = kid_gap_from_features(s, tr, te, n_boot=0)
    idx = np.random.default_rng(0).integers(0, 30, 30)
    fs, ftr, fte = s.numpy()[idx], tr.numpy(), te.numpy()
    from benchmark.measures import kid

    k = kid._kernel
    direct = poly_mmd2(fs, fte) - poly_mmd2(fs, ftr)
    k_ss = k(s.numpy(), s.numpy())[np.ix_(idx, idx)]
    indexed = kid._mmd2(k_ss, k(fte, fte), k(s.numpy(), fte)[idx]) - kid._mmd2(
        k_ss, k(ftr, ftr), k(s.numpy(), ftr)[idx]
    )
    assert indexed == pytest.approx(direct, rel=1e-9)
    assert np.isnan(out["kid_gap_ci"][0])  # no resamples, no interval
