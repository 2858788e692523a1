"""Forms in real headless Chromium (Debian's): a double click files once,
every problem of a form shows at once, in words a user understands."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import select

from db.models import AdjustmentRequest
from db.session import Database
from tests import test_browser as tb
from tests.seed import PASSWORD, STAFF
from tests.test_browser import SCREENSHOTS, TIMEOUT, severe, sign_in, wait_for

# the browser test module's fixtures: one served app, one Chromium
base_url, browser, screenshots_dir = tb.base_url, tb.browser, tb.screenshots_dir

pytestmark = pytest.mark.browser

from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402


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
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", button)
    return button


def wait_filed(driver) -> str:
    WebDriverWait(driver, TIMEOUT).until(
        lambda d: "filed" in d.find_element(By.ID, "adjreq-result").text)
    settle(driver)
    time.sleep(0.5)  # a late answer to a second click would land now
    settle(driver)
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
        lambda d: len(pending_ids(url, member_id)) == len(first) + 1)
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

