"""Every case of a results file under every threat model: AUC, transferred TPR@1%FPR
with the FPR it achieved, and the blind baseline (issue 15's closing table).

    python benchmarks/threat_table.py reports/results/run-*.json [--markdown]
"""

from __future__ import annotations

import argparse

from benchmark.measures.membership_scores import (
    MIA_AUC,
    MIA_FPR_ACHIEVED,
    MIA_TPR,
    MIA_TPR_TRANSFER,
)
from benchmark.metrics.blind import BLIND_AUC, BLIND_AUC_CI
from benchmark.metrics.membership_inference import MIA_RUNS
from benchmark.record import CASE_ID
from benchmark.report.results import load_table


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("files", nargs="+")
    args = p.parse_args()
    df, _ = load_table(args.files)
    latest = df[df["latest"]]
    print(
        "| case | attack run | AUC | TPR@1% (transferred) | achieved FPR | oracle TPR@1% "
        "| blind AUC |"
    )
    print("|---|---|---|---|---|---|---|")
    for rec in latest.to_dict("records"):
        runs = rec.get(MIA_RUNS)
        if not isinstance(runs, list):
            continue
        ci = rec.get(BLIND_AUC_CI) or [float("nan")] * 2
        blind = f"{rec.get(BLIND_AUC, float('nan')):.3f} [{ci[0]:.2f}, {ci[1]:.2f}]"
        for run in runs:
            print(
                f"| {rec[CASE_ID]} | {run} | {rec[MIA_AUC(attack=run)]:.3f} | "
                f"{rec[MIA_TPR_TRANSFER(attack=run, fpr='1pct')]:.3f} | "
                f"{rec[MIA_FPR_ACHIEVED(attack=run, fpr='1pct')]:.3f} | "
                f"{rec[MIA_TPR(attack=run, fpr='1pct')]:.3f} | {blind} |"
            )


if __name__ == "__main__":
    main()
