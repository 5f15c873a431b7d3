"""Each science assertion of the smoke suite: its measured value on a run, its margin and
the room left (the closing table of a fresh-clone run, docs/measurements.md).

    python benchmarks/margin_table.py reports/results/run-*.json

Reads the records the suite asserts on (``benchmark/suites/test_smoke_leakage.py``) and
its margins from there and from the checks it shares (``benchmark/suites/checks.py``),
so the table and the assertions cannot drift apart.
"""

from __future__ import annotations

import argparse
import sys
from types import SimpleNamespace

from benchmark import registry
from benchmark.measures.dp_bound import dp_violations
from benchmark.report.results import read_results
from benchmark.tiers import smoke_case


def _suite():
    """The smoke suite's names and the shared checks' margins, as one namespace."""
    from benchmark.suites import checks, test_smoke_leakage

    return SimpleNamespace(**{**vars(test_smoke_leakage), **vars(checks)})


def rows(records: dict[str, dict], family: str, s) -> list[tuple[str, float, str, float]]:
    """(assertion, measured value, required, room) of ``family``'s cases."""
    small = records.get(f"{family}-digits64-none")
    large = records.get(f"{family}-digits1024-none")
    if small is None or large is None:
        return []

    def mitigated(name: str) -> dict | None:
        """The record of ``name`` at its strongest suite setting on the smoke tier's
        64-digit model (not another setting, not the validation tier's other model)."""
        if name not in registry.mitigations.names():
            return None
        params = registry.mitigations.get(name).suite_settings[-1]
        return records.get(smoke_case(family, s.SMALL_N, name, params).case_id)

    out = []

    def above(name: str, value: float, bound: float) -> None:
        out.append((name, value, f"> {bound:g}", value - bound))

    def below(name: str, value: float, bound: float) -> None:
        out.append((name, value, f"< {bound:g}", bound - value))

    above("Carlini 64 - 1024", small[s.CARLINI_L2] - large[s.CARLINI_L2], s.MEMORIZATION_MARGIN)
    above("|q| + |q| of x_p only (64)", small[s.Q] + small[s.Q_ID_ONLY], 0)
    above("|q| binomial p (64)", small[s.Q_P_VALUE], 0.05)
    above("t* 64 - t* at most (1024)", small[s.TSTAR] - large[s.TSTAR_UPPER], 0)
    above("loss AUC (64)", small[s.LOSS_AUC], s.MIA_MIN_AUC)
    above("loss AUC 64 - 1024", small[s.LOSS_AUC] - large[s.LOSS_AUC], s.MIA_MARGIN)
    rep = small[s.REPLICATION_FRACTION_HELDOUT] - large[s.REPLICATION_FRACTION_HELDOUT]
    above("feature replication 64 - 1024", rep, s.REPLICATION_MARGIN)
    above("FID gap 64 - 1024", small[s.FID_GAP] - large[s.FID_GAP], 0)
    above("nearest-sample AUC (64)", small[s.NEAREST_AUC], s.MIA_MIN_AUC)
    above("nearest-sample AUC 64 - 1024", small[s.NEAREST_AUC] - large[s.NEAREST_AUC],
          s.MIA_MARGIN)  # fmt: skip
    above("GSA AUC (64)", small[s.GSA_AUC], s.MIA_MIN_AUC)
    above("|q| power (64)", small[s.Q_POWER], 0.8 - 1e-12)
    hits, images = large[s.Q_FALSE_POSITIVE_COUNTS]["generated"]
    below("detectors' joint FP bound on 1024's samples", s.clopper_pearson(hits, images)[1],
          1 / s.SMALL_N)  # fmt: skip
    for tag, rec in (("64", small), ("1024", large)):
        below(f"blind AUC lower bound - 0.5 ({tag})", rec[s.BLIND_AUC_CI][0] - 0.5, 1e-12)
    if s.NLL_GAP in small:
        above("NLL gap lower bound (64)", small[s.NLL_GAP_CI][0], 0)
        above("NLL gap 64 - 1024", small[s.NLL_GAP] - large[s.NLL_GAP], s.NLL_MARGIN)
    if s.MIA_SCORES(attack="gsa_weights") in large:  # results written with per-image scores
        (gsa, _), (loss, _) = (s.found_members(large, r) for r in ("gsa_weights", "loss_weights"))
        above("GSA weaker than loss: McNemar p (1024)", s.fewer_flagged_p(gsa, loss),
              s.GSA_WEAKER_ALPHA)  # fmt: skip
    cps = mitigated("cpsample")
    if cps:
        above("CPSample Carlini drop", small[s.CARLINI_L2] - cps[s.CARLINI_L2], s.CPSAMPLE_MARGIN)
        p, test = s.fewer_reproductions(cps, small)
        below(f"CPSample |q| {test.split()[0]} p", p, s.CPSAMPLE_Q_ALPHA)
        drop = s.advantage(small[s.LOSS_AUC_API]) - s.advantage(cps[s.LOSS_AUC_API])
        above("CPSample API-advantage drop", drop, s.CPSAMPLE_MARGIN)
        above("CPSample t* drop (to at most)", small[s.TSTAR] - cps[s.TSTAR_UPPER], 0)
    rej = mitigated("rejection")
    if rej:
        accepted = rej[s.MITIGATION_ENTRY(entry="accepted_fraction")]
        still = (rej[s.REPLICATION_INDEPENDENT] - (1 - accepted)) / accepted
        above("rejection: accepted still copied", still, s.ACCEPTED_STILL_COPIED)
    dp = mitigated("dpsgd")
    if dp:
        eps = dp[s.MITIGATION_ENTRY(entry="epsilon")]
        delta = dp[s.MITIGATION_ENTRY(entry="delta")]
        for run in ("loss_weights", "gsa_weights", "pia_weights"):
            lo, hi = dp[s.MIA_AUC_CI(attack=run)]
            below(f"DP-SGD {run} AUC lower bound", lo, 0.5 + 1e-12)
            above(f"DP-SGD {run} AUC upper bound", hi, 0.5 - 1e-12)
            n = dp[s.MIA_N(attack=run)]
            broken = dp_violations(dp[s.MIA_ROC(attack=run)], n, n, eps, delta)
            below(f"DP-SGD {run} ROC points breaking the bound", len(broken), 1)
        n = small[s.MIA_N(attack="loss_weights")]
        broken = dp_violations(small[s.MIA_ROC(attack="loss_weights")], n, n, eps, delta)
        above("plain model: ROC points breaking the DP bound", len(broken), 0.5)
        above("DP-SGD Carlini drop", small[s.CARLINI_L2] - dp[s.CARLINI_L2], s.DP_CARLINI_MARGIN)
    amg = mitigated("amg")
    if amg:
        above("AMG Carlini drop", small[s.CARLINI_L2] - amg[s.CARLINI_L2], s.AMG_CARLINI_MARGIN)
        below("AMG FID cost", amg[s.FID_TEST] - small[s.FID_TEST], s.AMG_FID_COST)
        drop = small[s.REPLICATION_INDEPENDENT] - amg[s.REPLICATION_INDEPENDENT]
        above("AMG independent-replication drop", drop, s.AMG_INDEPENDENT_MARGIN)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="+")
    args = parser.parse_args()
    s = _suite()
    records = {}
    for path in args.results:
        for b in read_results(path)["benchmarks"]:
            records[b["extra_info"]["case_id"]] = b["extra_info"]
    families = sorted({k.split("-")[0] for k in records})
    print("| family | assertion | measured | required | room |")
    print("|---|---|---|---|---|")
    failing = 0
    for family in families:
        for name, value, required, room in rows(records, family, s):
            failing += room <= 0
            print(f"| {family} | {name} | {value:.4g} | {required} | {room:.3g} |")
    return 1 if failing else 0


if __name__ == "__main__":
    sys.exit(main())
