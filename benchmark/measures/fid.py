"""FID gap (docs/science.md): FID against the training set and against held-out images.

FID(samples, train) and FID(samples, held-out) with the same number of images
and the same feature extractor (torchmetrics ``FrechetInceptionDistance`` with
``feature=`` a module); gap = FID_test - FID_train. A model that memorizes
sits closer to its training set than to fresh images of the same distribution,
so its gap is large. The interval bootstraps the samples. The same sets' KID
(``kid.py``) is recorded beside it: unbiased at the small sizes where FID is not.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import linalg
from torch import nn
from torchmetrics.image.fid import FrechetInceptionDistance

from benchmark.measures.bootstrap import bootstrap_ci
from benchmark.measures.features import Precomputed, extract, extractor_name
from benchmark.measures.kid import KID_FIELDS, kid_gap_from_features
from benchmark.record import Field

FID_TRAIN = Field("fid_train", "float", "FID of the samples against the training images")
FID_TEST = Field("fid_test", "float", "FID against as many held-out images (lower = better)")
FID_GAP = Field("fid_gap", "float", "fid_test - fid_train: > 0 when samples sit on members")
FID_GAP_CI = Field("fid_gap_ci", "list", "bootstrap 95% interval of fid_gap [lo, hi]")
FID_N = Field("fid_n", "int", "images in each of the three sets")
FID_EXTRACTOR = Field("fid_extractor", "str", "the feature extractor FID was measured in")
FID_FIELDS = (FID_TRAIN, FID_TEST, FID_GAP, FID_GAP_CI, FID_N, FID_EXTRACTOR, *KID_FIELDS)


def _need_two(n: int, what: str) -> None:
    if n < 2:
        raise ValueError(f"FID needs at least 2 {what}, got {n}: a covariance needs two images")


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)) of two (N, D) feature sets."""
    _need_two(len(a), "feature vectors in the first set")
    _need_two(len(b), "feature vectors in the second set")
    mu_a, mu_b = a.mean(0), b.mean(0)
    s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = linalg.sqrtm(s_a @ s_b)
    if np.iscomplexobj(covmean):
        covmean = covmean.real
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(s_a + s_b - 2 * covmean))


def fid_from_features(samples: torch.Tensor, reference: torch.Tensor) -> float:
    """torchmetrics FID of two precomputed (N, D) feature sets."""
    _need_two(samples.shape[0], "generated images")
    _need_two(reference.shape[0], "reference images")
    metric = FrechetInceptionDistance(feature=Precomputed(), input_img_size=(samples.shape[1],))
    metric.update(reference.double(), real=True)
    metric.update(samples.double(), real=False)
    return float(metric.compute())


def fid(samples: torch.Tensor, reference: torch.Tensor, feature: nn.Module) -> float:
    """FID between two image sets (N, C, H, W) in [-1, 1] in ``feature``'s space."""
    _need_two(samples.shape[0], "generated images")
    _need_two(reference.shape[0], "reference images")
    return fid_from_features(extract(feature, samples), extract(feature, reference))


def fid_gap(
    samples: torch.Tensor,
    train: torch.Tensor,
    heldout: torch.Tensor,
    feature: nn.Module,
    n_boot: int = 200,
    seed: int = 0,
) -> dict:
    """FID_train, FID_test (equal counts), their gap and a bootstrap 95% interval of the gap.

    Args:
        samples: (N, C, H, W) generated images.
        train: members; held-out: non-members. Each is cut to
            n = min(N, len(train), len(heldout)) images so the FIDs are comparable.
        feature: the extractor (``num_features`` attribute, (N, D) output).
    """
    out = fid_gap_from_features(
        extract(feature, samples), extract(feature, train), extract(feature, heldout), n_boot, seed
    )
    out[FID_EXTRACTOR] = extractor_name(feature)
    return out


def fid_gap_from_features(
    samples: torch.Tensor,
    train: torch.Tensor,
    heldout: torch.Tensor,
    n_boot: int = 200,
    seed: int = 0,
) -> dict:
    """``fid_gap`` on features already extracted (each set's features computed once)."""
    n = min(samples.shape[0], train.shape[0], heldout.shape[0])
    _need_two(n, "images in each of samples, training and held-out sets")
    gen = torch.Generator().manual_seed(seed)
    pick = lambda x: x[torch.randperm(x.shape[0], generator=gen)[:n]]  # noqa: E731
    s, tr, te = pick(samples), pick(train), pick(heldout)
    fid_train, fid_test = fid_from_features(s, tr), fid_from_features(s, te)

    fs, ftr, fte = (x.double().numpy() for x in (s, tr, te))

    def gap(samples: np.ndarray) -> float:
        return frechet_distance(samples, fte) - frechet_distance(samples, ftr)

    lo, hi = bootstrap_ci(gap, [fs], n_boot, seed)
    return {
        FID_TRAIN: fid_train,
        FID_TEST: fid_test,
        FID_GAP: fid_test - fid_train,
        FID_GAP_CI: [float(lo), float(hi)],
        FID_N: n,
        # the same sets' kernel distance, unbiased where so few images make FID's biased
        **kid_gap_from_features(s, tr, te, n_boot, seed),
    }
