"""The Carlini l2 criterion against a brute-force numpy computation."""

import numpy as np
import pytest
import torch

from benchmark.measures.carlini_l2 import CarliniL2, nearest_two


def test_nearest_two_matches_numpy():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(50, 3, 4, 4)), rng.normal(size=(70, 3, 4, 4))
    d = np.linalg.norm(a.reshape(50, 1, -1) - b.reshape(1, 70, -1), axis=2)
    srt = np.sort(d, axis=1)
    d1, d2, idx = nearest_two(torch.from_numpy(a), torch.from_numpy(b), chunk=7)
    np.testing.assert_allclose(d1.numpy(), srt[:, 0], rtol=1e-10)
    np.testing.assert_allclose(d2.numpy(), srt[:, 1], rtol=1e-10)
    np.testing.assert_array_equal(idx.numpy(), d.argmin(1))


def test_copies_count_and_fresh_samples_do_not():
    g = torch.Generator().manual_seed(0)
    train = torch.randn(20, 1, 8, 8, generator=g)
    copies = train[:10] + 0.01 * torch.randn(10, 1, 8, 8, generator=g)
    fresh = torch.randn(10, 1, 8, 8, generator=g)
    m = CarliniL2(train)
    m.update(copies)
    assert m.compute() == 1.0
    m.update(fresh)
    assert m.compute() == 0.5
    assert CarliniL2.higher_is_better is False


def test_needs_two_training_images():
    with pytest.raises(ValueError, match="at least 2"):
        nearest_two(torch.zeros(1, 4), torch.zeros(1, 4))


@pytest.mark.parametrize("scale", [1.0, 1e3])
def test_the_float32_search_gives_the_exact_search_s_answer(scale):
    """Candidates from float32 products, exact float64 distances: the same nearest two as
    a full float64 search, near-ties included (copies of a training image a hair apart,
    where float32 cannot rank them), and the same Carlini hits."""
    gen = torch.Generator().manual_seed(0)
    train = torch.rand(300, 1, 16, 16, generator=gen) * scale
    near = train[:50] + 1e-6 * scale * torch.randn(50, 1, 16, 16, generator=gen)
    twins = train[:20].clone()
    twins[:, 0, 0, 0] += 1e-7 * scale  # nearest two within float32's error of each other
    samples = torch.cat([near, twins, torch.rand(100, 1, 16, 16, generator=gen) * scale])
    # a cluster of 12 training images closer together than float32 can tell, more than the
    # candidates: the rows near it are searched again exactly
    cluster = train[299:300] + 1e-7 * scale * torch.randn(12, 1, 16, 16, generator=gen)
    samples = torch.cat([samples, train[299:300]])
    train = torch.cat([train, train[:20] + 2e-7 * scale, cluster])
    d1, d2, idx = nearest_two(samples, train, chunk=64)
    # the reference: every difference in float64 (torch.cdist's matrix-product route
    # loses the small distances of near copies to cancellation)
    diff = samples.flatten(1).double()[:, None, :] - train.flatten(1).double()[None]
    full = diff.pow(2).sum(-1).sqrt().topk(2, dim=1, largest=False)
    assert torch.allclose(d1, full[0][:, 0], rtol=1e-9, atol=1e-9 * scale)
    assert torch.allclose(d2, full[0][:, 1], rtol=1e-9, atol=1e-9 * scale)
    hits = d1 < d2 / 3
    assert torch.equal(hits, full[0][:, 0] < full[0][:, 1] / 3)
    # where the nearest is unique beyond float noise, it is the same training image
    clear = (full[0][:, 1] - full[0][:, 0]) > 1e-6 * scale
    assert torch.equal(idx[clear], full[1][:, 0][clear])
