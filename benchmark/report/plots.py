"""The report's own figures (training loss, the privacy-utility front), drawn with
matplotlib from records and embedded as PNG; each metric draws its own figures
(``CaseMetric.figures``).

Every function takes what the results file holds (no cache, no models) and
returns a ``data:image/png;base64`` URI, or ``None`` when the record did not
measure what the figure shows; the page then says so. PNG in a data URI keeps
the report one folder of static files with no network access, and no text
from a record ever becomes markup.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from benchmark.display import new_figure, to_data_uri
from benchmark.measures.fid import FID_TEST
from benchmark.record import LOSS_HISTORY


def loss_curve(record: dict[str, Any]) -> str | None:
    history = record.get(LOSS_HISTORY)
    if not history:
        return None
    steps, losses = zip(*history, strict=True)
    fig, ax = new_figure()
    ax.plot(steps, losses, lw=1)
    ax.set(xlabel="training step", ylabel="loss", yscale="log")
    ax.set_title("training loss")
    return to_data_uri(fig)


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats on both coordinates (both minimized),
    ordered by the first coordinate."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], points[i][1]))
    front, best = [], float("inf")
    for i in order:
        if points[i][1] < best:
            front.append(i)
            best = points[i][1]
    return front


MARKERS = "osD^vP*Xh<>p"


def group_privacy_utility(
    records: list[dict[str, Any]], leak_of, leak_label: str, name, front: list | None = None
) -> str | None:
    """One base model's cases: FID_test against leakage, the Pareto front joined. Each
    case is its own marker and colour, named in a legend beside the axes (no label is
    written on the plot, so none can overlap another). ``leak_of(record)`` gives the
    leakage figure plotted (or ``None``); ``front`` the records on the Pareto front (by
    default the plotted points' own front)."""
    pts, plotted = [], []
    for r in records:
        x, y = r.get(FID_TEST), leak_of(r)
        if isinstance(x, (int, float)) and isinstance(y, (int, float)) and x == x and y == y:
            pts.append((float(x), float(y), name(r)))
            plotted.append(r)
    if not pts:
        return None
    if front is None:
        front = pareto_front([(x, y) for x, y, _ in pts])
    else:
        on = {id(r) for r in front}
        front = sorted((i for i, r in enumerate(plotted) if id(r) in on), key=lambda i: pts[i][0])
    fig, ax = new_figure(5.6, 3.2)
    ax.plot([pts[i][0] for i in front], [pts[i][1] for i in front], "C3-", lw=1.2, zorder=2)
    for i, (x, y, label) in enumerate(pts):
        on = " (front)" if i in front else ""
        ax.scatter([x], [y], marker=MARKERS[i % len(MARKERS)], color=f"C{i % 10}", s=50,
                   zorder=3, label=f"{label}{on}")  # fmt: skip
    ax.set(xlabel="FID_test (lower = better samples)", ylabel=f"{leak_label}\n(lower = safer)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, frameon=False)
    return to_data_uri(fig)
