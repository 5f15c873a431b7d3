"""Render the leaderboard: one self-contained HTML page (Jinja2, autoescape on).

No network assets: styles and the small sorting script are inline, so the
page opens from disk, can be mailed, or served as a static file.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from pathlib import Path
from typing import Any

import pandas as pd
from jinja2 import Environment, FileSystemLoader, select_autoescape

from benchmark.attacks.threat import THREAT_LABELS, THREAT_MODELS
from benchmark.cache import atomic_write
from benchmark.measures.reproduction import Q_FLAGGED
from benchmark.metrics.base import metric_classes
from benchmark.metrics.blind import BLIND_SHIFT
from benchmark.record import (
    CASE_ID,
    CIRCULAR,
    METRIC_SKIPPED,
    MITIGATION,
    MITIGATION_PARAMS,
    MODEL_REUSED,
    PICTURES,
)
from benchmark.report import plots
from benchmark.report.columns import Column, columns
from benchmark.report.families import HEADERS as FAMILY_HEADERS
from benchmark.report.families import same_data
from benchmark.report.groups import PRIVACY, UTILITY_FLOOR, compare_groups
from benchmark.report.results import load_table
from benchmark.report.seeds import HEADERS as SEED_HEADERS
from benchmark.report.seeds import across_seeds

TEMPLATES = Path(__file__).parent / "templates"  # package data: installed with the wheel
# relative to where memobench runs (a clone's root, or a user's own repository)
DEFAULT_OUTPUT = Path("reports") / "leaderboard.html"


def environment() -> Environment:
    return Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html", "j2"], default_for_string=True, default=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _mitigation_label(row: dict[str, Any]) -> str:
    params = row.get(MITIGATION_PARAMS) or {}
    if not params:
        return str(row.get(MITIGATION, ""))
    inner = ", ".join(f"{k}={v}" for k, v in sorted(params.items()))
    return f"{row.get(MITIGATION)} ({inner})"


def page_name(case_id: str) -> str:
    """A file name for a case's page: its id made safe, plus a hash against collisions."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", case_id)[:80]
    return f"{safe}-{hashlib.sha256(case_id.encode()).hexdigest()[:8]}.html"


