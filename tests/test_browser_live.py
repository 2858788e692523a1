"""The live page in real Chromium: its numbers move while simulate-live writes.

A db.live_stream.LiveStream (what ``loyalty simulate-live`` runs) writes into
the test database from a thread; the page's own interval refreshes the rollups
and patches the tiles. Also the overview page with its definitions on hover.
"""

from __future__ import annotations

import threading
import time

import pytest

from benchmarks.small_program import PASSWORD, STAFF
from db.live_stream import LiveStream
from db.session import Database
from tests.support.browser import (  # noqa: F401 - fixtures
    SCREENSHOTS,
    TIMEOUT,
    base_url,
    browser,
    screenshots_dir,
    severe,
    sign_in,
    wait_for,
)

pytestmark = pytest.mark.browser

from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

WATCHED = ["live-members", "live-value-issued-today", "live-value-transfer-count"]


def _numbers(driver) -> dict[str, str]:
    return {i: driver.find_element(By.ID, i).text for i in WATCHED}


def test_live_numbers_move_while_simulate_live_runs(browser, base_url, web_seed):  # noqa: F811
    sign_in(browser, base_url, STAFF["support"][0], PASSWORD)
    wait_for(browser, "#shell-user-name")
    browser.get(base_url + "/live")
    wait_for(browser, "#live-updated .live-updated-at")
    before = _numbers(browser)
    assert "…" not in before.values()
    browser.save_screenshot(str(SCREENSHOTS / "live-before-stream.png"))

    d = Database(web_seed[0])
    stream = LiveStream(d, rate=25, seed=7, expiry_every=3600)
    thread = threading.Thread(target=stream.run, kwargs={"duration": 40}, daemon=True)
    thread.start()
    try:
        WebDriverWait(browser, 40).until(
            lambda drv: all(_numbers(drv)[i] != before[i] for i in WATCHED[:2])
        )
        after = _numbers(browser)
        stamp = browser.find_element(By.CSS_SELECTOR, ".live-updated-at").text
        time.sleep(6)  # one more tick while the stream goes on
        assert browser.find_element(By.CSS_SELECTOR, ".live-updated-at").text != stamp
    finally:
        stream.stop_event.set()
        thread.join(10)
        d.dispose()
    assert stream.stats.total > 0
    assert int(after["live-members"].replace(",", "")) > int(before["live-members"].replace(
        ",", ""))
    browser.save_screenshot(str(SCREENSHOTS / "live-while-streaming.png"))
    assert severe(browser) == []


def test_overview_shows_definitions_on_hover(browser, base_url):  # noqa: F811
    sign_in(browser, base_url, STAFF["executive"][0], PASSWORD)
    wait_for(browser, "#shell-user-name")
    browser.get(base_url + "/overview")
    wait_for(browser, "#overview-orders-figure .main-svg")
    wait_for(browser, "#overview-kpi-grid .ag-row")
    cell = browser.find_element(By.CSS_SELECTOR, "#overview-kpi-grid .ag-row .ag-cell")
    ActionChains(browser).move_to_element(cell).perform()
    WebDriverWait(browser, TIMEOUT).until(
        lambda drv: drv.find_elements(By.CSS_SELECTOR, ".ag-tooltip, .ag-tooltip-custom"))
    assert "÷" in browser.find_element(By.CSS_SELECTOR, ".ag-tooltip").text or \
        "revenue" in browser.find_element(By.CSS_SELECTOR, ".ag-tooltip").text.lower()
    browser.save_screenshot(str(SCREENSHOTS / "executive-overview-tooltip.png"))
    assert severe(browser) == []
