"""A support agent and a supervisor who chose Russian, in real headless
Chromium: find a member, read the profile and the ledger, file an adjustment
(a refusal next to a field first), approve it in the queue. Every text the
browser shows on the way - AG Grid's own, the date pickers', the dropdowns'
included - is Russian, names and customer ids aside."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from db import users
from db.models import AdjustmentRequest, LedgerEntry, Member, RuleSet, StaffUser, Tier
from db.session import Database
from pages.adjustments_request import EXPIRED, MEMOS
from tests.support import browser as tb
from tests.support.browser import SCREENSHOTS, TIMEOUT, click, severe, sign_in, wait_for
from tests.support.i18n_scan import english_words

base_url, browser, screenshots_dir = tb.base_url, tb.browser, tb.screenshots_dir

pytestmark = pytest.mark.browser

from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

PASSWORD = "russian-browser-pass-1"


@pytest.fixture(scope="module")
def russians(web_seed) -> dict[str, str]:
    url, _ids = web_seed
    d = Database(url)
    try:
        with d.begin() as s:
            for username, role in (("rubrsupport", "support"), ("rubrsuper", "supervisor")):
                u = s.scalar(select(StaffUser).where(StaffUser.username == username))
                uid = u.id if u is not None else users.create_user(
                    s, username, PASSWORD, role, full_name="Анна Смирнова").id
                users.set_language(s, uid, "ru", actor=username)
    finally:
        d.dispose()
    return {"support": "rubrsupport", "supervisor": "rubrsuper"}


@pytest.fixture(scope="module")
def data_words(web_seed, russians) -> set[str]:
    url, _ids = web_seed
    d = Database(url)
    words: set[str] = set()
    try:
        with d.read() as s:
            for m in s.scalars(select(Member)):
                words.update(re.findall(r"\w+", f"{m.name or ''} {m.external_id}"))
            for u in s.scalars(select(StaffUser)):
                words.update(re.findall(r"\w+", f"{u.username} {u.full_name or ''}"))
            for rs in s.scalars(select(RuleSet)):
                words.update(re.findall(r"\w+", rs.name or ""))
            for tier in s.scalars(select(Tier)):
                words.update(re.findall(r"\w+", tier.name))
            for r in s.scalars(select(AdjustmentRequest)):  # what staff typed
                words.update(re.findall(r"\w+", f"{r.comment} {r.ticket_ref} "
                                                 f"{r.decision_reason or ''}"))
            # memos written by others than the engine (an API client's, the
            # test program's) are shown as they are
            for memo in s.scalars(select(LedgerEntry.memo).distinct()):
                if memo and not (EXPIRED.fullmatch(memo)
                                 or any(p.fullmatch(memo) for p, _text in MEMOS)):
                    words.update(re.findall(r"\w+", memo))
    finally:
        d.dispose()
    return words


def settle(driver) -> None:
    WebDriverWait(driver, TIMEOUT).until(
        lambda d: not d.find_elements(By.CSS_SELECTOR, "[data-dash-is-loading='true']"))


def english_on_screen(driver, words: set[str]) -> dict[str, list[str]]:
    """Lines of the page's visible text with English words, and the
    placeholders of its inputs."""
    lines = driver.find_element(By.TAG_NAME, "body").text.splitlines()
    lines += [e.get_attribute("placeholder") or "" for e in
              driver.find_elements(By.CSS_SELECTOR, "input, textarea")]
    found = {}
    for line in lines:
        bad = english_words(line, words)
        if bad:
            found[line] = bad
    return found


def test_support_and_supervisor_work_in_russian(browser, base_url, web_seed, russians,
                                                data_words):
    _url, ids = web_seed
    member_id = ids["member"]
    sign_in(browser, base_url, russians["support"], PASSWORD)
    wait_for(browser, "#shell-user-name")
    severe(browser)

    # --- the search and the profile
    browser.get(f"{base_url}/members?id={member_id}")
    wait_for(browser, "#members-balance")
    wait_for(browser, "#members-ledger-grid .ag-row")
    wait_for(browser, "#members-grid .ag-row")
    settle(browser)
    assert "баллов" in browser.find_element(By.ID, "members-balance").text or \
        "балл" in browser.find_element(By.ID, "members-balance").text
    assert "в столбце баланса" in browser.find_element(By.ID, "members-ledger-count").text
    browser.save_screenshot(str(SCREENSHOTS / "i18n-adjust-1-members-ru.png"))
    assert english_on_screen(browser, data_words) == {}

    # --- the request form: a refusal next to the field, then the request
    click(browser, "members-request-link")
    wait_for(browser, "#adjreq-balance")
    settle(browser)
    assert english_on_screen(browser, data_words) == {}
    browser.find_element(By.ID, "adjreq-points").send_keys("+15")
    Select(browser.find_element(By.ID, "adjreq-reason")).select_by_value("missing_accrual")
    click(browser, "adjreq-submit")
    WebDriverWait(browser, TIMEOUT).until(
        lambda d: "обязательно" in d.find_element(By.ID, "adjreq-comment-feedback").text)
    browser.find_element(By.ID, "adjreq-comment").send_keys("Не начислены баллы за заказ")
    click(browser, "adjreq-submit")
    wait_for(browser, "#adjreq-filed")
    filed = browser.find_element(By.ID, "adjreq-filed").text
    assert filed.startswith("Заявка №") and "ждёт одного согласования" in filed
    request_id = int(re.search(r"№(\d+)", filed).group(1))
    wait_for(browser, "#adjreq-table .ag-row")
    settle(browser)
    browser.save_screenshot(str(SCREENSHOTS / "i18n-adjust-2-request-ru.png"))
    assert english_on_screen(browser, data_words) == {}
    assert severe(browser) == []

    # --- the supervisor decides
    sign_in(browser, base_url, russians["supervisor"], PASSWORD)
    wait_for(browser, "#shell-user-name")
    severe(browser)
    browser.get(f"{base_url}/adjustments")
    wait_for(browser, "#adjreview-queue .ag-row")
    wait_for(browser, "#adjreview-grid .ag-row")
    settle(browser)
    assert english_on_screen(browser, data_words) == {}
    rows = browser.find_elements(By.CSS_SELECTOR,
                                 f"#adjreview-queue .ag-row[row-id='{request_id}']")
    row = rows[0] if rows else next(
        r for r in browser.find_elements(By.CSS_SELECTOR, "#adjreview-queue .ag-row")
        if r.text.split("\n")[0].strip() == str(request_id))
    row.click()
    wait_for(browser, "#adjreview-detail-body")
    WebDriverWait(browser, TIMEOUT).until(
        lambda d: d.find_element(By.ID, "adjreview-approve").is_enabled())
    click(browser, "adjreview-approve")
    WebDriverWait(browser, TIMEOUT).until(
        lambda d: "согласована" in d.find_element(By.ID, "adjreview-decision").text)
    settle(browser)
    browser.save_screenshot(str(SCREENSHOTS / "i18n-adjust-3-approved-ru.png"))
    assert english_on_screen(browser, data_words) == {}
    assert severe(browser) == []
