"""Read and merge results files: pytest-benchmark JSON with metrics in ``extra_info``.

Any number of files (shards from several runners, or several commits) merge
into one table; each row keeps the run it came from (machine, commit, date).
"""

from __future__ import annotations

import datetime as dt
import json
import platform
from pathlib import Path
from typing import Any

import pandas as pd

from benchmark.errors import MemobenchError
from benchmark.record import CASE_ID


class ResultsError(MemobenchError):
    """A results file is missing or not a pytest-benchmark JSON."""


def read_results(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.exists():
        raise ResultsError(f"results file {path} does not exist")
    try:
        doc = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ResultsError(
            f"results file {path} is not valid JSON ({err}); was the run interrupted "
            f"while writing it? Rerun the suite to regenerate it"
        ) from err
    if not isinstance(doc, dict) or "benchmarks" not in doc:
        raise ResultsError(
            f"{path} is not a pytest-benchmark results file (no 'benchmarks' list); "
            f"pass files written by `memobench run` or pytest --memobench-results"
        )
    return doc


def run_info(doc: dict[str, Any], source: str) -> dict[str, Any]:
    machine = doc.get("machine_info", {})
    commit = doc.get("commit_info", {})
    mb = doc.get("memobench", {})
    return {
        "source": source,
        "datetime": doc.get("datetime", ""),
        "machine": machine.get("node", ""),
        "cpu": (machine.get("cpu") or {}).get("brand_raw", ""),
        "python": machine.get("python_version", ""),
        "commit": (commit.get("id") or "")[:10],
        "dirty": commit.get("dirty"),
        "branch": commit.get("branch", ""),
        "memobench": mb.get("version", ""),
        "torch": mb.get("torch", ""),
        "diffusers": mb.get("diffusers", ""),
        "cuda": mb.get("cuda"),
        "rehearsal": bool(mb.get("rehearsal", False)),
    }


def case_records(doc: dict[str, Any]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(benchmark entry, its case record) of each memobench case in a results document
    (a plain pytest-benchmark timing has no record and is left out)."""
    return [(bench, bench["extra_info"]) for bench in doc["benchmarks"]
            if CASE_ID in (bench.get("extra_info") or {})]  # fmt: skip


def latest_records(paths: list[str | Path]) -> dict[str, dict[str, Any]]:
    """{case id: its record in the newest run (by the run's date, then the order given)}:
    the rows ``load_table`` marks ``latest``, as the records themselves."""
    return _latest([read_results(path) for path in paths])


def _latest(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """``latest_records`` of documents already read, in the order given."""
    docs = sorted(docs, key=lambda doc: doc.get("datetime", ""))
    return {record[CASE_ID]: record for doc in docs for _, record in case_records(doc)}


def records_from(spec: str) -> dict[str, dict[str, Any]]:
    """The latest record of each case in the results files ``spec`` names: paths or glob
    patterns, comma-separated (``results/*.json``), for checks that judge records a run
    already wrote (the merged shards of a sharded run).

    Raises:
        ResultsError: a pattern no file matches, a file that is not a results file, or a
            rehearsal's results.
    """
    import glob

    paths: list[str] = []
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        found = sorted(glob.glob(str(Path(part).expanduser())))
        if not found:
            raise ResultsError(
                f"--memobench-records: no file matches {part!r} (give the results files the "
                f"runs wrote, e.g. results/*.json)"
            )
        paths += found
    if not paths:
        raise ResultsError("--memobench-records: no results file given")
    docs = [read_results(p) for p in paths]  # each file read once
    rehearsed = [p for p, doc in zip(paths, docs, strict=True)
                 if (doc.get("memobench") or {}).get("rehearsal")]  # fmt: skip
    if rehearsed:
        raise ResultsError(
            f"--memobench-records: {rehearsed[0]} holds a rehearsal's records (a few training "
            f"steps): findings are judged on a real run's results, not on those"
        )
    return _latest(docs)


def load_table(paths: list[str | Path]) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """One row per recorded case across all files, and the runs' info.

    When the same case appears in several runs, every row is kept; ``latest``
    marks the newest one per case (by the run's date).
    """
    if not paths:
        raise ResultsError("no results files given; pass one or more JSON files")
    rows, runs = [], []
    for run_index, path in enumerate(paths):
        doc = read_results(path)
        info = run_info(doc, str(path))
        runs.append(info)
        for bench, extra in case_records(doc):
            row = dict(extra)
            row["test"] = bench.get("fullname", bench.get("name", ""))
            row["run"] = run_index
            row["run_datetime"] = info["datetime"]
            row["commit"] = info["commit"]
            rows.append(row)
    df = pd.DataFrame(rows)
    if df.empty:
        return df, runs
    df = df.sort_values(["run_datetime", "run"]).reset_index(drop=True)
    df["latest"] = ~df.duplicated(CASE_ID, keep="last")
    return df, runs


def write_results(path: str | Path, records: list[dict[str, Any]], run: dict[str, Any]) -> Path:
    """A results file of ``records`` (one per case), in the layout ``read_results`` and
    the leaderboard read: what ``memobench audit`` writes without pytest. ``run``: the
    run's own information (the ``memobench`` section: versions, device, environment)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        "datetime": dt.datetime.now(dt.UTC).isoformat(),
        "machine_info": {"node": platform.node(), "python_version": platform.python_version()},
        "commit_info": {},
        "memobench": run,
        "benchmarks": [
            {"name": record[CASE_ID], "fullname": record[CASE_ID], "extra_info": record}
            for record in records
        ],
    }
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(doc, indent=1))
    tmp.replace(path)  # a run cut off while writing leaves the previous file whole
    return path
