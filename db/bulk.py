"""Posting many operations in one transaction: the importer's and the seeder's path.

The single-order path (:func:`db.ledger.post_order`) asks the database for
the member's qualifying spend and balance on every order. Here that state is
loaded once per member and kept in memory while orders are posted in payment
order, then everything is written in a few bulk statements. The accrual
decision itself is the engine's (:func:`db.ledger.decide_accrual`), so both
paths give the same entries - the integrity check verifies it.

The caller owns the transaction (pass the session of ``db.begin()``).

Staged mode (``stage=<import id>``, the importer's): nothing is written to the
program tables. Rows go to the ``import_*`` staging mirrors, in whatever
write transactions the caller passes to :meth:`add_members` and
:meth:`flush` (so it can commit in batches), with negative placeholder ids on
SQLite (the final copy numbers them) and sequence values on PostgreSQL; the
balance changes and last tiers accumulate in memory until
:meth:`write_stage_state`. Existing members' accounts are read, not locked.
"""

from __future__ import annotations

import bisect
import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import DateTime, bindparam, func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from db import clock
from db.actor import SYSTEM, Actor
from db.errors import (
    IdempotencyConflict,
    InsufficientPoints,
    InvalidState,
    LoyaltyError,
    ValidationError,
)
from db.ledger import (
    ADJUSTMENT,
    ISSUANCE,
    MAX_BATCH,
    REDEMPTION,
    OrderIn,
    OrderResult,
    among,
    batch_order,
    check_redemption,
    decide_accrual,
    entry,
    lock_accounts,
    lock_customers,
    payload_hash,
    post_each_locked,
)
from db.models import (
    STAGED,
    STAGED_BALANCES,
    STAGED_TIERS,
    Account,
    LedgerEntry,
    LedgerTransaction,
    Member,
    Order,
    Transfer,
)
from db.rules import RuleBook, cache_rulebook, load_rulebook
from db.session import transactional

_CHUNK = 5_000
_WRITE_CHUNK = 50_000

_PG_MOVE_BALANCES = text(
    "UPDATE accounts AS a SET balance = a.balance + v.delta "
    "FROM unnest(CAST(:accs AS bigint[]), CAST(:deltas AS bigint[])) AS v(id, delta) "
    "WHERE a.id = v.id"
)
_PG_SET_TIERS = text(
    "UPDATE members AS m SET tier = v.tier, tier_evaluated_at = v.at "
    "FROM unnest(CAST(:ids AS bigint[]), CAST(:tiers AS varchar[]), "
    "CAST(:ats AS timestamp[])) AS v(id, tier, at) WHERE m.id = v.id"
)


def _sqlite_dt(v: dt.datetime) -> str:
    """SQLAlchemy's SQLite storage format: one format everywhere keeps string
    comparisons of datetimes in SQL correct."""
    return v.isoformat(" ", "microseconds")


def reserve_ids(s: Session, table, n: int) -> list[int]:
    """``n`` fresh primary keys for ``table``.

    SQLite: the caller holds the write lock (``BEGIN IMMEDIATE``), so the ids
    after ``max(id)`` are ours. PostgreSQL: taken from the table's sequence.
    """
    if n == 0:
        return []
    if s.get_bind().dialect.name == "postgresql":
        seq = s.scalar(select(func.pg_get_serial_sequence(table.name, "id")))
        return list(
            s.scalars(select(func.nextval(seq)).select_from(func.generate_series(1, n)))
        )
    top = s.scalar(select(func.coalesce(func.max(table.c.id), 0)))
    return list(range(top + 1, top + n + 1))


