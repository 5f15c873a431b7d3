"""The leaderboard's columns: label, one-line legend, format and sort direction.

The case's identity and cost columns are here; every registered metric
(``benchmark.metrics.base.CaseMetric``) brings its own through ``columns()``, so a
plugin metric's column appears beside the built-ins', computed on every case.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

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


@dataclass(frozen=True)
class Column:
    """One leaderboard column: the record field it shows (``benchmark.record.Field``)."""

    key: str
    label: str
    legend: str
    higher_is_better: bool | None = None  # None: not a ranking column
    fmt: str = "{:.3g}"
    display: Callable[[dict], str | None] | None = None  # whole-record rendering
    group: str = ""  # a header over consecutive columns of one group (a threat model)

    def text(self, record: dict) -> str:
        if self.display is not None:
            shown = self.display(record)
            if shown is not None:
                return shown
        return self.format(record.get(self.key))

    def format(self, value) -> str:
        if value is None or (isinstance(value, float) and value != value):
            return "—"
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if isinstance(value, float) and value.is_integer() and "d}" in self.fmt:
                value = int(value)  # an integer column that pandas widened to float
            return self.fmt.format(value)
        return str(value)


def with_interval(key: str, ci_key: str, fmt: str = "{:.3f}"):
    """Render ``value [lo, hi]`` when the record holds the interval."""

    def display(record: dict) -> str | None:
        value, ci = record.get(key), record.get(ci_key)
        if value is None or not isinstance(ci, (list, tuple)) or len(ci) != 2:
            return None
        lo, hi = ci
        return f"{fmt.format(value)} [{fmt.format(lo)}, {fmt.format(hi)}]"

    return display


def columns() -> list[Column]:
    from benchmark.metrics.base import metric_classes

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
