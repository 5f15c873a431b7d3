"""The leaderboard's columns: label, one-line legend, format and sort direction.

The case's identity and cost columns are here; every registered metric
(``benchmark.metrics.base.CaseMetric``) brings its own through ``columns()``, so a
plugin metric's column appears beside the built-ins', computed on every case.
"""

from __future__ import annotations

from benchmark.display import Column
from benchmark.metrics.base import metric_classes
from benchmark.record import (
    DATASET,
    FAMILY,
    IMAGES_PER_SECOND,
    MITIGATION,
    N_GEN,
    N_TRAIN,
    NFE_PER_IMAGE,
    TRAIN_SECONDS,
)


def columns() -> list[Column]:
    metric_cols = [col for cls in metric_classes() for col in cls.columns()]
    return [
        Column(FAMILY, "model", FAMILY.legend),
        Column(DATASET, "data", DATASET.legend),
        Column(N_TRAIN, "N_train", N_TRAIN.legend, None, "{:d}"),
        Column(MITIGATION, "mitigation", "mitigation and its parameters"),
        *metric_cols,
        Column(
            TRAIN_SECONDS,
            "train s",
            "wall time of training (cached runs keep the original figure)",
            False,
            "{:.0f}",
        ),
        Column(IMAGES_PER_SECOND, "img/s", IMAGES_PER_SECOND.legend, True, "{:.1f}"),
        Column(NFE_PER_IMAGE, "NFE", NFE_PER_IMAGE.legend, False, "{:d}"),
        Column(N_GEN, "N_gen", N_GEN.legend, None, "{:d}"),
    ]
