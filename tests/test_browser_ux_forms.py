"""Forms in real headless Chromium (Debian's): a double click files once,
every problem of a form shows at once, in words a user understands."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import select

from benchmarks.small_program import PASSWORD, STAFF
from db import adjustments, rules, settings_changes
from db.actor import Actor
from db.errors import Forbidden
from db.models import AdjustmentRequest
from db.session import Database
from tests.support import browser as tb
from tests.support.browser import SCREENSHOTS, TIMEOUT, severe, sign_in, wait_for
from tests.support.factories import DEFAULT_TIERS

# the browser test module's fixtures: one served app, one Chromium
base_url, browser, screenshots_dir = tb.base_url, tb.browser, tb.screenshots_dir

pytestmark = pytest.mark.browser

from selenium.common.exceptions import StaleElementReferenceException  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def leave_no_trace(web_seed):
    """The other web tests share the database: requests filed here are
    cancelled and a proposal left waiting is refused afterwards."""
    url, ids = web_seed
    d = Database(url)
    with d.read() as s:
        known = set(s.scalars(select(AdjustmentRequest.id)))
    yield
    with d.read() as s:
        mine = s.execute(select(AdjustmentRequest.id, AdjustmentRequest.requested_by_id).where(
            AdjustmentRequest.status == "pending")).all()
        waiting = settings_changes.waiting(s)
    for rid, by in mine:
        if rid not in known:
            adjustments.cancel_adjustment(d, Actor("requester", by, "support"), rid)
    if waiting is not None:
        decider = ids["sid"] if waiting.requested_by_id != ids["sid"] else ids["sue"]
        d.write_tx(lambda s: settings_changes.reject(
            s, Actor("decider", decider, "supervisor"), waiting.id, "left by a test"))
    d.dispose()


def pending_ids(url: str, member_id: int) -> list[int]:
    d = Database(url)
    try:
        with d.read() as s:
            return list(s.scalars(select(AdjustmentRequest.id).where(
                AdjustmentRequest.member_id == member_id,
                AdjustmentRequest.status == "pending").order_by(AdjustmentRequest.id)))
    finally:
        d.dispose()


def settle(driver) -> None:
    WebDriverWait(driver, TIMEOUT).until(
        lambda d: not d.find_elements(By.CSS_SELECTOR, "[data-dash-is-loading='true']"))


def text(driver, element_id: str) -> str:
    """The element's text, read again if the page replaced it meanwhile."""
    for _ in range(4):
        try:
            return driver.find_element(By.ID, element_id).text
        except StaleElementReferenceException:
            continue
    return driver.find_element(By.ID, element_id).text


def open_request_form(driver, base_url: str, member_id: int) -> None:
    sign_in(driver, base_url, STAFF["support"][0], PASSWORD)
    wait_for(driver, "#shell-user-name")
    driver.get(f"{base_url}/adjustments/request?member={member_id}")
    wait_for(driver, "#adjreq-balance")
    settle(driver)


def fill_request(driver, points: str, comment: str) -> None:
    driver.find_element(By.ID, "adjreq-points").send_keys(points)
    Select(driver.find_element(By.ID, "adjreq-reason")).select_by_value("goodwill")
    driver.find_element(By.ID, "adjreq-comment").send_keys(comment)


def submit_button(driver):
    button = driver.find_element(By.ID, "adjreq-submit")
    # at once: Bootstrap scrolls smoothly, and a real click mid-scroll lands elsewhere
    driver.execute_script(
        "arguments[0].scrollIntoView({block: 'center', behavior: 'instant'});", button)
    return button


def wait_filed(driver) -> str:
    WebDriverWait(driver, TIMEOUT).until(
        lambda d: "filed" in d.find_element(By.ID, "adjreq-result").text)
    settle(driver)
    time.sleep(0.5)  # a late answer to a second click would land now
    settle(driver)
    # the button is usable again once no request of the form is running
    WebDriverWait(driver, TIMEOUT).until(
        lambda d: d.find_element(By.ID, "adjreq-submit").is_enabled())
    return text(driver, "adjreq-result")


# ---------------------------------------------------------------- a double click


