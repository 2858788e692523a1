"""Debian's headless Chromium for the browser tests: the driver, the
session's app served on a loopback port, signing in, and waiting for the page.

The fixtures are module-scoped: a browser test module imports the ones it
uses (one served app and one Chromium per module). Importing this module
skips the importing test module when Chromium is not installed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"
TIMEOUT = 20

# a selector that appears once the page's data has arrived
READY = {
    "/overview": "#overview-orders-figure .main-svg",
    "/live": "#live-members",
    "/rules": "#rules-history-grid .ag-row",
    "/pilots": "#pilots-list .ag-row",
    "/members": "#members-grid .ag-row",
    "/adjustments/request": "#adjreq-summary-text",
    "/adjustments": "#adjreview-grid .ag-row",
    "/audit": "#audit-grid .ag-row",
    "/staff": "#staff-grid .ag-row",
}

if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
    pytest.skip(
        "Debian's chromium and chromium-driver are not installed "
        "(apt-get install -y chromium chromium-driver)",
        allow_module_level=True,
    )

from selenium import webdriver  # noqa: E402
from selenium.common.exceptions import ElementClickInterceptedException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions as ec  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402
from werkzeug.serving import make_server  # noqa: E402


@pytest.fixture(scope="module")
def base_url(web_app) -> Iterator[str]:
    """The session's app served by werkzeug on a free loopback port."""
    srv = make_server("127.0.0.1", 0, web_app.server, threaded=True)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{srv.server_port}"
    finally:
        srv.shutdown()
        thread.join(5)


def chrome(window: str = "1400,1000") -> webdriver.Chrome:
    """Debian's headless Chromium with the browser console captured."""
    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    for flag in ("--headless", "--no-sandbox", "--disable-gpu",
                 "--disable-background-networking", "--disable-dev-shm-usage",
                 f"--window-size={window}"):
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=opts)
    driver.set_page_load_timeout(TIMEOUT)
    return driver


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    driver = chrome()
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module", autouse=True)
def screenshots_dir() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS


def severe(driver: webdriver.Chrome) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def sign_in(driver: webdriver.Chrome, base_url: str, username: str, password: str) -> None:
    """Start from a signed-out browser and submit the login form.

    The previous page may still have callbacks in flight whose responses refresh
    the session cookie after it was deleted, so the page is left first and the
    cookie deletion repeated until the login form (not a redirect) is served.
    """
    for _ in range(5):
        driver.get("about:blank")  # aborts the previous page's requests
        # every cookie of every site: delete_all_cookies() only reaches the current page's
        driver.execute_cdp_cmd("Network.clearBrowserCookies", {})
        driver.get(f"{base_url}/login")
        if driver.find_elements(By.ID, "username"):
            break
    driver.find_element(By.ID, "username").send_keys(username)
    driver.find_element(By.ID, "password").send_keys(password)
    driver.find_element(By.ID, "login-submit").click()


def wait_for(driver: webdriver.Chrome, css: str) -> None:
    WebDriverWait(driver, TIMEOUT).until(
        ec.presence_of_element_located((By.CSS_SELECTOR, css))
    )


def wait_text(driver, css: str, text: str, timeout: float = 30) -> None:
    WebDriverWait(driver, timeout).until(
        ec.text_to_be_present_in_element((By.CSS_SELECTOR, css), text))


def click(driver, element_id: str) -> None:
    el = driver.find_element(By.ID, element_id)
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", el)
    WebDriverWait(driver, 10).until(ec.element_to_be_clickable((By.ID, element_id)))
    try:
        el.click()
    except ElementClickInterceptedException:
        # a transient overlay (grid tooltip, loading layer) covers the button for a moment
        time.sleep(0.5)
        driver.execute_script("arguments[0].click();", el)


def tab(driver, label: str) -> None:
    link = driver.find_element(By.XPATH, f"//a[contains(@class,'nav-link') and text()='{label}']")
    # below the fixed navbar, whatever the page's scroll; a script click, as the
    # page scrolls smoothly and a real click could land mid-scroll
    driver.execute_script("arguments[0].scrollIntoView({block: 'center', behavior: 'instant'});"
                          "arguments[0].click();", link)
