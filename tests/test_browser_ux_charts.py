"""What a new operator sees in the charts and verdicts, in real headless Chromium,
on a demo program (about ten months of history and a demo pilot whose planned
end has passed), served from a subprocess as in tests/test_browser_pilots.py.

- The overview compares a period only with a stretch the history covers, says
  so otherwise, and marks the partial months in its charts.
- Every chart: the mode bar never covers the title, axis titles and legends do
  not cover each other or the data, value axes print thousands separators,
  and a once-a-month expiry bar does not flatten the daily ones.
- A running pilot past its planned end says so, with the end action at hand
  for a supervisor, and its verdict does not call a lift below the minimum
  effect a "significant lift".
"""

from __future__ import annotations

import datetime as dt
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.browser import (
    SCREENSHOTS,
    chrome,
    severe,
    sign_in,
    wait_for,
)
from tests.support.browser_server import served

pytestmark = pytest.mark.browser


from selenium import webdriver  # noqa: E402
from selenium.common.exceptions import StaleElementReferenceException  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "ux-charts-browser-1"
WAIT = 90  # a background job on two shared cores


@pytest.fixture(scope="module")
def demo_program(tmp_path_factory, sqlite_template) -> dict:
    from db import demo, users
    from db.session import Database

    path = tmp_path_factory.mktemp("ux-charts-browser") / "demo.sqlite3"
    shutil.copy(sqlite_template, path)
    url = f"sqlite:///{path}"
    d = Database(url)
    today = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    start = demo.add_months(today, -8) - dt.timedelta(days=62)
    report = demo.seed(d, members=1500, seed=11, start=start, months=8, progress=False)
    # 60 days from the end of the base history: its planned end is behind us
    pilot = demo.seed_demo_pilot(d, seed=11, effect=0.4, share_percent=40)
    with d.begin() as s:
        users.create_user(s, "uxsup", PASSWORD, "supervisor", full_name="Chart Supervisor")
        users.create_user(s, "uxexec", PASSWORD, "executive", full_name="Chart Executive")
    d.dispose()
    return {"url": url, "start": report.start, "pilot": pilot}


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


def shot(driver, name: str) -> None:
    driver.save_screenshot(str(SCREENSHOTS / f"ux-{name}.png"))


def text_of(driver, css: str) -> str:
    """The text of every element matching css; a chart redrawn meanwhile is read again."""
    for _ in range(20):
        try:
            return " ".join(e.text for e in driver.find_elements(By.CSS_SELECTOR, css))
        except StaleElementReferenceException:
            time.sleep(0.1)
    raise AssertionError(f"{css} kept being replaced while read")


def wait_text(driver, css: str, text: str, timeout: int = WAIT) -> None:
    WebDriverWait(driver, timeout, ignored_exceptions=(StaleElementReferenceException,)
                  ).until(lambda d: text in text_of(d, css))


def settle(driver) -> None:
    WebDriverWait(driver, WAIT).until(
        lambda d: not d.find_elements(By.CSS_SELECTOR, "[data-dash-is-loading='true']"))


def choose(driver, dropdown: str, label: str) -> None:
    """Pick an option of a Dash 4 dropdown by its label."""
    driver.find_element(By.CSS_SELECTOR, f"#{dropdown}").click()
    wait_for(driver, ".dash-dropdown-option")
    next(o for o in driver.find_elements(By.CSS_SELECTOR, ".dash-dropdown-option")
         if o.text.strip() == label).click()


def overview_done(driver) -> None:
    """The overview job has finished (its progress bar hides) and drawn its charts."""
    WebDriverWait(driver, WAIT).until(lambda d: d.find_element(
        By.ID, "overview-progress").value_of_css_property("visibility") == "hidden")
    wait_for(driver, "#overview-orders-figure .main-svg")
    settle(driver)


def kpi_cells(driver, col: str) -> list[str]:
    return [e.text for e in driver.find_elements(
        By.CSS_SELECTOR, f"#overview-kpi-grid .ag-row [col-id='{col}']") if e.text]


