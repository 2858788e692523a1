"""What a new supervisor meets on the tier-rules page, in headless Chromium:
the approver sees the diff and the simulation of the version they decide on,
a submission needs a simulation on the current data, and messages of one
selected version do not stay on screen for another."""

from __future__ import annotations

import datetime as dt
import json
import re
import time

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from benchmarks.small_program import PASSWORD, STAFF
from dashboard.cli import main as cli_main
from db import ledger, rule_review, rules
from db.actor import Actor
from db.ledger import OrderIn
from db.models import Member, RuleSet
from db.session import Database
from db.simulation import simulate
from tests.support.browser import (  # noqa: F401 - fixtures
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
from tests.support.factories import DEFAULT_TIERS, simulated

pytestmark = pytest.mark.browser

from selenium.common.exceptions import ElementClickInterceptedException  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

FIRST = "Review: richer Gold"
SECOND = "Review: cheaper Silver"
UNSIMULATED = "Review: never simulated"


def tiers(**rates: str) -> list[dict]:
    out = [dict(t) for t in DEFAULT_TIERS]
    for t in out:
        t["accrual_rate"] = rates.get(t["name"], t["accrual_rate"])
    return out


@pytest.fixture(scope="module")
def review_versions(web_seed) -> dict[str, int]:
    """Two versions submitted after their simulation, one draft never simulated."""
    url, ids = web_seed
    d = Database(url)
    sue = Actor("sue", ids["sue"], "supervisor")

    def tx(s) -> dict[str, int]:
        out = {}
        for name, rows in ((FIRST, tiers(Gold="9")), (SECOND, tiers(Silver="2"))):
            rid = rules.create_draft(s, sue, name, rows)
            simulated(s, sue, rid)
            rule_review.submit(s, sue, rid)
            out[name] = rid
        out[UNSIMULATED] = rules.create_draft(s, sue, UNSIMULATED, tiers(Bronze="2"))
        return out

    try:
        return d.write_tx(tx)
    finally:
        d.dispose()


def choose_version(d, name: str) -> None:
    """Pick a version in the page's version list (Dash 4 dropdown)."""
    d.find_element(By.CSS_SELECTOR, "#rules-version").click()
    wait_for(d, ".dash-dropdown-option")
    option = next(o for o in d.find_elements(By.CSS_SELECTOR, ".dash-dropdown-option")
                  if name in o.text)
    # a script click: the list's search box may cover the option's centre
    d.execute_script("arguments[0].scrollIntoView({block: 'center'}); arguments[0].click();",
                     option)
    wait_text(d, "#rules-version-summary", name)
    if d.find_elements(By.CSS_SELECTOR, ".dash-dropdown-option"):  # close the list
        ActionChains(d).send_keys(Keys.ESCAPE).perform()
        WebDriverWait(d, 5).until(
            lambda drv: not drv.find_elements(By.CSS_SELECTOR, ".dash-dropdown-option"))


def pending_row(d, name: str) -> None:
    cell = d.find_element(By.XPATH, f"//div[@id='rules-pending-grid']//div[@col-id='name' "
                                    f"and normalize-space()='{name}']")
    d.execute_script("arguments[0].scrollIntoView({block: 'center'});", cell)
    try:
        cell.click()
    except ElementClickInterceptedException:  # the layout moved while scrolling
        time.sleep(0.5)
        d.execute_script("arguments[0].click();", cell)


def test_approver_sees_diff_and_simulation_and_old_messages_go(
        browser, base_url, web_seed, review_versions):  # noqa: F811
    d = browser
    try:
        sign_in(d, base_url, STAFF["supervisor"][0], PASSWORD)
        wait_for(d, "#shell-user-name")
        d.get(base_url + "/rules")
        wait_for(d, "#rules-history-grid .ag-row")

        # submitting a version that was never simulated is refused, with the reason
        choose_version(d, UNSIMULATED)
        click(d, "rules-submit")
        wait_text(d, "#rules-submit-refused", "not submitted: run its simulation first")
        with Database(web_seed[0]).read() as s:
            assert s.get(RuleSet, review_versions[UNSIMULATED]).status == "draft"

        # selecting a submitted version shows its diff against the version in force
        # and the simulation it was submitted with
        tab(d, "Approval")
        wait_text(d, "#rules-pending-grid", FIRST)
        wait_for(d, "#rules-review-hint")
        pending_row(d, FIRST)
        wait_text(d, "#rules-review-card", f"#{review_versions[FIRST]} {FIRST}")
        diff = d.find_element(By.ID, "rules-review-diff")
        assert f"#{review_versions[FIRST]} {FIRST}" in diff.text
        assert "Launch tiers" in diff.text  # the version in force
        assert diff.find_elements(By.CSS_SELECTOR, "td.table-warning")  # changed cells
        wait_for(d, "#rules-review-matrix .main-svg")
        sim = d.find_element(By.ID, "rules-review-simulation").text
        assert "Simulated by sue" in sim and "members" in sim
        wait_for(d, "#rules-review-current")  # nothing changed since the simulation
        d.save_screenshot(str(SCREENSHOTS / "rules-review.png"))

        # a decision refused for this version (its author cannot approve it) ...
        click(d, "rules-approve")
        wait_text(d, "#rules-decide-refused", "the author of a rule set cannot approve it")
        # ... is gone once another version is selected, which shows its own review
        pending_row(d, SECOND)
        wait_text(d, "#rules-review-card", f"#{review_versions[SECOND]} {SECOND}")
        WebDriverWait(d, 10).until(
            lambda drv: not drv.find_elements(By.ID, "rules-decide-refused"))
        assert FIRST not in d.find_element(By.ID, "rules-review-card").text
        # a rejection without a reason is refused next to the field ...
        click(d, "rules-reject")
        wait_text(d, "#rules-decision-note-feedback", "say why")
        assert "is-invalid" in d.find_element(By.ID, "rules-decision-note").get_attribute("class")
        # ... and that goes too when the first version is selected again
        pending_row(d, FIRST)
        wait_text(d, "#rules-review-card", f"#{review_versions[FIRST]} {FIRST}")
        WebDriverWait(d, 10).until(lambda drv: "is-invalid" not in drv.find_element(
            By.ID, "rules-decision-note").get_attribute("class"))
        assert severe(d) == []
    except Exception:
        d.save_screenshot(str(SCREENSHOTS / "rules-review-failure.png"))
        raise


RATES_NOT_TIERS = "Moves: richer Bronze, Silver from 5,000"


@pytest.fixture(scope="module")
def moves_draft(web_seed) -> int:
    """Bronze earns more (members who stay Bronze get a higher rate without a
    tier change) and Silver starts lower (some members change tier)."""
    url, ids = web_seed
    d = Database(url)
    rows = [
        {"name": "Bronze", "threshold": "0", "accrual_rate": "4", "referral_rate": "1"},
        {"name": "Silver", "threshold": "5000", "accrual_rate": "5", "referral_rate": "2"},
        {"name": "Gold", "threshold": "100000", "accrual_rate": "7.5", "referral_rate": "3"},
    ]
    try:
        return d.write_tx(lambda s: rules.create_draft(
            s, Actor("sue", ids["sue"], "supervisor"), RATES_NOT_TIERS, rows))
    finally:
        d.dispose()


def test_simulation_headline_and_tier_chart_say_what_they_count(
        browser, base_url, web_seed, moves_draft):  # noqa: F811
    d = browser
    try:
        sign_in(d, base_url, STAFF["supervisor"][0], PASSWORD)
        wait_for(d, "#shell-user-name")
        d.get(base_url + "/rules")
        wait_for(d, "#rules-history-grid .ag-row")
        choose_version(d, RATES_NOT_TIERS)
        tab(d, "Simulation")
        click(d, "rules-sim-run")
        wait_for(d, "#rules-sim-matrix .main-svg")
        with Database(web_seed[0]).read() as s:
            engine = simulate(s, moves_draft, days=90)

        def tile(key: str) -> tuple[int, str]:
            value = d.find_element(By.ID, f"rules-sim-{key}").text
            return int(value.replace(",", "")), d.find_element(
                By.ID, f"rules-sim-{key}-label").text

        up, up_label = tile("up")
        down, down_label = tile("down")
        changed, changed_label = tile("tier-changed")
        assert up_label == "members earn a higher accrual rate"
        assert down_label == "members earn a lower accrual rate"
        assert "change tier" in changed_label
        assert (up, down, changed) == (engine.moved_up, engine.moved_down,
                                       engine.tier_changed)
        # the tier chart's own cells: off its diagonal, the tile's tier changes
        chart = d.execute_script(
            "const g = document.querySelector('#rules-sim-matrix .js-plotly-plot');"
            "return {z: g.data[0].z, x: g.data[0].x, y: g.data[0].y,"
            "        title: g.layout.title.text};")
        off_diagonal = sum(v for i, row in enumerate(chart["z"]) for j, v in enumerate(row)
                           if chart["y"][i] != chart["x"][j])
        assert off_diagonal == changed
        assert f"{changed:,} change tier" in chart["title"]
        # here the two numbers differ: members who stay Bronze earn more
        assert up > changed > 0
        assert "Accrual rate:" in d.find_element(By.ID, "rules-sim-moves-note").text
        d.save_screenshot(str(SCREENSHOTS / "rules-simulation-moves.png"))
        assert severe(d) == []
    except Exception:
        d.save_screenshot(str(SCREENSHOTS / "rules-moves-failure.png"))
        raise


@pytest.fixture(scope="module")
def expired_this_week(web_seed) -> None:
    """Points from two orders a year ago, some spent today, the rest expire
    today: one order inside the week one expiry term back, one before it (the
    job expires what is left of both)."""
    d = Database(web_seed[0])
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)
    try:
        with d.begin() as s:
            ledger.create_member(s, "UX-BREAKAGE", now - dt.timedelta(days=400))
            for ref, days in (("ux-breakage-old", 380), ("ux-breakage-cohort", 368)):
                ledger.post_order(s, OrderIn(ref, "UX-BREAKAGE", now - dt.timedelta(days=days),
                                             100_000))
        with d.begin() as s:
            member_id = s.scalar(select(Member.id).where(Member.external_id == "UX-BREAKAGE"))
            ledger.redeem(s, member_id, 10, key="ux-breakage-spend", at=now)
        with d.begin() as s:
            assert ledger.expire_points(s, now).points > 0
    finally:
        d.dispose()


