"""KID gap: the kernel distance of the samples to the training images and to held-out
images, beside the FID gap where the reference sets are small.

FID fits a Gaussian to each set: with 64 reference images in 64 feature dimensions
its covariance is singular and FID is biased by the set size. The kernel inception
distance (Binkowski et al., 2018) is the unbiased squared maximum mean discrepancy
under the cubic polynomial kernel k(x, y) = (x.y / d + 1)^3, which has no such bias
at any n: torchmetrics ``KernelInceptionDistance`` on the same features FID uses
(``feature=`` a module that passes them through). gap = KID_test - KID_train, with a
bootstrap interval over the samples. Its kernel matrices grow as n^2, so at most
``KID_MAX`` images of each set (in the random order FID's cut drew them) are used.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from torchmetrics.image.kid import KernelInceptionDistance

from benchmark.measures.bootstrap import bootstrap_ci
from benchmark.measures.features import Precomputed
from benchmark.record import Field

KID_TRAIN = Field("kid_train", "float", "KID of the samples against the training images")
KID_TEST = Field("kid_test", "float", "KID against as many held-out images (lower = better)")
KID_GAP = Field("kid_gap", "float", "kid_test - kid_train: > 0 when samples sit on members")
KID_GAP_CI = Field("kid_gap_ci", "list", "bootstrap 95% interval of kid_gap [lo, hi]")
KID_FIELDS = (KID_TRAIN, KID_TEST, KID_GAP, KID_GAP_CI)
KID_MAX = 2000  # images per set: three 2000 x 2000 kernel matrices, 100 MB in float64


def kid_from_features(samples: torch.Tensor, reference: torch.Tensor) -> float:
    """torchmetrics KID of two precomputed (N, D) feature sets of equal size N >= 2: one
    subset of all N images, so the unbiased MMD^2 of the whole sets."""
    n = samples.shape[0]
    if n < 2 or reference.shape[0] != n:
        raise ValueError(f"KID needs two sets of equal size >= 2, got {n} and {reference.shape[0]}")
    with warnings.catch_warnings():  # it keeps every feature: these are n vectors, no more
        warnings.filterwarnings("ignore", message=".*will save all extracted features")
        metric = KernelInceptionDistance(feature=Precomputed(), subsets=1, subset_size=n)
    metric.update(reference.double(), real=True)
    metric.update(samples.double(), real=False)
    mean, _ = metric.compute()
    return float(mean)


def _kernel(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a @ b.T / a.shape[1] + 1) ** 3


def _mmd2(k_xx: np.ndarray, k_yy: np.ndarray, k_xy: np.ndarray) -> float:
    m = k_xx.shape[0]
    within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
    return float(within - 2 * k_xy.sum() / m**2)


def poly_mmd2(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 of two (n, d) sets under (x.y / d + 1)^3, as torchmetrics computes it."""
    return _mmd2(_kernel(x, x), _kernel(y, y), _kernel(x, y))


def kid_gap_from_features(
    samples: torch.Tensor,
    train: torch.Tensor,
    heldout: torch.Tensor,
    n_boot: int = 200,
    seed: int = 0,
) -> dict:
    """KID_train, KID_test (sets of equal size, as ``fid_gap_from_features`` cuts them),
    their gap and a bootstrap 95% interval of the gap (the samples resampled)."""
    samples, train, heldout = (x[:KID_MAX] for x in (samples, train, heldout))
    kid_train, kid_test = kid_from_features(samples, train), kid_from_features(samples, heldout)
    fs, ftr, fte = (x.double().numpy() for x in (samples, train, heldout))
    # the kernels once; a resample of the samples picks their rows and columns
    k_ss, k_tr, k_te = _kernel(fs, fs), _kernel(fs, ftr), _kernel(fs, fte)
    k_trtr, k_tete = _kernel(ftr, ftr), _kernel(fte, fte)

    def gap(idx: np.ndarray) -> float:
        k = k_ss[np.ix_(idx, idx)]
        return _mmd2(k, k_tete, k_te[idx]) - _mmd2(k, k_trtr, k_tr[idx])

    lo, hi = bootstrap_ci(gap, [np.arange(len(fs))], n_boot, seed)
    return {
        KID_TRAIN: kid_train,
        KID_TEST: kid_test,
        KID_GAP: kid_test - kid_train,
        KID_GAP_CI: [float(lo), float(hi)],
    }
