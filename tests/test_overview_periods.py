"""The executive overview compares like with like: the chosen months up to the
end of yesterday against the same stretch as many months earlier."""

from __future__ import annotations

import datetime as dt

import pytest

from db import ledger, rollups
from db.ledger import OrderIn
from db.reports import overview as report
from db.session import Database
from tests.support.factories import member, publish

D = dt.datetime


@pytest.mark.parametrize(("now", "months", "expected"), [
    # two days into December: Oct 1 - Dec 2 (exclusive) against Jul 1 - Sep 2
    (D(2026, 12, 2, 10), 3, (D(2026, 10, 1), D(2026, 12, 2), D(2026, 7, 1), D(2026, 9, 2))),
    (D(2026, 12, 2, 10), 1, (D(2026, 12, 1), D(2026, 12, 2), D(2026, 11, 1), D(2026, 11, 2))),
    # the first of the month: "this month" has no complete day yet
    (D(2026, 12, 1, 9), 1, (D(2026, 12, 1), D(2026, 12, 1), D(2026, 11, 1), D(2026, 11, 1))),
    # 31 March against February: the earlier stretch stops at February's end
    (D(2026, 3, 31, 12), 1, (D(2026, 3, 1), D(2026, 3, 31), D(2026, 2, 1), D(2026, 3, 1))),
    # across a year end
    (D(2027, 1, 15), 12, (D(2026, 2, 1), D(2027, 1, 15), D(2025, 2, 1), D(2026, 1, 15))),
])
def test_comparable_periods(now, months, expected) -> None:
    assert report.comparable_periods(now, months) == expected


def test_overview_counts_the_same_stretch_in_both_periods(db: Database) -> None:
    now = D(2026, 12, 2, 10)
    with db.begin() as s:
        publish(s, effective_at=D(2026, 1, 1))
        member(s, "C1", joined_at=D(2026, 1, 1))
    paid = {
        "in-1": D(2026, 10, 5, 12),     # current period
        "in-2": D(2026, 12, 1, 18),     # current period, yesterday
        "today": D(2026, 12, 2, 8),     # today: the live page's, not the overview's
        "prev-1": D(2026, 7, 10, 12),   # previous period
        "prev-2": D(2026, 9, 1, 20),    # previous period, the same day-of-month stretch
        "after": D(2026, 9, 2, 9),      # after the previous stretch: not compared
    }
    for ref, at in paid.items():
        ledger.post_order_safely(db, OrderIn(ref, "C1", at, 100_00))
    rollups.refresh_rollups(db)
    with db.read() as s:
        o = report.overview(s, months=3, now=now)
    rows = {r["metric"]: r for r in o.rows}
    assert rows["Paid orders, members"]["current"] == 2
    assert rows["Paid orders, members"]["previous"] == 2
    assert rows["Revenue, members"]["current"] == rows["Revenue, members"]["previous"] == 200_00
    assert o.period == (D(2026, 10, 1), D(2026, 12, 2))
    assert o.previous == (D(2026, 7, 1), D(2026, 9, 2))
    # the monthly chart still shows each month's complete days
    by_month = {m["month"]: m["paid_orders_m"] for m in o.monthly}
    assert by_month == {"2026-07": 1, "2026-08": 0, "2026-09": 2, "2026-10": 1,
                        "2026-11": 0, "2026-12": 1}


def test_first_of_the_month_this_month_so_far_is_empty_not_an_error(db: Database) -> None:
    with db.begin() as s:
        publish(s, effective_at=D(2026, 1, 1))
        member(s, "C1", joined_at=D(2026, 1, 1))
    ledger.post_order_safely(db, OrderIn("nov", "C1", D(2026, 11, 20, 12), 100_00))
    ledger.post_order_safely(db, OrderIn("today", "C1", D(2026, 12, 1, 8), 100_00))
    rollups.refresh_rollups(db)
    with db.read() as s:
        o = report.overview(s, months=1, now=D(2026, 12, 1, 9))
    assert o.period == (D(2026, 12, 1), D(2026, 12, 1))
    rows = {r["metric"]: r for r in o.rows}
    assert rows["Paid orders, members"]["current"] == rows["Paid orders, members"]["previous"] == 0
    assert rows["Breakage rate"]["current"] is None
    from callbacks.overview import _render

    assert "No complete day in this month yet" in repr(_render(o, 1, None)[0])


