"""Russian in real headless Chromium: the navbar's language switch, remembered
across sign-ins, and the member search by a Cyrillic prefix on a demo program
(its own app from a subprocess, as the other demo-program browser tests)."""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Iterator

import pytest

from tests.support.browser import SCREENSHOTS, chrome, severe, sign_in
from tests.support.browser_server import served

pytestmark = pytest.mark.browser


from selenium import webdriver  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

PASSWORD = "i18n-browser-pass-1"
USER = "i18nsam"
# a supervisor sees every page in the navbar; a long name, shortened in it
SUPERVISOR, SUPERVISOR_NAME = "i18nsue", "Александра Константинопольская"
TIMEOUT = 30


@pytest.fixture(scope="module")
def program(tmp_path_factory, sqlite_template) -> dict:
    """A small demo program (a third of its Russian names in Cyrillic)."""
    from sqlalchemy import select

    from db import demo, users
    from db.models import Member
    from db.session import Database

    path = tmp_path_factory.mktemp("i18n-browser") / "demo.sqlite3"
    shutil.copy(sqlite_template, path)
    url = f"sqlite:///{path}"
    d = Database(url)
    today = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    demo.seed(d, members=200, seed=3, start=demo.add_months(today, -2), months=2,
              progress=False)
    with d.begin() as s:
        users.create_user(s, USER, PASSWORD, "support", full_name="Сабина Support")
        users.create_user(s, SUPERVISOR, PASSWORD, "supervisor", full_name=SUPERVISOR_NAME)
        names = s.scalars(select(Member.name)).all()
    d.dispose()
    cyrillic = sorted(n for n in names if "\u0400" <= n[0] <= "\u04ff")
    return {"url": url, "names": names, "cyrillic": cyrillic}


@pytest.fixture(scope="module")
def base_url(program) -> Iterator[str]:
    with served(program["url"]) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    driver = chrome("1440,1000")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    try:
        yield driver
    finally:
        driver.quit()


def wait_until(driver, condition, timeout: float = TIMEOUT):
    return WebDriverWait(driver, timeout).until(condition)


def html_lang(driver) -> str:
    return driver.execute_script("return document.documentElement.lang")


def navbar_text(driver) -> str:
    return driver.execute_script(
        "const e = document.getElementById('shell-navbar'); return e ? e.innerText : '';")


def open_user_menu(driver) -> None:
    """Open the navbar's user menu (role, language, sign-out)."""
    if not driver.find_element(By.ID, "shell-logout").is_displayed():
        driver.find_element(By.ID, "shell-user-name").click()
    wait_until(driver, lambda d: d.find_element(By.ID, "shell-logout").is_displayed())


def signed_in(driver, base_url: str, path: str = "/members", user: str = USER) -> None:
    sign_in(driver, base_url, user, PASSWORD)
    wait_until(driver, lambda d: d.find_elements(By.ID, "shell-user-name"))
    severe(driver)  # the login page's log is not the page's concern
    if path:
        driver.get(base_url + path)
        wait_until(driver, lambda d: d.find_elements(By.ID, "shell-language"))


def choose_language(driver, language: str) -> None:
    open_user_menu(driver)
    Select(driver.find_element(By.ID, "shell-language")).select_by_value(language)
    wait_until(driver, lambda d: html_lang(d) == language)
    wait_until(driver, lambda d: d.find_elements(By.ID, "shell-user-name"))


def name_cells(driver) -> list[str]:
    return driver.execute_script(
        "return Array.from(document.querySelectorAll("
        "'#members-grid .ag-center-cols-container [col-id=\"name\"]'))"
        ".map(c => c.textContent);")


