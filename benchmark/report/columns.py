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
            if isinstance(value, float) and value.is_integer() and "d}" in self.fmt:
                value = int(value)  # an integer column that pandas widened to float
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


def _with_interval(key: str, ci_key: str, fmt: str = "{:.3f}"):
    """Render ``value [lo, hi]`` when the record holds the interval."""

    def display(record: dict) -> str | None:
        value, ci = record.get(key), record.get(ci_key)
        if value is None or not isinstance(ci, (list, tuple)) or len(ci) != 2:
            return None
        lo, hi = ci
        return f"{fmt.format(value)} [{fmt.format(lo)}, {fmt.format(hi)}]"

    return display


def utility_columns() -> list[Column]:
    return [
        Column("fid_train", "FID train", "FID of the samples against the training images", None),
        Column(
            "fid_test", "FID test", "FID against as many held-out images (lower = better)", False
        ),
        Column(
            "fid_gap",
            "FID gap",
            "FID test − FID train with a bootstrap 95% interval: > 0 when samples sit on the "
            "training set",
            False,
            "{:.2f}",
            _with_interval("fid_gap", "fid_gap_ci", "{:.2f}"),
        ),
        Column(
            "replication_fraction_heldout",
            "replication",
            "share of samples whose nearest training image (cosine, extractor features) is more "
            "similar than 99% of held-out images' nearest",
            False,
        ),
        Column(
            "replication_fraction",
            "replication >τ",
            "share of samples with nearest-training cosine similarity above the fixed τ "
            "(replication_tau, CPSample's criterion)",
            False,
        ),
        Column(
            "nll_gap",
            "NLL gap",
            "bits/dim of held-out images − of members (probability-flow ODE, score-SDE families; "
            "> 0 when the model gives its training images more likelihood), 95% interval",
            False,
            "{:.3f}",
            _with_interval("nll_gap", "nll_gap_ci"),
        ),
        Column(
            "nll_members_bpd",
            "NLL members",
            "negative log-likelihood of training images in bits/dim (dequantized)",
            None,
            "{:.3f}",
        ),
    ]


def attack_columns() -> list[Column]:
    cols = []
    for name in registry.attacks.names():
        cls = registry.attacks.get(name)
        label = getattr(cls, "label", name)
        key = f"mia_{name}"
        cols.append(
            Column(
                f"{key}_auc",
                f"{label} AUC",
                f"membership-inference ROC AUC with a bootstrap 95% interval (0.5 = chance): "
                f"{getattr(cls, 'description', '')}",
                False,
                "{:.3f}",
                _with_interval(f"{key}_auc", f"{key}_auc_ci"),
            )
        )
        cols.append(
            Column(
                f"{key}_tpr_1pct",
                f"{label} TPR@1%",
                "share of members the attack finds at 1% false positives",
                False,
            )
        )
    return cols


def columns() -> list[Column]:
    metric_cols = [metric_column(n) for n in registry.metrics.names()]
    metric_cols += utility_columns() + attack_columns()
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
