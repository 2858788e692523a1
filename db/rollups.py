"""Incremental rollups: the write side of what the live and overview pages
read (their read models are in db/reports/).

Why: a page that refreshes every few seconds cannot scan ten million ledger
entries each time. The rollup tables (db/models.py, "rollups") are brought up
to date from the rows added since the last refresh only:

- watermarks in ``rollup_state``: the highest ``members.id``, ``orders.id``,
  ``ledger_transactions.id`` and ``ledger_entries.id`` already folded in;
- refunds change an order's status after it was counted: every refund
  (member or guest) writes a ``ledger_transactions`` row of kind ``refund``
  naming the order, so the transaction watermark finds them;
- an order counts as *paid* "as of the fence": still ``paid``, or refunded by a
  transaction newer than the fence (that refund is folded in by the next
  refresh as a decrement). So a refresh is consistent whatever commits while
  it runs, and a rebuild is just a refresh from watermark 0.

The fence (the ids up to which every row is committed) needs care on
PostgreSQL, where ids from a sequence can commit out of order: a short
transaction takes ``SHARE`` locks on the source tables (waiting, at most
``LOCK_TIMEOUT``, for in-flight writers) and reads the maximum ids; the work
then runs in a REPEATABLE READ snapshot taken after that. Two workers never
refresh at once: a PostgreSQL advisory lock (the loser skips; the winner's
result is what it would have computed), and on SQLite the write transaction
(``BEGIN IMMEDIATE``).

Cost: every statement is driven by an id range on a primary key (the new
rows) and primary-key lookups, so a refresh with k new events costs O(k log n),
whatever the history. Distinct counts (customers, active members) are not
additive across days, so they are not summed per day: ``rollup_members`` and
``rollup_customers`` keep each one's first/last activity, and a trailing
window's distinct count is an indexed range count.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    and_,
    case,
    cast,
    delete,
    exists,
    extract,
    func,
    literal,
    literal_column,
    or_,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from db import clock
from db.models import (
    Account,
    LedgerEntry,
    LedgerTransaction,
    Member,
    Order,
    OrderRefund,
    RollupCohortMonth,
    RollupCustomer,
    RollupDaily,
    RollupMember,
    RollupMemberMonth,
    RollupReferrer,
    RollupState,
    RollupTransferIn,
)
from db.session import Database

PROGRAM_MAX_ACCOUNT = 4  # accounts 1-4 are the program's (issuance ... adjustment)
ADVISORY_KEY = 0x6C6F79616C  # "loyal": the refresh's PostgreSQL advisory lock
LOCK_TIMEOUT = "2s"
SOURCES = ("members", "orders", "txs", "entries")
MAXIMA = ("max_order_at", "max_entry_at", "max_joined_at")
EPOCH = dt.datetime(1970, 1, 1)
ROLLUP_TABLES = (RollupDaily, RollupMember, RollupCustomer, RollupReferrer,
                 RollupTransferIn, RollupMemberMonth, RollupCohortMonth, RollupState)
# set once the cohort tables (migration 0006) hold everything up to the watermarks
COHORTS_KEY = "cohorts_v1"

_o = Order.__table__
_or = OrderRefund.__table__
_e = LedgerEntry.__table__
_t = LedgerTransaction.__table__
_m = Member.__table__
_a = Account.__table__
_rd = RollupDaily.__table__
_rm = RollupMember.__table__
_rc = RollupCustomer.__table__
_rr = RollupReferrer.__table__
_rt = RollupTransferIn.__table__
_rs = RollupState.__table__
_mm = RollupMemberMonth.__table__
_cm = RollupCohortMonth.__table__


@dataclass
class RefreshResult:
    """What one refresh folded in (or why it did nothing)."""

    skipped: bool = False
    reason: str = ""
    members: int = 0
    orders: int = 0
    refunds: int = 0
    entries: int = 0
    watermarks: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def events(self) -> int:
        return self.members + self.orders + self.refunds + self.entries


# --------------------------------------------------------------------------- helpers



def to_micros(value: dt.datetime | None) -> int:
    return 0 if value is None else int((value - EPOCH) / dt.timedelta(microseconds=1))


def from_micros(value: int) -> dt.datetime | None:
    return None if not value else EPOCH + dt.timedelta(microseconds=int(value))


def _dialect(s: Session) -> str:
    return s.get_bind().dialect.name


def day_of(col: Any, dialect: str) -> ColumnElement[Any]:
    """The UTC day of ``col`` as something :func:`to_day` turns into a datetime.
    SQLite stores datetimes as ISO text: the day is a prefix (cheaper than strftime)."""
    if dialect == "postgresql":
        return func.date_trunc(literal_column("'day'"), col)
    return func.substr(col, 1, 10)


def to_day(value: Any) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value.replace(hour=0, minute=0, second=0, microsecond=0)
    if isinstance(value, dt.date):
        return dt.datetime.combine(value, dt.time())
    return dt.datetime.fromisoformat(str(value)[:10])


def _insert(s: Session, table: Any) -> Any:
    return pg_insert(table) if _dialect(s) == "postgresql" else sqlite_insert(table)


def _least(s: Session, a: Any, b: Any) -> Any:
    """min(a, b) ignoring NULLs, on both dialects."""
    fn = func.least if _dialect(s) == "postgresql" else func.min
    return fn(func.coalesce(a, b), func.coalesce(b, a))


def _greatest(s: Session, a: Any, b: Any) -> Any:
    fn = func.greatest if _dialect(s) == "postgresql" else func.max
    return fn(func.coalesce(a, b), func.coalesce(b, a))


def _add_daily(s: Session, rows: Iterable[tuple[str, dt.datetime, str, str, int]]) -> None:
    """Add (metric, day, segment, tier, value) into rollup_daily."""
    acc: dict[tuple[str, dt.datetime, str, str], int] = {}
    for metric, day, segment, tier, value in rows:
        if value:
            key = (metric, day, segment or "", tier or "")
            acc[key] = acc.get(key, 0) + int(value)
    if not acc:
        return
    ins = _insert(s, _rd)
    stmt = ins.on_conflict_do_update(
        index_elements=["metric", "day", "segment", "tier"],
        set_={"value": _rd.c.value + ins.excluded.value},
    )
    payload = [{"metric": k[0], "day": k[1], "segment": k[2], "tier": k[3], "value": v}
               for k, v in acc.items()]
    for start in range(0, len(payload), 5000):
        s.execute(stmt, payload[start : start + 5000])


def _paid_at_fence(fence_tx: int) -> ColumnElement[bool]:
    """The order was paid at the fence: still paid, or refunded by a newer tx."""
    later_refund = exists().where(
        _t.c.order_id == _o.c.id, _t.c.kind == "refund", _t.c.id > fence_tx
    )
    return or_(_o.c.status == "paid", and_(_o.c.status == "refunded", later_refund))


def _amount_at_fence(fence_tx: int) -> ColumnElement[int]:
    """The order's paid money at the fence: part refunds newer than the fence
    are not folded in yet, so they are added back."""
    later = (
        select(func.coalesce(func.sum(_or.c.amount_minor), 0))
        .where(_or.c.order_id == _o.c.id, _or.c.partial, _or.c.tx_id > fence_tx)
        .scalar_subquery()
    )
    return _o.c.amount_minor + later


def _partial_in(lo_tx: int, hi_tx: int) -> ColumnElement[int]:
    """Money given back by the order's part refunds with tx ids in (lo, hi]."""
    return (
        select(func.coalesce(func.sum(_or.c.amount_minor), 0))
        .where(_or.c.order_id == _o.c.id, _or.c.partial,
               _or.c.tx_id > lo_tx, _or.c.tx_id <= hi_tx)
        .scalar_subquery()
    )