def _number(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        return None
    return float(value)


def change(col: Column, value, previous) -> dict[str, str] | None:
    """Arrow and verdict of ``value`` against the previous run's ``previous``."""
    now, before = _number(value), _number(previous)
    if col.higher_is_better is None or now is None or before is None:
        return None
    if abs(now - before) <= 1e-9 * max(1.0, abs(before)):
        return {"arrow": "=", "verdict": "same", "title": f"unchanged from {col.format(before)}"}
    up = now > before
    ranked_now, ranked_before = col.rank_value(now), col.rank_value(before)
    if abs(ranked_now - ranked_before) <= 1e-9 * max(1.0, abs(ranked_before)):
        title = f"previous run: {col.format(before)}, as good (ranked by {col.rank_label})"
        return {"arrow": "▲" if up else "▼", "verdict": "same", "title": title}
    better = (ranked_now > ranked_before) == col.higher_is_better
    return {
        "arrow": "▲" if up else "▼",
        "verdict": "better" if better else "worse",
        "title": f"previous run: {col.format(before)}",
    }


def previous_records(df: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """For each case, its record in the run before its latest one (if any)."""
    out: dict[str, dict[str, Any]] = {}
    if df.empty:
        return out
    for case_id, group in df.groupby(CASE_ID, sort=False):
        if len(group) > 1:
            out[str(case_id)] = group.iloc[-2].to_dict()
    return out


def table_rows(
    df: pd.DataFrame, cols: list[Column], previous: dict[str, dict[str, Any]] | None = None
) -> list[dict[str, Any]]:
    previous = previous or {}
    rows = []
    for record in df.to_dict("records"):
        before = previous.get(str(record[CASE_ID]), {})
        circular = record.get(CIRCULAR)
        circular = set(circular) if isinstance(circular, (list, tuple)) else set()
        cells = []
        for col in cols:
            value = record.get(col.key)
            if isinstance(value, float) and value != value:
                value = None  # pandas fills unmeasured cells with NaN
            if col.key == MITIGATION:
                value = _mitigation_label(record)
            numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
            if value is not None:
                text = col.text(dict(record, **{col.key: value}))
            else:  # unmeasured: "—", or what the column says of it ("withheld")
                text = (col.display(record) if col.display else None) or "—"
            is_circular = col.key in circular and value is not None
            cells.append(
                {
                    "text": f"{text} ⟲" if is_circular else text,
                    # a circular cell is shown, never ranked: it sorts with the unmeasured
                    "sort": col.rank_value(value) if numeric and not is_circular else None,
                    "measured": value is not None,
                    "circular": is_circular,
                    "change": change(col, value, before.get(col.key)) if before else None,
                }
            )
        rows.append(
            {
                "case_id": record[CASE_ID],
                "cells": cells,
                "reused": record.get(MODEL_REUSED),
                "page": page_name(str(record[CASE_ID])),
                "shift": bool(record.get(BLIND_SHIFT)),
            }
        )
    return rows


def header_groups(cols: list[Column]) -> list[dict[str, Any]]:
    """Runs of consecutive columns of one group (a threat model), for the header's top row;
    an empty ``name`` spans ungrouped columns. Empty when no column has a group."""
    if not any(c.group for c in cols):
        return []
    groups: list[dict[str, Any]] = []
    for col in cols:
        if groups and groups[-1]["name"] == col.group:
            groups[-1]["span"] += 1
        else:
            groups.append({"name": col.group, "span": 1})
    return groups


def _clean(record: dict[str, Any]) -> dict[str, Any]:
    return {
        k: v for k, v in record.items() if not (isinstance(v, float) and v != v)
    }  # NaN: not measured


NOT_MEASURED = "not measured for this case"


def _is_png_uri(value) -> bool:
    """Only our own embedded PNGs become an ``img`` source, whatever a results file holds."""
    return isinstance(value, str) and bool(
        re.fullmatch(r"data:image/png;base64,[A-Za-z0-9+/=]+", value)
    )


def case_page(record: dict[str, Any], cols: list[Column], board: str) -> str:
    """The page of one case: its metrics and the pictures people look at."""
    record = _clean(record)
    pictures = record.get(PICTURES) if isinstance(record.get(PICTURES), dict) else {}
    pictures = {k: v for k, v in pictures.items() if _is_png_uri(v)}
    no_flags = "no sample was flagged (|q| = 0)" if record.get(Q_FLAGGED) == [] else NOT_MEASURED
    figures = [  # (title, picture or None, caption, what to say without a picture)
        (
            "Generated samples",
            pictures.get("samples"),
            "the first 64 samples of the case",
            NOT_MEASURED,
        ),
        (
            "Flagged reproductions",
            pictures.get("reproductions"),
            "SAF(x_p) first, then the samples both detectors flagged",
            no_flags,
        ),
        (
            "Most similar pairs",
            pictures.get("top_pairs"),
            "samples (top) above their nearest training image (bottom), in feature space",
            NOT_MEASURED,
        ),
        *(
            (fig.title, fig.draw(record), fig.caption, NOT_MEASURED)
            for cls in metric_classes()
            for fig in cls.figures()
        ),
        ("Training", plots.loss_curve(record), "loss of the shared training loop", NOT_MEASURED),
    ]
    metrics = [
        {"label": c.label, "legend": c.legend, "text": c.text(record)}
        for c in cols
        if c.key in record
    ]
    return (
        environment()
        .get_template("case.html.j2")
        .render(
            record=record,
            title=f"memobench case {record.get(CASE_ID, '?')}",
            mitigation=_mitigation_label(record),
            figures=figures,
            metrics=metrics,
            board=board,
            skipped=[
                (cls.name, record[METRIC_SKIPPED(metric=cls.name)])
                for cls in metric_classes()
                if isinstance(record.get(METRIC_SKIPPED(metric=cls.name)), str)
            ],
        )
    )


def _measured(table, key: str) -> bool:
    return key in table.columns and bool(table[key].notna().any())


def render(
    paths: list[str | Path], output: str | Path | None = None, title: str = "memobench leaderboard"
) -> Path:
    """Merge ``paths`` and write the leaderboard HTML and a page per case; returns its path.

    The case pages go to ``<output stem>-cases/`` beside the leaderboard, so the two
    travel together as one folder.
    """
    df, runs = load_table(paths)
    latest = df[df["latest"]] if not df.empty else df
    cols = [c for c in columns() if not c.only_measured or _measured(latest, c.key)]
    if not latest.empty:
        default = next(
            (c for c in cols if c.higher_is_better is not None and c.key in latest.columns), None
        )
        if default is not None:
            latest = latest.sort_values(
                default.key,
                ascending=not default.higher_is_better,
                na_position="last",
                key=(lambda v: v.map(default.rank)) if default.rank else None,
            )
    out = Path(output) if output else DEFAULT_OUTPUT
    case_dir = out.parent / f"{out.stem}-cases"
    records = [_clean(r) for r in latest.to_dict("records")] if not latest.empty else []
    groups = header_groups(cols)
    rows = table_rows(latest, cols, previous_records(df)) if not latest.empty else []
    compared = compare_groups(records)
    families = same_data(records)
    page = (
        environment()
        .get_template("leaderboard.html.j2")
        .render(
            title=title,
            columns=cols,
            rows=rows,
            any_circular=any(c["circular"] for r in rows for c in r["cells"]),
            runs=runs,
            generated=dt.datetime.now().strftime("%Y-%m-%d %H:%M"),
            unmeasured_note="— means the case did not measure this column",
            case_dir=case_dir.name,
            groups_view=compared,
            same_data=families,
            same_data_headers=FAMILY_HEADERS,
            seed_groups=across_seeds(records),
            seed_headers=SEED_HEADERS,
            threat_models=THREAT_MODELS,
            privacy=PRIVACY,
            utility_floor=f"{UTILITY_FLOOR:g}",
            groups=groups,
            threat_labels=THREAT_LABELS,
        )
    )
    case_dir.mkdir(parents=True, exist_ok=True)
    for record in records:
        html = case_page(record, cols, f"../{out.name}")
        target = case_dir / page_name(str(record[CASE_ID]))
        atomic_write(target, lambda tmp, html=html: tmp.write_text(html, encoding="utf-8"))
    atomic_write(out, lambda tmp: tmp.write_text(page, encoding="utf-8"))
    return out
