"""Adjustments end to end in real headless Chromium (Debian's).

Support finds a member, requests an adjustment from the profile's link, sees
no approve control (and the server refuses a forged approve call); a
supervisor approves it in the queue; the member's balance and ledger show
the one new entry.
"""

from __future__ import annotations

import json
import re

import pytest
from sqlalchemy import func, select

from benchmarks.small_program import PASSWORD, STAFF
from db.models import Account, AdjustmentRequest, LedgerEntry
from db.session import Database
from tests.support import browser as tb
from tests.support.browser import SCREENSHOTS, TIMEOUT, severe, sign_in, wait_for
from tests.support.web import callback_body, callback_key

# the browser test module's fixtures: one served app, one Chromium
base_url, browser, screenshots_dir = tb.base_url, tb.browser, tb.screenshots_dir

pytestmark = pytest.mark.browser

from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402


def balance_of(url: str, member_id: int) -> int:
    d = Database(url)
    try:
        with d.read() as s:
            return s.scalar(select(Account.balance).where(Account.member_id == member_id))
    finally:
        d.dispose()


def settle(driver) -> None:
    WebDriverWait(driver, TIMEOUT).until(
        lambda d: not d.find_elements(By.CSS_SELECTOR, "[data-dash-is-loading='true']")
    )


def click(driver, element_id: str) -> None:
    el = driver.find_element(By.ID, element_id)
    # JS click: the element may sit below the fold of the fixed-size window
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'}); arguments[0].click();",
                          el)


def text_of(driver, css: str) -> str:
    return driver.find_element(By.CSS_SELECTOR, css).text


