"""The dataset bundle every case trains and audits on, and how it is split.

A dataset plugin is a ``DatasetSource`` subclass that returns a pool of member
candidates and a pool of held-out candidates as float tensors in [0, 1]; the
split into ``n_train`` members and held-out non-members, the scaling to
[-1, 1] and the SAF (docs/science.md, the fingerprint) are done here, the same for every source.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import torch

from benchmark import registry
from benchmark.config import DataConfig
from benchmark.data.saf import SAFInfo, apply_saf
from benchmark.errors import DataError, TooFewImagesError


@dataclass
class Pools:
    """Candidate images in [0, 1], shape (N, C, H, W), with integer labels (N,)."""

    member_images: torch.Tensor
    member_labels: torch.Tensor
    heldout_images: torch.Tensor | None = None
    heldout_labels: torch.Tensor | None = None


class DatasetSource:
    """Base class of dataset plugins.

    Subclasses set ``name``, ``image_size``, ``channels``, ``num_classes`` and
    implement ``load_pools``. When ``load_pools`` returns no held-out pool, the
    held-out images come from the member pool (disjoint from the members).
    """

    name: str = "base"
    image_size: int = 0
    channels: int = 1
    num_classes: int = 0

    def __init__(
        self, root: str | Path | None = None, cache_root: Path | None = None, download: bool = True
    ) -> None:
        self.root = Path(root).expanduser() if root else None
        self.cache_root = cache_root
        self.download = download

    def load_pools(self) -> Pools:
        raise NotImplementedError

    @property
    def where(self) -> str:
        """Where the images come from, for error messages (a MedMNIST source: its file)."""
        return f"dataset {self.name!r}"

    def checked_pools(self) -> Pools:
        """``load_pools`` with the images checked against the declared shape.

        Raises:
            DataError: images that are not (N, channels, image_size, image_size), naming
                the file, what it holds and what to do.
        """
        pools = self.load_pools()
        want = (self.channels, self.image_size, self.image_size)
        for part, images in (("training", pools.member_images), ("held-out", pools.heldout_images)):
            if images is None:
                continue
            got = tuple(images.shape[1:])
            if images.ndim != 4 or got[1:] != want[1:]:
                raise DataError(
                    f"{self.where}: {part} images have shape {tuple(images.shape)}, expected "
                    f"(N, {want[0]}, {want[1]}, {want[2]}) for {self.name!r}; use the "
                    f"{want[1]}x{want[2]} {self.name} file"
                )
            if got[0] != want[0]:
                kind = {1: "grey (1 channel)", 3: "RGB (3 channels)"}
                raise DataError(
                    f"{self.where}: {part} images have {got[0]} channel(s), but {self.name!r} "
                    f"is {kind.get(want[0], f'{want[0]}-channel')}; use the {self.name} file "
                    f"itself, not another set's"
                )
        return pools


@dataclass
class ImageDataset:
    """Members and held-out non-members of one case, in [-1, 1].

    Attributes:
        name: dataset name.
        train: (n_train, C, H, W) member images; x_p replaced by SAF(x_p) if ``saf``.
        train_labels: (n_train,) class labels.
        heldout: (n_heldout, C, H, W) non-member images (never contains x_p).
        heldout_labels: (n_heldout,) class labels.
        saf: where the fingerprint is, or ``None``.
        num_classes: number of class labels.
    """

    name: str
    train: torch.Tensor
    train_labels: torch.Tensor
    heldout: torch.Tensor
    heldout_labels: torch.Tensor
    saf: SAFInfo | None = None
    num_classes: int = 0
    _fingerprint: tuple = field(default=(), init=False, repr=False, compare=False)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.train.shape[1:])  # type: ignore[return-value]

    @property
    def n_train(self) -> int:
        return self.train.shape[0]

    def fingerprint(self) -> str:
        """Hash of the image contents, part of every cache key built on this data.

        Computed once per set of tensors (every model, detector and feature key
        asks for it); assigning a new tensor to a split recomputes it.
        """
        parts = (self.train, self.train_labels, self.heldout, self.heldout_labels)
        ident = tuple(id(t) for t in parts)
        if self._fingerprint and self._fingerprint[0] == ident:
            return self._fingerprint[1]
        h = hashlib.sha256()
        for t in parts:
            h.update(str(tuple(t.shape)).encode())
            h.update(t.contiguous().numpy().tobytes())
        self._fingerprint = (ident, h.hexdigest()[:16])
        return self._fingerprint[1]


def check_train_size(source: DatasetSource, pools: Pools, n_train: int) -> None:
    n_pool = pools.member_images.shape[0]
    if n_train > n_pool:
        raise TooFewImagesError(
            f"n_train={n_train} is larger than {source.where}, which has {n_pool} training "
            f"images; choose n_train <= {n_pool} or use a file with more training images"
        )


def check_source(
    name: str, root: str | Path | None, cache_root: Path | None, min_train: int = 1
) -> None:
    """Load dataset ``name`` once and check its shape and size, before a run starts.

    Raises:
        UnknownNameError: ``name`` is not a registered dataset (the known ones are listed).
        DataError: a missing or malformed file, a wrong shape or channel count, or fewer
            than ``min_train`` training images.
    """
    source: DatasetSource = registry.datasets.get(name)(root=root, cache_root=cache_root)
    check_train_size(source, source.checked_pools(), min_train)


def _shadow_split(
    source: DatasetSource,
    cfg: DataConfig,
    train_left: torch.Tensor,
    held_left: int,
) -> tuple[torch.Tensor, int]:
    """``cfg``'s shadow split: ``n_train`` members, the first of the training images the
    split itself leaves (``train_left``, pool indices), and the number of non-members
    it takes from the ``held_left`` images left in the pool the split's own non-members
    come from (``n_heldout``, or as many as the members)."""
    n_held = cfg.n_heldout or min(cfg.n_train, held_left)
    if train_left.numel() < cfg.n_train or held_left < max(n_held, 2):
        raise TooFewImagesError(
            f"the shadow split of {cfg.name!r} with n_train={cfg.n_train} needs "
            f"{cfg.n_train} training images and at least {max(n_held, 2)} held-out ones "
            f"that the case itself does not use, and {source.where} has "
            f"{train_left.numel()} and {held_left} left; lower n_train (or n_heldout), use "
            f"a file with more images, or run the case without a shadow model "
            f"(CaseConfig.shadow=False)"
        )
    return train_left[: cfg.n_train], n_held


def load_dataset(
    cfg: DataConfig, cache_root: Path | None = None, download: bool = True
) -> ImageDataset:
    """Build the members / held-out split described by ``cfg``.

    Raises:
        UnknownNameError: ``cfg.name`` is not a registered dataset.
        DataError: the data file is missing or ``n_train`` exceeds the dataset.
    """
    source_cls = registry.datasets.get(cfg.name)
    source: DatasetSource = source_cls(root=cfg.root, cache_root=cache_root, download=download)
    pools = source.checked_pools()
    gen = torch.Generator().manual_seed(cfg.split_seed)
    check_train_size(source, pools, cfg.n_train)
    n_pool = pools.member_images.shape[0]
    perm = torch.randperm(n_pool, generator=gen)
    member_idx = perm[: cfg.n_train]

    if pools.heldout_images is None:
        rest = perm[cfg.n_train :]
        held_pool, held_pool_labels = pools.member_images[rest], pools.member_labels[rest]
    else:
        order = torch.randperm(pools.heldout_images.shape[0], generator=gen)
        held_pool = pools.heldout_images[order]
        held_pool_labels = pools.heldout_labels[order]
    available = held_pool.shape[0]
    if cfg.n_heldout > available:
        raise TooFewImagesError(
            f"n_heldout={cfg.n_heldout} is larger than the {available} held-out images dataset "
            f"{cfg.name!r} has left after n_train={cfg.n_train}; lower n_heldout or n_train"
        )
    n_held = cfg.n_heldout or min(cfg.n_train, available)
    if cfg.shadow:
        # the shadow takes the training images after the split's own, and non-members
        # from the pool the split's own come from (a file's held-out split; else the
        # training pool, after the split's members and non-members), after those
        if pools.heldout_images is None:
            rest = perm[cfg.n_train + n_held :]
            held_idx = rest[cfg.n_train :]
            member_idx, n_shadow = _shadow_split(source, cfg, rest, held_idx.numel())
            held_pool, held_pool_labels = (
                pools.member_images[held_idx],
                pools.member_labels[held_idx],
            )
        else:
            member_idx, n_shadow = _shadow_split(
                source, cfg, perm[cfg.n_train :], held_pool.shape[0] - n_held
            )
            held_pool, held_pool_labels = held_pool[n_held:], held_pool_labels[n_held:]
        n_held = n_shadow
    train = pools.member_images[member_idx]
    train_labels = pools.member_labels[member_idx]
    heldout, heldout_labels = held_pool[:n_held], held_pool_labels[:n_held]

    train = train.float() * 2 - 1
    heldout = heldout.float() * 2 - 1
    saf = None
    if cfg.saf:
        train, saf = apply_saf(train, seed=cfg.saf_seed)
    return ImageDataset(
        name=cfg.name,
        train=train.contiguous(),
        train_labels=train_labels.long(),
        heldout=heldout.contiguous(),
        heldout_labels=heldout_labels.long(),
        saf=saf,
        num_classes=source.num_classes,
    )
