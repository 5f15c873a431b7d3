"""The copy-detection encoder of images without labels (benchmark/measures/copy_features.py):
a shifted, rescaled, re-contrasted copy of an image finds the image itself among the
others, where raw pixels do not; trained once per set of images, then cached."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from benchmark.cache import Cache
from benchmark.measures.copy_features import augment, copy_detection_features, nt_xent
from benchmark.measures.features import extract
from fixtures.user_model import digits_16


def _digits(n):
    return torch.from_numpy(digits_16(n)).float().unsqueeze(1) / 127.5 - 1


def _found(query, images):
    """Share of queries whose nearest image (cosine) is the one they were made from."""
    sim = F.normalize(query.flatten(1), dim=1) @ F.normalize(images.flatten(1), dim=1).T
    return float((sim.argmax(1) == torch.arange(len(query))).float().mean())


def test_an_augmented_copy_finds_its_original(tmp_path):
    images = _digits(48)
    gen = torch.Generator().manual_seed(1)
    copies = augment(images, gen)
    enc = copy_detection_features(images, Cache(tmp_path), steps=300, progress=False)
    in_features = _found(extract(enc, copies), extract(enc, images))
    in_pixels = _found(copies, images)
    assert in_features >= 0.8, in_features
    assert in_features > in_pixels + 0.2, (in_features, in_pixels)  # pixels miss shifted copies
    assert enc.name.startswith("copy-detection-")


def test_it_is_trained_once_per_set_of_images(tmp_path):
    images = _digits(16)
    first = copy_detection_features(images, Cache(tmp_path), steps=5, progress=False)
    again = copy_detection_features(images, Cache(tmp_path), steps=5, progress=False)
    other = copy_detection_features(_digits(17)[1:], Cache(tmp_path), steps=5, progress=False)
    assert first.name == again.name != other.name
    for a, b in zip(first.state_dict().values(), again.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert len(list((tmp_path / "features").glob("*"))) == 2


def test_nt_xent_is_low_for_matching_views_and_high_for_swapped_ones():
    z = torch.randn(8, 16)
    assert nt_xent(z, z) < nt_xent(z, z.roll(1, dims=0))