def test_double_click_on_submit_files_one_request(browser, base_url, web_seed):
    """The browser's own double click, then a slower one whose second click
    lands after the first answer: one request each time, and the success
    message stays."""
    url, ids = web_seed
    member_id = ids["member"]
    before = pending_ids(url, member_id)
    open_request_form(browser, base_url, member_id)
    severe(browser)

    fill_request(browser, "+15", "Courtesy for a late delivery")
    ActionChains(browser).double_click(submit_button(browser)).perform()
    result = wait_filed(browser)
    first = pending_ids(url, member_id)
    assert len(first) == len(before) + 1
    assert f"Request #{first[-1]} filed" in result
    assert "Nothing was filed" not in result

    # a human's double click: the second click arrives once the first was answered
    fill_request(browser, "+16", "Second courtesy, another parcel")
    button = submit_button(browser)
    ActionChains(browser).click(button).perform()
    WebDriverWait(browser, TIMEOUT).until(
        lambda d: "+16" in text(d, "adjreq-result") or "Nothing" in text(d, "adjreq-result"))
    assert len(pending_ids(url, member_id)) == len(first) + 1, text(browser, "adjreq-result")
    ActionChains(browser).click(button).perform()
    result = wait_filed(browser)
    second = pending_ids(url, member_id)
    assert len(second) == len(first) + 1
    assert f"Request #{second[-1]} filed: +16 points" in result
    assert "Nothing was filed" not in result
    assert text(browser, "adjreq-points-feedback") == ""
    assert text(browser, "adjreq-comment-feedback") == ""
    browser.save_screenshot(str(SCREENSHOTS / "forms-double-click-filed-once.png"))
    assert severe(browser) == []


# ---------------------------------------------------------------- messages a user reads

# names the code uses that a user never sees (each has a label in the forms)
INTERNAL_CODES = (
    "goodwill", "missing_accrual", "wrong_accrual", "fraud_reversal", "transfer_dispute",
    "accrual_rate", "referral_rate", "point_value", "tier_window_days", "large_family",
    "spend_per_member", "orders_per_member", "average_check", "active_rate", "reason_code",
    "ticket_ref", "corrects_entry_id", "primary_metric", "min_effect", "pilot_share",
    "planned_end_at", "rule_set_id", "expiry_days", "active_within_days",
)


def visible_codes(driver) -> list[str]:
    body = driver.find_element(By.TAG_NAME, "body").text
    return [c for c in INTERNAL_CODES if c in body]


def js_click(driver, element_id: str) -> None:
    el = driver.find_element(By.ID, element_id)
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'}); arguments[0].click();",
                          el)


def type_into(driver, element_id: str, value: str) -> None:
    el = driver.find_element(By.ID, element_id)
    el.clear()
    el.send_keys(value)


def test_adjustment_form_shows_every_problem_at_once(browser, base_url, web_seed):
    url, ids = web_seed
    member_id = ids["member"]
    before = pending_ids(url, member_id)
    open_request_form(browser, base_url, member_id)
    severe(browser)
    # no reason and no comment: both say so, next to their fields
    type_into(browser, "adjreq-points", "+25")
    js_click(browser, "adjreq-submit")
    WebDriverWait(browser, TIMEOUT).until(
        lambda d: text(d, "adjreq-comment-feedback") and text(d, "adjreq-reason-feedback"))
    assert "required" in text(browser, "adjreq-comment-feedback")
    assert "choose a reason" in text(browser, "adjreq-reason-feedback")
    assert "2 fields" in text(browser, "adjreq-result")
    assert visible_codes(browser) == []

    # a huge number is "too large", with the comment's problem beside it
    type_into(browser, "adjreq-points", "99999999999999999999999")
    Select(browser.find_element(By.ID, "adjreq-reason")).select_by_value("missing_accrual")
    js_click(browser, "adjreq-submit")
    WebDriverWait(browser, TIMEOUT).until(
        lambda d: "too large" in text(d, "adjreq-points-feedback"))
    assert "required" in text(browser, "adjreq-comment-feedback")
    assert text(browser, "adjreq-reason-feedback") == ""
    assert visible_codes(browser) == []
    settle(browser)
    browser.save_screenshot(str(SCREENSHOTS / "forms-adjustment-problems.png"))
    assert pending_ids(url, member_id) == before
    assert severe(browser) == []


