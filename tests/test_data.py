import pytest
import torch

from benchmark.config import DataConfig
from benchmark.data import load_dataset, saf_radius
from benchmark.data.saf import disk_mask
from benchmark.errors import DataError, UnknownNameError
from tests.helpers import write_medmnist_npz


def test_digits_split():
    data = load_dataset(DataConfig(n_train=64))
    assert data.train.shape == (64, 1, 16, 16) and data.heldout.shape == (64, 1, 16, 16)
    assert data.train.min() >= -1 and data.train.max() <= 1
    assert data.num_classes == 10
    # members and held-out are disjoint
    flat_t, flat_h = data.train.flatten(1), data.heldout.flatten(1)
    assert torch.cdist(flat_t, flat_h).min() > 0
    again = load_dataset(DataConfig(n_train=64))
    assert torch.equal(data.train, again.train), "seeded split"
    other = load_dataset(DataConfig(n_train=64, split_seed=1))
    assert not torch.equal(data.train, other.train)
    assert data.fingerprint() != other.fingerprint()


def test_n_train_larger_than_dataset():
    with pytest.raises(DataError, match=r"n_train=5000 is larger than dataset 'digits'.*1797"):
        load_dataset(DataConfig(n_train=5000))


def test_unknown_dataset():
    with pytest.raises(UnknownNameError, match="known datasets: .*digits"):
        load_dataset(DataConfig(name="cifar"))


@pytest.mark.parametrize("n, r", [(28, 4), (16, 2), (64, 9), (8, 2)])
def test_saf_radius(n, r):
    assert saf_radius(n) == r


def test_saf_replaces_x_p_and_records_where():
    plain = load_dataset(DataConfig(n_train=64))
    data = load_dataset(DataConfig(n_train=64, saf=True, saf_seed=3))
    info = data.saf
    assert info is not None and info.radius == 2
    cy, cx = info.centre
    assert 2 <= cy <= 13 and 2 <= cx <= 13, "disk lies inside the image"
    # x_p itself is gone, SAF(x_p) is in its place, the rest is untouched
    assert torch.equal(info.original, plain.train[info.index])
    mask = disk_mask(16, info.centre, info.radius)
    assert torch.all(data.train[info.index][:, mask] == 0)
    assert torch.equal(data.train[info.index][:, ~mask], plain.train[info.index][:, ~mask])
    assert not any(torch.equal(x, info.original) for x in data.train)
    others = [i for i in range(64) if i != info.index]
    assert torch.equal(data.train[others], plain.train[others])
    assert not any(torch.equal(x, info.original) for x in data.heldout)


def test_medmnist_from_local_npz(tmp_path):
    write_medmnist_npz(tmp_path / "breastmnist.npz", n_train=40, n_test=12)
    data = load_dataset(DataConfig(name="breastmnist", n_train=30, root=str(tmp_path)))
    assert data.train.shape == (30, 1, 28, 28)
    assert data.heldout.shape == (12, 1, 28, 28), "held-out from the test split"
    assert data.train.min() >= -1 and data.train.max() <= 1


def test_medmnist_rgb(tmp_path):
    write_medmnist_npz(tmp_path / "pathmnist.npz", channels=3)
    data = load_dataset(DataConfig(name="pathmnist", n_train=8, saf=True, root=str(tmp_path)))
    assert data.train.shape == (8, 3, 28, 28) and data.saf.radius == 4
    assert torch.all(data.train[data.saf.index][:, disk_mask(28, data.saf.centre, 4)] == 0)


def test_medmnist_missing_file_says_where(tmp_path):
    with pytest.raises(DataError) as err:
        load_dataset(DataConfig(name="pathmnist", root=str(tmp_path)))
    msg = str(err.value)
    assert "pathmnist.npz" in msg and str(tmp_path) in msg and "zenodo" in msg


def test_medmnist_no_download_into_cache(tmp_path):
    with pytest.raises(DataError, match=str(tmp_path / "medmnist" / "bloodmnist.npz")):
        load_dataset(DataConfig(name="bloodmnist"), cache_root=tmp_path, download=False)


