"""The pilots page in real headless Chromium, on a demo program with a demo pilot.

The session's web app runs on the tiny web-test database; this module needs
the demo seeder's program (the demo pilot has a built-in effect), so it
serves its own app from a subprocess on a fresh demo database: the demo
seeder, then :func:`db.demo.seed_demo_pilot`, as ``loyalty seed`` does.
A supervisor opens the demo pilot's results, uploads a bad member list
(its bad lines are listed), then a good one, sees the power estimate and
creates the pilot.
"""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.browser import (
    READY,
    SCREENSHOTS,
    chrome,
    severe,
    sign_in,
    wait_for,
)
from tests.support.browser_server import served

pytestmark = pytest.mark.browser


from selenium import webdriver  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "pilot-browser-pass-1"


@pytest.fixture(scope="module")
def demo_program(tmp_path_factory, sqlite_template) -> dict:
    from sqlalchemy import select

    from db import demo, users
    from db.models import Member, PilotMember
    from db.session import Database

    path = tmp_path_factory.mktemp("pilots-browser") / "demo.sqlite3"
    shutil.copy(sqlite_template, path)
    url = f"sqlite:///{path}"
    d = Database(url)
    today = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    start = demo.add_months(today, -8) - dt.timedelta(days=62)
    demo.seed(d, members=1500, seed=11, start=start, months=8, progress=False)
    report = demo.seed_demo_pilot(d, seed=11, effect=0.4, share_percent=40)
    with d.begin() as s:
        users.create_user(s, "pilotsup", PASSWORD, "supervisor", full_name="Pilot Supervisor")
        taken = set(s.scalars(select(PilotMember.member_id)))
        free = [m for m in s.scalars(select(Member.id).where(
            Member.status == "active", Member.segment == "student").order_by(Member.id))
            if m not in taken][:80]
    d.dispose()
    return {"url": url, "report": report, "free": free, "username": "pilotsup"}


@pytest.fixture(scope="module")
def base_url(demo_program) -> Iterator[str]:
    with served(demo_program["url"]) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    driver = chrome("1400,1400")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    try:
        yield driver
    finally:
        driver.quit()


def wait_text(driver, css: str, text: str, timeout: int = 60) -> None:
    WebDriverWait(driver, timeout).until(
        lambda d: any(text in e.text for e in d.find_elements(By.CSS_SELECTOR, css)))


def settle(driver) -> None:
    WebDriverWait(driver, 60).until(
        lambda d: not d.find_elements(By.CSS_SELECTOR, "[data-dash-is-loading='true']"))


def test_demo_pilot_results_then_create_a_pilot_from_a_csv(browser, base_url, demo_program,
                                                           tmp_path):
    sign_in(browser, base_url, demo_program["username"], PASSWORD)
    wait_for(browser, "#shell-user-name")
    severe(browser)
    browser.get(base_url + "/pilots")
    wait_for(browser, READY["/pilots"])
    # the demo pilot is chosen by default: its verdict finds the built-in effect
    wait_text(browser, "#pilots-verdict", "Statistically significant but below the minimum effect")
    wait_for(browser, "#pilots-spend-figure .main-svg")
    wait_for(browser, "#pilots-metric-table")
    settle(browser)
    table = browser.find_element(By.ID, "pilots-metric-table").text
    assert "Spend per member (primary)" in table and "Bootstrap" in table
    assert "Extra points issued" in browser.find_element(By.ID, "pilots-cost").text
    # computed by the background job: once done, the progress bar hides and Stop is off
    WebDriverWait(browser, 30).until(lambda d: d.find_element(
        By.ID, "pilots-results-progress").value_of_css_property("visibility") == "hidden")
    assert not browser.find_element(By.ID, "pilots-results-cancel").is_enabled()
    assert browser.find_element(By.ID, "pilots-export").is_enabled()
    browser.save_screenshot(str(SCREENSHOTS / "supervisor-pilots-demo-results.png"))

    browser.find_element(By.LINK_TEXT, "New pilot").click()
    wait_for(browser, "#pilots-new-name")
    browser.find_element(By.ID, "pilots-new-name").send_keys("Students from a list")
    # the rule set picker (Dash 4 dropdown): open it, take the demo's draft
    browser.find_element(By.CSS_SELECTOR, "#pilots-new-rule-set").click()
    wait_for(browser, ".dash-dropdown-option")
    next(o for o in browser.find_elements(By.CSS_SELECTOR, ".dash-dropdown-option")
         if "Proposal" in o.text).click()
    browser.find_element(By.ID, "pilots-new-name").click()  # close the list
    browser.find_element(By.CSS_SELECTOR, "label[for='_dbcprivate_radioitems_pilots-new-"
                                          "source_input_file']").click()
    upload = browser.find_element(By.CSS_SELECTOR, "#pilots-new-upload input[type=file]")
    free = demo_program["free"]
    bad = tmp_path / "bad.csv"
    bad.write_text(f"member_id\n{free[0]}\nnot-a-number\n99999999\n{free[0]}\n")
    upload.send_keys(str(bad))
    wait_text(browser, "#pilots-upload-problems", "line 3")
    problems = browser.find_element(By.ID, "pilots-upload-problems").text
    for expected in ("line 3", "not a number", "line 4", "unknown member", "line 5",
                     "duplicate of line 2"):
        assert expected in problems, expected
    browser.save_screenshot(str(SCREENSHOTS / "supervisor-pilots-bad-upload.png"))

    good = tmp_path / "good.csv"
    good.write_text("member_id\n" + "\n".join(map(str, free)) + "\n")
    upload = browser.find_element(By.CSS_SELECTOR, "#pilots-new-upload input[type=file]")
    upload.send_keys(str(good))
    wait_text(browser, "#pilots-upload-ok", f"{len(free)} members read")
    browser.find_element(By.ID, "pilots-new-preview").click()
    wait_text(browser, "#pilots-power-sentence", "members are needed")
    browser.save_screenshot(str(SCREENSHOTS / "supervisor-pilots-power.png"))
    browser.find_element(By.ID, "pilots-new-create").click()
    wait_text(browser, "#pilots-created", "created as a draft")
    settle(browser)
    browser.save_screenshot(str(SCREENSHOTS / "supervisor-pilots-created.png"))
    assert severe(browser) == []