def test_rules_page_says_too_large_and_why_expiry_is_refused(browser, base_url, web_seed):
    url, ids = web_seed
    d = Database(url)
    try:
        d.write_tx(lambda s: rules.create_draft(
            s, Actor("sue", ids["sue"], "supervisor"), "Forms draft", DEFAULT_TIERS))
    finally:
        d.dispose()
    sign_in(browser, base_url, STAFF["supervisor"][0], PASSWORD)
    wait_for(browser, "#shell-user-name")
    browser.get(base_url + "/rules")
    wait_for(browser, "#rules-history-grid .ag-row")
    # the page opens on the version in force; the user's draft is one click away
    WebDriverWait(browser, TIMEOUT).until(lambda d: "Forms draft" in text(d, "rules-own-draft"))
    js_click(browser, "rules-own-draft")
    WebDriverWait(browser, TIMEOUT).until(
        lambda d: "Forms draft" in text(d, "rules-version-summary"))
    WebDriverWait(browser, TIMEOUT).until(
        lambda d: d.find_element(By.ID, "rules-save").is_enabled())
    settle(browser)
    severe(browser)

    # the expiry period: a huge number, then a word, each refused with its reason
    WebDriverWait(browser, TIMEOUT).until(
        lambda d: d.find_element(By.ID, "rules-expiry-days").get_property("value"))
    type_into(browser, "rules-expiry-days", "99999999999999999999999")
    js_click(browser, "rules-expiry-save")
    WebDriverWait(browser, TIMEOUT).until(lambda d: "too large" in text(d, "rules-expiry-feedback"))
    assert "3,660 days" in text(browser, "rules-expiry-feedback")
    type_into(browser, "rules-expiry-days", "a year")
    js_click(browser, "rules-expiry-save")
    WebDriverWait(browser, TIMEOUT).until(
        lambda d: "not a whole number of days" in text(d, "rules-expiry-feedback"))
    assert "1 to 3,660" in text(browser, "rules-expiry-feedback")
    browser.save_screenshot(str(SCREENSHOTS / "forms-expiry-refused.png"))

    # a tier rate beyond any real one: "too large", named as the editor names it
    cell = browser.find_element(
        By.CSS_SELECTOR, "#rules-grid .ag-center-cols-container [row-index='0'] "
                         "[col-id='accrual_rate']")
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'});", cell)
    cell.click()
    editor = WebDriverWait(browser, TIMEOUT).until(
        lambda d: cell.find_element(By.CSS_SELECTOR, "input"))
    editor.send_keys(Keys.CONTROL, "a")
    editor.send_keys("1e30", Keys.ENTER)
    # and a second bad field: no name
    name = browser.find_element(By.ID, "rules-name")
    name.send_keys(Keys.CONTROL, "a")
    name.send_keys(Keys.DELETE)
    js_click(browser, "rules-save")
    WebDriverWait(browser, TIMEOUT).until(lambda d: d.find_elements(By.ID, "rules-problem-list"))
    assert "Tier 1, Accrual %: too large" in text(browser, "rules-problem-list")
    WebDriverWait(browser, TIMEOUT).until(
        lambda d: "is required" in text(d, "rules-name-feedback"))
    assert visible_codes(browser) == []
    settle(browser)
    browser.save_screenshot(str(SCREENSHOTS / "forms-rules-problems.png"))
    assert severe(browser) == []