def test_support_requests_supervisor_approves_ledger_shows_it(browser, base_url, web_seed,
                                                               web_app):
    url, ids = web_seed
    member_id = ids["member"]
    start = balance_of(url, member_id)

    # --- support: the profile, then the request form from its link
    sign_in(browser, base_url, STAFF["support"][0], PASSWORD)
    wait_for(browser, "#shell-user-name")
    severe(browser)
    browser.get(f"{base_url}/members?id={member_id}")
    wait_for(browser, "#members-balance")
    assert text_of(browser, "#members-balance") == f"{start:,} points"
    wait_for(browser, "#members-ledger-grid .ag-row")
    wait_for(browser, "#members-tier-progress")
    settle(browser)
    browser.save_screenshot(str(SCREENSHOTS / "adjustments-1-support-profile.png"))
    click(browser, "members-request-link")
    wait_for(browser, "#adjreq-balance")
    assert text_of(browser, "#adjreq-balance") == f"{start:,} points"

    # a refusal first: no comment -> the message next to the comment field
    browser.find_element(By.ID, "adjreq-points").send_keys("+120")
    Select(browser.find_element(By.ID, "adjreq-reason")).select_by_value("missing_accrual")
    click(browser, "adjreq-submit")
    WebDriverWait(browser, TIMEOUT).until(
        lambda d: "required" in d.find_element(By.ID, "adjreq-comment-feedback").text)
    browser.find_element(By.ID, "adjreq-comment").send_keys("Order O00001 was not accrued")
    browser.find_element(By.ID, "adjreq-ticket").send_keys("SUP-77")
    click(browser, "adjreq-submit")
    wait_for(browser, "#adjreq-filed")
    filed = text_of(browser, "#adjreq-filed")
    request_id = int(re.search(r"#(\d+)", filed).group(1))
    assert text_of(browser, "#adjreq-comment-feedback") == ""
    settle(browser)
    browser.save_screenshot(str(SCREENSHOTS / "adjustments-2-support-requested.png"))
    assert severe(browser) == []

    # --- support on the approvals page: their own list, no decision controls
    browser.get(f"{base_url}/adjustments")
    wait_for(browser, "#adjreview-grid .ag-row")
    settle(browser)
    assert not browser.find_elements(By.ID, "adjreview-approve")
    assert not browser.find_elements(By.ID, "adjreview-queue")
    # ...and the server refuses a forged approve request
    key = callback_key(web_app, "callbacks.adjustments_review", "approve")
    body = callback_body(web_app, key, {"adjreview-approve.n_clicks": 1,
                                        "adjreview-selected.data": request_id},
                         changed=["adjreview-approve.n_clicks"])
    status = browser.execute_async_script(
        """
        const done = arguments[arguments.length - 1];
        fetch("/_dash-update-component", {method: "POST",
            headers: {"Content-Type": "application/json"}, body: arguments[0]})
          .then(r => done(r.status)).catch(e => done(String(e)));
        """,
        json.dumps(body),
    )
    assert status == 403
    d = Database(url)
    with d.read() as s:
        assert s.get(AdjustmentRequest, request_id).status == "pending"
    d.dispose()
    browser.save_screenshot(str(SCREENSHOTS / "adjustments-3-support-history.png"))

    # --- supervisor: the queue, the decision panel, approve
    sign_in(browser, base_url, STAFF["supervisor"][0], PASSWORD)
    wait_for(browser, "#shell-user-name")
    severe(browser)
    browser.get(f"{base_url}/adjustments")
    wait_for(browser, "#adjreview-queue .ag-row")
    settle(browser)
    row = browser.find_element(By.CSS_SELECTOR, f"#adjreview-queue .ag-row[row-id='{request_id}']"
                               ) if browser.find_elements(
        By.CSS_SELECTOR, f"#adjreview-queue .ag-row[row-id='{request_id}']") else next(
        r for r in browser.find_elements(By.CSS_SELECTOR, "#adjreview-queue .ag-row")
        if r.text.split("\n")[0].strip() == str(request_id))
    row.click()
    wait_for(browser, "#adjreview-detail-body")
    WebDriverWait(browser, TIMEOUT).until(
        lambda d: d.find_element(By.ID, "adjreview-approve").is_enabled())
    browser.save_screenshot(str(SCREENSHOTS / "adjustments-4-supervisor-queue.png"))
    click(browser, "adjreview-approve")
    WebDriverWait(browser, TIMEOUT).until(
        lambda d: "approved" in d.find_element(By.ID, "adjreview-decision").text)
    assert not browser.find_element(By.ID, "adjreview-approve").is_enabled()
    settle(browser)
    browser.save_screenshot(str(SCREENSHOTS / "adjustments-5-supervisor-approved.png"))
    assert severe(browser) == []

    # exactly one entry, the balance moved by the request
    assert balance_of(url, member_id) == start + 120
    d = Database(url)
    with d.read() as s:
        r = s.get(AdjustmentRequest, request_id)
        assert r.status == "approved"
        assert s.scalar(select(func.count()).select_from(LedgerEntry)
                        .where(LedgerEntry.tx_id == r.tx_id)) == 1
    d.dispose()

    # --- the member's profile shows it
    browser.get(f"{base_url}/members?id={member_id}")
    wait_for(browser, "#members-balance")
    WebDriverWait(browser, TIMEOUT).until(
        lambda d: d.find_element(By.ID, "members-balance").text == f"{start + 120:,} points")
    wait_for(browser, "#members-ledger-grid .ag-row")
    settle(browser)
    first = browser.find_element(By.CSS_SELECTOR, "#members-ledger-grid .ag-row[row-index='0']")
    assert "adjustment" in first.text and "+120" in first.text
    assert f"{start + 120:,}" in first.text
    browser.save_screenshot(str(SCREENSHOTS / "adjustments-6-member-after.png"))
    assert severe(browser) == []


def test_member_search_pages_from_the_server(browser, base_url, web_seed):
    sign_in(browser, base_url, STAFF["supervisor"][0], PASSWORD)
    wait_for(browser, "#shell-user-name")
    severe(browser)
    browser.get(f"{base_url}/members")
    wait_for(browser, "#members-grid .ag-row")
    box = browser.find_element(By.ID, "members-query")
    box.send_keys("bor")
    WebDriverWait(browser, TIMEOUT).until(
        lambda d: "starting with “bor”" in d.find_element(By.ID, "members-count").text)
    WebDriverWait(browser, TIMEOUT).until(
        lambda d: [r.text for r in d.find_elements(By.CSS_SELECTOR, "#members-grid .ag-row")
                   if r.text.strip()] and all(
            "Boris" in r.text for r in d.find_elements(By.CSS_SELECTOR, "#members-grid .ag-row")
            if r.text.strip()))
    rows = browser.find_elements(By.CSS_SELECTOR, "#members-grid .ag-row")
    # supervisors see personal data masked
    assert "***@example.com" in rows[0].text
    rows[0].click()
    wait_for(browser, "#members-profile-card")
    WebDriverWait(browser, TIMEOUT).until(
        lambda d: "Boris" in d.find_element(By.ID, "members-profile-card").text)
    settle(browser)
    browser.save_screenshot(str(SCREENSHOTS / "members-supervisor-search.png"))
    assert severe(browser) == []
