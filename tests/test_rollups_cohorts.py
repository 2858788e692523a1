"""Cohort rollups (rollup_member_months, rollup_cohort_months) == the raw definition.

After random event streams through the engine (member and guest orders,
refunds, bulk batches, refreshed in several increments): LTV by join cohort
and the retention heatmap read from the rollups equal the same figures
computed from the members and orders tables, for every month-aligned window
and segment; increments equal a rebuild; the first refresh after migration
0006 fills the new tables from what was already folded in.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy import case, delete, func, select

from db import ledger, metrics, rollups
from db.ledger import OrderIn
from db.models import Member, Order, RollupCohortMonth, RollupMemberMonth, RollupState
from db.reports import overview as report
from db.session import Database
from tests.support.rollups import SEGMENTS, Stream


def _month(value: dt.datetime) -> dt.datetime:
    return value.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def windows(first: dt.datetime, last: dt.datetime) -> list[tuple[dt.datetime, dt.datetime]]:
    """Month-aligned starts x (month-aligned ends, and 'just after the last event')."""
    starts, m = [], _month(first)
    while m <= last:
        starts.append(m)
        m = report.add_months(m, 1)
    ends = [*starts[1:], report.add_months(starts[-1], 1)]
    out = [(f, t) for f in starts for t in ends if t > f]
    out += [(f, last + dt.timedelta(microseconds=1)) for f in starts]
    return out


def both_paths(d: Database, first: dt.datetime, last: dt.datetime) -> tuple[dict, dict]:
    """Every window's LTV and retention through metrics/rollups (rollups when
    usable) and straight from the raw tables."""
    fast: dict[Any, Any] = {}
    raw: dict[Any, Any] = {}
    with d.read() as s:
        for f, t in windows(first, last):
            assert rollups.cohort_rows(s, f, t) is not None, (f, t)
            fast[("ltv", f, t)] = metrics.ltv_cohorts(s, f, t).to_dict("records")
            raw[("ltv", f, t)] = metrics._ltv_frame(*metrics._ltv_raw(s, f, t), t).to_dict(
                "records")
            for seg in (None, *SEGMENTS):
                fast[("ret", f, t, seg)] = report.cohort_retention(s, f, t, seg)
                sizes, counts = report.cohort_retention_raw(s, f, t, seg)
                raw[("ret", f, t, seg)] = [
                    (f"{c // 12:04d}-{c % 12 + 1:02d}", k, sizes[c], n)
                    for c, k, n in sorted(counts)]
                fast[("ret", f, t, seg)] = [
                    (r["cohort"], r["months_since_join"], r["members"], r["active"])
                    for r in fast[("ret", f, t, seg)]]
    return fast, raw


def member_months_raw(d: Database) -> list[tuple]:
    o, m = Order.__table__, Member.__table__
    month = rollups.month_index(o.c.paid_at)
    paid = o.c.status == "paid"
    with d.read() as s:
        rows = s.execute(
            select(o.c.member_id, month, func.sum(case((paid, 1), else_=0)),
                   func.sum(case((paid, o.c.amount_minor), else_=0)))
            .select_from(o.join(m, m.c.id == o.c.member_id))
            .where(o.c.paid_at >= m.c.joined_at)
            .group_by(o.c.member_id, month)
        ).all()
    return sorted((int(a), int(b), int(c), int(e)) for a, b, c, e in rows if c)


def cohort_dump(d: Database) -> dict[str, list[tuple]]:
    mm, cm = RollupMemberMonth, RollupCohortMonth
    with d.read() as s:
        return {
            "member_months": sorted(
                (r.member_id, r.month, r.paid_orders, r.revenue)
                for r in s.execute(select(mm)).scalars() if r.paid_orders),
            "cohort_months": sorted(
                (r.cohort, r.month, r.segment, r.members, r.paid_orders, r.revenue)
                for r in s.execute(select(cm)).scalars()
                if r.members or r.paid_orders or r.revenue),
        }


@pytest.mark.parametrize("seed", [3, 4])
def test_cohort_rollups_equal_raw_after_random_streams(any_db: Database, seed: int) -> None:
    stream = Stream(any_db, seed)
    first = stream.clock
    rollups.refresh_rollups(any_db)
    for round_ in range(4):
        stream.single(50)
        if round_ % 2:
            stream.bulk(15)
        rollups.refresh_rollups(any_db)
    # refunds (part and whole) of orders folded in earlier, then more traffic
    for k, ref in enumerate(stream.rng.sample(stream.orders, 8)):
        if k % 2 and stream._left(ref) > 1:
            ledger.refund_order(any_db, ref, at=stream.tick(), refund_ref=f"part{k}",
                                amount_minor=stream._left(ref) // 2)
        ledger.refund_order(any_db, ref, at=stream.tick())
    stream.single(30)
    rollups.refresh_rollups(any_db)
    with any_db.read() as s:
        assert rollups.is_fresh(s)
        assert s.scalar(select(func.count()).select_from(RollupMemberMonth)) > 0
        assert s.scalar(select(func.count()).where(Order.status == "refunded")) > 0
    fast, raw = both_paths(any_db, first, stream.clock)
    assert fast == raw
    assert cohort_dump(any_db)["member_months"] == member_months_raw(any_db)

    incremental = cohort_dump(any_db)
    rollups.rebuild_rollups(any_db)
    assert cohort_dump(any_db) == incremental


def test_first_refresh_after_migration_backfills(db: Database) -> None:
    """Watermarks at the head but empty cohort tables (a database migrated to
    0006): the next refresh fills them, including a refund still to fold in."""
    stream = Stream(db, 7)
    stream.single(80)
    rollups.refresh_rollups(db)
    expected = cohort_dump(db)
    with db.begin() as s:
        s.execute(delete(RollupMemberMonth))
        s.execute(delete(RollupCohortMonth))
        s.execute(delete(RollupState).where(RollupState.name == rollups.COHORTS_KEY))
    rollups.refresh_rollups(db)
    assert cohort_dump(db) == expected
    # once more, with a refund and an order pending when the backfill runs
    with db.begin() as s:
        s.execute(delete(RollupMemberMonth))
        s.execute(delete(RollupCohortMonth))
        s.execute(delete(RollupState).where(RollupState.name == rollups.COHORTS_KEY))
    paid = [r for r in stream.orders if r]
    ledger.refund_order(db, paid[0], at=stream.tick())
    ledger.post_order_safely(db, OrderIn("late", stream._ext(stream.members[-1]),
                                         stream.tick(), 7000))
    rollups.refresh_rollups(db)
    assert cohort_dump(db)["member_months"] == member_months_raw(db)
    fast, raw = both_paths(db, stream.clock - dt.timedelta(days=60), stream.clock)
    assert fast == raw


def test_stale_or_unaligned_windows_use_the_raw_tables(db: Database) -> None:
    stream = Stream(db, 8)
    stream.single(40)
    with db.read() as s:  # never refreshed
        assert rollups.cohort_rows(s, _month(stream.clock), stream.clock) is None
    rollups.refresh_rollups(db)
    with db.read() as s:
        # the latest order or sign-up: a window must end after it to use the rollups
        last = max(s.scalar(select(func.max(Order.paid_at))),
                   s.scalar(select(func.max(Member.joined_at))))
        mid = _month(last) + dt.timedelta(days=3)
        assert rollups.cohort_rows(s, mid, last + dt.timedelta(hours=1)) is None
        assert rollups.cohort_rows(s, _month(last), last) is None  # not after all
        assert rollups.cohort_rows(
            s, _month(last), last + dt.timedelta(seconds=1)) is not None