def test_language_switch_is_remembered_and_search_finds_cyrillic(browser, base_url, program):
    assert program["cyrillic"], "the demo has no Cyrillic names"
    signed_in(browser, base_url)
    assert html_lang(browser) == "en"
    wait_until(browser, lambda d: "Members" in navbar_text(d))

    choose_language(browser, "ru")
    wait_until(browser, lambda d: "Участники" in navbar_text(d))
    open_user_menu(browser)
    text = navbar_text(browser)
    assert "Выйти" in text and "Бэк-офис программы лояльности" in text
    assert Select(browser.find_element(By.ID, "shell-language")).first_selected_option \
        .get_attribute("value") == "ru"
    browser.save_screenshot(str(SCREENSHOTS / "i18n-navbar-ru.png"))

    # a lower-case Cyrillic prefix finds the names that start with it, in any case
    name = program["cyrillic"][0]
    prefix = name.split()[0][:3].lower()
    want = sorted(n for n in program["names"] if n.lower().startswith(prefix))
    box = browser.find_element(By.ID, "members-query")
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys(Keys.DELETE)
    box.send_keys(prefix)
    wait_until(browser, lambda d: sorted(name_cells(d)) == want)
    browser.save_screenshot(str(SCREENSHOTS / "i18n-members-cyrillic-search.png"))

    # signed out and in again: still Russian, sign-in page included
    open_user_menu(browser)
    browser.find_element(By.ID, "shell-logout").click()
    wait_until(browser, lambda d: d.find_elements(By.ID, "login-submit"))
    signed_in(browser, base_url)
    assert html_lang(browser) == "ru"
    wait_until(browser, lambda d: "Участники" in navbar_text(d))

    choose_language(browser, "en")
    wait_until(browser, lambda d: "Members" in navbar_text(d))
    assert severe(browser) == []


def test_a_refused_page_says_why_in_russian(browser, base_url):
    signed_in(browser, base_url, path="")
    browser.get(base_url + "/staff")  # supervisors only
    wait_until(browser, lambda d: d.find_elements(By.ID, "shell-language"))
    choose_language(browser, "ru")
    wait_until(browser, lambda d: d.find_elements(By.ID, "page-forbidden"))
    body = browser.find_element(By.TAG_NAME, "body").text
    assert "403 — Доступ запрещён" in body and "Поддержка" in body
    assert "«Сотрудники»" in body
    choose_language(browser, "en")
    wait_until(browser, lambda d: "403 — Not allowed" in d.find_element(By.TAG_NAME, "body").text)


def navbar_lines(driver) -> dict:
    """The navbar's height and the distinct rows its items sit on."""
    return driver.execute_script("""
        const bar = document.getElementById('shell-navbar');
        const items = [...bar.querySelectorAll('.navbar-brand, .nav-link')];
        const rows = new Set(items.map(e => {
            const r = e.getBoundingClientRect(); return Math.round(r.top + r.height / 2); }));
        return {height: bar.getBoundingClientRect().height, rows: [...rows].sort(),
                links: bar.querySelectorAll('.navbar-nav .nav-link').length};""")


@pytest.mark.parametrize("language", ["en", "ru"])
def test_the_navbar_is_one_line_at_1440_px(browser, base_url, language):
    """A supervisor's navbar (every page, a long name) at 1440 px wide: one line."""
    browser.set_window_size(1440, 1000)
    signed_in(browser, base_url, path="/staff", user=SUPERVISOR)
    if html_lang(browser) != language:
        choose_language(browser, language)
    wait_until(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#staff-grid .ag-row"))
    lines = navbar_lines(browser)
    browser.save_screenshot(str(SCREENSHOTS / f"i18n-navbar-1440-{language}.png"))
    assert lines["links"] == 10, lines  # nine pages and the user's menu
    assert max(lines["rows"]) - min(lines["rows"]) <= 4, lines
    assert lines["height"] < 64, lines
    # the user's menu opens over the page and the navbar stays as it is
    open_user_menu(browser)
    browser.save_screenshot(str(SCREENSHOTS / f"i18n-navbar-menu-{language}.png"))
    assert navbar_lines(browser)["height"] == lines["height"]
    assert severe(browser) == []
