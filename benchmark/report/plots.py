"""The report's figures, drawn with matplotlib from a case's record and embedded as PNG.

Every function takes what the results file holds (no cache, no models) and
returns a ``data:image/png;base64`` URI, or ``None`` when the record did not
measure what the figure shows; the page then says so. PNG in a data URI keeps
the report one folder of static files with no network access, and no text
from a record ever becomes markup.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from typing import Any

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from benchmark.metrics.dp_bound import tpr_bound  # noqa: E402
from benchmark.metrics.fid import FID_TEST  # noqa: E402
from benchmark.metrics.membership import MIA_AUC, MIA_ROC  # noqa: E402
from benchmark.metrics.membership_inference import MIA_RUNS  # noqa: E402
from benchmark.metrics.replication import (  # noqa: E402
    HELDOUT_SIMILARITY_HIST,
    REPLICATION_TAU,
    REPLICATION_TAU_HELDOUT,
    SIMILARITY_HIST,
)
from benchmark.metrics.tstar import TSTAR, TSTAR_CURVE, TSTAR_M  # noqa: E402
from benchmark.record import LOSS_HISTORY, MITIGATION_ENTRY  # noqa: E402

DPI = 80


def to_data_uri(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _figure(width: float = 4.0, height: float = 2.8):
    fig, ax = plt.subplots(figsize=(width, height))
    ax.grid(alpha=0.3)
    return fig, ax


def tstar_curve(record: dict[str, Any]) -> str | None:
    """q_M(t) against t with t* marked (the fingerprint paper's Fig. 6)."""
    curve = record.get(TSTAR_CURVE)
    if not isinstance(curve, dict) or not curve.get("t"):
        return None
    pts = [
        (t, q)
        for t, q in zip(curve["t"], curve.get("q") or [], strict=False)
        if q is not None  # levels the adaptive search did not visit
    ]
    if not pts:
        return None
    fig, ax = _figure()
    ts, qs = zip(*sorted(pts), strict=True)
    ax.plot(ts, qs, "o-", ms=3)
    tstar = record.get(TSTAR)
    if tstar is not None and tstar >= 0:
        ax.axvline(tstar, color="C3", ls="--", label=f"t* = {tstar:.2f}")
        ax.legend(loc="upper right")
    ax.set(xlabel="t (diffusion fraction)", ylabel="q_M(t)", xlim=(0, 1), ylim=(-0.02, 1.02))
    ax.set_title(f"fingerprint recovered from x_t, M = {record.get(TSTAR_M, '?')}")
    return to_data_uri(fig)


def roc_curves(record: dict[str, Any]) -> str | None:
    """The membership attacks' ROC curves under each threat model, AUC in the legend (a
    run identical to one drawn, e.g. ``api`` where the mitigation does not guide, once)."""
    runs = [a for a in record.get(MIA_RUNS) or [] if record.get(MIA_ROC(attack=a))]
    if not runs:
        return None
    fig, ax = _figure(4.2, 3.6)
    drawn = []
    for name in runs:
        fpr, tpr = record[MIA_ROC(attack=name)]
        if (fpr, tpr) in drawn:
            continue
        drawn.append((fpr, tpr))
        auc = record.get(MIA_AUC(attack=name), float("nan"))
        ax.plot(fpr, tpr, label=f"{name} (AUC {auc:.3f})")
    ax.plot([0, 1], [0, 1], color="0.6", ls=":", lw=1)
    epsilon = record.get(MITIGATION_ENTRY(entry="epsilon"))
    delta = record.get(MITIGATION_ENTRY(entry="delta"))
    if isinstance(epsilon, (int, float)) and isinstance(delta, (int, float)):
        # a model trained with a DP guarantee: no attack can lie above this curve
        grid = np.linspace(0, 1, 401)
        ax.plot(grid, tpr_bound(grid, epsilon, delta), color="k", ls="--", lw=1,
                label=f"(ε = {epsilon:.2f}, δ = {delta:g})-DP bound")  # fmt: skip
    ax.set(xlabel="false positive rate", ylabel="true positive rate", xlim=(0, 1), ylim=(0, 1))
    ax.legend(loc="lower right", fontsize=6)
    ax.set_title("membership inference")
    return to_data_uri(fig)


def similarity_histogram(record: dict[str, Any]) -> str | None:
    """Nearest-training similarity of samples (and held-out images) against the thresholds."""
    hist = record.get(SIMILARITY_HIST)
    if not hist:
        return None
    bins = len(hist)
    edges = [-1 + 2 * i / bins for i in range(bins + 1)]
    lo = next((i for i, c in enumerate(hist) if c), 0)
    held = record.get(HELDOUT_SIMILARITY_HIST) or []
    if held:
        lo = min(lo, next((i for i, c in enumerate(held) if c), lo))
    fig, ax = _figure()
    total = max(sum(hist), 1)
    ax.stairs([c / total for c in hist], edges, fill=True, alpha=0.6, label="samples")
    if held:
        held_total = max(sum(held), 1)
        ax.stairs([c / held_total for c in held], edges, label="held-out images")
    for key, style, name in (
        (REPLICATION_TAU, "--", "τ"),
        (REPLICATION_TAU_HELDOUT, ":", "calibrated"),
    ):
        if record.get(key) is not None:
            ax.axvline(record[key], color="C3", ls=style, label=f"{name} = {record[key]:.3f}")
    ax.set(xlim=(edges[lo], 1), xlabel="cosine similarity to nearest training image")
    ax.set(ylabel="share")
    ax.legend(loc="upper left", fontsize=8)
    ax.set_title("replication")
    return to_data_uri(fig)


def loss_curve(record: dict[str, Any]) -> str | None:
    history = record.get(LOSS_HISTORY)
    if not history:
        return None
    steps, losses = zip(*history, strict=True)
    fig, ax = _figure()
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
    records: list[dict[str, Any]], leak_key: str, leak_label: str, name
) -> str | None:
    """One base model's cases: FID_test against leakage, the Pareto front joined. Each
    case is its own marker and colour, named in a legend beside the axes (no label is
    written on the plot, so none can overlap another)."""
    pts = []
    for r in records:
        x, y = r.get(FID_TEST), r.get(leak_key)
        if isinstance(x, (int, float)) and isinstance(y, (int, float)) and x == x and y == y:
            pts.append((float(x), float(y), name(r)))
    if not pts:
        return None
    front = pareto_front([(x, y) for x, y, _ in pts])
    fig, ax = _figure(5.6, 3.2)
    ax.plot([pts[i][0] for i in front], [pts[i][1] for i in front], "C3-", lw=1.2, zorder=2)
    for i, (x, y, label) in enumerate(pts):
        on = " (front)" if i in front else ""
        ax.scatter([x], [y], marker=MARKERS[i % len(MARKERS)], color=f"C{i % 10}", s=50,
                   zorder=3, label=f"{label}{on}")  # fmt: skip
    ax.set(xlabel="FID_test (lower = better samples)", ylabel=f"{leak_label}\n(lower = safer)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, frameon=False)
    return to_data_uri(fig)
