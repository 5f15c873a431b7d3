"""Benchmark: the leaderboard of a run, its size on disk and its load time in Chromium.

Renders the leaderboard and case pages from results files, then prints:

* the seconds ``memobench report`` takes to write them (Python, matplotlib);
* the size of the page, of the case pages and of the whole folder;
* Chromium's load time (navigation start to the end of the load event, headless,
  from disk, no network) of the leaderboard and of the largest case page: the
  median of ``--loads`` loads, against the one-second budget;

and saves a screenshot of each under ``--out``.

    python benchmarks/report_render.py RESULTS.json [...] [--out DIR] [--loads 5]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from benchmark.report import browser
from benchmark.report.leaderboard import render

BUDGET_S = 1.0
SIZE_BUDGET = 5 * 2**20


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("results", nargs="+")
    p.add_argument("--out", default="reports/bench")
    p.add_argument("--loads", type=int, default=5)
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    start = time.perf_counter()
    board = render(args.results, out / "leaderboard.html")
    seconds = time.perf_counter() - start
    cases = sorted((out / "leaderboard-cases").glob("*.html"))
    folder = board.stat().st_size + sum(c.stat().st_size for c in cases)
    print(f"render: {seconds:.2f} s for the leaderboard and {len(cases)} case pages")
    print(f"size: leaderboard {board.stat().st_size / 1024:.0f} KiB")
    if cases:
        biggest = max(cases, key=lambda c: c.stat().st_size)
        print(f"      case pages {len(cases)}, largest {biggest.stat().st_size / 1024:.0f} KiB")
    print(
        f"      folder {folder / 2**20:.2f} MiB (budget {SIZE_BUDGET / 2**20:.0f} MiB, "
        f"ratio {folder / SIZE_BUDGET:.3f})"
    )

    reason = browser.unavailable()
    if reason:
        print(f"Chromium: not measured ({reason})")
        return
    driver = browser.start()
    try:
        pages = [("leaderboard", board)] + ([("largest case page", biggest)] if cases else [])
        for name, page in pages:
            loads = []
            for _ in range(args.loads):
                driver.get("about:blank")
                driver.get(page.as_uri())
                loads.append(browser.load_seconds(driver))
            med = statistics.median(loads)
            shot = out / f"{page.stem}.png"
            driver.save_screenshot(str(shot))
            print(
                f"Chromium {name}: load {med * 1000:.0f} ms median of {len(loads)} "
                f"(min {min(loads) * 1000:.0f}, max {max(loads) * 1000:.0f}); "
                f"ratio to the {BUDGET_S:.0f} s budget {med / BUDGET_S:.3f}; screenshot {shot}"
            )
    finally:
        driver.quit()


if __name__ == "__main__":
    main()