def _noidx(col: Any) -> Any:
    """``col || ''``: keeps SQLite from picking an index on ``col`` (e.g. every
    redemption ever) over the primary-key range of the new rows."""
    return col.concat("")


def _read_state(s: Session) -> dict[str, int]:
    return {name: int(v) for name, v in s.execute(select(_rs.c.name, _rs.c.value))}


def _write_state(s: Session, values: dict[str, int]) -> None:
    ins = _insert(s, _rs)
    stmt = ins.on_conflict_do_update(
        index_elements=["name"], set_={"value": ins.excluded.value,
                                       "updated_at": ins.excluded.updated_at}
    )
    now = clock.utcnow()
    s.execute(stmt, [{"name": k, "value": int(v), "updated_at": now} for k, v in values.items()])


def source_maxima(s: Session) -> dict[str, int]:
    """The highest id of each source table (primary-key lookups)."""
    return {
        "members": int(s.scalar(select(func.max(_m.c.id))) or 0),
        "orders": int(s.scalar(select(func.max(_o.c.id))) or 0),
        "txs": int(s.scalar(select(func.max(_t.c.id))) or 0),
        "entries": int(s.scalar(select(func.max(_e.c.id))) or 0),
    }


def state(s: Session) -> dict[str, int]:
    """Watermarks and maxima as stored (0 where never refreshed)."""
    st = _read_state(s)
    return {k: st.get(k, 0) for k in (*SOURCES, *MAXIMA, "refreshed_at", COHORTS_KEY)}


