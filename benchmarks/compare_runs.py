"""Compare the figures of two results files case by case: a serial run against a
pytest-xdist one, a rerun against the first run, one machine against another.

Every numeric entry of every case both files hold is compared, except the ones that
measure time or say where a figure came from (seconds, images/s, dates, reuse flags,
batch size). Prints the first case and key that differ (cases and keys in sorted
order) with both values, then, per field that differs, how many cases differ and the
largest difference, and what the two runs' environments differ in (library versions,
threads, the CPU's vector unit: what can explain a difference); exits 1 when some case
differs by more than ``--tol`` (absolute), 2 when
the files hold different cases (``--common`` compares the cases both hold: a run of a
few cases against a whole one; ``--shared-keys`` compares the entries both records
hold: a run of code that records more against one that recorded less).

    python benchmarks/compare_runs.py serial.json xdist.json [--tol 1e-6] [--common]
"""

from __future__ import annotations

import argparse
import math
import sys
from typing import Any

from benchmark.record import CASE_ID
from benchmark.report.results import case_records, read_results

NOT_FIGURES = ("seconds", "per_second", "recorded", "reused", "batch_size", "pictures", "threads")


def records(path: str) -> dict[str, dict[str, Any]]:
    return {record[CASE_ID]: record for _, record in case_records(read_results(path))}


def numbers(value: Any, prefix: str = "") -> dict[str, float]:
    """The numbers in a record's entry, flattened (lists and dicts by index or key)."""
    if isinstance(value, bool) or value is None:
        return {prefix: float(value)} if isinstance(value, bool) else {}
    if isinstance(value, int | float):
        return {prefix: float(value)}
    out: dict[str, float] = {}
    if isinstance(value, dict):
        for k, v in value.items():
            out.update(numbers(v, f"{prefix}.{k}"))
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            out.update(numbers(v, f"{prefix}[{i}]"))
    return out


def environment_of(path: str) -> dict[str, Any]:
    """The run's environment (flattened) as its results file recorded it."""
    env = (read_results(path).get("memobench") or {}).get("environment") or {}
    flat: dict[str, Any] = {}
    for key, value in env.items():
        if isinstance(value, dict):
            flat.update({f"{key}.{k}": v for k, v in value.items()})
        else:
            flat[key] = value
    return flat


def environment_differences(first: str, second: str) -> list[str]:
    """One line per environment entry the two runs differ in."""
    a, b = environment_of(first), environment_of(second)
    return [f"{k}: {a.get(k)!r} vs {b.get(k)!r}" for k in sorted(set(a) | set(b))
            if a.get(k) != b.get(k)]  # fmt: skip


def first_difference(a: dict, b: dict, tol: float) -> tuple[str, str, float, float] | None:
    """(case, key, first value, second value) of the first figure that differs."""
    for case in sorted(a):
        for key in sorted(set(a[case]) | set(b[case])):
            if any(word in key for word in NOT_FIGURES):
                continue
            x, y = numbers(a[case].get(key), key), numbers(b[case].get(key), key)
            for name in sorted(set(x) | set(y)):
                u, v = x.get(name, math.nan), y.get(name, math.nan)
                if math.isnan(u) and math.isnan(v):
                    continue
                if math.isnan(u) or math.isnan(v) or abs(u - v) > tol:
                    return case, name, u, v
    return None


def differences(a: dict, b: dict, tol: float) -> dict[str, list[float]]:
    """{field: [|a - b| of each case that differs]}."""
    out: dict[str, list[float]] = {}
    for case in sorted(a):
        for key in sorted(set(a[case]) | set(b[case])):
            if any(word in key for word in NOT_FIGURES):
                continue
            x, y = numbers(a[case].get(key), key), numbers(b[case].get(key), key)
            for name in set(x) | set(y):
                u, v = x.get(name, math.nan), y.get(name, math.nan)
                if math.isnan(u) and math.isnan(v):
                    continue
                gap = abs(u - v) if not (math.isnan(u) or math.isnan(v)) else math.inf
                if gap > tol:
                    out.setdefault(name, []).append(gap)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("first")
    parser.add_argument("second")
    parser.add_argument("--tol", type=float, default=1e-6, help="largest absolute difference")
    parser.add_argument("--common", action="store_true", help="compare the cases both hold")
    parser.add_argument(
        "--shared-keys",
        action="store_true",
        help="compare only the entries both records hold (newer code that records more)",
    )
    args = parser.parse_args()
    a, b = records(args.first), records(args.second)
    if args.shared_keys:
        added = sorted({k for c in set(a) & set(b) for k in set(b[c]) ^ set(a[c])})
        for case in set(a) & set(b):
            keys = set(a[case]) & set(b[case])
            a[case] = {k: v for k, v in a[case].items() if k in keys}
            b[case] = {k: v for k, v in b[case].items() if k in keys}
        print(f"entries only one run recorded, left out: {', '.join(added) or 'none'}")
    if args.common:
        both = set(a) & set(b)
        if not both:
            print(f"no case is in both {args.first} and {args.second}")
            return 2
        a = {k: v for k, v in a.items() if k in both}
        b = {k: v for k, v in b.items() if k in both}
    if set(a) != set(b):
        print(f"different cases: only in {args.first}: {sorted(set(a) - set(b))}; "
              f"only in {args.second}: {sorted(set(b) - set(a))}")  # fmt: skip
        return 2
    diff = differences(a, b, args.tol)
    fields = sum(
        len(numbers(v, k))
        for r in a.values()
        for k, v in r.items()
        if not any(word in k for word in NOT_FIGURES)
    )
    print(f"{len(a)} cases, {fields} numbers compared (tolerance {args.tol:g})")
    env = environment_differences(args.first, args.second)
    if not diff:
        print("every figure agrees")
        return 0
    case, name, u, v = first_difference(a, b, args.tol)
    print(f"first difference: case {case}, key {name}: {u!r} vs {v!r}")
    for name, gaps in sorted(diff.items()):
        print(f"  {name}: {len(gaps)} case(s) differ, largest by {max(gaps):.3g}")
    print("the runs' environments differ in: " + ("; ".join(env) if env else "nothing recorded"))
    return 1


if __name__ == "__main__":
    sys.exit(main())
