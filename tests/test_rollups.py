"""Rollups = full recomputation, after random event streams through the engine.

Each stream mixes single-operation services (orders of members and guests,
refunds, redemptions, transfers, adjustments, expiry, sign-ups through
referral links) and BulkPoster batches, refreshed in several increments.
Checks: increments == one rebuild (table by table), and every KPI db.metrics
computes from the rollups == the same KPI from the raw tables (metrics falls
back to raw SQL when the rollups are stale, so computing before and after the
last refresh compares the two paths).
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from typing import Any

import pytest
from sqlalchemy import case, func, select

from db import ledger, metrics, rollups
from db.ledger import OrderIn
from db.models import (
    Account,
    LedgerEntry,
    Member,
    Order,
    RollupCustomer,
    RollupDaily,
    RollupMember,
    RollupReferrer,
    RollupTransferIn,
)
from db.session import Database
from tests.support.factories import member
from tests.support.rollups import Stream

# --------------------------------------------------------------------------- views


def dump(d: Database) -> dict[str, list[tuple]]:
    """Every rollup table's rows, zero rows dropped (a +x then -x leaves one)."""
    with d.read() as s:
        daily = s.execute(
            select(RollupDaily.metric, RollupDaily.day, RollupDaily.segment, RollupDaily.tier,
                   RollupDaily.value).where(RollupDaily.value != 0)
            .order_by(RollupDaily.metric, RollupDaily.day, RollupDaily.segment, RollupDaily.tier)
        ).all()
        rm = s.execute(select(RollupMember).order_by(RollupMember.member_id)).scalars().all()
        rc = s.execute(select(RollupCustomer).order_by(RollupCustomer.customer_ref)).scalars()
        rr = s.execute(
            select(RollupReferrer.member_id, RollupReferrer.referred, RollupReferrer.bonus_points)
            .where((RollupReferrer.referred != 0) | (RollupReferrer.bonus_points != 0))
            .order_by(RollupReferrer.member_id)
        ).all()
        rt = s.execute(
            select(RollupTransferIn.day, RollupTransferIn.member_id, RollupTransferIn.points,
                   RollupTransferIn.transfers)
            .order_by(RollupTransferIn.day, RollupTransferIn.member_id)
        ).all()
        return {
            "daily": [tuple(r) for r in daily],
            "members": [(m.member_id, m.joined_at, m.segment, m.referrer_id, m.first_order_at,
                         m.first_paid_at, m.first_earn_at, m.last_order_at, m.last_activity_at,
                         m.paid_orders) for m in rm],
            "customers": [(c.customer_ref, c.last_order_at, c.last_member_order_at) for c in rc],
            "referrers": [tuple(r) for r in rr],
            "transfers": [tuple(r) for r in rt],
        }


def kpis(d: Database, first: dt.datetime, last: dt.datetime) -> dict[str, Any]:
    """Every KPI db.metrics reads from rollups when fresh, over many windows."""
    out: dict[str, Any] = {}
    end = (last + dt.timedelta(days=2)).replace(hour=0, minute=0, second=0, microsecond=0)
    with d.read() as s:
        day = first.replace(hour=0, minute=0, second=0, microsecond=0)
        while day < end:
            nxt = day + dt.timedelta(days=1)
            out[f"flows {day:%m-%d}"] = metrics.points_flows(s, day, nxt).as_dict()
            out[f"liability {day:%m-%d}"] = metrics.points_liability(s, day).points
            day = nxt
        week = dt.timedelta(days=7)
        for k in range(0, 12):
            f = first + k * week
            out[f"participation {k}"] = metrics.participation_rate(s, f, end).as_dict()
            out[f"referral {k}"] = metrics.referral_conversion(s, f, f + 2 * week).as_dict()
        for days in (1, 7, 30, 90):
            out[f"active {days}"] = metrics.active_member_rate(s, end, days).as_dict()
        out["liability now"] = metrics.points_liability(s).points
        out["flows all"] = metrics.points_flows(s, None, end).as_dict()
    return out


