"""Screenshots of a rendered leaderboard, as a person sees it in headless Chromium.

Writes a PNG of the whole page and one of each section a reader compares rows in
("By base model", "All cases"), and prints what the page shows that a reader relies
on: the two-sided advantage columns, the rows flagged "utility destroyed", and the AUC
intervals (how many have zero width). Needs Debian's ``chromium`` and
``chromium-driver`` and the test extra (selenium).

    python benchmarks/leaderboard_screenshots.py reports/leaderboard.html --out shots/
"""

from __future__ import annotations

import argparse
import base64
import re
import sys
from pathlib import Path

from benchmark.report import browser

INTERVAL = re.compile(r"\[(\d\.\d+), (\d\.\d+)\]")


def full_page(driver, path: Path) -> None:
    """The whole page, past the window's height (Chrome DevTools' capture)."""
    shot = driver.execute_cdp_cmd(
        "Page.captureScreenshot", {"captureBeyondViewport": True, "fromSurface": True}
    )
    path.write_bytes(base64.b64decode(shot["data"]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("page", type=Path, help="a leaderboard.html")
    parser.add_argument("--out", type=Path, default=Path("shots"))
    parser.add_argument("--width", type=int, default=1600)
    args = parser.parse_args(argv)
    if not args.page.is_file():
        parser.error(f"{args.page}: no such file; render one with `memobench report`")
    reason = browser.unavailable()
    if reason:
        print(f"cannot take screenshots: {reason}", file=sys.stderr)
        return 2
    from selenium.webdriver.common.by import By

    args.out.mkdir(parents=True, exist_ok=True)
    driver = browser.start(width=args.width, height=1200)
    try:
        driver.get(args.page.resolve().as_uri())
        full_page(driver, args.out / "leaderboard.png")
        sections = driver.find_elements(By.CSS_SELECTOR, "section.base-model")
        for i, section in enumerate(sections):
            name = re.sub(r"[^a-z0-9]+", "-", section.get_attribute("data-group").lower())
            driver.execute_script("arguments[0].scrollIntoView();", section)
            section.screenshot(str(args.out / f"base-{i:02d}-{name.strip('-')}.png"))
        table = driver.find_element(By.ID, "leaderboard")
        driver.execute_script("arguments[0].scrollIntoView();", table)
        table.screenshot(str(args.out / "all-cases.png"))
        heads = [h.text for h in driver.find_elements(By.CSS_SELECTOR, "table th")]
        flagged = driver.find_elements(By.CSS_SELECTOR, ".utility-destroyed")
        cells = [c.text for c in driver.find_elements(By.CSS_SELECTOR, "#leaderboard td")]
        print("load seconds:", round(browser.load_seconds(driver), 3))
    finally:
        driver.quit()
    advantage = sorted({h for h in heads if "advantage" in h.lower()})
    spans = [(float(lo), float(hi)) for c in cells for lo, hi in INTERVAL.findall(c)]
    print(f"advantage columns ({len(advantage)}):", "; ".join(advantage) or "none")
    print("rows flagged 'utility destroyed':", len(flagged))
    print(f"intervals in 'All cases': {len(spans)}, of zero width: "
          f"{sum(lo == hi for lo, hi in spans)}")  # fmt: skip
    print("screenshots:", ", ".join(sorted(p.name for p in args.out.glob("*.png"))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
