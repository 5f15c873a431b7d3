"""The leaderboard as a person sees it: rendered, opened in headless Chromium, clicked.

Debian's ``chromium`` and ``chromium-driver`` (``.ci/run`` installs them where it
can); the test skips with the reason where no browser can be had.
"""

from __future__ import annotations

import re

import pytest

from benchmark.report import browser
from benchmark.report.leaderboard import render
from tests.test_report import record, results_file

HOSTILE = "<script>alert(1)</script>"


@pytest.fixture(scope="module")
def chrome():
    reason = browser.unavailable()
    if reason:
        pytest.skip(reason)
    driver = browser.start()
    yield driver
    driver.quit()


def _page(tmp_path):
    recs = [
        record("ddim-digits64-none", 0.645, fid_test=11.5, mia_loss_weights_auc=1.0),
        record("ddim-digits1024-none", 0.0, fid_test=3.6, mia_loss_weights_auc=0.6),
        dict(record("evil-digits64-none", 0.3), family=HOSTILE, mitigation_params={"x": HOSTILE}),
    ]
    return render([results_file(tmp_path / "r.json", recs)], tmp_path / "board.html")


def test_clicking_a_header_sorts_the_rows(chrome, tmp_path):
    from selenium.webdriver.common.by import By

    page = _page(tmp_path)
    chrome.get(page.as_uri())

    def rows():
        cells = chrome.find_elements(By.CSS_SELECTOR, "#leaderboard tbody tr")
        return [tr.get_attribute("data-case") for tr in cells][:3]

    first = rows()
    assert first == ["ddim-digits1024-none", "evil-digits64-none", "ddim-digits64-none"]
    header = next(
        th
        for th in chrome.find_elements(By.CSS_SELECTOR, "#leaderboard th")
        if th.text.strip().startswith("Carlini")
    )
    header.click()  # first click: better (lower) first, the order it already has
    assert rows() == first and header.get_attribute("data-dir") == "asc"
    header.click()
    assert rows() == list(reversed(first)) and header.get_attribute("data-dir") == "desc"
    shot = tmp_path / "leaderboard.png"
    chrome.save_screenshot(str(shot))
    assert shot.stat().st_size > 1000
    # the hostile name is shown as text, and nothing ran
    assert HOSTILE in chrome.find_element(By.TAG_NAME, "body").text
    assert chrome.execute_script("return document.querySelectorAll('script').length") == 1


def test_groups_by_base_model_and_the_threat_model_picker(chrome, tmp_path):
    """The main view: a header per base model, its comparison against `none`, and the
    per-group Pareto front of the threat model picked on the page."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    from tests.test_report import record, results_file

    def case(case_id, fid, w, api):
        return record(
            case_id, 0.5, model_key="m64", fid_test=fid, mia_loss_weights_auc=w,
            mia_loss_weights_auc_ci=[w - 0.01, w], mia_loss_api_auc=api,
            mia_loss_api_auc_ci=[api - 0.01, api],
        )  # fmt: skip

    recs = [
        case("ddim-digits64-none", 11.0, 1.0, 1.0),
        case("ddim-digits64-cpsample", 27.0, 1.0, 0.56),
        dict(record("subvp-digits64-none", 0.7, fid_test=9.0), model_key="s64"),
    ]
    page = render([results_file(tmp_path / "g.json", recs)], tmp_path / "g.html")
    chrome.get(page.as_uri())
    headers = [h.text for h in chrome.find_elements(By.CSS_SELECTOR, "h3.group-header")]
    assert headers == ["ddim · digits · N_train = 64", "subvp · digits · N_train = 64"]

    def visible_front():
        section = chrome.find_elements(By.CSS_SELECTOR, "section.base-model")[0]
        shown = [p for p in section.find_elements(By.CSS_SELECTOR, "p.front") if p.is_displayed()]
        assert len(shown) == 1, "one threat model's view at a time"
        return shown[0].text

    assert visible_front() == "Pareto front: none"  # weights: CPSample changes nothing there
    assert len(chrome.find_elements(By.CSS_SELECTOR, "section.base-model img.pareto")) >= 1
    Select(chrome.find_element(By.ID, "threat-pick")).select_by_value("denoiser-api")
    assert visible_front() == "Pareto front: none, cpsample"


def test_case_page_opens_from_the_link(chrome, tmp_path):
    from selenium.webdriver.common.by import By

    page = _page(tmp_path)
    chrome.get(page.as_uri())
    chrome.find_element(By.CSS_SELECTOR, 'tr[data-case="ddim-digits64-none"] a').click()
    assert re.search(r"board-cases/ddim-digits64-none-[0-9a-f]{8}\.html$", chrome.current_url)
    assert chrome.find_element(By.TAG_NAME, "h1").text == "ddim-digits64-none"
    chrome.find_element(By.LINK_TEXT, "← leaderboard").click()
    assert chrome.current_url.endswith("board.html")