def raw_tables(d: Database) -> dict[str, Any]:
    """Daily order and sign-up figures straight from the raw tables, to compare
    with rollup_daily (the KPI functions above do not cover these)."""
    with d.read() as s:
        o, m = Order.__table__, Member.__table__
        member = o.c.member_id.is_not(None)
        day = func.substr(o.c.paid_at, 1, 10) if d.dialect == "sqlite" else func.date(o.c.paid_at)
        paid = o.c.status == "paid"
        rows = s.execute(
            select(day, member, func.coalesce(m.c.segment, ""), func.coalesce(o.c.tier, ""),
                   func.count(), func.sum(case((paid, 1), else_=0)),
                   func.sum(case((paid, o.c.amount_minor), else_=0)))
            .select_from(o.outerjoin(m, m.c.id == o.c.member_id))
            .group_by(day, member, m.c.segment, o.c.tier)
        ).all()
        out = {}
        for dy, is_m, seg, tier, n, n_paid, rev in rows:
            sfx = "_m" if is_m else "_g"
            key = (str(dy)[:10], seg, tier)
            out[("orders" + sfx, *key)] = int(n)
            out[("paid_orders" + sfx, *key)] = int(n_paid)
            out[("revenue" + sfx, *key)] = int(rev)
        jday = (func.substr(m.c.joined_at, 1, 10) if d.dialect == "sqlite"
                else func.date(m.c.joined_at))
        for dy, seg, n, ref in s.execute(
            select(jday, m.c.segment, func.count(),
                   func.sum(case((m.c.referrer_id.is_not(None), 1), else_=0)))
            .group_by(jday, m.c.segment)
        ):
            out[("new_members", str(dy)[:10], seg, "")] = int(n)
            out[("new_members_referred", str(dy)[:10], seg, "")] = int(ref)
        # referral bonus per referrer and transfers per receiver
        e, a = LedgerEntry.__table__, Account.__table__
        for mid, pts in s.execute(
            select(a.c.member_id, func.sum(e.c.amount))
            .join(a, a.c.id == e.c.credit_account_id)
            .where(e.c.kind == "transfer").group_by(a.c.member_id)
        ):
            out[("transfer_in", int(mid))] = int(pts)
        return {k: v for k, v in out.items() if v}


def rollup_tables_view(d: Database) -> dict[str, Any]:
    with d.read() as s:
        out: dict[Any, int] = {}
        for metric, day, seg, tier, value in s.execute(
            select(RollupDaily.metric, RollupDaily.day, RollupDaily.segment, RollupDaily.tier,
                   RollupDaily.value).where(
                RollupDaily.metric.in_(["orders_m", "orders_g", "paid_orders_m",
                                        "paid_orders_g", "revenue_m", "revenue_g",
                                        "new_members", "new_members_referred"]))
        ):
            out[(metric, f"{day:%Y-%m-%d}", seg, tier)] = int(value)
        for mid, pts in s.execute(
            select(RollupTransferIn.member_id, func.sum(RollupTransferIn.points))
            .group_by(RollupTransferIn.member_id)
        ):
            out[("transfer_in", int(mid))] = int(pts)
        return {k: v for k, v in out.items() if v}


def member_rows_raw(d: Database) -> list[tuple]:
    """rollup_members' columns recomputed from the raw tables."""
    with d.read() as s:
        o, e, a = Order.__table__, LedgerEntry.__table__, Account.__table__
        out = []
        for m in s.execute(select(Member).order_by(Member.id)).scalars():
            orders = s.execute(
                select(func.min(o.c.paid_at), func.max(o.c.paid_at),
                       func.min(case((o.c.status == "paid", o.c.paid_at))),
                       func.sum(case((o.c.status == "paid", 1), else_=0)))
                .where(o.c.member_id == m.id)
            ).one()
            acc = s.scalar(select(a.c.id).where(a.c.member_id == m.id))
            earn = s.scalar(select(func.min(e.c.effective_at)).where(
                e.c.credit_account_id == acc, e.c.kind == "accrual"))
            redeemed = s.scalar(select(func.max(e.c.effective_at)).where(
                e.c.debit_account_id == acc, e.c.kind == "redemption"))
            last = max([v for v in (orders[1], redeemed) if v is not None], default=None)
            out.append((m.id, m.joined_at, m.segment, m.referrer_id, orders[0], orders[2], earn,
                        orders[1], last, int(orders[3] or 0)))
        return out


