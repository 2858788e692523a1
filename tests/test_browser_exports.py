"""The grids' own CSV export in real Chromium: formula cells leave neutralised."""

from __future__ import annotations

import pytest

from benchmarks.small_program import PASSWORD, STAFF
from tests.support.browser import (  # noqa: F401 - fixtures
    TIMEOUT,
    base_url,
    browser,
    screenshots_dir,
    sign_in,
    wait_for,
)

pytestmark = pytest.mark.browser

from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

EVIL = '=HYPERLINK("http://evil.example","open")'

# keep what the grid hands to the browser's download instead of saving a file
CAPTURE = """
window.__csv = [];
const make = URL.createObjectURL;
URL.createObjectURL = function (blob) {
    blob.text().then(t => window.__csv.push(t));
    return make.call(URL, blob);
};
HTMLAnchorElement.prototype.click = function () {};
"""


def test_kpi_grid_export_neutralises_formulas(browser, base_url):  # noqa: F811
    sign_in(browser, base_url, STAFF["supervisor"][0], PASSWORD)
    wait_for(browser, "#shell-user-name")
    browser.get(base_url + "/overview")
    # the overview is a background job: on a busy machine it may take a while
    WebDriverWait(browser, 4 * TIMEOUT).until(
        lambda d: d.find_elements(By.CSS_SELECTOR, "#overview-kpi-grid .ag-row"))
    browser.execute_script(CAPTURE)
    # a row as if a name typed by staff reached the grid, and a negative change
    browser.execute_script(
        "dash_ag_grid.getApi('overview-kpi-grid').applyTransaction({add: [{"
        "metric: arguments[0], current_text: '@SUM(A1:A2)', previous_text: '-12', "
        "change: '-3.5 %', definition: '+1+cmd'}], addIndex: 0});",
        EVIL,
    )
    browser.find_element(By.ID, "overview-kpi-csv").click()
    text = WebDriverWait(browser, TIMEOUT).until(
        lambda d: (d.execute_script("return window.__csv;") or [None])[0]
    )
    first = text.splitlines()[1]
    assert first.startswith("\"'=HYPERLINK(\"\"http://evil.example\"\",\"\"open\"\")\""), first
    assert "\"'@SUM(A1:A2)\"" in first
    assert "\"-12\"" in first and "\"-3.5 %\"" in first
