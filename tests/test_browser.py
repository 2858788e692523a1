"""Every page in real headless Chromium (Debian's), for every role.

Logs in through the real form, opens each page the role may open, waits for
its data to arrive, asserts the browser console shows no SEVERE entry and
saves a screenshot to artifacts/screenshots/<role>-<page>.png; then checks
the pages the role may not open show the 403 content.
"""

from __future__ import annotations

import pytest

from benchmarks.small_program import PASSWORD, STAFF
from tests.support.browser import (  # noqa: F401 - fixtures
    READY,
    SCREENSHOTS,
    TIMEOUT,
    base_url,
    browser,
    click,
    screenshots_dir,
    severe,
    sign_in,
    wait_for,
)

pytestmark = pytest.mark.browser

ROLE_PAGES = {
    "supervisor": ["/overview", "/live", "/rules", "/pilots", "/members",
                   "/adjustments/request", "/adjustments", "/audit", "/staff"],
    "executive": ["/overview", "/live", "/rules", "/pilots"],
    "support": ["/live", "/members", "/adjustments/request", "/adjustments"],
}

from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


def shot_name(role: str, path: str) -> str:
    return f"{role}-{path.strip('/').replace('/', '-') or 'home'}.png"


def test_login_page_rejects_a_wrong_password(browser, base_url):  # noqa: F811
    sign_in(browser, base_url, STAFF["support"][0], "wrong-password")
    wait_for(browser, "#login-error")
    assert browser.find_element(By.ID, "login-error").text == "Wrong username or password."
    assert browser.current_url.endswith("/login")
    assert severe(browser) == []
    browser.save_screenshot(str(SCREENSHOTS / "login-wrong-password.png"))


@pytest.mark.parametrize("role", list(ROLE_PAGES))
def test_role_sees_its_pages_without_console_errors(browser, base_url, role):  # noqa: F811
    username, full_name = STAFF[role]
    sign_in(browser, base_url, username, PASSWORD)
    wait_for(browser, "#shell-user-name")
    assert browser.find_element(By.ID, "shell-user-name").text == full_name
    severe(browser)  # the login page's log is not the pages' concern

    nav = {a.get_attribute("pathname") for a in browser.find_elements(
        By.CSS_SELECTOR, "#shell-navbar .nav-link:not(.dropdown-toggle)")}
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
def test_role_is_refused_other_pages(browser, base_url, role):  # noqa: F811
    sign_in(browser, base_url, STAFF[role][0], PASSWORD)
    wait_for(browser, "#shell-user-name")
    for path in set(READY) - set(ROLE_PAGES[role]):
        browser.get(base_url + path)
        wait_for(browser, "#page-forbidden")
        assert READY[path].split()[0] not in browser.page_source.replace("#", "")
        browser.save_screenshot(str(SCREENSHOTS / f"refused-{shot_name(role, path)}"))
    severe(browser)


def test_supervisor_creates_a_staff_account_in_the_browser(browser, base_url):  # noqa: F811
    sign_in(browser, base_url, STAFF["supervisor"][0], PASSWORD)
    wait_for(browser, "#shell-user-name")
    browser.get(base_url + "/staff")
    wait_for(browser, READY["/staff"])
    browser.find_element(By.ID, "staff-new-username").send_keys("bad name")
    click(browser, "staff-create")  # scrolled to and clicked past any passing overlay
    WebDriverWait(browser, TIMEOUT).until(
        lambda d: "letters" in d.find_element(By.ID, "staff-new-username-feedback").text
    )
    browser.save_screenshot(str(SCREENSHOTS / "supervisor-staff-validation.png"))
    assert severe(browser) == []


def test_logout_returns_to_login(browser, base_url):  # noqa: F811
    sign_in(browser, base_url, STAFF["executive"][0], PASSWORD)
    wait_for(browser, "#shell-user-name")
    browser.find_element(By.ID, "shell-user-name").click()  # the user's menu
    WebDriverWait(browser, TIMEOUT).until(
        lambda d: d.find_element(By.ID, "shell-logout").is_displayed())
    browser.find_element(By.ID, "shell-logout").click()
    wait_for(browser, "#login-submit")
    browser.get(base_url + "/overview")
    wait_for(browser, "#login-submit")
    assert "/login" in browser.current_url