def write_rows(s: Session, table, columns: list[str], rows: list[tuple]) -> None:
    """Insert plain tuples as fast as the driver allows: COPY on PostgreSQL,
    one prepared executemany on SQLite (no per-value conversion in Python
    beyond datetimes)."""
    if not rows:
        return
    conn = s.connection()
    if conn.dialect.name == "postgresql":
        raw = conn.connection.driver_connection
        cols = ", ".join(columns)
        with raw.cursor() as cur, cur.copy(f"COPY {table.name} ({cols}) FROM STDIN") as cp:
            for r in rows:
                cp.write_row(r)
        return
    dt_cols = [i for i, c in enumerate(columns) if isinstance(table.c[c].type, DateTime)]
    if dt_cols:
        fixed = []
        for r in rows:
            r = list(r)
            for i in dt_cols:
                if r[i] is not None:
                    r[i] = _sqlite_dt(r[i])
            fixed.append(tuple(r))
        rows = fixed
    sql = (
        f"INSERT INTO {table.name} ({', '.join(columns)}) "
        f"VALUES ({', '.join('?' for _ in columns)})"
    )
    for start in range(0, len(rows), _WRITE_CHUNK):
        conn.exec_driver_sql(sql, rows[start : start + _WRITE_CHUNK])


def _write_dicts(s: Session, table, rows: list[dict], ids: list[int] | None = None) -> None:
    """Rows built by one constructor share their key order, so values() lines up."""
    if not rows:
        return
    columns = list(rows[0])
    if ids is None:
        tuples = [tuple(r.values()) for r in rows]
    else:
        columns = ["id", *columns]
        tuples = [(i, *r.values()) for i, r in zip(ids, rows, strict=True)]
    write_rows(s, table, columns, tuples)


@dataclass
class _State:
    account_id: int
    balance: int
    referrer_id: int | None
    status: str
    base_spend: int = 0  # paid orders before the horizon (lifetime only)
    ts: list = field(default_factory=list)  # paid orders at/after the horizon, sorted
    prefix: list = field(default_factory=lambda: [0])  # prefix sums of their amounts
    tier: str | None = None
    tier_at: dt.datetime | None = None
    delta: int = 0  # balance change not yet written

    def add_order(self, at: dt.datetime, amount: int) -> None:
        if not self.ts or at >= self.ts[-1]:
            self.ts.append(at)
            self.prefix.append(self.prefix[-1] + amount)
            return
        i = bisect.bisect_right(self.ts, at)  # rare: an older order arrives late
        amounts = [b - a for a, b in zip(self.prefix, self.prefix[1:], strict=False)]
        self.ts.insert(i, at)
        amounts.insert(i, amount)
        self.prefix = [0]
        for a in amounts:
            self.prefix.append(self.prefix[-1] + a)

    def remove_order(self, at: dt.datetime, amount: int) -> None:
        """Forget a refunded order so it no longer counts towards the tier."""
        i = bisect.bisect_left(self.ts, at)
        while i < len(self.ts) and self.ts[i] == at:
            if self.prefix[i + 1] - self.prefix[i] == amount:
                amounts = [b - a for a, b in zip(self.prefix, self.prefix[1:], strict=False)]
                del self.ts[i], amounts[i]
                self.prefix = [0]
                for a in amounts:
                    self.prefix.append(self.prefix[-1] + a)
                return
            i += 1
        self.base_spend -= amount  # it was before the horizon (lifetime spend only)

    def spend_before(self, at: dt.datetime, window_days: int | None) -> int:
        hi = bisect.bisect_left(self.ts, at)
        if window_days:
            lo = bisect.bisect_left(self.ts, at - dt.timedelta(days=window_days))
            return self.prefix[hi] - self.prefix[lo]
        return self.base_spend + self.prefix[hi]


@dataclass(frozen=True)
class PostedOrder:
    accrued: int
    redeemed: int
    referral_bonus: int
    tier: str | None
    rule_set_id: int | None = None
    balance: int | None = None  # the member's, right after this order (None: a guest)


