"""Each configuration's figures across the seeds it was trained with (``--memobench-seeds``).

One trained model is one draw: two models of the same configuration, trained from
other initial weights and minibatches and sampled from other noise, give other
figures. Under ``--memobench-seeds K`` each case runs once per training and sampling
seed (its case id then ends in ``~train<k>-seed<k>``; the split and x_p stay). This
view groups the records that differ only in those two seeds and gives, for each
headline figure, the mean, the sample standard deviation (ddof 1), the smallest and
largest value and how many seeds measured it.
"""

from __future__ import annotations

import math
import re
import statistics
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from benchmark.measures.carlini_l2 import CARLINI_L2
from benchmark.measures.fid import FID_TEST
from benchmark.measures.membership_scores import MIA_AUC
from benchmark.measures.reproduction import Q
from benchmark.measures.tstar import TSTAR
from benchmark.record import CASE_ID

# (record key, label, format) of the figures summarized across seeds
FIGURES = (
    (CARLINI_L2, "Carlini ℓ2", "{:.3f}"),
    (Q, "|q|", "{:.1f}"),
    (TSTAR, "t*", "{:.3f}"),
    (MIA_AUC(attack="loss_weights"), "loss AUC (weights)", "{:.3f}"),
    (MIA_AUC(attack="loss_api"), "loss AUC (deployed denoiser)", "{:.3f}"),
    (MIA_AUC(attack="nearest_samples"), "nearest-sample AUC", "{:.3f}"),
    (FID_TEST, "FID_test", "{:.2f}"),
)
_SEED_TAG = re.compile(r"^(train|seed)\d+$")


def configuration_id(case_id: str) -> str:
    """The case id without its training and sampling seeds: ``ddim-digits64-none~train2-
    seed2`` and ``ddim-digits64-none`` are one configuration; a split or x_p seed
    (``~split1``) is another configuration and stays."""
    base, sep, suffix = case_id.partition("~")
    if not sep:
        return case_id
    kept = [tag for tag in suffix.split("-") if not _SEED_TAG.match(tag)]
    return base + ("~" + "-".join(kept) if kept else "")


@dataclass(frozen=True)
class Spread:
    """One figure across seeds: mean, sample standard deviation, extremes, count."""

    n: int
    mean: float
    sd: float | None
    low: float
    high: float

    def text(self, fmt: str) -> str:
        if self.n == 1:
            return f"{fmt.format(self.mean)} (1 seed)"
        return (
            f"{fmt.format(self.mean)} ± {fmt.format(self.sd)} "
            f"[{fmt.format(self.low)}, {fmt.format(self.high)}]"
        )


def spread(values: list[float]) -> Spread | None:
    """``Spread`` of the finite values, or None when there is none."""
    vals = [float(v) for v in values if _finite(v)]
    if not vals:
        return None
    mean = statistics.fmean(vals)
    sd = statistics.stdev(vals, mean) if len(vals) > 1 else None
    return Spread(len(vals), mean, sd, min(vals), max(vals))


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


@dataclass(frozen=True)
class SeedGroup:
    """A configuration measured with more than one seed: its case ids and each figure's
    spread (None where no seed measured it)."""

    configuration: str
    case_ids: list[str]
    figures: dict[str, Spread | None]

    def row(self) -> list[str]:
        cells = [self.configuration, str(len(self.case_ids))]
        for key, _, fmt in FIGURES:
            s = self.figures.get(key)
            cells.append("—" if s is None else s.text(fmt))
        return cells


HEADERS = ("configuration", "seeds", *(label for _, label, _ in FIGURES))


def across_seeds(records: list[dict[str, Any]]) -> list[SeedGroup]:
    """The configurations with records from two seeds or more, in first-seen order."""
    by: OrderedDict[str, list[dict]] = OrderedDict()
    for r in records:
        case_id = r.get(CASE_ID)
        if isinstance(case_id, str):
            by.setdefault(configuration_id(case_id), []).append(r)
    out = []
    for config, members in by.items():
        ids = sorted({r[CASE_ID] for r in members})
        if len(ids) < 2:
            continue
        figures = {key: spread([r.get(key) for r in members]) for key, _, _ in FIGURES}
        out.append(SeedGroup(config, ids, figures))
    return out
