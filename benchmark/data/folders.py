"""A user's own images: a folder of PNG/JPEG/TIFF/BMP files (recursive), or an ``.npz``
in MedMNIST's layout, brought to a model's size and channel count by a stated rule.

The reader for auditing a model memobench did not train: the images it was
trained on and images it never saw. Nothing is split or drawn: the members are
the images given as members. ``FitRule`` says how an image reaches the model's
``size``, with torchvision's arithmetic:

- ``resize`` (default): the shorter side scaled to ``size`` (bilinear, antialiased),
  then the centre ``size`` x ``size`` crop: what diffusers' ``train_unconditional.py``
  example does to its training images (``Resize(resolution)``, ``CenterCrop``);
- ``center-crop``: the centre crop alone, for images at least ``size`` on each side;
- ``exact``: images must already be ``size`` x ``size``.

Images are read one at a time into one ``uint8`` tensor (a progress bar on long
folders), so a folder costs its pixels once in memory, and the audit a float copy
more: a set that would not fit in the memory available is refused before any
image is read, with the figures and the fix. Every bad input stops with
one line that names the file or folder and the fix: a folder that is not there or
holds no images, an unreadable image, a channel count other than the model's,
an image the rule cannot bring to size.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from benchmark.errors import DataError
from benchmark.progress import bar

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
FITS = ("resize", "center-crop", "exact")
# PIL modes by the channels they hold (an alpha channel is dropped, and said)
GREY_MODES = ("1", "L", "I", "I;16", "I;16B", "I;16L")
SIXTEEN_BIT = ("I", "I;16", "I;16B", "I;16L")  # 16-bit grey PNG and TIFF, read as [0, 65535]
COLOUR_MODES = ("RGB", "P", "CMYK", "YCbCr")
NPZ_KEYS = ("train_images", "val_images", "test_images", "images")
# bytes a set costs per uint8 pixel while audited: the uint8 tensor, its float32 copy
# and one float32 temporary of the same size while that copy is scaled
BYTES_PER_PIXEL = 1 + 4 + 4


def _cgroup_room() -> int | None:
    """Bytes a container's memory limit leaves this process's cgroup (v2, then v1)."""
    for limit, used in (
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
        (
            "/sys/fs/cgroup/memory/memory.limit_in_bytes",
            "/sys/fs/cgroup/memory/memory.usage_in_bytes",
        ),
    ):
        try:
            with open(limit) as f:
                text = f.read().strip()
            if text == "max":
                return None
            with open(used) as f:
                return max(0, int(text) - int(f.read().strip()))
        except (OSError, ValueError):
            continue
    return None


def available_memory() -> int | None:
    """Bytes of memory free for new allocations now: Linux's MemAvailable (which counts
    the page cache the kernel can drop), or less where a container's cgroup limit leaves
    less; elsewhere the free pages; ``None`` unknown."""
    free = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    free = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError, IndexError):
        pass
    if free is not None:
        room = _cgroup_room()
        return free if room is None else min(free, room)
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_fits_in_memory(n: int, rule: FitRule, what: str, others: int = 0) -> None:
    """Refuse ``n`` images at ``rule``'s size, with ``others`` audited beside them (the
    other set), that would not fit in the free memory.

    Raises:
        DataError: the sets' size, the memory free, and the fix.
    """
    need = (n + others) * rule.channels * rule.size * rule.size * BYTES_PER_PIXEL
    free = available_memory()
    if free is not None and need > free:
        beside = f" (with the {others} of the other set)" if others else ""
        raise DataError(
            f"{what}: {n} images{beside} at {rule.size}x{rule.size}x{rule.channels} need about "
            f"{need / 2**30:.1f} GiB while audited, and {free / 2**30:.1f} GiB of memory is "
            f"free; audit a random subset of the images (a few thousand give the same "
            f"figures to within their intervals) or run on a machine with more memory"
        )


@dataclass(frozen=True)
class FitRule:
    """How images are brought to a model's input: ``size`` x ``size`` pixels, ``channels``
    channels (1: grey, 3: RGB), by ``fit`` (``resize``, ``center-crop`` or ``exact``)."""

    size: int
    channels: int
    fit: str = "resize"

    def __post_init__(self) -> None:
        if self.fit not in FITS:
            raise DataError(f"unknown fit rule {self.fit!r}; use one of {', '.join(FITS)}")
        if self.channels not in (1, 3):
            raise DataError(f"a model of {self.channels} channels: memobench reads 1 or 3")
        if self.size < 1:
            raise DataError(f"image size must be >= 1, got {self.size}")

    def describe(self) -> str:
        how = {
            "resize": "shorter side resized to {s} (bilinear, antialiased), centre {s}x{s} crop",
            "center-crop": "centre {s}x{s} crop, no resizing",
            "exact": "used as they are ({s}x{s})",
        }[self.fit].format(s=self.size)
        return f"{how}; {'grey' if self.channels == 1 else 'RGB'}, scaled to [-1, 1]"


@dataclass
class ImageSet:
    """Images as the model sees them, and where each came from.

    Attributes:
        images: (N, C, size, size) ``uint8``.
        names: each image's file (relative to the folder) or ``file.npz[key][i]``.
        source: the folder or file they were read from.
        notes: what the reading changed beyond the rule (alpha dropped, 16-bit scaled).
    """

    images: torch.Tensor
    names: list[str]
    source: str
    notes: list[str]

    def __len__(self) -> int:
        return self.images.shape[0]

    def as_float(self) -> torch.Tensor:
        """The images in [-1, 1], float32, as memobench's models take them."""
        return self.images.float() / 127.5 - 1

    def hashes(self) -> list[str]:
        """A content hash per image (after the rule): equal images, equal hashes."""
        return [hashlib.sha256(img.numpy().tobytes()).hexdigest() for img in self.images]


