"""A user's images (benchmark/data/folders.py): folders and .npz files read as the model
takes them, the resize rule against torchvision's own transforms, and every bad input
as one line naming the file."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms import v2

from benchmark.data.folders import FitRule, count_images, read_images, shared_images
from benchmark.errors import DataError

GREY = FitRule(size=8, channels=1)


def _png(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


@pytest.fixture
def grey_folder(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(5, 8, 8), dtype=np.uint8)
    for i, img in enumerate(images):
        _png(tmp_path / "imgs" / ("sub" if i % 2 else "") / f"{i}.png", img)
    return tmp_path / "imgs", images


def test_a_folder_is_read_recursively_as_it_is(grey_folder):
    folder, images = grey_folder
    got = read_images(folder, FitRule(8, 1, "exact"), "--members")
    assert got.names == ["0.png", "2.png", "4.png", "sub/1.png", "sub/3.png"]
    order = [0, 2, 4, 1, 3]
    assert torch.equal(got.images[:, 0], torch.from_numpy(images[order]))
    assert got.images.dtype == torch.uint8 and got.as_float().min() >= -1
    assert got.notes == [] and len(got) == 5


@pytest.mark.parametrize("shape", [(30, 20), (29, 45), (40, 59), (51, 32), (47, 28), (16, 16)])
def test_the_rules_are_torchvisions_resize_and_centre_crop(tmp_path, shape):
    """The default rule against torchvision's Resize(size) + CenterCrop(size), which
    diffusers' train_unconditional.py applies to its training images; centre-crop
    against CenterCrop alone (to the pixel), on odd sizes too."""
    rng = np.random.default_rng(sum(shape))
    arr = rng.integers(0, 256, size=(*shape, 3), dtype=np.uint8)
    _png(tmp_path / "rgb" / "a.png", arr)
    tensor = torch.from_numpy(arr).permute(2, 0, 1)
    got = read_images(tmp_path / "rgb", FitRule(16, 3), "--members")
    want = v2.Compose([v2.Resize(16, antialias=True), v2.CenterCrop(16)])(tensor)
    assert got.images.shape == (1, 3, 16, 16)
    assert (got.images[0].int() - want.int()).abs().max() <= 1  # the same pixels, rounding
    crop = read_images(tmp_path / "rgb", FitRule(16, 3, "center-crop"), "--members")
    assert torch.equal(crop.images[0], v2.CenterCrop(16)(tensor))


def test_sixteen_bit_images_share_one_scale_and_alpha_is_said(tmp_path):
    bright = np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000
    _png(tmp_path / "t" / "a.tif", bright)
    _png(tmp_path / "t" / "b.tif", bright // 1000)  # a dark one: max 63, still /65535
    got = read_images(tmp_path / "t", GREY)
    assert got.images[0].max() == round(63000 / 65535 * 255) and got.images[1].max() == 0
    assert got.notes == ["16-bit images scaled from [0, 65535] to 8 bits"]
    rgba = np.zeros((8, 8, 4), dtype=np.uint8)
    _png(tmp_path / "a" / "x.png", rgba)
    assert "alpha channel dropped (RGBA)" in read_images(tmp_path / "a", FitRule(8, 3)).notes


def test_an_npz_in_medmnist_layout(tmp_path):
    rng = np.random.default_rng(2)
    train = rng.integers(0, 256, size=(4, 8, 8), dtype=np.uint8)
    test = rng.integers(0, 256, size=(3, 8, 8), dtype=np.uint8)
    np.savez(tmp_path / "p.npz", train_images=train, test_images=test)
    np.savez(tmp_path / "w.npz", train_images=train.astype(np.uint16) * 257)
    wide = read_images(tmp_path / "w.npz", GREY)
    assert torch.equal(wide.images[:, 0], torch.from_numpy(train))
    members = read_images(tmp_path / "p.npz", GREY)
    heldout = read_images(f"{tmp_path / 'p.npz'}:test_images", GREY)
    assert torch.equal(members.images[:, 0], torch.from_numpy(train))
    assert len(heldout) == 3 and heldout.names[0] == "p.npz[test_images][0]"


def test_the_same_image_in_both_sets_is_found_by_content(grey_folder, tmp_path):
    folder, images = grey_folder
    _png(tmp_path / "held" / "copy.png", images[2])
    _png(tmp_path / "held" / "new.png", 255 - images[2])
    shared = shared_images(read_images(folder, GREY), read_images(tmp_path / "held", GREY))
    assert shared == [("2.png", "copy.png")]


def _bad(tmp_path):
    """(what to read, rule, the message's start) for each bad input."""
    (tmp_path / "empty").mkdir()
    (tmp_path / "text").mkdir()
    (tmp_path / "text" / "notes.txt").write_text("x")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "x.png").write_bytes(b"\x89PNG not really")
    _png(tmp_path / "rgb" / "c.png", np.zeros((8, 8, 3), dtype=np.uint8))
    _png(tmp_path / "small" / "s.png", np.zeros((4, 6), dtype=np.uint8))
    np.savez(tmp_path / "labels.npz", train_labels=np.zeros(3))
    np.savez(tmp_path / "colour.npz", train_images=np.zeros((2, 8, 8, 3), dtype=np.uint8))
    (tmp_path / "bad.npz").write_bytes(b"nothing")
    _png(tmp_path / "float" / "f.tif", np.zeros((8, 8), dtype=np.float32))
    np.savez(tmp_path / "big.npz", train_images=np.full((2, 8, 8), 300.0))
    return [
        (tmp_path / "nowhere", GREY, "no such folder or file"),
        (tmp_path / "empty", GREY, "no images"),
        (tmp_path / "text", GREY, "no images"),
        (tmp_path / "broken", GREY, "not a readable image"),
        (tmp_path / "rgb", GREY, "a RGB image, but the model takes grey"),
        (tmp_path / "small", FitRule(8, 1, "exact"), "6x4 pixels, but the model takes 8x8"),
        (tmp_path / "small", FitRule(8, 1, "center-crop"), "6x4 pixels is smaller than"),
        (tmp_path / "labels.npz", GREY, "no image array"),
        (f"{tmp_path / 'labels.npz'}:test_images", GREY, "no array 'test_images'"),
        (tmp_path / "colour.npz", GREY, "RGB images, but the model takes grey"),
        (tmp_path / "bad.npz", GREY, "not a readable .npz"),
        (tmp_path / "missing.npz", GREY, "no such file"),
        (tmp_path / "float", GREY, "a 32-bit float image"),
        (tmp_path / "big.npz", GREY, "a range memobench cannot know"),
    ]


