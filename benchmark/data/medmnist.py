"""MedMNIST datasets through the ``medmnist`` package (docs/science.md, the data), 28x28,
and the MedMNIST+ sizes where a case needs them.

Files are MedMNIST's own ``{flag}.npz`` (``{flag}_{size}.npz`` for the MedMNIST+ sizes;
keys ``train_images``, ``train_labels``,
``val_images``, ... ). They are read from ``DataConfig.root`` when given, else
from ``<cache>/medmnist``, where they are downloaded on first use. With no file
and no network the error says which file to put where.

Members come from MedMNIST's train split; held-out non-members from its test
split (same distribution, never trained on).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from benchmark.data.base import DatasetSource, Pools
from benchmark.errors import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".dcm")


class MedMNISTSource(DatasetSource):
    flag: str = ""
    image_size = 28

    @property
    def folder(self) -> Path:
        if self.root is not None:
            return self.root
        base = self.cache_root if self.cache_root is not None else Path.home() / ".cache/memobench"
        return base / "medmnist"

    @property
    def file_name(self) -> str:
        """MedMNIST's name for the file: ``{flag}.npz`` at 28 px, ``{flag}_{size}.npz`` for
        the MedMNIST+ sizes (64, 128, 224)."""
        return f"{self.flag}.npz" if self.image_size == 28 else f"{self.flag}_{self.image_size}.npz"

    def _file(self) -> Path:
        return self.folder / self.file_name

    @property
    def where(self) -> str:
        return str(self._file())

    def _missing(self, why: str) -> DataError:
        import medmnist

        url = medmnist.INFO[self.flag]["url"]
        return DataError(
            f"{self.file_name} not found in {self.folder} ({why}{self._found_instead()}). "
            f"Download it from {url} and put it at {self._file()}, or point memobench run's "
            f"--data-root FOLDER (--memobench-data-root in pytest, DataConfig.root in "
            f"Python) at a folder that holds {self.file_name}."
        )

    def _found_instead(self) -> str:
        """What the folder holds instead of ``<flag>.npz``: a missing folder, another size
        of the same set, or image files (which are not read as a dataset)."""
        folder = self.folder
        if not folder.exists():
            return f"; the folder {folder} does not exist"
        if not folder.is_dir():
            return f"; {folder} is a file, not a folder"
        sized = sorted(
            p.name
            for p in [*folder.glob(f"{self.flag}_*.npz"), folder / f"{self.flag}.npz"]
            if p.exists() and p.name != self.file_name
        )
        if sized:
            return (
                f"; it holds {', '.join(sized)}, the same set at other sizes: these cases "
                f"read the {self.image_size}x{self.image_size} file, {self.file_name}"
            )
        images = [p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES]
        if images:
            return (
                f"; it holds {len(images)} image file(s) such as {images[0].name}: a dataset "
                f"is read from MedMNIST's .npz layout, not from image folders"
            )
        return ""

    def _ensure_file(self) -> Path:
        path = self._file()
        if path.exists():
            return path
        if self.root is not None or not self.download:
            raise self._missing(
                "no download was attempted"
                if not self.download
                else "a data root was given, so nothing is downloaded"
            )
        import medmnist

        cls = getattr(medmnist, medmnist.INFO[self.flag]["python_class"])
        self.folder.mkdir(parents=True, exist_ok=True)
        try:
            size = {} if self.image_size == 28 else {"size": self.image_size}
            cls(split="train", root=str(self.folder), download=True, **size)
        except Exception as err:  # no network, HTTP error, bad checksum
            raise self._missing(f"download failed: {type(err).__name__}: {err}") from err
        if not path.exists():
            raise self._missing("download finished without the file")
        return path

    def load_pools(self) -> Pools:
        path = self._ensure_file()
        try:
            npz = np.load(path)
            parts = {
                k: npz[k] for k in ("train_images", "train_labels", "test_images", "test_labels")
            }
        except Exception as err:
            raise DataError(
                f"{path} is not a readable MedMNIST file ({type(err).__name__}: {err}); "
                f"delete it and download {self.file_name} again"
            ) from err
        # the shape and channels are checked against the set's own in checked_pools()
        train_x = _to_tensor(parts["train_images"], path, "train_images")
        test_x = _to_tensor(parts["test_images"], path, "test_images")
        return Pools(train_x, _labels(parts["train_labels"]), test_x, _labels(parts["test_labels"]))


def _to_tensor(images: np.ndarray, path: Path, key: str) -> torch.Tensor:
    """MedMNIST's uint8 images, or float ones in [0, 1] or [0, 255], as floats in [0, 1]."""
    array = np.asarray(images)
    x = torch.from_numpy(array).float()
    slack = 1e-3  # resampled [0, 1] images overshoot a little: read in range, clamped
    if x.numel() and (not torch.isfinite(x).all() or x.min() < -slack):
        raise DataError(
            f"{path}: {key} holds negative or non-finite values (min {float(x.min()):.3g}); "
            f"a MedMNIST file holds uint8 pixels 0-255 (or floats in [0, 1] or [0, 255])"
        )
    peak = float(x.max()) if x.numel() else 0.0
    if np.issubdtype(array.dtype, np.floating) and peak <= 1.0 + slack:
        x = x.clamp(0.0, 1.0)  # already in [0, 1]
    elif peak <= 255.0 + slack:
        x = (x / 255.0).clamp(0.0, 1.0)
    else:
        raise DataError(
            f"{path}: {key} reaches {peak:.6g}; a MedMNIST file holds uint8 pixels 0-255 "
            f"(or floats in [0, 1] or [0, 255]): rescale the images to one of those ranges"
        )
    if x.ndim == 3:  # (N, H, W) grey
        return x.unsqueeze(1)
    if x.ndim == 4:
        return x.permute(0, 3, 1, 2).contiguous()  # (N, H, W, C) -> (N, C, H, W)
    raise DataError(
        f"{path}: {key} has shape {tuple(x.shape)}; a MedMNIST file holds (N, H, W) grey or "
        f"(N, H, W, C) colour images"
    )


def _labels(labels: np.ndarray) -> torch.Tensor:
    y = torch.from_numpy(np.asarray(labels)).long()
    return y[:, 0] if y.ndim == 2 else y  # multi-label sets (ChestMNIST): first label


# The seed paper's sets: PathMNIST (main) and its Table 2.
class PathMNIST(MedMNISTSource):
    flag = name = "pathmnist"
    channels, num_classes = 3, 9


class BreastMNIST(MedMNISTSource):
    flag = name = "breastmnist"
    channels, num_classes = 1, 2


class RetinaMNIST(MedMNISTSource):
    flag = name = "retinamnist"
    channels, num_classes = 3, 5


class PneumoniaMNIST(MedMNISTSource):
    flag = name = "pneumoniamnist"
    channels, num_classes = 1, 2


class PneumoniaMNIST64(PneumoniaMNIST):
    """PneumoniaMNIST at 64 x 64 (MedMNIST+): the paper tier's latent case."""

    name = "pneumoniamnist_64"
    image_size = 64


class BloodMNIST(MedMNISTSource):
    flag = name = "bloodmnist"
    channels, num_classes = 3, 8


class OrganSMNIST(MedMNISTSource):
    flag = name = "organsmnist"
    channels, num_classes = 1, 11


class ChestMNIST(MedMNISTSource):
    """Multi-label (14 findings); the first finding is used as the class label."""

    flag = name = "chestmnist"
    channels, num_classes = 1, 2
