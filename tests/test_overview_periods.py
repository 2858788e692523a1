"""The executive overview compares like with like: the chosen months up to the
end of yesterday against the same stretch as many months earlier."""

from __future__ import annotations

import datetime as dt

import pytest

from db import ledger, rollups
from db.ledger import OrderIn
from db.session import Database
from tests.factories import member, publish

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
    assert rollups.comparable_periods(now, months) == expected


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
        o = rollups.overview(s, months=3, now=now)
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
        o = rollups.overview(s, months=1, now=D(2026, 12, 1, 9))
    assert o.period == (D(2026, 12, 1), D(2026, 12, 1))
    rows = {r["metric"]: r for r in o.rows}
    assert rows["Paid orders, members"]["current"] == rows["Paid orders, members"]["previous"] == 0
    assert rows["Breakage rate"]["current"] is None
    from callbacks.overview import _render

    assert "No complete day in this month yet" in repr(_render(o, 1, None)[0])