def test_every_bad_input_is_one_line_naming_what_and_where(tmp_path):
    for source, rule, message in _bad(tmp_path):
        with pytest.raises(DataError) as err:
            read_images(source, rule, "--members")
        text = str(err.value)
        assert message in text, (source, text)
        assert "\n" not in text and "--members" in text, text
        assert str(source).split(":")[0].rsplit("/", 1)[-1] in text, text


def test_a_bad_rule_is_refused():
    with pytest.raises(DataError, match="unknown fit rule 'stretch'"):
        FitRule(8, 1, "stretch")
    with pytest.raises(DataError, match="1 or 3"):
        FitRule(8, 4)


def test_a_set_too_large_for_memory_is_refused_before_reading(grey_folder, monkeypatch):
    """Five 8x8 grey images cost 5 * 64 * 9 bytes while audited: 1 KiB free refuses them
    with the figures and the fix, before a single file is opened; enough memory reads them,
    unless the other set audited beside them is counted too."""
    folder, _ = grey_folder
    opened = []
    monkeypatch.setattr("benchmark.data.folders._pixels", lambda *a: opened.append(a))
    monkeypatch.setattr("benchmark.data.folders.available_memory", lambda: 1024)
    with pytest.raises(DataError, match=r"--members: 5 images at 8x8x1 need about") as err:
        read_images(folder, FitRule(8, 1, "exact"), "--members")
    assert "audit a random subset" in str(err.value) and "\n" not in str(err.value)
    assert opened == []
    monkeypatch.undo()
    monkeypatch.setattr("benchmark.data.folders.available_memory", lambda: 5 * 64 * 9)
    assert len(read_images(folder, FitRule(8, 1, "exact"), "--members")) == 5
    with pytest.raises(DataError, match="5 images \\(with the 5 of the other set\\)"):
        read_images(folder, FitRule(8, 1, "exact"), "--members", others=5)
    assert count_images(folder) == 5 and count_images(folder / "none.npz") == 0
