"""What a new operator meets first, in real headless Chromium.

The session's web app runs on a five-member database, too small for a
search whose first block is full or a ledger of many lines; this module
serves its own app from a subprocess on a demo program (as the pilots
browser test does), at the 1440 px wide window operators use.
"""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from db.members import ENTRY_KIND_LABELS
from db.models import ENTRY_KINDS
from tests.support.browser import SCREENSHOTS, chrome, severe, sign_in
from tests.support.browser_server import served
from tests.support.factories import DEFAULT_TIERS

pytestmark = pytest.mark.browser


from selenium import webdriver  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "ux-browser-pass-1"
TIMEOUT = 30
USERS = {"supervisor": "uxsup", "support": "uxsam"}
DRAFT_NAME = "Operator's draft"


@pytest.fixture(scope="module")
def program(tmp_path_factory, sqlite_template) -> dict:
    """A demo program with more members than one block of the search grid."""
    from sqlalchemy import func, or_, select

    from db import demo, rules, users
    from db.actor import Actor
    from db.models import Account, LedgerEntry, Member
    from db.session import Database

    path = tmp_path_factory.mktemp("ux-browser") / "demo.sqlite3"
    shutil.copy(sqlite_template, path)
    url = f"sqlite:///{path}"
    d = Database(url)
    today = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    demo.seed(d, members=400, seed=5, start=demo.add_months(today, -6), months=6,
              progress=False)
    with d.begin() as s:
        staff = {role: users.create_user(s, username, PASSWORD, role, full_name=f"UX {role}")
                 for role, username in USERS.items()}
        # the supervisor's own draft, newer than the version in force
        draft = rules.create_draft(s, Actor(USERS["supervisor"], staff["supervisor"].id,
                                            "supervisor"), DRAFT_NAME, DEFAULT_TIERS)
        n_members = s.scalar(select(func.count()).select_from(Member))
        lines = (select(Account.member_id, func.count().label("n"))
                 .join(LedgerEntry, or_(LedgerEntry.credit_account_id == Account.id,
                                        LedgerEntry.debit_account_id == Account.id))
                 .where(Account.member_id.is_not(None))
                 .group_by(Account.member_id).order_by(func.count().desc(), Account.member_id)
                 .limit(1)).subquery()
        busy_id, busy_lines = s.execute(select(lines.c.member_id, lines.c.n)).one()
        busy = s.get(Member, busy_id)
        busy_name, busy_ref = busy.name, busy.external_id
        account = s.scalar(select(Account.id).where(Account.member_id == busy_id))
        busy_kinds = set(s.scalars(select(LedgerEntry.kind).where(or_(
            LedgerEntry.credit_account_id == account, LedgerEntry.debit_account_id == account))))
    d.dispose()
    return {"url": url, "members": n_members, "busy_name": busy_name, "busy_ref": busy_ref,
            "busy_lines": busy_lines, "busy_kinds": busy_kinds, "draft": draft}


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


def settle(driver) -> None:
    wait_until(driver, lambda d: not d.find_elements(
        By.CSS_SELECTOR, "[data-dash-is-loading='true']"))


def open_page(driver, base_url: str, role: str, path: str) -> None:
    sign_in(driver, base_url, USERS[role], PASSWORD)
    wait_until(driver, lambda d: d.find_elements(By.ID, "shell-user-name"))
    severe(driver)  # the login page's log is not the page's concern
    driver.get(base_url + path)


def cells(driver, grid: str, col: str) -> list[str]:
    """The texts of a grid column's rendered cells, top to bottom (read in one go:
    the grid re-renders its rows while they arrive)."""
    return driver.execute_script(
        "return Array.from(document.querySelectorAll(arguments[0]))"
        ".sort((a, b) => a.closest('.ag-row').getAttribute('row-index')"
        " - b.closest('.ag-row').getAttribute('row-index'))"
        ".map(c => c.textContent);",
        f"#{grid} .ag-center-cols-container [col-id='{col}']")


def rows_of(driver, grid: str, col: str) -> list[str] | None:
    """The column's cells once every rendered row has its data, else None."""
    texts = cells(driver, grid, col)
    return texts if texts and all(texts) else None