# --------------------------------------------------------------------------- tests


@pytest.mark.parametrize("seed", [1, 2])
def test_increments_equal_rebuild_and_raw(any_db: Database, seed: int) -> None:
    stream = Stream(any_db, seed)
    first = stream.clock
    assert not rollups.refresh_rollups(any_db).skipped  # an empty program
    for round_ in range(4):
        stream.single(40)
        if round_ % 2:
            stream.bulk(15)
        rollups.refresh_rollups(any_db)
    stream.single(30)  # not yet folded in: metrics must use the raw tables
    with any_db.read() as s:
        assert not rollups.is_fresh(s)
    raw = kpis(any_db, first, stream.clock)
    res = rollups.refresh_rollups(any_db)
    assert res.events > 0
    with any_db.read() as s:
        assert rollups.is_fresh(s)
    assert kpis(any_db, first, stream.clock) == raw
    assert rollup_tables_view(any_db) == raw_tables(any_db)
    assert dump(any_db)["members"] == member_rows_raw(any_db)

    incremental = dump(any_db)
    rollups.rebuild_rollups(any_db)
    assert dump(any_db) == incremental
    assert kpis(any_db, first, stream.clock) == raw


def test_refresh_twice_changes_nothing(db: Database) -> None:
    stream = Stream(db, 5)
    stream.single(60)
    rollups.refresh_rollups(db)
    before = dump(db)
    again = rollups.refresh_rollups(db)
    assert again.events == 0 and dump(db) == before


def test_refund_between_fence_and_next_refresh_counts_once(db: Database) -> None:
    """An order folded in as paid and refunded later is decremented exactly once."""
    stream = Stream(db, 9)
    stream.single(20)
    cust = stream._ext(stream.members[0])
    ledger.post_order_safely(db, OrderIn("late", cust, stream.tick(), 5000))
    rollups.refresh_rollups(db)
    ledger.refund_order(db, "late", at=stream.tick())
    rollups.refresh_rollups(db)
    ledger.refund_order(db, "late", at=stream.tick())  # a replay writes nothing
    rollups.refresh_rollups(db)
    assert rollup_tables_view(db) == raw_tables(db)


def test_part_refunds_count_once_through_refreshes(any_db: Database) -> None:
    """Part refunds before and after a refresh, then the final refund and a
    replay: revenue loses each part once and the order leaves paid orders once."""
    stream = Stream(any_db, 9)
    stream.single(20)
    cust = stream._ext(stream.members[0])
    ledger.post_order_safely(any_db, OrderIn("late", cust, stream.tick(), 9000))
    ledger.refund_order(any_db, "late", at=stream.tick(), amount_minor=1000, refund_ref="a")
    rollups.refresh_rollups(any_db)  # folds the order already net of part a
    assert rollup_tables_view(any_db) == raw_tables(any_db)
    ledger.refund_order(any_db, "late", at=stream.tick(), amount_minor=2500, refund_ref="b")
    rollups.refresh_rollups(any_db)
    assert rollup_tables_view(any_db) == raw_tables(any_db)
    ledger.refund_order(any_db, "late", at=stream.tick(), amount_minor=500, refund_ref="c")
    ledger.refund_order(any_db, "late", at=stream.tick())  # the rest: 5000
    ledger.refund_order(any_db, "late", at=stream.tick(), amount_minor=500, refund_ref="c")
    rollups.refresh_rollups(any_db)
    assert rollup_tables_view(any_db) == raw_tables(any_db)