class BulkPoster:
    """Buffered posting with in-memory member state. Not thread-safe; one
    instance per transaction."""

    def __init__(self, s: Session, *, actor: Actor = SYSTEM, stage: str | None = None,
                 book: RuleBook | None = None, in_time_order: bool = True) -> None:
        """``book``: the rules, if already loaded (for the members to be posted
        and their referrers); ``in_time_order=False`` lets operations come in
        any order as long as each member's come in payment order."""
        self.s = s
        self.actor = actor
        self.stage = stage
        self._placeholders: dict[str, int] = {}  # table -> last negative id handed out
        self.book = book if book is not None else load_rulebook(s)
        self.window = self.book.max_window_days
        # a version without a window counts lifetime spend, before any horizon
        self._lifetime = not self.window or any(
            not r.tier_window_days for r in self._all_rules())
        self.in_time_order = in_time_order
        self.order_ids: list[int] = []  # of the orders written, in the order posted
        self.state: dict[int, _State] = {}
        self._orders: list[dict] = []
        self._order_entries: list[list[dict]] = []
        self._other_tx: list[dict] = []
        self._other_entries: list[list[dict]] = []
        self._transfers: list[dict | None] = []
        self._last_at: dt.datetime | None = None
        self.counts = {"orders": 0, "entries": 0, "members": 0}

    # -- members ----------------------------------------------------------

    def add_members(self, rows: list[dict], s: Session | None = None) -> list[int]:
        """Bulk-create members and their accounts; returns ids in input order."""
        if not rows:
            return []
        s = s or self.s
        ids: list[int] = []
        for start in range(0, len(rows), _CHUNK):
            chunk = rows[start : start + _CHUNK]
            values = [
                {
                    "external_id": r["external_id"],
                    "joined_at": r["joined_at"],
                    "name": r.get("name", ""),
                    "email": r.get("email"),
                    "phone": r.get("phone"),
                    "segment": r.get("segment", "regular"),
                    "referrer_id": r.get("referrer_id"),
                    "status": r.get("status", "active"),
                }
                for r in chunk
            ]
            got = self._reserve(s, Member.__table__, len(values))
            self._write(s, Member.__table__, values, got)
            accs = self._reserve(s, Account.__table__, len(got))
            self._write(
                s, Account.__table__,
                [{"kind": "member", "member_id": m, "balance": 0} for m in got], accs,
            )
            for m, a, v in zip(got, accs, values, strict=True):
                self.state[m] = _State(a, 0, v["referrer_id"], v["status"])
            ids.extend(got)
        self.counts["members"] += len(ids)
        return ids

    def _all_rules(self):
        yield from (r for _, _, r in self.book.published)
        yield from (w.rules for ws in self.book.pilot_of_member.values() for w in ws)

    def prepare(self, member_ids: Iterable[int], since: dt.datetime, *, lock: bool = True,
                referrers: bool = True) -> None:
        """Load and lock existing members' state; later orders must be at/after ``since``.

        ``lock=False``: the caller holds the accounts' locks already (they are
        read, not locked again); ``referrers=False``: ``member_ids`` already
        include the referrers (theirs are not loaded)."""
        ids = sorted({m for m in member_ids if m not in self.state})
        horizon = since - dt.timedelta(days=self.window) if self.window else since
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            rows = self.s.execute(
                select(Member.id, Member.referrer_id, Member.status, Member.tier,
                       Account.id.label("acc"))
                .join(Account, Account.member_id == Member.id)
                .where(among(self.s, Member.id, chunk))
            ).all()
            if self.stage is None and lock:
                balances = lock_accounts(self.s, [r.acc for r in rows])
            else:
                balances = dict(self.s.execute(
                    select(Account.id, Account.balance)
                    .where(among(self.s, Account.id, [r.acc for r in rows]))
                ).all())
            for r in rows:
                self.state[r.id] = _State(r.acc, balances[r.acc], r.referrer_id, r.status,
                                          tier=r.tier)
            if self._lifetime:
                for mid, total in self.s.execute(
                    select(Order.member_id, func.sum(Order.amount_minor))
                    .where(among(self.s, Order.member_id, chunk), Order.status == "paid",
                           Order.paid_at < horizon)
                    .group_by(Order.member_id)
                ):
                    self.state[mid].base_spend = int(total)
            for mid, at, amount in self.s.execute(
                select(Order.member_id, Order.paid_at, Order.amount_minor)
                .where(among(self.s, Order.member_id, chunk), Order.status == "paid",
                       Order.paid_at >= horizon)
                .order_by(Order.member_id, Order.paid_at)
            ):
                self.state[mid].add_order(at, amount)
        # referrers earn bonuses, so they need state too
        refs = {st.referrer_id for m in ids if (st := self.state.get(m)) and st.referrer_id}
        refs -= self.state.keys()
        if refs and referrers:
            self.prepare(refs, since, lock=lock)

    def note_refund(self, member_id: int, paid_at: dt.datetime, amount_minor: int) -> None:
        """Tell the poster an order was refunded (by :func:`db.ledger.refund_order`
        on the same session, after a flush): it stops counting towards the tier;
        call :meth:`sync_balances` for the balances."""
        st = self.state.get(member_id)
        if st is not None:
            st.remove_order(paid_at, amount_minor)

    def balance_of(self, member_id: int) -> int:
        return self.state[member_id].balance

    def _st(self, member_id: int) -> _State:
        st = self.state.get(member_id)
        if st is None:
            raise InvalidState(f"member {member_id} was not prepared for bulk posting")
        return st

    def _clock(self, at: dt.datetime) -> None:
        if not self.in_time_order:
            return
        if self._last_at is not None and at < self._last_at:
            raise ValidationError("paid_at", "bulk operations must be posted in time order")
        self._last_at = at

    # -- operations -------------------------------------------------------

    def post(self, o: OrderIn, member_id: int | None) -> PostedOrder:
        """Buffer one paid order (redemption, accrual, referral bonus, tier)."""
        o.validate()
        self._clock(o.paid_at)
        base = {
            "order_ref": o.order_ref,
            "customer_ref": o.customer_ref,
            "member_id": member_id,
            "paid_at": o.paid_at,
            "amount_minor": o.amount_minor,
            "points_redeemed": o.points_redeemed,
            "status": "paid",
            "refunded_at": None,
            "rule_set_id": None,
            "tier": None,
            "pilot_id": None,
            "payload_hash": o.hash(),
            "created_at": clock.utcnow(),
        }
        if member_id is None:
            check_redemption(o, None, 0)
            self._orders.append(base)
            self._order_entries.append([])
            return PostedOrder(0, 0, 0, None)
        st = self._st(member_id)
        check_redemption(o, st.status, st.balance)
        balance_before = st.balance
        rules, _ = self.book.for_member(member_id, o.paid_at)
        window = rules.tier_window_days if rules else None
        spend = st.spend_before(o.paid_at, window)
        ref = self.state.get(st.referrer_id) if st.referrer_id else None
        if st.referrer_id and ref is None:
            raise InvalidState(f"referrer {st.referrer_id} was not prepared for bulk posting")
        ref_spend = None
        if ref is not None:
            ref_rules, _ = self.book.for_member(st.referrer_id, o.paid_at)
            ref_spend = ref.spend_before(
                o.paid_at, ref_rules.tier_window_days if ref_rules else None
            )
        a = decide_accrual(
            self.book, member_id, o.paid_at, o.amount_minor, spend,
            st.referrer_id if ref is not None else None, ref_spend,
            member_active=st.status == "active",
            referrer_active=ref is not None and ref.status == "active",
        )
        rs_id = a.rules.rule_set_id if a.rules else None
        base.update(rule_set_id=rs_id, tier=a.tier, pilot_id=a.pilot_id)
        rows = []
        if o.points_redeemed:
            rows.append(entry(None, "redemption", st.account_id, REDEMPTION, o.points_redeemed,
                              o.paid_at))
            st.balance -= o.points_redeemed
            st.delta -= o.points_redeemed
        if a.points:
            rows.append(entry(None, "accrual", ISSUANCE, st.account_id, a.points, o.paid_at,
                              rule_set_id=rs_id, rate_bp=a.rate_bp))
            st.balance += a.points
            st.delta += a.points
        if a.referral_points:
            rows.append(entry(None, "referral_bonus", ISSUANCE, ref.account_id,
                              a.referral_points, o.paid_at, rule_set_id=rs_id,
                              rate_bp=a.referral_rate_bp, memo=f"referral of member {member_id}"))
            ref.balance += a.referral_points
            ref.delta += a.referral_points
        st.add_order(o.paid_at, o.amount_minor)
        if a.rules is not None:
            st.tier = a.rules.tier_for(spend + o.amount_minor).name
            st.tier_at = o.paid_at
        self._orders.append(base)
        self._order_entries.append(rows)
        return PostedOrder(a.points, o.points_redeemed, a.referral_points, a.tier, rs_id,
                           balance_before - o.points_redeemed + a.points)

    def _other(self, kind: str, key: str, payload: dict, at: dt.datetime, rows: list[dict],
               transfer: dict | None = None) -> None:
        self._other_tx.append(
            {"kind": kind, "idempotency_key": key, "payload_hash": payload_hash(payload),
             "order_id": None, "actor": self.actor.name, "effective_at": at,
             "created_at": clock.utcnow()}
        )
        self._other_entries.append(rows)
        self._transfers.append(transfer)

    def redeem(self, member_id: int, points: int, at: dt.datetime, key: str,
               memo: str = "") -> None:
        self._clock(at)
        st = self._st(member_id)
        if points <= 0:
            raise ValidationError("points", "must be positive")
        if points > st.balance:
            raise InsufficientPoints(f"member {member_id} has {st.balance} points")
        st.balance -= points
        st.delta -= points
        self._other("redemption", f"redeem:{key}",
                    {"member_id": member_id, "points": points, "memo": memo}, at,
                    [entry(None, "redemption", st.account_id, REDEMPTION, points, at, memo=memo)])

    def transfer(self, from_id: int, to_id: int, points: int, at: dt.datetime, key: str) -> None:
        self._clock(at)
        src, dst = self._st(from_id), self._st(to_id)
        if from_id == to_id or points <= 0:
            raise ValidationError("points", "a transfer needs two members and positive points")
        if src.status != "active" or dst.status != "active":
            raise InvalidState("transfers need active members")
        if points > src.balance:
            raise InsufficientPoints(f"member {from_id} has {src.balance} points")
        src.balance -= points
        src.delta -= points
        dst.balance += points
        dst.delta += points
        self._other("transfer", f"transfer:{key}",
                    {"from": from_id, "to": to_id, "points": points}, at,
                    [entry(None, "transfer", src.account_id, dst.account_id, points, at,
                           memo=f"member {from_id} -> member {to_id}")],
                    {"from_member_id": from_id, "to_member_id": to_id, "points": points,
                     "created_at": at})

    # -- writing ----------------------------------------------------------

    def _reserve(self, s: Session, table, n: int) -> list[int]:
        if self.stage is None or s.get_bind().dialect.name == "postgresql":
            return reserve_ids(s, table, n)
        last = self._placeholders.get(table.name, 0)
        self._placeholders[table.name] = last - n
        return list(range(last - 1, last - n - 1, -1))

    def _write(self, s: Session, table, rows: list[dict], ids: list[int] | None = None) -> None:
        if self.stage is None:
            _write_dicts(s, table, rows, ids)
            return
        staged = STAGED.get(table.name)
        if staged is None:
            raise InvalidState(f"{table.name} cannot be staged")
        _write_dicts(s, staged, [{"import_id": self.stage, **r} for r in rows],
                     None if ids is None else ids)

    def drop_buffered(self) -> None:
        """Forget the buffered rows without writing them (the work is refused anyway)."""
        self._orders, self._order_entries = [], []
        self._other_tx, self._other_entries, self._transfers = [], [], []

    def write_stage_state(self, s: Session) -> None:
        """Staged mode: write the net balance change of every account and the
        last tier of every member (after the last :meth:`flush`)."""
        _write_dicts(s, STAGED_BALANCES, [
            {"import_id": self.stage, "account_id": st.account_id, "delta": st.delta}
            for st in self.state.values()
            if st.delta and not 0 < st.account_id <= ADJUSTMENT  # placeholders are < 0
        ])
        _write_dicts(s, STAGED_TIERS, [
            {"import_id": self.stage, "member_id": mid, "tier": st.tier,
             "tier_evaluated_at": st.tier_at}
            for mid, st in self.state.items() if st.tier_at is not None
        ])

    def flush(self, s: Session | None = None) -> None:
        """Write every buffered row in bulk statements (staged mode: into ``s``,
        and the balances and tiers only at :meth:`write_stage_state`)."""
        s = s or self.s
        if self.stage is None:
            # members before orders and the ledger, the order in which the
            # rollup refresh locks them (else each could wait for the other)
            self._write_tiers(s)
        entries: list[dict] = []
        for start in range(0, len(self._orders), _CHUNK):
            orders = self._orders[start : start + _CHUNK]
            order_ids = self._reserve(s, Order.__table__, len(orders))
            self._write(s, Order.__table__, orders, order_ids)
            self.order_ids.extend(order_ids)
            with_entries = [
                (oid, o, rows)
                for oid, o, rows in zip(
                    order_ids, orders, self._order_entries[start : start + _CHUNK], strict=True
                )
                if rows
            ]
            order_txs = [
                {"kind": "order", "idempotency_key": f"order:{o['order_ref']}",
                 "payload_hash": o["payload_hash"], "order_id": oid,
                 "actor": self.actor.name, "effective_at": o["paid_at"],
                 "created_at": o["created_at"]}
                for oid, o, _ in with_entries
            ]
            tx_ids = self._reserve(s, LedgerTransaction.__table__, len(order_txs))
            self._write(s, LedgerTransaction.__table__, order_txs, tx_ids)
            for tx, (oid, _, rows) in zip(tx_ids, with_entries, strict=True):
                for r in rows:
                    r["tx_id"] = tx
                    r["order_id"] = oid
                    entries.append(r)
        self.counts["orders"] += len(self._orders)
        for start in range(0, len(self._other_tx), _CHUNK):
            txs = self._other_tx[start : start + _CHUNK]
            tx_ids = self._reserve(s, LedgerTransaction.__table__, len(txs))
            self._write(s, LedgerTransaction.__table__, txs, tx_ids)
            transfers = []
            for tx, rows, tr in zip(
                tx_ids, self._other_entries[start : start + _CHUNK],
                self._transfers[start : start + _CHUNK], strict=True,
            ):
                for r in rows:
                    r["tx_id"] = tx
                    entries.append(r)
                if tr is not None:
                    transfers.append(tr | {"tx_id": tx})
            if transfers:
                self._write(s, Transfer.__table__, transfers,
                            self._reserve(s, Transfer.__table__, len(transfers)))
        if entries:
            self._write(s, LedgerEntry.__table__, entries,
                        self._reserve(s, LedgerEntry.__table__, len(entries)))
        self.counts["entries"] += len(entries)
        self._orders, self._order_entries = [], []
        self._other_tx, self._other_entries, self._transfers = [], [], []
        if self.stage is not None:
            return
        conn = s.connection()
        moves = [
            {"b_acc": st.account_id, "b_d": st.delta}
            for st in self.state.values()
            if st.delta and st.account_id > ADJUSTMENT
        ]
        if conn.dialect.name == "postgresql":
            # one statement, whatever the number of rows
            for start in range(0, len(moves), _WRITE_CHUNK):
                chunk = moves[start : start + _WRITE_CHUNK]
                conn.execute(_PG_MOVE_BALANCES, {"accs": [m["b_acc"] for m in chunk],
                                                 "deltas": [m["b_d"] for m in chunk]})
            moves = []
        if moves:
            t = Account.__table__
            conn.execute(
                t.update()
                .where(t.c.id == bindparam("b_acc"))
                .values(balance=t.c.balance + bindparam("b_d")),
                moves,
            )
        for st in self.state.values():
            st.delta = 0

    def _write_tiers(self, s: Session) -> None:
        """Each member's tier after their last order posted since the last flush."""
        tiers = [
            {"b_id": mid, "b_tier": st.tier, "b_at": st.tier_at}
            for mid, st in self.state.items()
            if st.tier_at is not None
        ]
        if not tiers:
            return
        conn = s.connection()
        if conn.dialect.name == "postgresql":  # one statement, whatever the number of rows
            for start in range(0, len(tiers), _WRITE_CHUNK):
                chunk = tiers[start : start + _WRITE_CHUNK]
                conn.execute(_PG_SET_TIERS, {"ids": [r["b_id"] for r in chunk],
                                             "tiers": [r["b_tier"] for r in chunk],
                                             "ats": [r["b_at"] for r in chunk]})
        else:
            m = Member.__table__
            conn.execute(
                m.update()
                .where(m.c.id == bindparam("b_id"))
                .values(tier=bindparam("b_tier"), tier_evaluated_at=bindparam("b_at")),
                tiers,
            )
        for st in self.state.values():
            st.tier_at = None

    def sync_balances(self) -> None:
        """Reload cached balances after another service changed them (flush first)."""
        if any(st.delta for st in self.state.values()):
            raise InvalidState("flush before syncing balances")
        by_acc = {st.account_id: st for st in self.state.values()}
        accs = sorted(by_acc)
        for start in range(0, len(accs), _CHUNK * 4):
            chunk = accs[start : start + _CHUNK * 4]
            for acc, bal in self.s.execute(
                select(Account.id, Account.balance).where(among(self.s, Account.id, chunk))
            ):
                by_acc[acc].balance = bal


