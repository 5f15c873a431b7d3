"""The per-image risk report of a user's audit: a CSV of every member, an HTML page of
the riskiest beside their nearest samples, and the summary a data-protection officer
reads (how many training images were reproduced, how many a membership attacker
identifies, with 95% intervals).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from scipy.stats import binomtest

from benchmark.attacks.threat import WEIGHTS, run_name
from benchmark.measures.carlini_l2 import CARLINI_L2
from benchmark.measures.fid import FID_GAP, FID_GAP_CI
from benchmark.measures.image_risk import MemberRisk
from benchmark.measures.membership_scores import MIA_AUC, MIA_AUC_CI
from benchmark.record import (
    AUDITED_IMAGES,
    MEMBERS_AUDITED,
    MEMBERS_IDENTIFIABLE,
    MEMBERS_REPRODUCED,
    N_GEN,
)
from benchmark.report.leaderboard import environment
from benchmark.report.thumbnails import grid_uri

SHOWN = 32  # members on the page (the CSV holds them all)


def share_interval(k: int, n: int) -> tuple[float, float]:
    """Clopper-Pearson 95% interval of a share k/n (scipy's exact binomial interval)."""
    if n == 0:
        return (math.nan, math.nan)
    ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="exact")
    return (float(ci.low), float(ci.high))


def risk_table(risks: list[MemberRisk], names: list[str], fpr: float) -> pd.DataFrame:
    """One row per member (``names``: the members' files), riskiest first."""
    rows = []
    for rank, r in enumerate(risks, start=1):
        rows.append(
            {
                "rank": rank,
                "member": names[r.index],
                "reproduced": r.reproduced,
                "identifiable": r.identifiable(fpr),
                "carlini_ratio": None if math.isinf(r.ratio) else round(r.ratio, 4),
                "nearest_sample": None if r.sample < 0 else r.sample,
                "nearest_l2": None if math.isinf(r.distance) else round(r.distance, 4),
                "copies": r.copies,
                "membership_percentile": None if r.percentile is None else round(r.percentile, 4),
                "membership_p_value": None if r.p_value is None else round(r.p_value, 5),
            }
        )
    return pd.DataFrame(rows).astype({"nearest_sample": "Int64"})


def summary(record: dict[str, Any], attack: str, fpr: float) -> list[str]:
    """The verdict in sentences, each figure with its interval."""
    n = record[MEMBERS_AUDITED]
    k_rep, k_id = record[MEMBERS_REPRODUCED], record[MEMBERS_IDENTIFIABLE]
    lo, hi = share_interval(k_rep, n)
    lines = [
        f"Reproduction: {k_rep} of {n} training images ({k_rep / n:.1%}, 95% interval "
        f"{lo:.1%}-{hi:.1%}) were reproduced by at least one of {record[N_GEN]} generated "
        f"samples (nearest-neighbour distance under a third of the second-nearest's); "
        f"{record.get(CARLINI_L2, math.nan):.1%} of the samples are such copies."
    ]
    lo, hi = share_interval(k_id, n)
    run = run_name(attack, WEIGHTS)  # the attack with the model's weights, as ranked
    auc = record.get(MIA_AUC(attack=run), math.nan)
    auc_ci = record.get(MIA_AUC_CI(attack=run)) or [math.nan, math.nan]
    lines.append(
        f"Membership: {k_id} of {n} training images ({k_id / n:.1%}, 95% interval "
        f"{lo:.1%}-{hi:.1%}) are identifiable by the {attack} attack at {fpr:.0%} false "
        f"positives (their score's p-value among the held-out images' at most {fpr:.0%}: a "
        f"model that leaks nothing has {fpr:.0%} of its members flagged at most); the attack "
        f"tells members from held-out images with AUC {auc:.3f} (95% interval "
        f"{auc_ci[0]:.3f}-{auc_ci[1]:.3f}; 0.5 is chance)."
    )
    n_held = record[AUDITED_IMAGES]["n_heldout"]
    if n_held + 1 < 1 / fpr:
        lines[-1] += (
            f" With {n_held} held-out images no member can be flagged at {fpr:.0%}: the "
            f"smallest p-value is 1/{n_held + 1}; give at least {math.ceil(1 / fpr) - 1} "
            f"held-out images."
        )
    gap = record.get(FID_GAP)
    if gap is not None:
        gap_ci = record.get(FID_GAP_CI) or [math.nan, math.nan]
        nearer = "nearer" if gap > 0 else "no nearer"
        lines.append(
            f"Closeness: the samples are {nearer} the training images than the held-out "
            f"ones (FID gap {gap:.2f}, 95% interval {gap_ci[0]:.2f} to {gap_ci[1]:.2f}; "
            f"0 is no preference)."
        )
    return lines


def write_risk_report(
    folder: str | Path,
    record: dict[str, Any],
    risks: list[MemberRisk],
    names: list[str],
    members: torch.Tensor,
    samples: torch.Tensor,
    attack: str,
    fpr: float,
) -> tuple[Path, Path]:
    """``risk.csv`` (every member) and ``risk.html`` (the summary and the riskiest members
    beside their nearest samples) in ``folder``; returns their paths.

    Args:
        record: the audit's record (``benchmark.model_audit``); risks: every member's
            risk, riskiest first; names: the members' files; members, samples: the
            images in [-1, 1]; attack, fpr: the membership attack and false-positive
            rate "identifiable" refers to.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    table = risk_table(risks, names, fpr)
    csv_path = folder / "risk.csv"
    # a file name read as a formula by a spreadsheet ("=cmd|..."): quoted as text
    safe = table["member"].map(lambda n: f"'{n}" if n[:1] in ("=", "+", "-", "@") else n)
    table.assign(member=safe).to_csv(csv_path, index=False)
    blank = torch.ones_like(members[0])
    rows = []
    for row, r in zip(table.head(SHOWN).to_dict("records"), risks[:SHOWN], strict=True):
        pair = torch.stack([members[r.index], samples[r.sample] if r.sample >= 0 else blank])
        row = {k: None if pd.isna(v) else v for k, v in row.items()}
        rows.append({**row, "picture": grid_uri(pair, nrow=2)})
    page = (
        environment()
        .get_template("risk.html.j2")
        .render(
            title=f"memobench audit: {record[AUDITED_IMAGES]['model']}",
            summary=summary(record, attack, fpr),
            images=record[AUDITED_IMAGES],
            rows=rows,
            n_members=len(table),
            shown=min(SHOWN, len(table)),
        )
    )
    html_path = folder / "risk.html"
    html_path.write_text(page)
    return csv_path, html_path