def test_live_breakage_is_a_share_and_matches_the_kpi_command(
        browser, base_url, web_seed, expired_this_week):  # noqa: F811
    d = browser
    try:
        sign_in(d, base_url, STAFF["supervisor"][0], PASSWORD)
        wait_for(d, "#shell-user-name")
        d.get(base_url + "/live")
        wait_for(d, "#live-updated .live-updated-at")
        tile = "#live-value-breakage-rate"
        WebDriverWait(d, 30).until(lambda drv: "%" in drv.find_element(
            By.CSS_SELECTOR, tile).text)
        text = d.find_element(By.CSS_SELECTOR, tile).text
        m = re.fullmatch(r"([\d.]+) % \(([\d,]+) / ([\d,]+)\)", text)
        assert m, text
        shown = float(m.group(1))
        numerator, denominator = (int(g.replace(",", "")) for g in m.groups()[1:])
        assert 0 <= shown <= 100 and numerator <= denominator

        # `loyalty kpis` over the page's window (today and the 6 days before) agrees
        today = dt.datetime.now(dt.UTC).replace(tzinfo=None, hour=0, minute=0, second=0,
                                                microsecond=0)
        res = CliRunner().invoke(cli_main, [
            "--database-url", web_seed[0], "kpis", "--json",
            "--from", (today - dt.timedelta(days=6)).isoformat(),
            "--to", (today + dt.timedelta(days=1)).isoformat()])
        assert res.exit_code == 0, res.output
        cli = json.loads(res.output)["breakage_rate"]
        assert (cli["numerator"], cli["denominator"]) == (numerator, denominator)
        assert f"{100 * cli['value']:.1f}" == m.group(1)

        # its definition on hover says what it divides
        ActionChains(d).move_to_element(
            d.find_element(By.ID, "live-label-breakage-rate")).perform()
        wait_text(d, ".tooltip", "points expired ÷ (points expired + points redeemed)")
        d.save_screenshot(str(SCREENSHOTS / "live-breakage.png"))
        assert severe(d) == []
    except Exception:
        d.save_screenshot(str(SCREENSHOTS / "live-breakage-failure.png"))
        raise
