"""The tier-rules page end to end in headless Chromium: a supervisor edits a
threshold, sees the validation error next to the cell, fixes it, runs the
background simulation (migration matrix), submits; a second supervisor
approves; the history shows the diff."""

from __future__ import annotations

import pytest

from benchmarks.small_program import PASSWORD, SECOND_SUPERVISOR, STAFF
from db import rules
from db.actor import Actor
from db.models import RuleSet
from db.session import Database
from tests.support.browser import (  # noqa: F401 - fixtures
    CHROMEDRIVER,
    CHROMIUM,
    SCREENSHOTS,
    base_url,
    browser,
    click,
    screenshots_dir,
    severe,
    sign_in,
    tab,
    wait_for,
    wait_text,
)
from tests.support.factories import DEFAULT_TIERS

pytestmark = pytest.mark.browser

from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

NAME = "Browser draft"


def edit_cell(driver, row: int, col: str, value: str) -> None:
    cell = driver.find_element(
        By.CSS_SELECTOR, f"#rules-grid .ag-center-cols-container [row-index='{row}'] "
                         f"[col-id='{col}']")
    cell.click()
    editor = WebDriverWait(driver, 10).until(
        lambda d: cell.find_element(By.CSS_SELECTOR, "input"))
    editor.send_keys(Keys.CONTROL, "a")
    editor.send_keys(value, Keys.ENTER)


@pytest.fixture(scope="module")
def draft_id(web_seed) -> int:
    url, ids = web_seed
    d = Database(url)
    try:
        return d.write_tx(lambda s: rules.create_draft(
            s, Actor("sue", ids["sue"], "supervisor"), NAME, DEFAULT_TIERS))
    finally:
        d.dispose()


def test_edit_simulate_submit_approve_diff(browser, base_url, web_seed, draft_id):  # noqa: F811
    try:
        _flow(browser, base_url, web_seed, draft_id)
    except Exception:
        browser.save_screenshot(str(SCREENSHOTS / "rules-failure.png"))
        raise


def _flow(d, url, web_seed, draft_id) -> None:
    sign_in(d, url, STAFF["supervisor"][0], PASSWORD)
    wait_for(d, "#shell-user-name")
    d.get(url + "/rules")
    # the page opens on the version in force; the user's newest draft is one click away
    wait_text(d, "#rules-version-summary", "in force")
    wait_text(d, "#rules-own-draft", NAME)
    click(d, "rules-own-draft")
    wait_text(d, "#rules-version-summary", NAME)
    wait_for(d, "#rules-grid .ag-row")
    severe(d)

    # a threshold that does not increase: refused next to the cell, nothing saved
    edit_cell(d, 1, "threshold", "0")
    click(d, "rules-save")
    wait_for(d, "#rules-grid .rules-cell-invalid")
    wait_text(d, "#rules-problem-list", "must be greater than the previous tier's 0.00")
    wait_text(d, "#rules-grid", "From spend: must be greater")
    d.save_screenshot(str(SCREENSHOTS / "rules-validation.png"))
    with Database(web_seed[0]).read() as s:
        assert rules.get_rules(s, draft_id).tiers[1].threshold_minor == 100_000

    edit_cell(d, 1, "threshold", "1500")
    click(d, "rules-save")
    wait_for(d, "#rules-saved-ok")
    assert not d.find_elements(By.CSS_SELECTOR, "#rules-grid .rules-cell-invalid")
    with Database(web_seed[0]).read() as s:
        assert rules.get_rules(s, draft_id).tiers[1].threshold_minor == 150_000

    # the simulation runs in the background and shows the migration matrix
    tab(d, "Simulation")
    click(d, "rules-sim-run")
    wait_for(d, "#rules-sim-matrix .main-svg")
    wait_for(d, "#rules-sim-by-day .main-svg")
    assert d.find_element(By.ID, "rules-sim-run").is_enabled()
    assert "members earn a higher accrual rate" in d.find_element(By.ID, "rules-sim-output").text
    d.save_screenshot(str(SCREENSHOTS / "rules-simulation.png"))

    tab(d, "Editor")
    click(d, "rules-submit")
    wait_text(d, "#rules-edit-result", "submitted")
    wait_text(d, "#rules-version-summary", "pending")
    assert severe(d) == []

    # a second supervisor approves
    sign_in(d, url, SECOND_SUPERVISOR, PASSWORD)
    wait_for(d, "#shell-user-name")
    d.get(url + "/rules")
    wait_for(d, "#rules-history-grid .ag-row")
    tab(d, "Approval")
    wait_text(d, "#rules-pending-grid", NAME)
    d.find_element(By.XPATH, f"//div[@id='rules-pending-grid']//div[@col-id='name' and "
                             f"normalize-space()='{NAME}']").click()
    click(d, "rules-approve")
    wait_text(d, "#rules-decide-result", "approved: it takes effect")
    d.save_screenshot(str(SCREENSHOTS / "rules-approval.png"))
    with Database(web_seed[0]).read() as s:
        rs = s.get(RuleSet, draft_id)
        assert rs.status == "published" and rs.approved_by_id == web_seed[1][SECOND_SUPERVISOR]

    # the tier pass runs in the background and reports what changed
    click(d, "rules-reevaluate")
    wait_text(d, "#rules-reevaluate-result", "members changed tier")
    assert d.find_element(By.ID, "rules-reevaluate").is_enabled()

    # the history lists it as scheduled and shows the diff against the version in force
    tab(d, "History")
    wait_text(d, "#rules-history-grid", "scheduled")
    wait_for(d, "#rules-diff-view")
    wait_text(d, "#rules-diff-view", f"#{draft_id} {NAME}")
    diff = d.find_element(By.ID, "rules-diff-view")
    assert diff.find_elements(By.CSS_SELECTOR, "td.table-warning")  # changed cells
    d.save_screenshot(str(SCREENSHOTS / "rules-history-diff.png"))
    assert severe(d) == []