def text_of(driver, element_id: str) -> str:
    """The element's visible text ("" while Dash replaces it)."""
    return driver.execute_script(
        "const e = document.getElementById(arguments[0]); return e ? e.innerText : '';",
        element_id)


def search_for(driver, text: str) -> None:
    """Replace the search box's text, as a user does, and wait for the answer."""
    box = driver.find_element(By.ID, "members-query")
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys(Keys.DELETE)
    if text:
        box.send_keys(text)
    wait_until(driver, lambda d: (f"“{text.lower()}”" if text else "Newest members")
               in text_of(d, "members-count"))
    settle(driver)


# ------------------------------------------------------------------ members


@pytest.mark.parametrize("role", ["supervisor", "support"])
def test_search_comes_back_after_a_search_without_hits(browser, base_url, program, role):
    assert program["members"] > 100  # the newest-first list is more than one block
    open_page(browser, base_url, role, "/members")
    newest = wait_until(browser, lambda d: rows_of(d, "members-grid", "name"))[:3]

    search_for(browser, "zzzz")
    wait_until(browser, lambda d: "No member matches" in text_of(d, "members-count"))
    wait_until(browser, lambda d: "No member matches this search." in text_of(d, "members-grid"))
    assert browser.find_elements(By.CSS_SELECTOR, "#members-grid .ag-header-cell")
    browser.save_screenshot(str(SCREENSHOTS / f"ux-members-no-match-{role}.png"))

    search_for(browser, "")  # back to the newest members: more than one block
    wait_until(browser, lambda d: cells(d, "members-grid", "name")[:3] == newest)

    name = program["busy_name"]
    search_for(browser, name[:5])
    wait_until(browser, lambda d: name in cells(d, "members-grid", "name"))
    assert all(n.lower().startswith(name[:5].lower())
               for n in cells(browser, "members-grid", "name"))
    settle(browser)
    browser.save_screenshot(str(SCREENSHOTS / f"ux-members-after-no-match-{role}.png"))
    assert severe(browser) == []


def test_member_opened_from_the_results_shows_its_ledger_at_once(browser, base_url, program):
    open_page(browser, base_url, "support", "/members")
    wait_until(browser, lambda d: rows_of(d, "members-grid", "name"))
    ref = program["busy_ref"]
    search_for(browser, ref)
    wait_until(browser, lambda d: cells(d, "members-grid", "external_id")[:1] == [ref])
    browser.find_element(
        By.CSS_SELECTOR, "#members-grid .ag-center-cols-container [col-id='name']").click()

    wait_until(browser, lambda d: f"{program['busy_lines']:,} lines"
               in text_of(d, "members-ledger-count"))
    # the lines themselves, not empty placeholders
    wait_until(browser, lambda d: rows_of(d, "members-ledger-grid", "kind"))
    settle(browser)
    browser.save_screenshot(str(SCREENSHOTS / "ux-members-ledger.png"))

    # a kind with no line, then all kinds again: the lines come back at once
    kind = Select(browser.find_element(By.ID, "members-ledger-kind"))
    absent = sorted(set(ENTRY_KINDS) - program["busy_kinds"])[0]
    kind.select_by_value(absent)
    wait_until(browser, lambda d: f"No ledger lines of kind {ENTRY_KIND_LABELS[absent]}"
               in text_of(d, "members-ledger-count"))
    wait_until(browser, lambda d: "No ledger lines to show." in text_of(d, "members-ledger-grid"))
    kind.select_by_value("all")
    wait_until(browser, lambda d: f"{program['busy_lines']:,} lines"
               in text_of(d, "members-ledger-count"))
    wait_until(browser, lambda d: rows_of(d, "members-ledger-grid", "kind"))
    assert severe(browser) == []


# ------------------------------------------------------------------ rules


