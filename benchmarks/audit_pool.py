"""Benchmark: smoke audits in the pool (two single-threaded processes) against the same
audits one after the other in this process (all cores), on the same cached models.

Prints each mode's wall time and the ratio, in one run. Both audit every case again
(``reaudit``), so the figures do not depend on what the cache holds; the models are
trained first if the cache lacks them (not timed).

    python benchmarks/audit_pool.py [--cases ddim:64:none subvp:64:none] [--cache DIR]
"""

from __future__ import annotations

import argparse
import time

from benchmark.audit import run_case
from benchmark.pool import TrainSpec
from benchmark.prefetch import prefetch
from benchmark.session import Session
from benchmark.tiers import smoke_case


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--cases", nargs="+", default=["ddim:64:none", "subvp:64:none"],
        help="family:n_train:mitigation of each smoke case",
    )  # fmt: skip
    parser.add_argument("--cache", default=None)
    args = parser.parse_args()

    cases = []
    for text in args.cases:
        family, n_train, mitigation = text.split(":")
        cases.append(smoke_case(family, int(n_train), mitigation))
    warm = Session(args.cache, progress=False)
    prefetch(warm, [TrainSpec(c.model, c.train, c.data) for c in cases])  # not timed
    for case in cases:
        warm.model(case.model, case.train, case.data)

    start = time.perf_counter()
    serial = Session(args.cache, progress=False, reaudit=True)
    for case in cases:
        run_case(case, serial)
    one_process = time.perf_counter() - start

    start = time.perf_counter()
    pooled = Session(args.cache, progress=False, reaudit=True)
    prefetch(pooled, [], cases)
    for case in cases:
        run_case(case, pooled)  # loads the workers' audits
    pool = time.perf_counter() - start

    print(f"{len(cases)} smoke audits ({', '.join(args.cases)})")
    print(f"  one after the other, this process: {one_process:7.1f} s")
    print(f"  pool of single-threaded processes: {pool:7.1f} s")
    print(f"  ratio (one process / pool):        {one_process / pool:7.2f}x")


if __name__ == "__main__":
    main()
