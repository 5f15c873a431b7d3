"""The leaderboard's columns: label, one-line legend, format and sort direction.

Metric columns take ``higher_is_better``, label and description from the
registered metric class (torchmetrics style), so a plugin metric brings its own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from benchmark import registry


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
            return self.fmt.format(value)
        return str(value)


def metric_column(name: str, fmt: str = "{:.3f}") -> Column:
    cls = registry.metrics.get(name)
    return Column(
        name,
        getattr(cls, "label", name),
        getattr(cls, "description", ""),
        getattr(cls, "higher_is_better", None),
        getattr(cls, "fmt", fmt),
        getattr(cls, "display", None),
    )


def columns() -> list[Column]:
    metric_cols = [metric_column(n) for n in registry.metrics.names()]
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