def test_overview_compares_only_what_the_history_covers_and_marks_partial_months(
        browser, base_url, demo_program):
    sign_in(browser, base_url, "uxexec", PASSWORD)
    wait_for(browser, "#shell-user-name")
    severe(browser)
    browser.get(base_url + "/overview")
    wait_text(browser, "#overview-summary", "against")
    overview_done(browser)
    # three months back are covered: a comparison, day for day
    assert "No comparison" not in text_of(browser, "#overview-summary")
    assert any(c.endswith("%") for c in kpi_cells(browser, "change"))
    # the current month is incomplete: labelled, and its bars lighter than the others
    today = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    assert "partial" in text_of(browser, "#overview-orders-figure .annotation-text")
    assert f"{today:%Y-%m}" in text_of(browser, "#overview-partial")
    opacities = browser.execute_script("""
        const paths = document.querySelectorAll(
            '#overview-orders-figure .trace.bars:first-of-type .point path');
        return Array.from(paths).map(p => parseFloat(getComputedStyle(p).opacity));""")
    assert opacities and opacities[-1] < 1 and max(opacities[:-1]) == 1, opacities
    shot(browser, "overview-3-months")

    # twelve months back reach before the first order: no comparison, and why
    choose(browser, "overview-months", "Last 12 months")
    begins = f"history starts {demo_program['start']:%d %b %Y}"
    wait_text(browser, "#overview-summary", "No comparison: " + begins)
    overview_done(browser)
    changes = kpi_cells(browser, "change")
    assert changes and set(changes) == {"no comparison: " + begins}, changes
    assert set(kpi_cells(browser, "previous_text")) == {"–"}
    assert not re.search(r"[+-]\d[\d,]*\.\d %", text_of(browser, "#overview-kpi-grid"))
    # the series begins with the history, whose first month is partial too
    labels = browser.find_elements(By.CSS_SELECTOR, "#overview-orders-figure .xtick text")
    assert labels[0].text == f"{demo_program['start']:%Y-%m}"
    shot(browser, "overview-12-months")
    assert severe(browser) == []


# every Plotly chart on the page: the boxes that must not overlap, and its texts
LAYOUT_JS = """
const box = el => { if (!el) return null; const r = el.getBoundingClientRect();
  return r.width && r.height ? [r.left, r.top, r.right, r.bottom] : null; };
return Array.from(document.querySelectorAll('.js-plotly-plot')).map(g => ({
  id: g.closest('[id]') ? g.closest('[id]').id : '',
  title: box(g.querySelector('.gtitle')),
  modebar: box(g.querySelector('.modebar')),
  legend: box(g.querySelector('.legend')),
  xtitle: box(g.querySelector('.xtitle')),
  y2title: box(g.querySelector('.y2title')),
  plot: box(g.querySelector('.nsewdrag')),
  yticks: Array.from(g.querySelectorAll('.ytick text, .y2tick text')).map(t => t.textContent),
  notes: Array.from(g.querySelectorAll('.annotation-text')).map(t => t.textContent),
}));
"""


def overlap(a, b) -> bool:
    if not a or not b:
        return False
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def chart_problems(driver) -> tuple[list[dict], list[str]]:
    charts = driver.execute_script(LAYOUT_JS)
    problems = []
    for c in charts:
        if c["modebar"] and c["title"] is None:
            problems.append(f"{c['id']}: no title drawn")
        for a, b in (("modebar", "title"), ("legend", "xtitle"), ("y2title", "plot")):
            if overlap(c[a], c[b]):
                problems.append(f"{c['id']}: {a} {c[a]} overlaps {b} {c[b]}")
        for tick in c["yticks"]:
            plain = tick.replace("\u2212", "-")
            if not re.fullmatch(r"-?[\d,]+(\.\d+)?[kMGB]?", plain):
                continue  # a category (a cohort's month), not a number
            if plain[-1] in "kMGB" or re.search(r"\d{4}", plain.replace(",", " ")):
                problems.append(f"{c['id']}: tick {tick!r} without thousands separators")
    return charts, problems