# --------------------------------------------------------------------------
# the API's batch


def post_batch(s: Session, orders: list[OrderIn], *, actor: Actor = SYSTEM
               ) -> list[OrderResult | LoyaltyError]:
    """The body of :func:`post_orders` (its accounts locked): the same results, entries,
    balances and tiers as :func:`db.ledger.post_order` for each order in
    :func:`db.ledger.batch_order`, from a fixed number of statements.

    The caller has locked every account the batch can touch
    (:func:`db.ledger.lock_customers`). The orders already recorded under the
    batch's order ids are read in one query (a replay answers as the first
    post did; another payload under the id is refused), the members and
    referrers with their qualifying spend in a few more; the accruals are
    decided in memory by :class:`BulkPoster` (the engine's
    :func:`db.ledger.decide_accrual` and :func:`db.ledger.check_redemption`),
    and written by its :meth:`BulkPoster.flush`. A refused order changes
    nothing; a later order with the same id is decided on its own, as it
    would be one by one.
    """
    results: list[OrderResult | LoyaltyError | None] = [None] * len(orders)
    seq = batch_order(orders)
    hashes: dict[int, str] = {}
    for i in seq:
        try:
            orders[i].validate()
        except LoyaltyError as exc:
            results[i] = exc
        else:
            hashes[i] = orders[i].hash()

    # orders recorded before: (payload hash, replayed result) by order id
    known: dict[str, tuple[str, OrderResult]] = {}
    refs = sorted({orders[i].order_ref for i in hashes})
    if refs:
        rows = s.execute(
            select(Order.id, Order.order_ref, Order.payload_hash, Order.member_id, Order.tier,
                   Order.rule_set_id).where(among(s, Order.order_ref, refs))
        ).all()
        sums: dict[int, dict[str, int]] = {}
        if rows:
            for oid, kind, total in s.execute(
                select(LedgerEntry.order_id, LedgerEntry.kind, func.sum(LedgerEntry.amount))
                .where(among(s, LedgerEntry.order_id, [r.id for r in rows]))
                .group_by(LedgerEntry.order_id, LedgerEntry.kind)
            ):
                sums.setdefault(oid, {})[kind] = int(total)
        for r in rows:
            got = sums.get(r.id, {})
            known[r.order_ref] = (r.payload_hash, OrderResult(
                r.id, r.member_id, got.get("accrual", 0), got.get("redemption", 0),
                got.get("referral_bonus", 0), r.tier, r.rule_set_id, True))

    fresh = [i for i in hashes if orders[i].order_ref not in known]
    customers = sorted({orders[i].customer_ref for i in fresh})
    member_of: dict[str, int] = {}
    ids: set[int] = set()
    if customers:
        for mid, ext, referrer in s.execute(
            select(Member.id, Member.external_id, Member.referrer_id)
            .where(among(s, Member.external_id, customers))
        ):
            member_of[ext] = mid
            ids.add(mid)
            if referrer:
                ids.add(referrer)
    poster = BulkPoster(s, actor=actor, book=load_rulebook(s, sorted(ids)),
                        in_time_order=False)
    if ids:
        since = min(orders[i].paid_at for i in fresh if orders[i].customer_ref in member_of)
        poster.prepare(ids, since, lock=False, referrers=False)

    # posted in this batch: order id -> (payload hash, position, what it did, member)
    posted: dict[str, tuple[str, int, PostedOrder, int | None]] = {}
    written: list[int] = []  # positions -> index in orders
    again: list[int] = []  # replays of an order posted earlier in this batch
    for i in seq:
        h = hashes.get(i)
        if h is None:
            continue
        o = orders[i]
        first = known.get(o.order_ref)
        first_h = first[0] if first else posted[o.order_ref][0] if o.order_ref in posted else None
        if first_h is not None:
            if first_h != h:
                results[i] = IdempotencyConflict(
                    f"order {o.order_ref!r} was already posted with different details")
            elif first is not None:
                results[i] = first[1]
            else:
                again.append(i)
            continue
        mid = member_of.get(o.customer_ref)
        try:
            p = poster.post(o, mid)
        except LoyaltyError as exc:
            results[i] = exc
            continue
        posted[o.order_ref] = (h, len(written), p, mid)
        written.append(i)
    poster.flush()
    for replay, indexes in ((False, written), (True, again)):
        for i in indexes:
            _h, k, p, mid = posted[orders[i].order_ref]
            results[i] = OrderResult(poster.order_ids[k], mid, p.accrued, p.redeemed,
                                     p.referral_bonus, p.tier, p.rule_set_id,
                                     replayed=replay, balance=None if replay else p.balance)
    return results  # type: ignore[return-value]