def is_fresh(s: Session) -> bool:
    """True when the rollups have folded in every row there is: then readers
    may use them instead of the raw tables (db.metrics does)."""
    st = _read_state(s)
    if not st:
        return False
    return all(st.get(k, -1) == v for k, v in source_maxima(s).items())


PREFER_ROLLUPS = "loyalty_prefer_rollups"


def prefer_rollups(s: Session) -> Session:
    """Mark a read session as happy with the rollups as last refreshed (the live
    page refreshes them a moment before reading, and rows written in between
    must not send db.metrics back to a scan of the raw tables)."""
    s.info[PREFER_ROLLUPS] = True
    return s


def usable(s: Session) -> bool:
    """db.metrics may read the rollups: they are fresh, or the session asked
    for them (:func:`prefer_rollups`) and they have been built at least once."""
    if s.info.get(PREFER_ROLLUPS):
        return bool(_read_state(s))
    return is_fresh(s)


# --------------------------------------------------------------------------- refresh


def refresh_rollups(db: Database) -> RefreshResult:
    """Fold in the rows added since the last refresh (idempotent, concurrent-safe).

    Takes a :class:`Database`, not a session: on PostgreSQL the fence and the
    work are two transactions (see the module docstring).
    """
    started = time.perf_counter()
    if db.dialect == "postgresql":
        result = _refresh_postgres(db)
    else:
        result = db.write_tx(lambda s: _refresh_in(s, source_maxima(s)))
    result.seconds = time.perf_counter() - started
    return result