def test_charts_keep_titles_clear_and_print_thousands_separators(browser, base_url):
    sign_in(browser, base_url, "uxsup", PASSWORD)
    wait_for(browser, "#shell-user-name")
    severe(browser)
    browser.get(base_url + "/overview")
    wait_text(browser, "#overview-summary", "against")
    overview_done(browser)
    wait_for(browser, "#overview-ltv-figure .legend")
    charts, problems = chart_problems(browser)
    shot(browser, "charts-overview")
    assert len(charts) == 6 and problems == [], problems
    # big numbers are on the axes, each grouped by thousands
    ticks = [t for c in charts for t in c["yticks"]]
    assert any(re.fullmatch(r"\d{1,3}(,\d{3})+", t) for t in ticks), ticks
    cost = next(c for c in charts if c["id"] == "overview-cost-figure")
    assert cost["y2title"] and cost["y2title"][0] >= cost["plot"][2]  # beside the plot

    browser.get(base_url + "/live")
    wait_for(browser, "#live-updated .live-updated-at")
    choose(browser, "live-days", "Last 90 days")
    # the demo's expiry runs dwarf a day's points: their bars are cut, with the real value
    WebDriverWait(browser, WAIT).until(lambda d: "↑" in text_of(
        d, "#live-points-figure .annotation-text"))
    settle(browser)
    charts, problems = chart_problems(browser)
    shot(browser, "charts-live")
    assert problems == [], problems
    points = next(c for c in charts if c["id"] == "live-points-figure")
    cut = [int(m.group(1).replace(",", "")) for n in points["notes"]
           if (m := re.search(r"expired: ([\d,]+) ↑", n))]
    top = max(int(t.replace(",", "")) for t in points["yticks"])
    assert cut and min(cut) > top, (cut, points["yticks"])
    assert severe(browser) == []


def pilot_results_done(driver) -> None:
    wait_for(driver, "#pilots-verdict")
    WebDriverWait(driver, WAIT).until(lambda d: d.find_element(
        By.ID, "pilots-results-progress").value_of_css_property("visibility") == "hidden")
    settle(driver)


def test_a_pilot_past_its_planned_end_prompts_to_end_it_and_its_verdict_is_consistent(
        browser, base_url, demo_program):
    from dashboard import format as fmt

    pilot = demo_program["pilot"]
    assert pilot.data_until <= dt.datetime.now(dt.UTC).replace(tzinfo=None)
    prompt = f"Past its planned end on {fmt.when(pilot.data_until)} — "

    # an executive reads the prompt, but ending is a supervisor's
    sign_in(browser, base_url, "uxexec", PASSWORD)
    wait_for(browser, "#shell-user-name")
    severe(browser)
    browser.get(base_url + "/pilots")
    pilot_results_done(browser)
    wait_text(browser, "#pilots-overdue", prompt + "a supervisor ends it")
    assert not browser.find_element(By.ID, "pilots-end-now").is_displayed()
    assert "running, past planned end" in text_of(browser, "#pilots-list")

    sign_in(browser, base_url, "uxsup", PASSWORD)
    wait_for(browser, "#shell-user-name")
    browser.get(base_url + "/pilots")
    pilot_results_done(browser)
    wait_text(browser, "#pilots-overdue", prompt + "end it")
    assert "past its planned end" in text_of(browser, "#pilots-facts")
    verdict = text_of(browser, "#pilots-verdict")
    # one category, in the currency of the program, never contradicting itself
    assert "RUB" in verdict and re.search(r"[+-]\d{1,3}(,\d{3})*\.\d\d RUB", verdict), verdict
    assert "minimum effect of 500.00 RUB" in verdict or "No detectable" in verdict, verdict
    if "Significant lift" in verdict:
        assert "below the minimum" not in verdict and "smaller than the minimum" not in verdict
    shot(browser, "pilot-past-planned-end")

    end = browser.find_element(By.ID, "pilots-end-now")
    assert end.is_displayed() and end.is_enabled()
    end.click()
    wait_text(browser, "#pilots-action-msg", "Pilot ended")
    # the prompt closes (a closed alert leaves the page)
    WebDriverWait(browser, WAIT, ignored_exceptions=(StaleElementReferenceException,)
                  ).until(lambda d: not any(
                      e.is_displayed() for e in d.find_elements(By.ID, "pilots-overdue")))
    wait_text(browser, "#pilots-facts", "ended")
    pilot_results_done(browser)
    assert "past its planned end" not in text_of(browser, "#pilots-facts")
    shot(browser, "pilot-ended")
    assert severe(browser) == []