def test_rules_page_opens_on_the_version_in_force(browser, base_url, program):
    open_page(browser, base_url, "supervisor", "/rules")
    wait_until(browser, lambda d: d.find_elements(By.ID, "rules-version-summary"))
    summary = text_of(browser, "rules-version-summary")
    assert "in force" in summary and DRAFT_NAME not in summary
    wait_until(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#rules-grid .ag-row"))
    settle(browser)
    browser.save_screenshot(str(SCREENSHOTS / "ux-rules-in-force.png"))

    # the user's draft: labelled in the version list and one click away
    button = browser.find_element(By.ID, "rules-own-draft")
    assert f"#{program['draft']} “{DRAFT_NAME}”" in button.text
    browser.find_element(By.ID, "rules-version").click()
    wait_until(browser, lambda d: f"#{program['draft']} {DRAFT_NAME} — draft (your draft)"
               in d.find_element(By.TAG_NAME, "body").text)
    browser.save_screenshot(str(SCREENSHOTS / "ux-rules-version-list.png"))
    browser.find_element(By.TAG_NAME, "body").send_keys(Keys.ESCAPE)
    button.click()
    wait_until(browser, lambda d: DRAFT_NAME in text_of(d, "rules-version-summary"))
    assert "draft" in text_of(browser, "rules-version-summary")
    settle(browser)
    browser.save_screenshot(str(SCREENSHOTS / "ux-rules-own-draft.png"))
    assert severe(browser) == []


# ------------------------------------------------------------------ grids at 1440 px

# the cells a grid must show whole: dates and ids (header and values)
TRUNCATED = """
const grid = document.getElementById(arguments[0]);
const cols = new Set(arguments[1]);
const cut = [];
for (const c of grid.querySelectorAll('.ag-cell, .ag-header-cell')) {
  const col = c.getAttribute('col-id');
  if (!cols.has(col)) continue;
  const t = c.querySelector('.ag-cell-value, .ag-header-cell-text') || c;
  if (t.textContent && t.scrollWidth > t.clientWidth + 1) cut.push(col + ': ' + t.textContent);
}
return cut;
"""
GRIDS = [  # (role, page, grid, date and id columns)
    ("support", "/members", "members-grid", ["id", "external_id", "phone"]),
    ("supervisor", "/adjustments", "adjreview-queue", ["id", "requested_at"]),
    ("supervisor", "/audit", "audit-grid", ["at"]),
    ("supervisor", "/staff", "staff-grid", ["id", "created", "last_login"]),
    ("supervisor", "/rules", "rules-history-grid",
     ["id", "created", "submitted", "decided", "effective", "based_on"]),
]


@pytest.mark.parametrize(("role", "path", "grid", "columns"), GRIDS,
                         ids=[g[2] for g in GRIDS])
def test_grids_show_whole_dates_and_ids_at_1440px(browser, base_url, role, path, grid,
                                                 columns):
    open_page(browser, base_url, role, path)
    if path == "/rules":
        wait_until(browser, lambda d: d.find_elements(By.LINK_TEXT, "History"))
        browser.find_element(By.LINK_TEXT, "History").click()
    wait_until(browser, lambda d: d.find_elements(By.CSS_SELECTOR, f"#{grid} .ag-row"))
    settle(browser)
    assert browser.execute_script("return window.innerWidth") == 1440
    assert browser.execute_script(TRUNCATED, grid, columns) == []
    browser.save_screenshot(str(SCREENSHOTS / f"ux-grid-{grid}.png"))


def test_member_ledger_dates_are_whole_at_1440px(browser, base_url, program):
    open_page(browser, base_url, "support", f"/members?q={program['busy_ref']}")
    wait_until(browser, lambda d: rows_of(d, "members-grid", "name"))
    browser.find_element(
        By.CSS_SELECTOR, "#members-grid .ag-center-cols-container [col-id='name']").click()
    wait_until(browser, lambda d: rows_of(d, "members-ledger-grid", "at"))
    settle(browser)
    assert browser.execute_script(TRUNCATED, "members-ledger-grid", ["id", "at"]) == []


def test_audit_log_shows_what_changed(browser, base_url):
    open_page(browser, base_url, "supervisor", "/audit")
    wait_until(browser, lambda d: rows_of(d, "audit-grid", "changes"))
    settle(browser)
    changes = browser.execute_script(
        "const out = []; dash_ag_grid.getApi('audit-grid')"
        ".forEachNode(n => out.push(n.data.changes)); return out;")
    # "field: old → new", not raw JSON
    assert any("status: pending → published" in c for c in changes), changes[:5]
    assert not any(c.lstrip().startswith("{") for c in changes)
    browser.save_screenshot(str(SCREENSHOTS / "ux-audit-changes.png"))
    assert severe(browser) == []
