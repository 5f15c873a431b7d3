"""Benchmark: the leaderboard of a run, its size on disk and its load time in Chromium.

Renders the leaderboard and case pages from results files, then prints:

* the seconds ``memobench report`` takes to write them (Python, matplotlib);
* the size of the page, of the case pages and of the whole folder;
* Chromium's load time (navigation start to the end of the load event, headless,
  from disk, no network) of the leaderboard and of the largest case page: the
  median of ``--loads`` loads, against the one-second budget;

and saves a screenshot of each under ``--out``: the leaderboard's whole page, each of
its "By base model" sections and its table of all cases, with what a reader relies on
counted from the page (the two-sided advantage columns, the rows flagged "utility
destroyed", the intervals in the table of all cases and how many have zero width).

    python benchmarks/report_render.py RESULTS.json [...] [--out DIR] [--loads 5]
        [--width 1600]
"""

from __future__ import annotations

import argparse
import base64
import re
import statistics
import time
from pathlib import Path

from benchmark.report import browser
from benchmark.report.leaderboard import render

BUDGET_S = 1.0
SIZE_BUDGET = 5 * 2**20
INTERVAL = re.compile(r"\[(-?\d+\.\d+), (-?\d+\.\d+)\]")


def shoot_sections(driver, out: Path) -> None:
    """The open leaderboard's whole page (past the window's height, through Chrome
    DevTools) and each section a reader compares rows in, as PNGs; prints what it shows."""
    from selenium.webdriver.common.by import By

    shot = driver.execute_cdp_cmd(
        "Page.captureScreenshot", {"captureBeyondViewport": True, "fromSurface": True}
    )
    (out / "leaderboard-full.png").write_bytes(base64.b64decode(shot["data"]))
    for i, section in enumerate(driver.find_elements(By.CSS_SELECTOR, "section.base-model")):
        name = re.sub(r"[^a-z0-9]+", "-", section.get_attribute("data-group").lower()).strip("-")
        driver.execute_script("arguments[0].scrollIntoView();", section)
        section.screenshot(str(out / f"base-{i:02d}-{name}.png"))
    table = driver.find_element(By.ID, "leaderboard")
    driver.execute_script("arguments[0].scrollIntoView();", table)
    table.screenshot(str(out / "all-cases.png"))
    heads = {h.text for h in driver.find_elements(By.CSS_SELECTOR, "table th")}
    flagged = driver.find_elements(By.CSS_SELECTOR, ".utility-destroyed")
    cells = [c.text for c in driver.find_elements(By.CSS_SELECTOR, "#leaderboard td")]
    spans = [(float(lo), float(hi)) for c in cells for lo, hi in INTERVAL.findall(c)]
    advantage = sorted(h for h in heads if "advantage" in h.lower())
    print(f"page: advantage columns shown: {'; '.join(advantage) or 'none'}")
    print(f"      rows flagged 'utility destroyed': {len(flagged)}")
    print(f"      intervals in the table of all cases: {len(spans)}, of zero width: "
          f"{sum(lo == hi for lo, hi in spans)}")  # fmt: skip
    print(f"      screenshots: {out}/leaderboard-full.png, base-*.png, all-cases.png")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("results", nargs="+")
    p.add_argument("--out", default="reports/bench")
    p.add_argument("--loads", type=int, default=5)
    p.add_argument("--width", type=int, default=1600, help="window width in pixels")
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
    driver = browser.start(width=args.width, height=1200)
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
        driver.get(board.as_uri())
        shoot_sections(driver, out)
    finally:
        driver.quit()


if __name__ == "__main__":
    main()
