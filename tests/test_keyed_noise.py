"""Keyed device noise (benchmark/models/keyed_noise.py): standard normal by scipy's
tests, a function of the image's key and the draw alone, and free of the batch."""

import pytest
import torch
from scipy import stats

from benchmark.models.keyed_noise import KeyedRandnLike, content_keys, keyed_normal

KEYS = torch.arange(4000, dtype=torch.int64) * 7919 + 123


def test_keyed_noise_is_standard_normal_and_uncorrelated_across_draws_and_keys():
    z = keyed_normal(KEYS, 3, (1, 8, 8))
    flat = z.flatten().double().numpy()
    assert stats.kstest(flat, "norm").pvalue > 0.01
    assert abs(stats.skew(flat)) < 0.02 and abs(stats.kurtosis(flat)) < 0.05
    nxt = keyed_normal(KEYS, 4, (1, 8, 8)).flatten().double().numpy()
    assert abs(stats.pearsonr(flat, nxt)[0]) < 0.01, "consecutive draws are independent"
    neighbour = keyed_normal(KEYS + 1, 3, (1, 8, 8)).flatten().double().numpy()
    assert abs(stats.pearsonr(flat, neighbour)[0]) < 0.01, "neighbouring keys too"
    within = z.flatten(1)
    assert abs(float(torch.corrcoef(within[:, :2].T)[0, 1])) < 0.05, "elements of one image"


def test_an_image_s_noise_does_not_depend_on_its_batch():
    whole = keyed_normal(KEYS[:64], 7, (3, 4, 4))
    assert torch.equal(whole[10:13], keyed_normal(KEYS[10:13], 7, (3, 4, 4)))
    assert torch.equal(whole[5:6], keyed_normal(KEYS[5:6], 7, (3, 4, 4)))


def test_a_sampler_s_draws_follow_the_counter_and_the_image():
    x = torch.randn(6, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    one, other = KeyedRandnLike(content_keys(x)), KeyedRandnLike(content_keys(x[2:4]))
    first, second = one(x), one(x)
    assert not torch.equal(first, second), "each step draws new noise"
    assert torch.equal(other(x[2:4]), first[2:4])
    assert one(x).dtype == x.dtype


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_the_dtype_is_the_images(dtype):
    assert keyed_normal(KEYS[:2], 0, (4,), dtype).dtype == dtype
