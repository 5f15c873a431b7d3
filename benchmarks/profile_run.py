"""Where a run's time went, case by case, from its results file.

Each case's record carries the wall time of its model's training, of its sampling and
of each metric (t*, |q|'s audit, FID and replication, each membership attack, the
likelihood). Prints them as one table, seconds, with each column's total; the audit's
own total is its sampling plus its metrics. Training's total counts each model once.

    python benchmarks/profile_run.py reports/results/run-<date>.json
"""

from __future__ import annotations

import argparse

import pandas as pd

from benchmark.record import CASE_ID, MODEL_KEY
from benchmark.report.results import read_results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results")
    args = parser.parse_args()
    rows = []
    for bench in read_results(args.results)["benchmarks"]:
        record = bench.get("extra_info") or {}
        if CASE_ID not in record:
            continue
        row = {"case": record[CASE_ID], "model": record.get(MODEL_KEY)}
        for key, value in record.items():
            if key.endswith("_seconds") and isinstance(value, int | float):
                row[key.removesuffix("_seconds")] = value
        rows.append(row)
    table = pd.DataFrame(rows).set_index("case").sort_index()
    # the per-attack times add up to `membership`'s; `fingerprint` holds `tstar`'s
    metrics = [
        c for c in table.columns if c not in ("model", "train", "sample", "mitigation_guidance")
    ]
    parts = [c for c in metrics if not c.startswith("mia_") and c != "tstar"]
    table["audit"] = table["sample"] + table[parts].fillna(0).sum(axis=1)
    total = table.sum(numeric_only=True)
    total["train"] = table.drop_duplicates("model")["train"].sum()  # each model once
    table.loc["total"] = total
    table = table.drop(columns="model")
    with pd.option_context("display.width", 250, "display.max_columns", 40):
        print(table.round(1).to_string(na_rep=""))


if __name__ == "__main__":
    main()
