"""The leaderboard's columns: label, one-line legend, format and sort direction.

The case's identity and cost columns are here; every registered metric
(``benchmark.metrics.base.CaseMetric``) brings its own through ``columns()``, so a
plugin metric's column appears beside the built-ins', computed on every case.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    legend: str
    higher_is_better: bool | None = None  # None: not a ranking column
    fmt: str = "{:.3g}"
    display: Callable[[dict], str | None] | None = None  # whole-record rendering

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
        Column("family", "model", "model family (registry name)"),
        Column("dataset", "data", "dataset (registry name)"),
        Column("n_train", "N_train", "number of training images", None, "{:d}"),
        Column("mitigation", "mitigation", "mitigation and its parameters"),
        *metric_cols,
        Column(
            "train_seconds",
            "train s",
            "wall time of training (cached runs keep the original figure)",
            False,
            "{:.0f}",
        ),
        Column(
            "images_per_second", "img/s", "sampling throughput, images per second", True, "{:.1f}"
        ),
        Column("nfe_per_image", "NFE", "network evaluations per generated image", False, "{:d}"),
        Column("n_gen", "N_gen", "number of generated images measured", None, "{:d}"),
    ]