def test_pilot_form_shows_every_problem_in_plain_words(browser, base_url):
    sign_in(browser, base_url, STAFF["supervisor"][0], PASSWORD)
    wait_for(browser, "#shell-user-name")
    browser.get(base_url + "/pilots")
    wait_for(browser, "#pilots-list")
    settle(browser)
    severe(browser)
    browser.find_element(By.LINK_TEXT, "New pilot").click()
    wait_for(browser, "#pilots-new-name")
    # no name, no rule set, a share beyond 99 %, a huge seed: every message at once
    type_into(browser, "pilots-new-share", "1000000000000000000000")
    type_into(browser, "pilots-new-seed", "99999999999999999999999999")
    js_click(browser, "pilots-new-create")
    WebDriverWait(browser, TIMEOUT).until(lambda d: d.find_elements(By.ID,
                                                                    "pilots-create-refused"))
    settle(browser)
    assert "is required" in text(browser, "pilots-new-name-feedback")
    assert "choose the draft rule set" in text(browser, "pilots-new-rule-set-feedback")
    assert "too large" in text(browser, "pilots-new-share-feedback")
    assert "too large" in text(browser, "pilots-new-seed-feedback")
    assert "4 fields" in text(browser, "pilots-create-refused")
    # the segments are named as people call them
    js_click(browser, "pilots-new-segments")
    WebDriverWait(browser, TIMEOUT).until(
        lambda d: d.find_elements(By.CSS_SELECTOR, ".dash-dropdown-option"))
    labels = [o.text for o in browser.find_elements(By.CSS_SELECTOR, ".dash-dropdown-option")]
    assert "Large families" in labels, labels
    assert visible_codes(browser) == []
    browser.save_screenshot(str(SCREENSHOTS / "forms-pilot-problems.png"))
    assert severe(browser) == []


def test_staff_form_shows_every_problem_and_whole_refusals(browser, base_url):
    sign_in(browser, base_url, STAFF["supervisor"][0], PASSWORD)
    wait_for(browser, "#shell-user-name")
    browser.get(base_url + "/staff")
    wait_for(browser, "#staff-grid .ag-row")
    settle(browser)
    severe(browser)
    # a username with a space and a short password: both messages
    type_into(browser, "staff-new-username", "new person")
    type_into(browser, "staff-new-password", "short")
    js_click(browser, "staff-create")
    WebDriverWait(browser, TIMEOUT).until(
        lambda d: text(d, "staff-new-username-feedback")
        and text(d, "staff-new-password-feedback"))
    assert "no spaces" in text(browser, "staff-new-username-feedback")
    assert "at least" in text(browser, "staff-new-password-feedback")
    assert "choose a role" in text(browser, "staff-new-role-feedback")
    assert visible_codes(browser) == []
    browser.save_screenshot(str(SCREENSHOTS / "forms-staff-problems.png"))
    assert severe(browser) == []


def test_a_four_eyes_refusal_is_shown_whole(browser, base_url, web_seed):
    """The proposer of an expiry change tries to approve it: the refusal is the
    service's whole sentence, on the page."""
    url, ids = web_seed
    d = Database(url)
    sue, sid = Actor("sue", ids["sue"], "supervisor"), Actor("sid", ids["sid"], "supervisor")
    try:
        with d.read() as s:
            other = settings_changes.waiting(s)
        if other is not None:
            d.write_tx(lambda s: settings_changes.reject(s, sid if other.requested_by_id
                                                         == ids["sue"] else sue, other.id,
                                                         "cleared for the test"))
        d.write_tx(lambda s: settings_changes.propose_expiry(s, sue, 500))
        with d.read() as s:
            proposal = settings_changes.waiting(s)
        with pytest.raises(Forbidden) as refused:
            d.write_tx(lambda s: settings_changes.approve(s, sue, proposal.id))
    finally:
        d.dispose()
    sign_in(browser, base_url, STAFF["supervisor"][0], PASSWORD)
    wait_for(browser, "#shell-user-name")
    browser.get(base_url + "/rules")
    wait_for(browser, "#rules-expiry-pending")
    WebDriverWait(browser, TIMEOUT).until(
        lambda d: d.find_element(By.ID, "rules-expiry-approve").is_displayed())
    settle(browser)
    js_click(browser, "rules-expiry-approve")
    WebDriverWait(browser, TIMEOUT).until(lambda d: text(d, "rules-expiry-decision"))
    shown = text(browser, "rules-expiry-decision")
    assert shown == str(refused.value)
    alert = browser.find_element(By.CSS_SELECTOR, "#rules-expiry-decision .alert")
    # nothing cut off: the alert is as tall as its text
    assert browser.execute_script(
        "const e = arguments[0]; return e.scrollHeight <= e.clientHeight + 1 && "
        "e.scrollWidth <= e.clientWidth + 1;", alert)
    browser.save_screenshot(str(SCREENSHOTS / "forms-four-eyes-refusal.png"))
    assert severe(browser) == []