def test_part_refund_committed_after_the_fence_is_folded_once(db: Database) -> None:
    """A part refund that commits after the fence is read but before the work
    runs (PostgreSQL's two transactions) is left to the next refresh."""
    stream = Stream(db, 10)
    stream.single(20)
    rollups.refresh_rollups(db)
    cust = stream._ext(stream.members[0])
    ledger.post_order_safely(db, OrderIn("new", cust, stream.tick(), 8000))
    ledger.post_order_safely(db, OrderIn("old", cust, stream.tick(), 6000))
    rollups.refresh_rollups(db)
    ledger.post_order_safely(db, OrderIn("newer", cust, stream.tick(), 7000))
    with db.read() as s:
        fence = rollups.source_maxima(s)
    ledger.refund_order(db, "newer", at=stream.tick(), amount_minor=3000, refund_ref="x")
    ledger.refund_order(db, "old", at=stream.tick(), amount_minor=1000, refund_ref="y")
    db.write_tx(lambda s: rollups._refresh_in(s, fence))
    rollups.refresh_rollups(db)
    assert rollup_tables_view(db) == raw_tables(db)


def _vm_steps(d: Database, fn) -> int:
    """SQLite virtual-machine instructions executed by ``fn`` (a cost measure
    that does not depend on the machine's speed)."""
    steps = [0]

    def handler() -> int:
        steps[0] += 1
        return 0

    conns: list[sqlite3.Connection] = []

    def on_connect(dbapi_conn, _rec):  # noqa: ANN001
        conns.append(dbapi_conn)

    d.dispose()
    from sqlalchemy import event

    event.listen(d.engine, "connect", on_connect)
    with d.engine.connect() as c:  # make sure one pooled connection is tracked
        c.exec_driver_sql("SELECT 1")
    for conn in conns:
        conn.set_progress_handler(handler, 10)
    try:
        fn()
    finally:
        for conn in conns:
            conn.set_progress_handler(None, 100)
        event.remove(d.engine, "connect", on_connect)
    return steps[0]


def _fixed_events(d: Database, stream: Stream) -> dict[str, int]:
    """The same 40 events on any program: sign-ups (one referred), member and
    guest orders, a refund, redemptions and transfers between the new members."""
    with d.begin() as s:
        new = [member(s, f"N{i}", joined_at=stream.tick(), referrer_id=stream.members[0] if i
                      else None) for i in range(4)]
    for i in range(24):
        cust = f"N{i % 4}" if i % 3 else "GX"
        ledger.post_order_safely(d, OrderIn(f"NO{i}", cust, stream.tick(), 20000 + i))
    ledger.refund_order(d, "NO5", at=stream.tick())
    for i in range(6):
        ledger.redeem(d, new[i % 4], 1, key=f"nr{i}", at=stream.tick())
    for i in range(5):
        ledger.transfer(d, new[i % 4], new[(i + 1) % 4], 1, key=f"nt{i}", at=stream.tick())
    return _state_counts(d)


def _state_counts(db: Database) -> dict[str, int]:
    """How many rows of each source table wait to be folded in."""
    with db.read() as s:
        st, top = rollups.state(s), rollups.source_maxima(s)
        return {k: top[k] - st[k] for k in rollups.SOURCES}


def test_refresh_cost_does_not_grow_with_history(db: Database, tmp_path) -> None:
    """The same 40 new events cost (in SQLite VM steps) about the same on a
    program with 60 orders of history and on one with 20x more."""
    import shutil

    costs = {}
    for label, history in (("small", 60), ("large", 1200)):
        path = tmp_path / f"{label}.sqlite3"
        shutil.copy(str(db.engine.url.database), path)
        d = Database(f"sqlite:///{path}")
        stream = Stream(d, 11)
        for _ in range(history // 20):  # many members, a few orders each
            stream.bulk(20)
        stream.single(history // 20)
        rollups.refresh_rollups(d)
        pending = _fixed_events(d, stream)
        costs[label] = _vm_steps(d, lambda d=d: rollups.refresh_rollups(d))
        costs[label + " pending"] = pending
        assert _state_counts(d) == {k: 0 for k in pending}
        d.dispose()
    assert costs["small pending"] == costs["large pending"]
    assert costs["small"] > 1000, costs  # the handler did count
    assert costs["large"] < 1.3 * costs["small"], costs