def _refresh_postgres(db: Database) -> RefreshResult:
    with db.engine.connect() as c:
        got = c.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": ADVISORY_KEY}).scalar()
        c.commit()
        if not got:
            return RefreshResult(skipped=True, reason="another refresh is running")
        try:
            try:
                c.execute(text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
                c.execute(text("LOCK TABLE members, orders, ledger_transactions, "
                               "ledger_entries IN SHARE MODE"))
                with Session(bind=c) as fs:
                    fence = source_maxima(fs)
                c.commit()
            except DBAPIError as exc:
                c.rollback()
                if getattr(exc.orig, "sqlstate", None) == "55P03":
                    return RefreshResult(skipped=True, reason="writers hold the tables")
                raise
            rr = c.execution_options(isolation_level="REPEATABLE READ")
            with Session(bind=rr) as s:
                result = _refresh_in(s, fence)
                s.commit()
            return result
        finally:
            c.rollback()
            c.execution_options(isolation_level="READ COMMITTED")
            c.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": ADVISORY_KEY})
            c.commit()


def rebuild_rollups(db: Database) -> RefreshResult:
    """Recompute every rollup from scratch (after a bulk load, or to check)."""
    def wipe(s: Session) -> None:
        for table in ROLLUP_TABLES:
            s.execute(delete(table))

    db.write_tx(wipe)
    return refresh_rollups(db)


def _refresh_in(s: Session, fence: dict[str, int]) -> RefreshResult:
    """Fold rows with ids in (watermark, fence] into the rollups, in ``s``'s tx."""
    d = _dialect(s)
    st = _read_state(s)
    w = {k: st.get(k, 0) for k in SOURCES}
    fence = {k: max(fence[k], w[k]) for k in SOURCES}
    res = RefreshResult(watermarks=dict(fence))
    maxima = {k: st.get(k, 0) for k in MAXIMA}
    if not st.get(COHORTS_KEY):
        # tables added after these watermarks (migration 0006): fill them with
        # what is already folded in, exactly as a rebuild up to ``w`` would
        if w["orders"]:
            _fold_cohorts(s, and_(_o.c.id > 0, _o.c.id <= w["orders"]),
                          _paid_at_fence(w["txs"]), +1, _amount_at_fence(w["txs"]))
        _write_state(s, {COHORTS_KEY: 1})
    if fence == w:
        _write_state(s, {"refreshed_at": to_micros(clock.utcnow())})
        return res
    res.members, joined = _fold_members(s, d, w["members"], fence["members"])
    res.refunds = _fold_refunds(s, d, w, fence)
    res.orders, order_at = _fold_orders(s, d, w["orders"], fence["orders"], fence["txs"])
    res.entries, entry_at = _fold_entries(s, d, w["entries"], fence["entries"])
    maxima["max_joined_at"] = max(maxima["max_joined_at"], to_micros(joined))
    maxima["max_order_at"] = max(maxima["max_order_at"], to_micros(order_at))
    maxima["max_entry_at"] = max(maxima["max_entry_at"], to_micros(entry_at))
    _write_state(s, {**fence, **maxima, "refreshed_at": to_micros(clock.utcnow())})
    return res


def _fold_members(s: Session, d: str, lo: int, hi: int) -> tuple[int, dt.datetime | None]:
    new = and_(_m.c.id > lo, _m.c.id <= hi)
    if hi <= lo:
        return 0, None
    n = s.execute(
        _insert(s, _rm).from_select(
            ["member_id", "joined_at", "segment", "referrer_id", "paid_orders"],
            select(_m.c.id, _m.c.joined_at, _m.c.segment, _m.c.referrer_id, literal(0))
            .where(new),
        )
    ).rowcount
    sq = select(
        day_of(_m.c.joined_at, d).label("day"),
        _m.c.segment.label("seg"),
        case((_m.c.referrer_id.is_not(None), 1), else_=0).label("referred"),
    ).where(new).subquery()
    rows = s.execute(
        select(sq.c.day, sq.c.seg, func.count(), func.sum(sq.c.referred))
        .group_by(sq.c.day, sq.c.seg)
    ).all()
    daily = []
    for dy, seg, count, ref in rows:
        daily.append(("new_members", to_day(dy), seg, "", int(count)))
        daily.append(("new_members_referred", to_day(dy), seg, "", int(ref or 0)))
    _add_daily(s, daily)
    ins = _insert(s, _rr)
    s.execute(
        ins.from_select(
            ["member_id", "referred", "bonus_points"],
            select(_m.c.referrer_id, func.count(), literal(0))
            .where(new, (_m.c.referrer_id + 0).is_not(None))
            .group_by(_m.c.referrer_id),
        ).on_conflict_do_update(
            index_elements=["member_id"], set_={"referred": _rr.c.referred + ins.excluded.referred}
        )
    )
    joined = s.scalar(select(func.max(_m.c.joined_at)).where(new))
    return int(n or 0), joined


def _order_daily(s: Session, d: str, where: ColumnElement[bool], paid: Any,
                 sign: int, with_all: bool, amount: Any = None,
                 with_paid: bool = True) -> None:
    """Orders, paid orders and paid revenue per (day, member segment, tier).

    ``amount`` is the revenue of each order (default: its paid money);
    ``with_paid=False`` moves revenue only (a part refund)."""
    amount = _o.c.amount_minor if amount is None else amount
    sq = (
        select(
            day_of(_o.c.paid_at, d).label("day"),
            case((_o.c.member_id.is_not(None), 1), else_=0).label("member"),
            _m.c.segment.label("seg"),
            _o.c.tier.label("tier"),
            case((paid, 1), else_=0).label("paid"),
            case((paid, amount), else_=0).label("revenue"),
        )
        .select_from(_o.outerjoin(_m, _m.c.id == _o.c.member_id))
        .where(where)
        .subquery()
    )
    keys = (sq.c.day, sq.c.member, sq.c.seg, sq.c.tier)
    rows = s.execute(
        select(*keys, func.count(), func.sum(sq.c.paid), func.sum(sq.c.revenue)).group_by(*keys)
    ).all()
    out = []
    for dy, is_member, sg, tr, n, n_paid, revenue in rows:
        suffix = "_m" if is_member else "_g"
        day_ = to_day(dy)
        if with_all:
            out.append(("orders" + suffix, day_, sg, tr, sign * int(n)))
        if with_paid:
            out.append(("paid_orders" + suffix, day_, sg, tr, sign * int(n_paid or 0)))
        out.append(("revenue" + suffix, day_, sg, tr, sign * int(revenue or 0)))
    _add_daily(s, out)


def _fold_orders(s: Session, d: str, lo: int, hi: int,
                 fence_tx: int) -> tuple[int, dt.datetime | None]:
    if hi <= lo:
        return 0, None
    new = and_(_o.c.id > lo, _o.c.id <= hi)
    paid = _paid_at_fence(fence_tx)
    amount = _amount_at_fence(fence_tx)
    _order_daily(s, d, new, paid, +1, with_all=True, amount=amount)
    _fold_cohorts(s, new, paid, +1, amount)
    # customers: last order, last order as a member
    ins = _insert(s, _rc)
    s.execute(
        ins.from_select(
            ["customer_ref", "last_order_at", "last_member_order_at"],
            select(
                _o.c.customer_ref,
                func.max(_o.c.paid_at),
                func.max(case((_o.c.member_id.is_not(None), _o.c.paid_at))),
            ).where(new).group_by(_o.c.customer_ref),
        ).on_conflict_do_update(
            index_elements=["customer_ref"],
            set_={
                "last_order_at": _greatest(s, _rc.c.last_order_at, ins.excluded.last_order_at),
                "last_member_order_at": _greatest(
                    s, _rc.c.last_member_order_at, ins.excluded.last_member_order_at
                ),
            },
        )
    )
    # members: first / last order, first paid order, paid orders
    ins = _insert(s, _rm)
    s.execute(
        ins.from_select(
            ["member_id", "joined_at", "segment", "first_order_at", "first_paid_at",
             "last_order_at", "last_activity_at", "paid_orders"],
            select(
                _o.c.member_id,
                func.min(_m.c.joined_at),
                func.min(_m.c.segment),
                func.min(_o.c.paid_at),
                func.min(case((paid, _o.c.paid_at))),
                func.max(_o.c.paid_at),
                func.max(_o.c.paid_at),
                func.sum(case((paid, 1), else_=0)),
            )
            .select_from(_o.join(_m, _m.c.id == _o.c.member_id))
            .where(new)
            .group_by(_o.c.member_id),
        ).on_conflict_do_update(
            index_elements=["member_id"],
            set_={
                "first_order_at": _least(s, _rm.c.first_order_at, ins.excluded.first_order_at),
                "first_paid_at": _least(s, _rm.c.first_paid_at, ins.excluded.first_paid_at),
                "last_order_at": _greatest(s, _rm.c.last_order_at, ins.excluded.last_order_at),
                "last_activity_at": _greatest(
                    s, _rm.c.last_activity_at, ins.excluded.last_activity_at
                ),
                "paid_orders": _rm.c.paid_orders + ins.excluded.paid_orders,
            },
        )
    )
    n, last = s.execute(select(func.count(), func.max(_o.c.paid_at)).where(new)).one()
    return int(n or 0), last


def month_index(col: Any) -> ColumnElement[int]:
    """year * 12 + month - 1 of a datetime column (months since year 0)."""
    return (cast(extract("year", col), Integer) * 12
            + cast(extract("month", col), Integer) - 1)


def _fold_cohorts(s: Session, where: ColumnElement[bool], paid: Any, sign: int,
                  amount: Any = None, count: bool = True) -> None:
    """Add ``sign`` x the paid orders matching ``where`` (members' orders paid
    on or after joining) into rollup_member_months and rollup_cohort_months.

    A cohort-month's ``members`` changes by the member-months whose paid count
    crosses 0 (read before the member-month upsert): so it stays the distinct
    count of members with a paid order that month, through refunds too.
    """
    month = month_index(_o.c.paid_at)
    cohort = month_index(_m.c.joined_at)
    amount = _o.c.amount_minor if amount is None else amount
    n = func.sum(case((paid, sign), else_=0)) if count else literal(0)
    rev = func.sum(case((paid, sign * amount), else_=0))
    delta = (
        select(_o.c.member_id.label("member_id"), month.label("month"),
               cohort.label("cohort"), _m.c.segment.label("segment"),
               n.label("n"), rev.label("rev"))
        .select_from(_o.join(_m, _m.c.id == _o.c.member_id))
        .where(where, _o.c.paid_at >= _m.c.joined_at)
        .group_by(_o.c.member_id, month, cohort, _m.c.segment)
        .having(n != 0 if count else rev != 0)
    )
    dq = delta.subquery()
    old = func.coalesce(_mm.c.paid_orders, 0)
    crossed = (case((old + dq.c.n > 0, 1), else_=0) - case((old > 0, 1), else_=0))
    keys = (dq.c.cohort, dq.c.month, dq.c.segment)
    rows = s.execute(
        select(*keys, func.sum(crossed), func.sum(dq.c.n), func.sum(dq.c.rev))
        .select_from(dq.outerjoin(_mm, and_(_mm.c.member_id == dq.c.member_id,
                                            _mm.c.month == dq.c.month)))
        .group_by(*keys)
    ).all()
    if not rows:
        return
    ins = _insert(s, _mm)
    s.execute(
        ins.from_select(["member_id", "month", "cohort", "segment", "paid_orders", "revenue"],
                        delta)
        .on_conflict_do_update(
            index_elements=["member_id", "month"],
            set_={"paid_orders": _mm.c.paid_orders + ins.excluded.paid_orders,
                  "revenue": _mm.c.revenue + ins.excluded.revenue},
        )
    )
    ins = _insert(s, _cm)
    stmt = ins.on_conflict_do_update(
        index_elements=["cohort", "month", "segment"],
        set_={"members": _cm.c.members + ins.excluded.members,
              "paid_orders": _cm.c.paid_orders + ins.excluded.paid_orders,
              "revenue": _cm.c.revenue + ins.excluded.revenue},
    )
    payload = [{"cohort": int(c), "month": int(m), "segment": sg or "", "members": int(a or 0),
                "paid_orders": int(k or 0), "revenue": int(r or 0)}
               for c, m, sg, a, k, r in rows]
    for start in range(0, len(payload), 5000):
        s.execute(stmt, payload[start : start + 5000])


def _fold_refunds(s: Session, d: str, w: dict[str, int], fence: dict[str, int]) -> int:
    """Refunds of orders already counted as paid (ids <= the old order watermark)."""
    if fence["txs"] <= w["txs"] or w["orders"] == 0:
        return 0
    return (_fold_part_refunds(s, d, w, fence) + _fold_final_refunds(s, d, w, fence))


def _fold_part_refunds(s: Session, d: str, w: dict[str, int], fence: dict[str, int]) -> int:
    """Part refunds take their money off the order's revenue; it stays paid."""
    parted = select(_t.c.order_id).where(
        _t.c.id > w["txs"], _t.c.id <= fence["txs"], _noidx(_t.c.kind) == "partial_refund",
        (_t.c.order_id + 0) <= w["orders"],
    )
    ids = sorted({int(i) for i in s.scalars(parted)})
    amount = _partial_in(w["txs"], fence["txs"])
    for start in range(0, len(ids), 5000):
        where = _o.c.id.in_(ids[start : start + 5000])
        _order_daily(s, d, where, literal(True), -1, with_all=False, amount=amount,
                     with_paid=False)
        _fold_cohorts(s, where, literal(True), -1, amount, count=False)
    return len(ids)


def _fold_final_refunds(s: Session, d: str, w: dict[str, int], fence: dict[str, int]) -> int:
    """A final refund takes the order out of paid orders with what money it had
    left (``amount_minor``: the final refund does not change it)."""
    refunded = select(_t.c.order_id).where(
        _t.c.id > w["txs"], _t.c.id <= fence["txs"], _noidx(_t.c.kind) == "refund",
        (_t.c.order_id + 0) <= w["orders"],
    )
    ids = [int(i) for i in s.scalars(refunded)]
    if not ids:
        return 0
    total = 0
    for start in range(0, len(ids), 5000):
        chunk = ids[start : start + 5000]
        where = _o.c.id.in_(chunk)
        _order_daily(s, d, where, literal(True), -1, with_all=False)
        _fold_cohorts(s, where, literal(True), -1)
        member_ids = [int(m) for m in s.scalars(
            select(_o.c.member_id).where(where, _o.c.member_id.is_not(None)))]
        if member_ids:
            counts: dict[int, int] = {}
            for m in member_ids:
                counts[m] = counts.get(m, 0) + 1
            first_paid = (
                select(func.min(_o.c.paid_at))
                .where(_o.c.member_id == _rm.c.member_id, _o.c.id <= fence["orders"],
                       _paid_at_fence(fence["txs"]))
                .scalar_subquery()
            )
            for m, k in counts.items():
                s.execute(
                    _rm.update().where(_rm.c.member_id == m)
                    .values(paid_orders=_rm.c.paid_orders - k, first_paid_at=first_paid)
                )
        total += len(chunk)
    return total


def _fold_entries(s: Session, d: str, lo: int, hi: int) -> tuple[int, dt.datetime | None]:
    if hi <= lo:
        return 0, None
    new = and_(_e.c.id > lo, _e.c.id <= hi)
    orig = _e.alias("orig")
    member_acc = case((_e.c.debit_account_id > PROGRAM_MAX_ACCOUNT, _e.c.debit_account_id),
                      else_=_e.c.credit_account_id)
    acc = _a.alias("acc")
    mem = _m.alias("mem")
    kind = case(
        (_e.c.kind == "reversal", literal("rev_") + func.coalesce(orig.c.kind, "")),
        (and_(_e.c.kind == "adjustment", _e.c.credit_account_id > PROGRAM_MAX_ACCOUNT),
         literal("adjustment_in")),
        (_e.c.kind == "adjustment", literal("adjustment_out")),
        else_=_e.c.kind,
    ).label("k")
    into = and_(_e.c.debit_account_id <= PROGRAM_MAX_ACCOUNT,
                _e.c.credit_account_id > PROGRAM_MAX_ACCOUNT)
    out_of = and_(_e.c.credit_account_id <= PROGRAM_MAX_ACCOUNT,
                  _e.c.debit_account_id > PROGRAM_MAX_ACCOUNT)
    net = case((into, _e.c.amount), (out_of, -_e.c.amount), else_=0)
    sq = (
        select(
            day_of(_e.c.effective_at, d).label("day"), kind, mem.c.segment.label("seg"),
            _e.c.amount.label("amount"), net.label("net"),
        )
        .select_from(
            _e.outerjoin(orig, orig.c.id == _e.c.reverses_entry_id)
            .outerjoin(acc, acc.c.id == member_acc)
            .outerjoin(mem, mem.c.id == acc.c.member_id)
        )
        .where(new)
        .subquery()
    )
    keys = (sq.c.day, sq.c.k, sq.c.seg)
    rows = s.execute(
        select(*keys, func.sum(sq.c.amount), func.count(), func.sum(sq.c.net)).group_by(*keys)
    ).all()
    daily = []
    for dy, k, sg, amount, n, delta in rows:
        day_ = to_day(dy)
        daily.append(("pts_" + k, day_, sg, "", int(amount or 0)))
        daily.append(("n_" + k, day_, sg, "", int(n)))
        daily.append(("member_net", day_, "", "", int(delta or 0)))
    _add_daily(s, daily)

    # members: first accrual (earning), last redemption (activity)
    for kind_, side, col, agg in (
        ("accrual", _e.c.credit_account_id, "first_earn_at", "min"),
        ("redemption", _e.c.debit_account_id, "last_activity_at", "max"),
    ):
        fn = func.min if agg == "min" else func.max
        ins = _insert(s, _rm)
        merge = _least if agg == "min" else _greatest
        s.execute(
            ins.from_select(
                ["member_id", "joined_at", "segment", col, "paid_orders"],
                select(acc.c.member_id, func.min(mem.c.joined_at), func.min(mem.c.segment),
                       fn(_e.c.effective_at), literal(0))
                .select_from(_e.join(acc, acc.c.id == side)
                             .join(mem, mem.c.id == acc.c.member_id))
                .where(new, _noidx(_e.c.kind) == kind_)
                .group_by(acc.c.member_id),
            ).on_conflict_do_update(
                index_elements=["member_id"],
                set_={col: merge(s, _rm.c[col], ins.excluded[col])},
            )
        )
    # referrers: referral bonus earned, net of reversals
    bonus = case((_e.c.kind == "referral_bonus", _e.c.amount), else_=-_e.c.amount)
    ins = _insert(s, _rr)
    s.execute(
        ins.from_select(
            ["member_id", "referred", "bonus_points"],
            select(acc.c.member_id, literal(0), func.sum(bonus))
            .select_from(_e.outerjoin(orig, orig.c.id == _e.c.reverses_entry_id)
                         .join(acc, acc.c.id == member_acc))
            .where(new, or_(_noidx(_e.c.kind) == "referral_bonus",
                            and_(_noidx(_e.c.kind) == "reversal",
                                 orig.c.kind == "referral_bonus")))
            .group_by(acc.c.member_id),
        ).on_conflict_do_update(
            index_elements=["member_id"],
            set_={"bonus_points": _rr.c.bonus_points + ins.excluded.bonus_points},
        )
    )
    # transfers received, per day and receiver
    tq = (
        select(day_of(_e.c.effective_at, d).label("day"), acc.c.member_id.label("member_id"),
               _e.c.amount.label("amount"))
        .select_from(_e.join(acc, acc.c.id == _e.c.credit_account_id))
        .where(new, _noidx(_e.c.kind) == "transfer")
        .subquery()
    )
    rows = s.execute(
        select(tq.c.day, tq.c.member_id, func.sum(tq.c.amount), func.count())
        .group_by(tq.c.day, tq.c.member_id)
    ).all()
    if rows:
        ins = _insert(s, _rt)
        s.execute(
            ins.on_conflict_do_update(
                index_elements=["day", "member_id"],
                set_={"points": _rt.c.points + ins.excluded.points,
                      "transfers": _rt.c.transfers + ins.excluded.transfers},
            ),
            [{"day": to_day(dy), "member_id": int(m), "points": int(p), "transfers": int(n)}
             for dy, m, p, n in rows],
        )
    n, last = s.execute(select(func.count(), func.max(_e.c.effective_at)).where(new)).one()
    return int(n or 0), last


# --------------------------------------------------------------------------- reads


def daily_sum(
    s: Session,
    metrics: Iterable[str],
    date_from: dt.datetime | None,
    date_to: dt.datetime | None,
    *,
    segment: str | None = None,
) -> dict[str, int]:
    """Sum of each metric over days in ``[date_from, date_to)`` (None = open)."""
    names = list(metrics)
    q = select(_rd.c.metric, func.sum(_rd.c.value)).where(_rd.c.metric.in_(names))
    if date_from is not None:
        q = q.where(_rd.c.day >= date_from)
    if date_to is not None:
        q = q.where(_rd.c.day < date_to)
    if segment:
        q = q.where(_rd.c.segment == segment)
    got = {m: int(v or 0) for m, v in s.execute(q.group_by(_rd.c.metric))}
    return {m: got.get(m, 0) for m in names}


def daily_series(
    s: Session,
    metrics: Iterable[str],
    date_from: dt.datetime,
    date_to: dt.datetime,
    *,
    segment: str | None = None,
    by: str | None = None,
) -> list[tuple[dt.datetime, str, str, int]]:
    """(day, metric, group, value) for days in the range; ``by`` = "segment" or
    "tier" keeps that dimension as the group, else the group is ''."""
    names = list(metrics)
    group = _rd.c[by] if by in ("segment", "tier") else literal("")
    q = (
        select(_rd.c.day, _rd.c.metric, group.label("g"), func.sum(_rd.c.value))
        .where(_rd.c.metric.in_(names), _rd.c.day >= date_from, _rd.c.day < date_to)
    )
    if segment:
        q = q.where(_rd.c.segment == segment)
    q = q.group_by(_rd.c.day, _rd.c.metric, group).order_by(_rd.c.day)
    return [(to_day(dy), m, g, int(v or 0)) for dy, m, g, v in s.execute(q)]


def cohort_rows(
    s: Session, date_from: dt.datetime, date_to: dt.datetime, *, segment: str | None = None
) -> tuple[dict[int, int], list[tuple[int, int, int, int, int]]] | None:
    """Join-month cohorts of ``[date_from, date_to)`` from the cohort rollups:
    ({cohort: members joined}, [(cohort, month, active members, paid orders,
    paid revenue)]) for orders paid before ``date_to`` - or None when the
    rollups cannot answer exactly (not usable, ``date_from`` not a month start,
    ``date_to`` neither a month start nor after every order and sign-up).
    Months are ``year * 12 + month - 1``; cohort sizes come from rollup_daily."""
    if not usable(s) or date_from != date_from.replace(day=1, hour=0, minute=0, second=0,
                                                       microsecond=0):
        return None
    st = _read_state(s)
    if not st.get(COHORTS_KEY):
        return None
    aligned = date_to == date_to.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    after_all = to_micros(date_to) > max(st.get("max_order_at", 0), st.get("max_joined_at", 0))
    if not (aligned or after_all):
        return None
    last = date_to - dt.timedelta(microseconds=1)
    first_idx = date_from.year * 12 + date_from.month - 1
    last_idx = last.year * 12 + last.month - 1
    day_to = to_day(last) + dt.timedelta(days=1)
    sizes: dict[int, int] = {}
    for day, _metric, _g, v in daily_series(s, ["new_members"], date_from, day_to,
                                            segment=segment):
        c = day.year * 12 + day.month - 1
        sizes[c] = sizes.get(c, 0) + v
    q = (
        select(_cm.c.cohort, _cm.c.month, func.sum(_cm.c.members), func.sum(_cm.c.paid_orders),
               func.sum(_cm.c.revenue))
        .where(_cm.c.cohort >= first_idx, _cm.c.cohort <= last_idx, _cm.c.month <= last_idx)
        .group_by(_cm.c.cohort, _cm.c.month)
    )
    if segment:
        q = q.where(_cm.c.segment == segment)
    rows = [(int(c), int(m), int(a or 0), int(n or 0), int(r or 0))
            for c, m, a, n, r in s.execute(q)]
    return {c: n for c, n in sizes.items() if n}, rows