@transactional
def post_orders(s: Session, orders: list[OrderIn], *, actor: Actor = SYSTEM
                ) -> list[OrderResult | LoyaltyError]:
    """Post many orders in one transaction, exactly as :func:`db.ledger.post_order` would
    one by one in :func:`db.ledger.batch_order` (customer by customer, each one's in
    payment order): a refused order is answered with its error and changes nothing, the others
    go in. Results come in the order given.

    Set-based (:func:`post_batch`): after every account the batch can
    touch is locked, the batch's known orders are read in one query, the
    accruals decided in memory by the engine's own rule code, and orders,
    transactions, entries, balances and tiers written in a few multi-row
    statements. If a concurrent request wrote one of these order ids first
    (a guest's order locks no account), the batch is posted again one order
    at a time (:func:`db.ledger.post_orders_each`), which replays what the other wrote.
    """
    if len(orders) > MAX_BATCH:
        raise ValidationError("orders", f"at most {MAX_BATCH} orders at once")
    cache_rulebook(s)  # a batch publishes no rules: read them once
    lock_customers(s, [o.customer_ref for o in orders])
    dialect = s.get_bind().dialect
    raced = (IntegrityError, dialect.loaded_dbapi.IntegrityError)  # COPY raises the driver's
    try:
        with s.begin_nested():
            return post_batch(s, orders, actor=actor)
    except raced:
        return post_each_locked(s, orders, actor)
