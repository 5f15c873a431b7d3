"""Headless Chromium for looking at the report as a person does (tests, benchmarks).

Debian's ``chromium`` driven through its ``chromedriver`` with selenium; started
with --headless --no-sandbox --disable-gpu and no background networking, so a
page that tried to load anything from the network would show it.
"""

from __future__ import annotations

import shutil

CHROMIUM = ("chromium", "chromium-browser", "google-chrome")
DRIVER = ("chromedriver",)


def _find(names) -> str | None:
    return next((p for p in map(shutil.which, names) if p), None)


def unavailable() -> str | None:
    """Why no browser can be started here, or None."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[test]' -c constraints.txt installs it)"
    if _find(CHROMIUM) is None:
        return "no Chromium on PATH (Debian: apt-get install chromium chromium-driver)"
    if _find(DRIVER) is None:
        return "no chromedriver on PATH (Debian: apt-get install chromium-driver)"
    return None


def start(width: int = 1400, height: int = 900):
    """A headless Chromium session (selenium WebDriver)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = _find(CHROMIUM)
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-extensions",
        "--disable-sync",
        "--no-first-run",
        "--allow-file-access-from-files",
        f"--window-size={width},{height}",
    ):
        options.add_argument(arg)
    return webdriver.Chrome(options=options, service=Service(executable_path=_find(DRIVER)))


def load_seconds(driver) -> float:
    """Navigation start to the end of the load event of the current page, in seconds."""
    ms = driver.execute_script(
        "const n = performance.getEntriesByType('navigation')[0];"
        "return n ? n.loadEventEnd - n.startTime : null;"
    )
    return float("nan") if ms is None else ms / 1000