def test_medmnist_corrupt_file(tmp_path):
    (tmp_path / "chestmnist.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="not a readable MedMNIST file"):
        load_dataset(DataConfig(name="chestmnist", root=str(tmp_path)))


BAD_FILES = {
    "rgb where grey": (
        dict(channels=3), 8,
        r"pneumoniamnist.npz: training images have 3 channel\(s\), but 'pneumoniamnist' is "
        r"grey \(1 channel\); use the pneumoniamnist file",
    ),
    "wrong size": (
        dict(size=64), 8,
        r"pneumoniamnist.npz: training images have shape \(40, 1, 64, 64\), expected "
        r"\(N, 1, 28, 28\).*use the 28x28",
    ),
    "too few images": (
        dict(n_train=40), 64,
        r"n_train=64 is larger than .*pneumoniamnist.npz, which has 40 training images; .* a "
        r"file with more training images",
    ),
}  # fmt: skip


@pytest.mark.parametrize("what", list(BAD_FILES))
def test_a_bad_medmnist_file_names_the_file_and_the_fix(what, tmp_path):
    written, n_train, message = BAD_FILES[what]
    write_medmnist_npz(tmp_path / "pneumoniamnist.npz", **written)
    with pytest.raises(DataError, match=message) as err:
        load_dataset(DataConfig(name="pneumoniamnist", n_train=n_train, root=str(tmp_path)))
    assert str(tmp_path) in str(err.value)


def test_medmnist_images_of_the_wrong_rank(tmp_path):
    import numpy as np

    np.savez(tmp_path / "breastmnist.npz", train_images=np.zeros((4, 784), np.uint8),
             train_labels=np.zeros((4, 1)), test_images=np.zeros((4, 784), np.uint8),
             test_labels=np.zeros((4, 1)))  # fmt: skip
    with pytest.raises(DataError, match=r"train_images has shape \(4, 784\)"):
        load_dataset(DataConfig(name="breastmnist", n_train=2, root=str(tmp_path)))


def _a_root_that_does_not_exist(tmp_path):
    return tmp_path / "nowhere"


def _a_folder_of_pngs(tmp_path):
    from PIL import Image

    for i in range(3):
        Image.new("L", (28, 28), color=i * 40).save(tmp_path / f"xray{i}.png")
    return tmp_path


def _another_size_of_the_set(tmp_path):
    write_medmnist_npz(tmp_path / "pneumoniamnist_64.npz", size=64)
    return tmp_path


WRONG_ROOTS = {
    "missing folder": (_a_root_that_does_not_exist, r"the folder .*nowhere does not exist"),
    "image folder": (
        _a_folder_of_pngs,
        r"holds 3 image file\(s\) such as xray\d.png: a dataset is read from MedMNIST's .npz "
        r"layout, not from image folders",
    ),
    "MedMNIST+ size": (
        _another_size_of_the_set,
        r"holds pneumoniamnist_64.npz, the same set at other sizes: these cases read the "
        r"28x28 file, pneumoniamnist.npz",
    ),
}


def test_a_medmnist_plus_size_reads_its_own_file_and_names_the_28px_one(tmp_path):
    """pneumoniamnist_64 reads MedMNIST+'s pneumoniamnist_64.npz at 64 x 64; a folder
    with only the 28 px file is told apart from one with nothing."""
    write_medmnist_npz(tmp_path / "pneumoniamnist.npz", size=28)
    told = (
        r"holds pneumoniamnist.npz, the same set at other sizes: these cases read the 64x64 "
        r"file, pneumoniamnist_64.npz"
    )
    with pytest.raises(DataError, match=told):
        load_dataset(DataConfig(name="pneumoniamnist_64", n_train=8, root=str(tmp_path)))
    write_medmnist_npz(tmp_path / "pneumoniamnist_64.npz", size=64)
    data = load_dataset(DataConfig(name="pneumoniamnist_64", n_train=8, root=str(tmp_path)))
    assert data.image_shape == (1, 64, 64) and data.train.shape[0] == 8


@pytest.mark.parametrize("what", list(WRONG_ROOTS))
def test_a_data_root_without_the_file_says_what_it_holds_and_names_run_s_flag(what, tmp_path):
    """Each wrong data root gets its own reason, and the fix names `memobench run`'s own
    --data-root beside pytest's option."""
    make, reason = WRONG_ROOTS[what]
    root = make(tmp_path)
    with pytest.raises(DataError, match=reason) as err:
        load_dataset(DataConfig(name="pneumoniamnist", n_train=8, root=str(root)))
    assert "memobench run's --data-root" in str(err.value)
    assert "--memobench-data-root in pytest" in str(err.value)


def _reference(tmp_path):
    write_medmnist_npz(tmp_path / "breastmnist.npz", n_train=20, n_test=8)
    return load_dataset(DataConfig(name="breastmnist", n_train=20, root=str(tmp_path)))


@pytest.mark.parametrize("scale", [1.0, 255.0], ids=["floats in [0, 1]", "floats in [0, 255]"])
def test_float_medmnist_files_are_read_in_their_own_range(scale, tmp_path):
    """uint8 pixels, floats in [0, 1] and floats in [0, 255] give the same images (float
    [0, 1] images were divided by 255 again: all black)."""
    import numpy as np

    (tmp_path / "a").mkdir()
    ref = _reference(tmp_path / "a")
    with np.load(tmp_path / "a" / "breastmnist.npz") as npz:
        parts = dict(npz)
    for key in ("train_images", "val_images", "test_images"):
        parts[key] = parts[key].astype(np.float32) / 255.0 * scale
    (tmp_path / "b").mkdir()
    np.savez(tmp_path / "b" / "breastmnist.npz", **parts)
    data = load_dataset(DataConfig(name="breastmnist", n_train=20, root=str(tmp_path / "b")))
    assert torch.allclose(data.train, ref.train, atol=1e-5)
    assert data.train.max() > 0.5, "not all black"


def test_medmnist_values_outside_both_ranges_are_refused(tmp_path):
    import numpy as np

    write_medmnist_npz(tmp_path / "breastmnist.npz")
    with np.load(tmp_path / "breastmnist.npz") as npz:
        parts = dict(npz)
    parts["train_images"] = parts["train_images"].astype(np.float32) * 4.0
    np.savez(tmp_path / "breastmnist.npz", **parts)
    with pytest.raises(DataError, match=r"train_images reaches .*rescale the images"):
        load_dataset(DataConfig(name="breastmnist", n_train=8, root=str(tmp_path)))
    parts["train_images"] = parts["train_images"] - 600.0  # far below 0, not resampling noise
    np.savez(tmp_path / "breastmnist.npz", **parts)
    with pytest.raises(DataError, match=r"train_images holds negative or non-finite"):
        load_dataset(DataConfig(name="breastmnist", n_train=8, root=str(tmp_path)))


def test_float_images_a_hair_outside_0_1_are_clamped_not_rescaled(tmp_path):
    """A resampled [0, 1] file overshoots a little (1.0004, -0.0002): read as [0, 1] and
    clamped, not divided by 255 (black) nor refused."""
    import numpy as np

    write_medmnist_npz(tmp_path / "breastmnist.npz", n_train=20, n_test=8)
    with np.load(tmp_path / "breastmnist.npz") as npz:
        parts = dict(npz)
    for key in ("train_images", "val_images", "test_images"):
        parts[key] = parts[key].astype(np.float32) / 255.0
    parts["train_images"][0, 0, 0] = 1.0004
    parts["train_images"][0, 0, 1] = -0.0002
    np.savez(tmp_path / "breastmnist.npz", **parts)
    data = load_dataset(DataConfig(name="breastmnist", n_train=20, root=str(tmp_path)))
    assert data.train.max() == 1.0 and data.train.min() == -1.0
    assert data.train.mean() > -0.5, "not all black"
