"""Render the leaderboard: one self-contained HTML page (Jinja2, autoescape on).

No network assets: styles and the small sorting script are inline, so the
page opens from disk, can be mailed, or served as a static file.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pandas as pd
from jinja2 import Environment, FileSystemLoader, select_autoescape

from benchmark.cache import atomic_write
from benchmark.report.columns import Column, columns
from benchmark.report.results import load_table

REPO_ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = REPO_ROOT / "reports" / "templates"
DEFAULT_OUTPUT = REPO_ROOT / "reports" / "leaderboard.html"


def environment() -> Environment:
    if not TEMPLATES.is_dir():
        raise FileNotFoundError(
            f"leaderboard templates not found at {TEMPLATES}; memobench renders reports from a "
            f"clone of its repository installed with `pip install -e .`"
        )
    return Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html", "j2"], default_for_string=True, default=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _mitigation_label(row: dict[str, Any]) -> str:
    params = row.get("mitigation_params") or {}
    if not params:
        return str(row.get("mitigation", ""))
    inner = ", ".join(f"{k}={v}" for k, v in sorted(params.items()))
    return f"{row.get('mitigation')} ({inner})"


def table_rows(df: pd.DataFrame, cols: list[Column]) -> list[dict[str, Any]]:
    rows = []
    for record in df.to_dict("records"):
        cells = []
        for col in cols:
            value = record.get(col.key)
            if isinstance(value, float) and value != value:
                value = None  # pandas fills unmeasured cells with NaN
            if col.key == "mitigation":
                value = _mitigation_label(record)
            numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
            text = col.text(dict(record, **{col.key: value})) if value is not None else "—"
            cells.append(
                {"text": text, "sort": value if numeric else None, "measured": value is not None}
            )
        rows.append(
            {"case_id": record["case_id"], "cells": cells, "reused": record.get("model_reused")}
        )
    return rows


def render(
    paths: list[str | Path], output: str | Path | None = None, title: str = "memobench leaderboard"
) -> Path:
    """Merge ``paths`` and write the leaderboard HTML; returns its path."""
    df, runs = load_table(paths)
    cols = columns()
    latest = df[df["latest"]] if not df.empty else df
    if not latest.empty:
        default = next(
            (c for c in cols if c.higher_is_better is not None and c.key in latest.columns), None
        )
        if default is not None:
            latest = latest.sort_values(
                default.key, ascending=not default.higher_is_better, na_position="last"
            )
    page = (
        environment()
        .get_template("leaderboard.html.j2")
        .render(
            title=title,
            columns=cols,
            rows=table_rows(latest, cols) if not latest.empty else [],
            runs=runs,
            generated=dt.datetime.now().strftime("%Y-%m-%d %H:%M"),
            unmeasured_note="— means the case did not measure this column",
        )
    )
    out = Path(output) if output else DEFAULT_OUTPUT
    atomic_write(out, lambda tmp: tmp.write_text(page, encoding="utf-8"))
    return out
