"""Every role's job done in Russian, in real headless Chromium, with no English
on screen: support finds a member and files an adjustment (a refusal first),
a supervisor approves it and reads the rules, pilots, audit log, staff and
overview pages, an executive reads the overview and the live page. After each
step the page's visible text is checked for English words (names from the
program's data excepted)."""

from __future__ import annotations

import re

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from tests.support import browser as tb
from tests.support.browser import SCREENSHOTS, click, severe, sign_in, wait_for
from tests.support.i18n_scan import RUSSIAN_PASSWORD, data_words, english_words, russian_staff

base_url, browser, screenshots_dir = tb.base_url, tb.browser, tb.screenshots_dir

pytestmark = pytest.mark.browser

TIMEOUT = 60  # the overview's background job on a busy machine


@pytest.fixture(scope="module")
def staff(web_seed) -> dict[str, str]:
    return russian_staff(web_seed[0])


@pytest.fixture(scope="module")
def names(web_seed) -> set[str]:
    return data_words(web_seed[0])


def wait(driver, condition, timeout: float = TIMEOUT):
    return WebDriverWait(driver, timeout).until(condition)


def settle(driver) -> None:
    wait(driver, lambda d: not d.find_elements(By.CSS_SELECTOR, "[data-dash-is-loading='true']"))


def no_english(driver, names: set[str], shot: str) -> str:
    """The page's visible text and its inputs' placeholders, asserted free of
    English; a screenshot as ``shot``."""
    settle(driver)
    driver.save_screenshot(str(SCREENSHOTS / f"russian-{shot}.png"))
    text = driver.execute_script(
        "return document.body.innerText + '\\n' + Array.from("
        "document.querySelectorAll('input, textarea')).map(e => e.placeholder || '').join('\\n')")
    words = english_words(text, names)
    lines = [line for line in text.splitlines() if english_words(line, names)]
    assert not words, f"{shot}: English on screen: {sorted(set(words))} in {lines[:10]}"
    assert re.search("[а-яё]", text, re.I), f"{shot}: no Russian on screen"
    assert severe(driver) == [], shot
    return text


def signed_in(driver, base_url: str, username: str) -> None:
    sign_in(driver, base_url, username, RUSSIAN_PASSWORD)
    wait_for(driver, "#shell-user-name")
    assert driver.execute_script("return document.documentElement.lang") == "ru"
    severe(driver)


def test_support_then_supervisor_in_russian(browser, base_url, web_seed, staff, names):
    _url, ids = web_seed
    member_id = ids["member"]

    # --- support: the live page (their first), a member, an adjustment request
    signed_in(browser, base_url, staff["support"])
    wait_for(browser, "#live-tiles")
    no_english(browser, names, "support-1-live")

    browser.get(f"{base_url}/members")
    wait_for(browser, "#members-grid .ag-row")
    browser.find_element(By.ID, "members-query").send_keys("bor")
    wait(browser, lambda d: all(
        "Boris" in r.text for r in d.find_elements(By.CSS_SELECTOR, "#members-grid .ag-row")
        if r.text.strip()))
    no_english(browser, names | {"bor"}, "support-2-search")  # the query as typed

    browser.get(f"{base_url}/members?id={member_id}")
    wait_for(browser, "#members-ledger-grid .ag-row")
    wait_for(browser, "#members-tier-progress")
    assert "балл" in browser.find_element(By.ID, "members-balance").text
    assert "в столбце баланса" in browser.find_element(By.ID, "members-ledger-count").text
    no_english(browser, names, "support-3-member")

    click(browser, "members-request-link")
    wait_for(browser, "#adjreq-balance")
    browser.find_element(By.ID, "adjreq-points").send_keys("+120")
    Select(browser.find_element(By.ID, "adjreq-reason")).select_by_value("missing_accrual")
    click(browser, "adjreq-submit")  # no comment: refused, in Russian
    wait(browser, lambda d: d.find_element(By.ID, "adjreq-comment-feedback").text.strip())
    no_english(browser, names, "support-4-refused")
    browser.find_element(By.ID, "adjreq-comment").send_keys("Заказ 10001 не начислен")
    click(browser, "adjreq-submit")
    wait_for(browser, "#adjreq-filed")
    filed = browser.find_element(By.ID, "adjreq-filed").text
    assert filed.startswith("Заявка №") and "ждёт одного согласования" in filed, filed
    request_id = int(re.search(r"№(\d+)", filed).group(1))
    no_english(browser, names, "support-5-filed")

    # --- supervisor: approve it, then read every page of theirs
    signed_in(browser, base_url, staff["supervisor"])
    browser.get(f"{base_url}/adjustments")
    wait_for(browser, "#adjreview-queue .ag-row")
    settle(browser)
    rows = browser.find_elements(By.CSS_SELECTOR,
                                 f"#adjreview-queue .ag-row[row-id='{request_id}']")
    row = rows[0] if rows else next(
        r for r in browser.find_elements(By.CSS_SELECTOR, "#adjreview-queue .ag-row")
        if r.text.split("\n")[0].strip() == str(request_id))
    row.click()
    wait_for(browser, "#adjreview-detail-body")
    wait(browser, lambda d: d.find_element(By.ID, "adjreview-approve").is_enabled())
    no_english(browser, names, "supervisor-1-queue")
    click(browser, "adjreview-approve")
    wait(browser, lambda d: "согласована" in d.find_element(By.ID, "adjreview-decision").text)
    no_english(browser, names, "supervisor-2-approved")

    for path, ready, shot in (
        ("/rules", "#rules-grid .ag-row", "supervisor-3-rules"),
        ("/pilots", "#pilots-list", "supervisor-4-pilots"),
        ("/audit", "#audit-grid .ag-row", "supervisor-5-audit"),
        ("/staff", "#staff-grid .ag-row", "supervisor-6-staff"),
        ("/overview", "#overview-kpi-grid .ag-row", "supervisor-7-overview"),
    ):
        browser.get(f"{base_url}{path}")
        wait_for(browser, ready)
        no_english(browser, names, shot)


def test_executive_in_russian(browser, base_url, staff, names):
    signed_in(browser, base_url, staff["executive"])
    browser.get(f"{base_url}/overview")
    wait_for(browser, "#overview-kpi-grid .ag-row")
    wait_for(browser, "#overview-orders-figure .main-svg")
    no_english(browser, names, "executive-1-overview")
    browser.get(f"{base_url}/live")
    wait_for(browser, "#live-tiles")
    wait_for(browser, "#live-points-figure .main-svg")
    no_english(browser, names, "executive-2-live")
