"""Every page in real headless Chromium (Debian's), for every role.

Logs in through the real form, opens each page the role may open, waits for
its data to arrive, asserts the browser console shows no SEVERE entry and
saves a screenshot to artifacts/screenshots/<role>-<page>.png; then checks
the pages the role may not open show the 403 content.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.seed import PASSWORD, STAFF

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
SCREENSHOTS = Path(__file__).resolve().parent.parent / "artifacts" / "screenshots"
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
ROLE_PAGES = {
    "supervisor": ["/overview", "/live", "/rules", "/pilots", "/members",
                   "/adjustments/request", "/adjustments", "/audit", "/staff"],
    "executive": ["/overview", "/live", "/rules", "/pilots"],
    "support": ["/live", "/members", "/adjustments/request", "/adjustments"],
}

if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
    pytest.skip(
        "Debian's chromium and chromium-driver are not installed "
        "(apt-get install -y chromium chromium-driver)",
        allow_module_level=True,
    )

from selenium import webdriver  # noqa: E402
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


def shot_name(role: str, path: str) -> str:
    return f"{role}-{path.strip('/').replace('/', '-') or 'home'}.png"


def test_login_page_rejects_a_wrong_password(browser, base_url):
    sign_in(browser, base_url, STAFF["support"][0], "wrong-password")
    wait_for(browser, "#login-error")
    assert browser.find_element(By.ID, "login-error").text == "Wrong username or password."
    assert browser.current_url.endswith("/login")
    assert severe(browser) == []
    browser.save_screenshot(str(SCREENSHOTS / "login-wrong-password.png"))


@pytest.mark.parametrize("role", list(ROLE_PAGES))
def test_role_sees_its_pages_without_console_errors(browser, base_url, role):
    username, full_name = STAFF[role]
    sign_in(browser, base_url, username, PASSWORD)
    wait_for(browser, "#shell-user-name")
    assert browser.find_element(By.ID, "shell-user-name").text == full_name
    severe(browser)  # the login page's log is not the pages' concern

    nav = {a.get_attribute("pathname") for a in browser.find_elements(
        By.CSS_SELECTOR, "#shell-navbar .nav-link")}
    assert nav == set(ROLE_PAGES[role])

    for path in ROLE_PAGES[role]:
        browser.get(base_url + path)
        wait_for(browser, READY[path])
        # let the remaining callbacks of the page settle before judging the console
        WebDriverWait(browser, TIMEOUT).until(
            lambda d: not d.find_elements(By.CSS_SELECTOR, "[data-dash-is-loading='true']")
        )
        browser.save_screenshot(str(SCREENSHOTS / shot_name(role, path)))
        assert severe(browser) == [], (role, path)
        assert "Traceback" not in browser.page_source


@pytest.mark.parametrize("role", list(ROLE_PAGES))
def test_role_is_refused_other_pages(browser, base_url, role):
    sign_in(browser, base_url, STAFF[role][0], PASSWORD)
    wait_for(browser, "#shell-user-name")
    for path in set(READY) - set(ROLE_PAGES[role]):
        browser.get(base_url + path)
        wait_for(browser, "#page-forbidden")
        assert READY[path].split()[0] not in browser.page_source.replace("#", "")
        browser.save_screenshot(str(SCREENSHOTS / f"refused-{shot_name(role, path)}"))
    severe(browser)


def test_supervisor_creates_a_staff_account_in_the_browser(browser, base_url):
    sign_in(browser, base_url, STAFF["supervisor"][0], PASSWORD)
    wait_for(browser, "#shell-user-name")
    browser.get(base_url + "/staff")
    wait_for(browser, READY["/staff"])
    browser.find_element(By.ID, "staff-new-username").send_keys("bad name")
    browser.find_element(By.ID, "staff-create").click()
    WebDriverWait(browser, TIMEOUT).until(
        lambda d: "letters" in d.find_element(By.ID, "staff-new-username-feedback").text
    )
    browser.save_screenshot(str(SCREENSHOTS / "supervisor-staff-validation.png"))
    assert severe(browser) == []


def test_logout_returns_to_login(browser, base_url):
    sign_in(browser, base_url, STAFF["executive"][0], PASSWORD)
    wait_for(browser, "#shell-logout")
    browser.find_element(By.ID, "shell-logout").click()
    wait_for(browser, "#login-submit")
    browser.get(base_url + "/overview")
    wait_for(browser, "#login-submit")
    assert "/login" in browser.current_url
