"""The Carlini l2 criterion against a brute-force numpy computation."""

import numpy as np
import pytest
import torch

from benchmark.metrics.carlini import CarliniL2, nearest_two


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