def image_files(folder: Path, what: str) -> list[Path]:
    """The image files under ``folder`` (recursive, sorted by path).

    Raises:
        DataError: the folder is not there, or holds no image file (it says what it holds).
    """
    if not folder.exists():
        raise DataError(f"{what} {folder}: no such folder or file; pass the folder of images")
    if not folder.is_dir():
        raise DataError(
            f"{what} {folder}: not a folder of images nor an .npz; pass a folder of "
            f"{'/'.join(s.lstrip('.').upper() for s in IMAGE_SUFFIXES[:4])} files or an .npz"
        )
    files = sorted(
        p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
    )
    if not files:
        others = sorted({p.suffix.lower() or p.name for p in folder.rglob("*") if p.is_file()})
        held = f"it holds {', '.join(others[:8])} files" if others else "it is empty"
        raise DataError(
            f"{what} {folder}: no images ({', '.join(IMAGE_SUFFIXES)}) under it; {held}"
        )
    return files


def _pixels(path: Path, rel: str, channels: int, notes: set[str]) -> np.ndarray:
    """One image file as an (H, W, C) uint8 array of ``channels`` channels."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.load()
            mode = im.mode
            if mode in ("RGBA", "LA", "PA"):
                notes.add(f"alpha channel dropped ({mode})")
                im = im.convert("RGB" if mode != "LA" else "L")
                mode = im.mode
            if mode == "F":
                raise DataError(
                    f"{rel}: a 32-bit float image, whose range memobench cannot know; save "
                    f"it as an 8- or 16-bit PNG or TIFF"
                )
            if mode in GREY_MODES:
                got = 1
                if mode in SIXTEEN_BIT:  # one scale for every image of the kind
                    arr = np.asarray(im, dtype=np.float64)
                    notes.add("16-bit images scaled from [0, 65535] to 8 bits")
                    arr = np.clip(np.round(arr / 65535 * 255), 0, 255).astype(np.uint8)
                else:
                    arr = np.asarray(im.convert("L"), dtype=np.uint8)
                arr = arr[..., None]
            elif mode in COLOUR_MODES:
                got = 3
                arr = np.asarray(im.convert("RGB"), dtype=np.uint8)
            else:
                raise DataError(f"{rel}: image mode {mode!r} is neither grey nor RGB")
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise DataError(
            f"{rel}: not a readable image ({type(err).__name__}: {err}); remove it or "
            f"replace it with a good copy"
        ) from None
    if got != channels:
        have = "grey" if got == 1 else "RGB"
        want = "grey (1 channel)" if channels == 1 else "RGB (3 channels)"
        raise DataError(
            f"{rel}: a {have} image, but the model takes {want}; give the images the model "
            f"was trained on, in its channel count"
        )
    return arr


def fit(image: torch.Tensor, rule: FitRule, name: str) -> torch.Tensor:
    """(C, H, W) uint8 -> (C, size, size) uint8 by ``rule``.

    Raises:
        DataError: under ``exact``, another size; under ``center-crop``, a side below size.
    """
    _, h, w = image.shape
    s = rule.size
    if rule.fit == "exact" and (h, w) != (s, s):
        raise DataError(
            f"{name}: {w}x{h} pixels, but the model takes {s}x{s} and the fit rule is "
            f"'exact'; fit 'resize' (or 'center-crop') brings it to size"
        )
    if rule.fit == "center-crop" and min(h, w) < s:
        raise DataError(
            f"{name}: {w}x{h} pixels is smaller than the model's {s}x{s}, which a centre "
            f"crop cannot reach; fit 'resize' brings it to size"
        )
    if rule.fit == "resize" and min(h, w) != s:
        # torchvision's Resize(s): the shorter side to s, the longer int(s * long / short)
        long_ = int(s * max(h, w) / min(h, w))
        size = (s, long_) if h <= w else (long_, s)
        x = image.unsqueeze(0).float()
        x = F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)
        image = x.round().clamp(0, 255).to(torch.uint8)[0]
        _, h, w = image.shape
    # torchvision's CenterCrop: int(round(...)), Python's rounding of halves to even
    top, left = int(round((h - s) / 2.0)), int(round((w - s) / 2.0))
    return image[:, top : top + s, left : left + s].contiguous()


def count_images(source: str | Path) -> int:
    """How many images ``read_images`` would read from ``source`` (0: an .npz, or not a
    folder of images; ``read_images`` says what is wrong with it)."""
    folder = Path(str(source)).expanduser()
    if str(source).endswith(".npz") or ".npz:" in str(source) or not folder.is_dir():
        return 0
    try:
        return len(image_files(folder, "images"))
    except DataError:
        return 0


def read_images(
    source: str | Path,
    rule: FitRule,
    what: str = "images",
    progress: bool = False,
    others: int = 0,
) -> ImageSet:
    """The images of a folder (recursive) or an ``.npz`` brought to ``rule``.

    Args:
        source: a folder of image files, or ``file.npz`` (its first key of ``NPZ_KEYS``),
            or ``file.npz:key`` for another array of it (MedMNIST's ``test_images``).
        what: how messages name this set (``--members``, ``--heldout``).
        others: images of another set audited beside these, for the memory check.

    Raises:
        DataError: the problem, naming the folder, file or array, and the fix.
    """
    text = str(source)
    stem, _, key = text.partition(".npz:")
    if key or text.endswith(".npz"):
        return _read_npz(Path(f"{stem}.npz" if key else text).expanduser(), key or None, rule, what)
    folder = Path(text).expanduser()
    files = image_files(folder, what)
    check_fits_in_memory(len(files), rule, what, others)
    out = torch.empty((len(files), rule.channels, rule.size, rule.size), dtype=torch.uint8)
    notes: set[str] = set()
    with bar(total=len(files), desc=f"reading {what}", unit="image", enabled=progress) as pbar:
        for i, path in enumerate(files):
            rel = f"{what} {folder}/{path.relative_to(folder)}"
            arr = _pixels(path, rel, rule.channels, notes)
            out[i] = fit(
                torch.from_numpy(np.ascontiguousarray(arr).copy()).permute(2, 0, 1), rule, rel
            )
            pbar.update(1)
    names = [str(p.relative_to(folder)) for p in files]
    return ImageSet(out, names, str(folder), sorted(notes))


def _read_npz(path: Path, key: str | None, rule: FitRule, what: str) -> ImageSet:
    if not path.is_file():
        raise DataError(f"{what} {path}: no such file; pass the .npz (or a folder of images)")
    try:
        with np.load(path, allow_pickle=False) as npz:
            keys = list(npz.keys())
            if key is None:
                key = next((k for k in NPZ_KEYS if k in keys), None)
                if key is None:
                    raise DataError(
                        f"{what} {path}: no image array ({', '.join(NPZ_KEYS)}); it holds "
                        f"{', '.join(keys) or 'nothing'}; name one as {path.name}:KEY"
                    )
            elif key not in keys:
                raise DataError(
                    f"{what} {path}: no array {key!r}; it holds {', '.join(keys) or 'nothing'}"
                )
            arr = npz[key]
    except (OSError, ValueError) as err:
        raise DataError(
            f"{what} {path}: not a readable .npz ({type(err).__name__}: {err})"
        ) from None
    if arr.ndim == 3:
        arr = arr[..., None]
    if arr.ndim != 4 or arr.shape[-1] not in (1, 3) or len(arr) == 0:
        raise DataError(
            f"{what} {path}[{key}]: shape {arr.shape}; expected (N, H, W) grey or "
            f"(N, H, W, 3) RGB images, as MedMNIST writes them"
        )
    if arr.shape[-1] != rule.channels:
        have = "grey" if arr.shape[-1] == 1 else "RGB"
        raise DataError(
            f"{what} {path}[{key}]: {have} images, but the model takes "
            f"{'grey (1 channel)' if rule.channels == 1 else 'RGB (3 channels)'}"
        )
    notes = []
    if arr.dtype != np.uint8:  # one scale for the whole array
        high = float(arr.max())
        if np.issubdtype(arr.dtype, np.integer):
            top = 255.0 if high <= 255 else 65535.0
        elif high <= 1.0:
            top = 1.0
        elif high <= 255.0:
            top = 255.0
        else:
            raise DataError(
                f"{what} {path}[{key}]: {arr.dtype} values up to {high:g}, a range memobench "
                f"cannot know; store uint8, uint16, or floats in [0, 1] or [0, 255]"
            )
        if high > top or float(arr.min()) < 0:
            raise DataError(
                f"{what} {path}[{key}]: values outside [0, {top:g}]; store images as uint8, "
                f"uint16, or floats in [0, 1]"
            )
        notes.append(f"{arr.dtype} values scaled from [0, {top:g}] to 8 bits")
        arr = np.round(arr.astype(np.float64) / top * 255).astype(np.uint8)
    images = torch.from_numpy(np.ascontiguousarray(arr)).permute(0, 3, 1, 2)
    where = f"{what} {path}[{key}]"
    out = torch.stack([fit(img, rule, f"{where}[{i}]") for i, img in enumerate(images)])
    return ImageSet(out, [f"{path.name}[{key}][{i}]" for i in range(len(out))], str(path), notes)


def shared_images(a: ImageSet, b: ImageSet) -> list[tuple[str, str]]:
    """Pairs (name in ``a``, name in ``b``) of identical images (after the rule), by
    content hash: the same picture given as a member and as held-out."""
    first = {}
    for name, digest in zip(a.names, a.hashes(), strict=True):
        first.setdefault(digest, name)
    return [(first[d], name) for name, d in zip(b.names, b.hashes(), strict=True) if d in first]
