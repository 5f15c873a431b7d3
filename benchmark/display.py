"""How a record is shown: a leaderboard column, a case page's figure, and the drawing
helpers figures share.

A metric declares its columns and figures with these (``CaseMetric.columns`` and
``figures``), beside the record fields it writes; the report only renders them, so
nothing here imports a metric or the report.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

DPI = 80


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
    # what is ranked, if not the value itself: an AUC ranks by |AUC - 0.5|, two-sided
    rank: Callable[[float], float] | None = None
    rank_label: str = ""  # how the legend names what is ranked ("|AUC − 0.5|")
    # shown only where a case measured it (an attack that runs on a few cases)
    only_measured: bool = False

    def rank_value(self, value: float) -> float:
        """The number this column sorts and compares ``value`` by."""
        return self.rank(value) if self.rank is not None else value

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


@dataclass(frozen=True)
class Figure:
    """A figure of a case page, drawn from the case's record alone (no cache, no model).

    Attributes:
        draw: record -> ``data:image/png;base64`` URI, or None when the record lacks it.
    """

    title: str
    draw: Callable[[dict[str, Any]], str | None]
    caption: str


def pyplot():
    """matplotlib's pyplot on the file-only Agg backend (imported on first use: a run
    that draws nothing does not pay for it)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def new_figure(width: float = 4.0, height: float = 2.8):
    """A figure and its one axes, with a light grid."""
    fig, ax = pyplot().subplots(figsize=(width, height))
    ax.grid(alpha=0.3)
    return fig, ax


def to_data_uri(fig) -> str:
    """``fig`` as a ``data:image/png;base64`` URI (closed after): the page embeds it, so the
    report is one folder of static files with no network access."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    pyplot().close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