def test_no_comparison_with_a_stretch_before_the_history_began(db: Database) -> None:
    """Twelve months against the twelve before them, when the program's records
    begin in between: no previous figures and no change, said on the page."""
    now = D(2026, 12, 2, 10)
    with db.begin() as s:
        publish(s, effective_at=D(2025, 9, 29, 15))
        member(s, "C1", joined_at=D(2025, 9, 29))
    for ref, at in {"first": D(2025, 9, 30, 12), "old": D(2025, 12, 5, 12),
                    "new": D(2026, 3, 5, 12), "yesterday": D(2026, 12, 1, 12)}.items():
        ledger.post_order_safely(db, OrderIn(ref, "C1", at, 100_00))
    rollups.refresh_rollups(db)
    with db.read() as s:
        assert report.history_start(s) == D(2025, 9, 29)
        o = report.overview(s, months=12, now=now)
        short = report.overview(s, months=3, now=now)
    assert o.previous[0] == D(2025, 1, 1) and not o.comparable
    assert o.history_start == D(2025, 9, 29)
    assert all(r["previous"] is None for r in o.rows)
    rows = {r["metric"]: r for r in o.rows}
    assert rows["Paid orders, members"]["current"] == 2
    # the monthly series starts with the history: September 2025 from the 29th
    months = {m["month"]: m for m in o.monthly}
    assert min(months) == "2025-09"
    sep, dec = months["2025-09"], months["2026-12"]
    assert (sep["partial"], sep["days"], sep["month_days"]) == (True, 2, 30)
    assert (sep["covered_from"], sep["covered_to"]) == ("2025-09-29", "2025-09-30")
    assert (dec["partial"], dec["days"], dec["month_days"]) == (True, 1, 31)
    assert not any(m["partial"] for k, m in months.items() if k not in ("2025-09", "2026-12"))
    assert sum(m["paid_orders_m"] for m in o.monthly) == 4

    from callbacks.overview import _render
    from pages import overview as views

    out = _render(o, 12, None)
    summary = repr(out[0])
    assert "No comparison: history starts 29 Sep 2025" in summary
    assert "2026-12: 1 Dec, 1 of 31 days" in summary and "2025-09: 29–30 Sep" in summary
    kpis = out[1]
    assert {r["change"] for r in kpis} == {"no comparison: history starts 29 Sep 2025"}
    assert {r["previous_text"] for r in kpis} == {"–"}
    # the charts mark both partial months: lighter, hatched bars and a label
    fig = out[3]
    assert [a["text"] for a in fig["layout"]["annotations"]] == [
        "partial:<br>29–30 Sep", "partial:<br>1 Dec"]
    bars = fig["data"][0]
    assert bars["marker"]["opacity"][0] < 1 and bars["marker"]["opacity"][-1] < 1
    assert set(bars["marker"]["opacity"][1:-1]) == {1}
    assert bars["marker"]["pattern"]["shape"][-1] and not bars["marker"]["pattern"]["shape"][1]
    assert views.monthly_rows(o.monthly, "RUB")[-1]["coverage"] == "partial: 1 Dec, 1 of 31 days"

    # three months back are covered: compared, day for day
    assert short.comparable and short.previous == (D(2026, 7, 1), D(2026, 9, 2))
    assert "No comparison" not in repr(_render(short, 3, None)[0])


def test_no_history_at_all_has_no_comparison(db: Database) -> None:
    with db.read() as s:
        assert report.history_start(s) is None
        o = report.overview(s, months=3, now=D(2026, 12, 2, 10))
    assert not o.comparable and o.history_start is None
    assert [m["month"] for m in o.monthly] == ["2026-10", "2026-11", "2026-12"]
