"""The network FID and replication measure features with, picked from what the run has.

In order of preference: a user's own TorchScript encoder, torchmetrics' Inception-v3
from a weights file, and otherwise a network memobench trains once and caches: the
dataset's classifier where the images have class labels, a copy-detection encoder of
the images themselves where they have none (a user's own folders).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from benchmark.cache import Cache
from benchmark.data.base import DatasetSource
from benchmark.measures.copy_features import copy_detection_features
from benchmark.measures.features import EncoderFeatures, InceptionFeatures, classifier_features


def feature_extractor(
    cache: Cache,
    *,
    steps: int,
    device: str | torch.device,
    progress: bool,
    encoder: str | None = None,
    encoder_id: str | None = None,
    inception_weights: str | None = None,
    unlabelled: torch.Tensor | None = None,
    source: Callable[[], DatasetSource] | None = None,
) -> nn.Module:
    """The feature extractor, on ``device``.

    Args:
        encoder, encoder_id: a TorchScript encoder file, and the name its features go by.
        inception_weights: the Inception-v3 FID weights file.
        unlabelled: (N, C, H, W) images without class labels, for a copy-detection encoder.
        source: the registered dataset whose classifier is trained (called only then).
        steps: training steps of a network memobench trains.
    """
    if encoder:
        return EncoderFeatures(encoder, encoder_id or encoder).to(device)
    if inception_weights:
        return InceptionFeatures(inception_weights).to(device)
    trained = dict(steps=steps, device=device, progress=progress)
    if unlabelled is not None:
        return copy_detection_features(unlabelled, cache, **trained)
    if source is None:
        raise ValueError("feature_extractor needs an encoder, weights, images or a dataset")
    return classifier_features(source(), cache, **trained)
