"""The points engine: every balance change, each in one transaction.

Every service takes a ``Session`` (to join the caller's transaction) or a
:class:`~db.session.Database` (then it runs in its own retried write
transaction) - see :func:`db.session.transactional`.

Locking: the member accounts an operation touches are locked first
(``SELECT ... FOR UPDATE`` in ascending id order on PostgreSQL, so two
operations can never deadlock on each other; SQLite's ``BEGIN IMMEDIATE``
serialises writers anyway). Idempotency is re-checked after the locks are
held, so two concurrent posts of the same order write it once.

Accrual: ``floor(amount x accrual rate / point value)`` at the tier the
member's qualifying spend (paid orders strictly before this one, within the
tier window) reaches under the version in force at the payment time - or the
pilot's version for a pilot-group member during the pilot.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass

from sqlalchemy import (
    and_,
    any_,
    bindparam,
    case,
    func,
    insert,
    literal,
    select,
    union_all,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from db import clock
from db.actor import SYSTEM, Actor
from db.errors import (
    DatabaseBusy,
    IdempotencyConflict,
    InsufficientPoints,
    InvalidState,
    LoyaltyError,
    NotFound,
    ValidationError,
)
from db.i18n import N_, Number
from db.models import (
    Account,
    LedgerEntry,
    LedgerTransaction,
    Member,
    Order,
    OrderRefund,
    ProgramSettings,
    Transfer,
)
from db.rules import RuleBook, Rules, cache_rulebook, load_rulebook
from db.session import Database, transactional

ISSUANCE, REDEMPTION, BREAKAGE, ADJUSTMENT = 1, 2, 3, 4
MAX_POINTS = 10**12
MAX_AMOUNT_MINOR = 10**13


# an order is recorded once paid: a paid_at later than now (beyond the clock
# skew between the shop and us) is a wrong date, and would keep a rule
# version from being published before it
CLOCK_SKEW = dt.timedelta(minutes=5)



def future_problem(paid_at: dt.datetime, now: dt.datetime | None = None) -> str | None:
    """Why ``paid_at`` (naive UTC, or aware) is too far ahead of ``now``; None if it is not."""
    now = now or clock.utcnow()
    if paid_at.tzinfo is not None:
        paid_at = paid_at.astimezone(dt.UTC).replace(tzinfo=None)
    if paid_at <= now + CLOCK_SKEW:
        return None
    minutes = int(CLOCK_SKEW.total_seconds() // 60)
    return (
        f"{paid_at:%Y-%m-%d %H:%M:%S} UTC is in the future (now is {now:%Y-%m-%d %H:%M:%S} "
        f"UTC; at most {minutes} minutes ahead are accepted): record an order once it is paid"
    )


def payload_hash(payload: dict) -> str:
    return hashlib.sha256(
        json.dumps(payload, sort_keys=True, default=str).encode()
    ).hexdigest()


# --------------------------------------------------------------------------
# members and accounts


def create_member(
    s: Session,
    external_id: str,
    joined_at: dt.datetime,
    *,
    name: str = "",
    email: str | None = None,
    phone: str | None = None,
    segment: str = "regular",
    referrer_id: int | None = None,
) -> int:
    """A member and their points account."""
    external_id = (external_id or "").strip()
    if not external_id or len(external_id) > 64:
        raise ValidationError("customer_id", "must be 1-64 characters")
    m = Member(
        external_id=external_id,
        joined_at=joined_at,
        name=name,
        email=email,
        phone=phone,
        segment=segment,
        referrer_id=referrer_id,
        status="active",
    )
    s.add(m)
    s.flush()
    s.add(Account(kind="member", member_id=m.id, balance=0))
    s.flush()
    return m.id


def account_of(s: Session, member_id: int) -> int:
    acc = s.scalar(select(Account.id).where(Account.member_id == member_id))
    if acc is None:
        raise NotFound(N_("member %(id)s does not exist", id=member_id))
    return acc


def balance(s: Session, member_id: int) -> int:
    b = s.scalar(select(Account.balance).where(Account.member_id == member_id))
    if b is None:
        raise NotFound(N_("member %(id)s does not exist", id=member_id))
    return b


def among(s: Session, column, values):
    """``column IN values``; on PostgreSQL ``column = ANY(array)``, one
    parameter: a batch's IN list of hundreds costs more to render than to run."""
    values = list(values)
    if s.get_bind().dialect.name == "postgresql":
        return column == any_(literal(values, ARRAY(column.type)))
    return column.in_(values)


def lock_accounts(s: Session, account_ids) -> dict[int, int]:
    """Lock member accounts in ascending id order; returns their balances."""
    ids = sorted({a for a in account_ids if a is not None})
    if not ids:
        return {}
    rows = s.execute(
        select(Account.id, Account.balance)
        .where(among(s, Account.id, ids))
        .order_by(Account.id)
        .with_for_update()
    ).all()
    return {r.id: r.balance for r in rows}


def _new_tx(
    s: Session,
    kind: str,
    key: str,
    phash: str,
    at: dt.datetime,
    *,
    order_id: int | None = None,
    actor: Actor = SYSTEM,
) -> int:
    return s.execute(
        insert(LedgerTransaction)
        .values(
            kind=kind,
            idempotency_key=key,
            payload_hash=phash,
            effective_at=at,
            order_id=order_id,
            actor=actor.name,
            created_at=clock.utcnow(),
        )
        .returning(LedgerTransaction.id)
    ).scalar_one()


def _existing_tx(s: Session, key: str, phash: str) -> int | None:
    row = s.execute(
        select(LedgerTransaction.id, LedgerTransaction.payload_hash).where(
            LedgerTransaction.idempotency_key == key
        )
    ).first()
    if row is None:
        return None
    if row.payload_hash != phash:
        raise IdempotencyConflict(
            f"idempotency key {key!r} was already used for a different operation"
        )
    return row.id


def post_entries(s: Session, rows: list[dict]) -> None:
    """Insert entries and move the cached member balances with them.

    The CHECK constraint on accounts refuses a negative member balance even
    if a caller's own check were wrong.
    """
    if not rows:
        return
    s.execute(insert(LedgerEntry), rows)
    delta: dict[int, int] = {}
    for r in rows:
        delta[r["debit_account_id"]] = delta.get(r["debit_account_id"], 0) - r["amount"]
        delta[r["credit_account_id"]] = delta.get(r["credit_account_id"], 0) + r["amount"]
    params = [{"b_acc": a, "b_d": d} for a, d in sorted(delta.items()) if a > ADJUSTMENT and d]
    if params:
        s.connection().execute(_MOVE_BALANCE, params)


_acc = Account.__table__
_MOVE_BALANCE = (
    _acc.update()
    .where(_acc.c.id == bindparam("b_acc"), _acc.c.kind == "member")
    .values(balance=_acc.c.balance + bindparam("b_d"))
)


def entry(
    tx_id: int,
    kind: str,
    debit: int,
    credit: int,
    amount: int,
    at: dt.datetime,
    **extra,
) -> dict:
    row = {
        "tx_id": tx_id,
        "kind": kind,
        "debit_account_id": debit,
        "credit_account_id": credit,
        "amount": amount,
        "effective_at": at,
        "order_id": None,
        "rule_set_id": None,
        "rate_bp": None,
        "reverses_entry_id": None,
        "memo": "",
    }
    row.update(extra)
    return row


# --------------------------------------------------------------------------
# orders


@dataclass(frozen=True)
class OrderIn:
    order_ref: str
    customer_ref: str
    paid_at: dt.datetime
    amount_minor: int
    points_redeemed: int = 0

    def validate(self, now: dt.datetime | None = None) -> None:
        """Refuse a malformed order, or one paid after ``now`` (default: the
        clock) plus ``CLOCK_SKEW``."""
        if not (self.order_ref or "").strip() or len(self.order_ref) > 64:
            raise ValidationError("order_id", "must be 1-64 characters")
        if not (self.customer_ref or "").strip() or len(self.customer_ref) > 64:
            raise ValidationError("customer_id", "must be 1-64 characters")
        if not isinstance(self.paid_at, dt.datetime):
            raise ValidationError("paid_at", "must be a date and time")
        if (why := future_problem(self.paid_at, now)) is not None:
            raise ValidationError("paid_at", why)
        if not isinstance(self.amount_minor, int) or not 0 <= self.amount_minor <= MAX_AMOUNT_MINOR:
            raise ValidationError("amount", "must be a non-negative amount")
        if (
            not isinstance(self.points_redeemed, int)
            or not 0 <= self.points_redeemed <= MAX_POINTS
        ):
            raise ValidationError("points_redeemed", "must be a non-negative whole number")

    def hash(self) -> str:
        """Fingerprint of what was posted under this order id (hot in bulk
        imports, so a joined string rather than JSON)."""
        key = (
            f"{self.customer_ref}\x1f{self.paid_at.isoformat()}\x1f"
            f"{self.amount_minor}\x1f{self.points_redeemed}"
        )
        return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class OrderResult:
    order_id: int
    member_id: int | None
    accrued: int
    redeemed: int
    referral_bonus: int
    tier: str | None
    rule_set_id: int | None
    replayed: bool = False
    # the member's balance right after this posting (None for a guest or a replay)
    balance: int | None = None


@dataclass(frozen=True)
class Accrual:
    """What one order earns: the pure decision shared by both posting paths."""

    rules: Rules | None
    pilot_id: int | None
    tier: str | None
    rate_bp: int
    points: int
    referral_rate_bp: int
    referral_points: int
    referrer_tier: str | None


def decide_accrual(
    book: RuleBook,
    member_id: int,
    paid_at: dt.datetime,
    amount_minor: int,
    spend_before: int,
    referrer_id: int | None,
    referrer_spend_before: int | None,
    *,
    member_active: bool = True,
    referrer_active: bool = True,
) -> Accrual:
    rules, pilot_id = book.for_member(member_id, paid_at)
    if rules is None:
        return Accrual(None, None, None, 0, 0, 0, 0, None)
    tier = rules.tier_for(spend_before)
    points = rules.points_for(amount_minor, tier.accrual_rate_bp) if member_active else 0
    ref_rate = ref_points = 0
    ref_tier = None
    if referrer_id is not None and referrer_active and referrer_spend_before is not None:
        ref_rules, _ = book.for_member(referrer_id, paid_at)
        if ref_rules is not None:
            rt = ref_rules.tier_for(referrer_spend_before)
            ref_tier = rt.name
            ref_rate = rt.referral_rate_bp
            ref_points = ref_rules.points_for(amount_minor, ref_rate)
    return Accrual(
        rules, pilot_id, tier.name, tier.accrual_rate_bp, points, ref_rate, ref_points, ref_tier
    )


def qualifying_spend(
    s: Session, member_id: int, before: dt.datetime, window_days: int | None
) -> int:
    """Sum of the member's paid orders strictly before ``before`` (within the window)."""
    q = select(func.coalesce(func.sum(Order.amount_minor), 0)).where(
        Order.member_id == member_id, Order.status == "paid", Order.paid_at < before
    )
    if window_days:
        q = q.where(Order.paid_at >= before - dt.timedelta(days=window_days))
    return int(s.scalar(q))


def check_redemption(o: OrderIn, status: str | None, balance: int) -> None:
    """Refuse the order's redemption if its customer cannot make it: a guest
    (``status`` None), a member who is not active, or too few points."""
    if not o.points_redeemed:
        return
    if status is None:
        raise ValidationError("points_redeemed", "a guest (non-member) cannot redeem points")
    if status != "active":
        raise InvalidState(f"member {o.customer_ref} is {status} and cannot redeem points")
    if o.points_redeemed > balance:
        raise InsufficientPoints(
            f"member {o.customer_ref} has {balance} points, cannot redeem {o.points_redeemed}"
        )


def _order_result(s: Session, order_id: int, replayed: bool) -> OrderResult:
    o = s.get(Order, order_id)
    sums = dict(
        s.execute(
            select(LedgerEntry.kind, func.sum(LedgerEntry.amount))
            .where(LedgerEntry.order_id == order_id)
            .group_by(LedgerEntry.kind)
        ).all()
    )
    return OrderResult(
        o.id,
        o.member_id,
        int(sums.get("accrual", 0)),
        int(sums.get("redemption", 0)),
        int(sums.get("referral_bonus", 0)),
        o.tier,
        o.rule_set_id,
        replayed,
    )


@transactional
def post_order(s: Session, o: OrderIn, *, actor: Actor = SYSTEM) -> OrderResult:
    """Record a paid order: redemption, accrual, referral bonus, tier update.

    Idempotent on the order id: the same payload again returns the first
    result; a different payload under the same id is an error.
    """
    o.validate()
    phash = o.hash()

    def existing() -> OrderResult | None:
        row = s.execute(
            select(Order.id, Order.payload_hash).where(Order.order_ref == o.order_ref)
        ).first()
        if row is None:
            return None
        if row.payload_hash != phash:
            raise IdempotencyConflict(
                f"order {o.order_ref!r} was already posted with different details"
            )
        return _order_result(s, row.id, True)

    if (r := existing()) is not None:
        return r
    m = s.execute(
        select(Member.id, Member.referrer_id, Member.status, Account.id.label("acc"))
        .join(Account, Account.member_id == Member.id)
        .where(Member.external_id == o.customer_ref)
    ).first()
    if m is None:
        check_redemption(o, None, 0)
        oid = s.execute(
            insert(Order)
            .values(
                order_ref=o.order_ref,
                customer_ref=o.customer_ref,
                member_id=None,
                paid_at=o.paid_at,
                amount_minor=o.amount_minor,
                points_redeemed=0,
                status="paid",
                payload_hash=phash,
                created_at=clock.utcnow(),
            )
            .returning(Order.id)
        ).scalar_one()
        return OrderResult(oid, None, 0, 0, 0, None, None)

    acc = m.acc
    ref = s.execute(
        select(Member.id, Member.status, Account.id.label("acc"))
        .join(Account, Account.member_id == Member.id)
        .where(Member.id == m.referrer_id)
    ).first() if m.referrer_id else None
    balances = lock_accounts(s, [acc, ref.acc if ref else None])
    if (r := existing()) is not None:  # posted while we waited for the lock
        return r
    check_redemption(o, m.status, balances[acc])
    book = load_rulebook(s, [m.id] + ([ref.id] if ref else []))
    rules_now, _ = book.for_member(m.id, o.paid_at)
    window = rules_now.tier_window_days if rules_now else None
    spend = qualifying_spend(s, m.id, o.paid_at, window)
    ref_spend = None
    if ref:
        ref_rules, _ = book.for_member(ref.id, o.paid_at)
        ref_spend = qualifying_spend(
            s, ref.id, o.paid_at, ref_rules.tier_window_days if ref_rules else None
        )
    a = decide_accrual(
        book, m.id, o.paid_at, o.amount_minor, spend,
        ref.id if ref else None, ref_spend,
        member_active=m.status == "active",
        referrer_active=bool(ref) and ref.status == "active",
    )
    if a.rules is not None:
        # the member before the order and the ledger, the order in which the
        # rollup refresh locks them (else each could wait for the other)
        s.execute(
            update(Member)
            .where(Member.id == m.id)
            .values(tier=a.rules.tier_for(spend + o.amount_minor).name,
                    tier_evaluated_at=o.paid_at)
        )
    oid = s.execute(
        insert(Order)
        .values(
            order_ref=o.order_ref,
            customer_ref=o.customer_ref,
            member_id=m.id,
            paid_at=o.paid_at,
            amount_minor=o.amount_minor,
            points_redeemed=o.points_redeemed,
            status="paid",
            rule_set_id=a.rules.rule_set_id if a.rules else None,
            tier=a.tier,
            pilot_id=a.pilot_id,
            payload_hash=phash,
            created_at=clock.utcnow(),
        )
        .returning(Order.id)
    ).scalar_one()
    tx = None  # set below once there is an entry to group
    rows = []
    rs_id = a.rules.rule_set_id if a.rules else None
    if o.points_redeemed or a.points or a.referral_points:
        tx = _new_tx(s, "order", f"order:{o.order_ref}", phash, o.paid_at, order_id=oid,
                     actor=actor)
    if o.points_redeemed:
        rows.append(entry(tx, "redemption", acc, REDEMPTION, o.points_redeemed, o.paid_at,
                          order_id=oid))
    if a.points:
        rows.append(entry(tx, "accrual", ISSUANCE, acc, a.points, o.paid_at, order_id=oid,
                          rule_set_id=rs_id, rate_bp=a.rate_bp))
    if a.referral_points:
        rows.append(entry(tx, "referral_bonus", ISSUANCE, ref.acc, a.referral_points, o.paid_at,
                          order_id=oid, rule_set_id=rs_id, rate_bp=a.referral_rate_bp,
                          memo=f"referral of member {m.id}"))
    post_entries(s, rows)
    return OrderResult(oid, m.id, a.points, o.points_redeemed, a.referral_points, a.tier, rs_id,
                       balance=balances[acc] - o.points_redeemed + a.points)


def post_order_safely(db: Database, o: OrderIn, *, actor: Actor = SYSTEM) -> OrderResult:
    """``post_order`` in its own transaction; a concurrent duplicate that won
    the unique-key race is answered from the row it wrote."""
    try:
        return post_order(db, o, actor=actor)
    except IntegrityError:
        return post_order(db, o, actor=actor)


def lock_customers(s: Session, customer_refs) -> None:
    """Lock, in account-id order and in one statement, the accounts posting
    these customers' orders can touch: theirs and their referrers'. Many orders
    in one transaction lock everything first, so two such transactions (or one
    and a single posting) never wait for each other in a cycle."""
    refs = sorted(set(customer_refs))
    if not refs:
        return
    rows = s.execute(
        select(Member.referrer_id, Account.id.label("acc"))
        .join(Account, Account.member_id == Member.id)
        .where(among(s, Member.external_id, refs))
    ).all()
    accounts = {r.acc for r in rows}
    referrers = {r.referrer_id for r in rows if r.referrer_id}
    if referrers:
        accounts |= set(s.scalars(select(Account.id).where(among(s, Account.member_id, referrers))))
    if accounts:
        lock_accounts(s, accounts)


MAX_BATCH = 500


@transactional
def post_orders_each(s: Session, orders: list[OrderIn], *, actor: Actor = SYSTEM
                     ) -> list[OrderResult | LoyaltyError]:
    """The reference batch: each order through :func:`post_order` in its own
    savepoint, in the order :func:`batch_order` gives. The set-based
    :func:`db.bulk.post_orders` gives the same results."""
    if len(orders) > MAX_BATCH:
        raise ValidationError("orders", f"at most {MAX_BATCH} orders at once")
    cache_rulebook(s)
    lock_customers(s, [o.customer_ref for o in orders])
    return post_each_locked(s, orders, actor)


def batch_order(orders: list[OrderIn]) -> list[int]:
    """Indexes of ``orders`` in the order a batch posts them: by customer, each
    customer's in payment order (ties as given)."""
    return sorted(range(len(orders)), key=lambda i: (orders[i].customer_ref, orders[i].paid_at))


def post_each_locked(s: Session, orders: list[OrderIn], actor: Actor
               ) -> list[OrderResult | LoyaltyError]:
    results: list[OrderResult | LoyaltyError | None] = [None] * len(orders)
    for i in batch_order(orders):
        for attempt in (1, 2):
            try:
                with s.begin_nested():
                    results[i] = post_order(s, orders[i], actor=actor)
                break
            except IntegrityError:
                if attempt == 2:  # pragma: no cover - a twin cannot commit twice
                    raise
                continue  # a concurrent twin committed the order: the retry replays it
            except DatabaseBusy:
                raise
            except LoyaltyError as exc:
                results[i] = exc
                break
    return results  # type: ignore[return-value]


@dataclass(frozen=True)
class RefundResult:
    order_id: int
    reversed_accrual: int
    restored_redemption: int
    reversed_referral: int
    unrecovered: int  # points already spent that could not be clawed back
    replayed: bool = False
    amount_minor: int = 0  # money this refund gave back
    remaining_minor: int = 0  # money still paid on the order after it
    status: str = "refunded"  # the order's status after it


MAX_REFUND_REF = 64


@transactional
def refund_order(
    s: Session,
    order_ref: str,
    *,
    at: dt.datetime | None = None,
    actor: Actor = SYSTEM,
    amount_minor: int | None = None,
    refund_ref: str | None = None,
) -> RefundResult:
    """Refund an order, whole or in part.

    Without ``amount_minor`` the rest of the order is refunded (idempotent on
    the order id). A part refund names the shop's ``refund_ref`` (its
    idempotency key with the order id) and the money given back; a part
    refund of everything that remains is the final refund.

    Points follow the money: after refunds totalling R of an order paid P, the
    order's accrual, referral bonus and redeemed points stand reversed by
    ``floor(points * R / P)``, and by all of them after the final refund, so
    no rounding is lost over several part refunds. Redeemed points come back
    first, so a clawback can use them. A balance never goes below zero: if the
    member (or referrer) has already spent the points, the clawback takes what
    is there and reports the rest as ``unrecovered`` (also in the entry memo).
    """
    at = at or clock.utcnow()
    partial_request = amount_minor is not None
    if partial_request:
        if isinstance(amount_minor, bool) or not isinstance(amount_minor, int):
            raise ValidationError("amount_minor", "must be a whole number of minor units")
        if amount_minor <= 0:
            raise ValidationError("amount_minor", "a part refund gives back a positive amount")
        if amount_minor > MAX_AMOUNT_MINOR:
            raise ValidationError("amount_minor", "too large")
        refund_ref = (refund_ref or "").strip()
        if not refund_ref:
            raise ValidationError("refund_ref", "a part refund needs the shop's refund id")
        if len(refund_ref) > MAX_REFUND_REF:
            raise ValidationError("refund_ref", f"at most {MAX_REFUND_REF} characters")
        # hashed: unambiguous whatever the ids contain, and within the key's 128
        key = "refund-part:" + hashlib.sha256(
            json.dumps([order_ref, refund_ref]).encode()).hexdigest()
        phash = payload_hash({"order_ref": order_ref, "refund_ref": refund_ref,
                              "amount_minor": amount_minor})
    else:
        key = f"refund:{order_ref}"
        phash = payload_hash({"order_ref": order_ref})
    o = s.execute(
        select(Order).where(Order.order_ref == order_ref).with_for_update()
    ).scalar_one_or_none()
    if o is None:
        raise NotFound(f"order {order_ref!r} does not exist")
    if (tx := _existing_tx(s, key, phash)) is not None:
        return _refund_result(s, tx, replayed=True)
    if o.status == "refunded":
        if not partial_request:  # the whole refund was made as a final part refund
            last = s.scalar(select(func.max(LedgerTransaction.id)).where(
                LedgerTransaction.order_id == o.id, LedgerTransaction.kind == "refund"))
            if last is not None:
                return _refund_result(s, last, replayed=True)
        raise InvalidState(f"order {order_ref} is already refunded in full")
    originals = s.execute(
        select(LedgerEntry).where(
            LedgerEntry.order_id == o.id,
            LedgerEntry.kind.in_(("accrual", "redemption", "referral_bonus")),
        ).order_by(LedgerEntry.id)
    ).scalars().all()
    accounts = {e.credit_account_id for e in originals} | {e.debit_account_id for e in originals}
    balances = lock_accounts(s, [a for a in accounts if a > ADJUSTMENT])
    s.refresh(o)
    if (tx := _existing_tx(s, key, phash)) is not None:
        return _refund_result(s, tx, replayed=True)
    if o.status == "refunded":
        raise InvalidState(f"order {order_ref} is already refunded in full")
    if at < o.paid_at:
        raise ValidationError("refunded_at", "a refund cannot precede the payment")
    remaining = o.amount_minor
    if partial_request and amount_minor > remaining:
        raise ValidationError(
            "amount_minor", f"only {remaining} (minor units) of order {order_ref} "
            f"remains paid; a refund cannot give back more")
    give_back = remaining if not partial_request else amount_minor
    final = give_back == remaining
    paid_total = o.amount_minor + o.refunded_minor
    before, after = o.refunded_minor, o.refunded_minor + give_back

    def due(points: int) -> int:
        """Points of an original entry this refund reverses."""
        done = points * before // paid_total if paid_total else 0
        upto = points if final else points * after // paid_total
        return upto - done

    tx = _new_tx(s, "refund" if final else "partial_refund", key, phash, at,
                 order_id=o.id, actor=actor)
    rows: list[dict] = []
    unrecovered = 0
    for e in (e for e in originals if e.kind == "redemption"):
        if (n := due(e.amount)) > 0:
            rows.append(entry(tx, "reversal", REDEMPTION, e.debit_account_id, n, at,
                              order_id=o.id, reverses_entry_id=e.id, memo="refund: redemption"))
            balances[e.debit_account_id] += n
    for e in (e for e in originals if e.kind in ("accrual", "referral_bonus")):
        n = due(e.amount)
        take = min(n, balances[e.credit_account_id])
        short = n - take
        unrecovered += short
        if take > 0:
            rows.append(entry(tx, "reversal", e.credit_account_id, ISSUANCE, take, at,
                              order_id=o.id, reverses_entry_id=e.id,
                              memo=f"refund: {e.kind}"
                              + (f"; {short} unrecovered" if short else "")))
            balances[e.credit_account_id] -= take
    post_entries(s, rows)
    s.add(OrderRefund(order_id=o.id, tx_id=tx, refund_ref=refund_ref or "",
                      amount_minor=give_back, partial=not final, unrecovered=unrecovered,
                      remaining_minor=0 if final else remaining - give_back, refunded_at=at))
    if final:
        o.status = "refunded"
        o.refunded_at = at
    else:
        o.amount_minor = remaining - give_back
        o.refunded_minor = after
    if o.member_id is not None:
        _reevaluate_tier(s, o.member_id, at)
    s.flush()
    return _refund_result(s, tx)


def _refund_result(s: Session, tx_id: int, replayed: bool = False) -> RefundResult:
    """What the refund written by transaction ``tx_id`` did."""
    orig = LedgerEntry.__table__.alias("orig")
    e = LedgerEntry.__table__
    got = {"accrual": 0, "redemption": 0, "referral_bonus": 0}
    for kind, amount in s.execute(
        select(orig.c.kind, func.sum(e.c.amount))
        .join(orig, orig.c.id == e.c.reverses_entry_id)
        .where(e.c.tx_id == tx_id, e.c.kind == "reversal")
        .group_by(orig.c.kind)
    ):
        got[kind] = int(amount)
    row = s.execute(
        select(OrderRefund.order_id, OrderRefund.amount_minor, OrderRefund.unrecovered,
               OrderRefund.remaining_minor, OrderRefund.partial)
        .where(OrderRefund.tx_id == tx_id)
    ).one()
    return RefundResult(
        row.order_id, got["accrual"], got["redemption"], got["referral_bonus"],
        int(row.unrecovered), replayed, int(row.amount_minor), int(row.remaining_minor),
        "paid" if row.partial else "refunded",
    )


def _reevaluate_tier(s: Session, member_id: int, at: dt.datetime) -> None:
    book = load_rulebook(s, [member_id])
    rules, _ = book.for_member(member_id, at)
    if rules is None:
        return
    spend = qualifying_spend(
        s, member_id, at + dt.timedelta(microseconds=1), rules.tier_window_days
    )
    s.execute(
        update(Member)
        .where(Member.id == member_id)
        .values(tier=rules.tier_for(spend).name, tier_evaluated_at=at)
    )


# --------------------------------------------------------------------------
# redemptions, transfers, adjustments


def _check_points(points, field: str = "points") -> None:
    if not isinstance(points, int) or isinstance(points, bool) or not 0 < points <= MAX_POINTS:
        raise ValidationError(field, N_("must be a positive whole number of points"))


def _active_member(s: Session, member_id: int) -> Member:
    m = s.get(Member, member_id)
    if m is None:
        raise NotFound(N_("member %(id)s does not exist", id=member_id))
    return m


@transactional
def redeem(
    s: Session,
    member_id: int,
    points: int,
    *,
    key: str,
    at: dt.datetime | None = None,
    memo: str = "",
    actor: Actor = SYSTEM,
) -> int:
    """Spend points on a reward or voucher; refused below zero. Returns the tx id."""
    _check_points(points)
    at = at or clock.utcnow()
    phash = payload_hash({"member_id": member_id, "points": points, "memo": memo})
    if (tx := _existing_tx(s, f"redeem:{key}", phash)) is not None:
        return tx
    m = _active_member(s, member_id)
    if m.status != "active":
        raise InvalidState(f"member {member_id} is {m.status} and cannot redeem points")
    acc = account_of(s, member_id)
    bal = lock_accounts(s, [acc])[acc]
    if (tx := _existing_tx(s, f"redeem:{key}", phash)) is not None:
        return tx
    if points > bal:
        raise InsufficientPoints(f"member {member_id} has {bal} points, cannot redeem {points}")
    tx = _new_tx(s, "redemption", f"redeem:{key}", phash, at, actor=actor)
    post_entries(s, [entry(tx, "redemption", acc, REDEMPTION, points, at, memo=memo)])
    return tx


@transactional
def transfer(
    s: Session,
    from_member_id: int,
    to_member_id: int,
    points: int,
    *,
    key: str,
    at: dt.datetime | None = None,
    actor: Actor = SYSTEM,
) -> int:
    """Move points between members: one entry, so both legs or neither."""
    _check_points(points)
    if from_member_id == to_member_id:
        raise ValidationError("to_member", "cannot transfer points to the same member")
    at = at or clock.utcnow()
    phash = payload_hash({"from": from_member_id, "to": to_member_id, "points": points})
    if (tx := _existing_tx(s, f"transfer:{key}", phash)) is not None:
        return tx
    src, dst = _active_member(s, from_member_id), _active_member(s, to_member_id)
    for m in (src, dst):
        if m.status != "active":
            raise InvalidState(f"member {m.id} is {m.status}; transfers need active members")
    a_from, a_to = account_of(s, from_member_id), account_of(s, to_member_id)
    bal = lock_accounts(s, [a_from, a_to])
    if (tx := _existing_tx(s, f"transfer:{key}", phash)) is not None:
        return tx
    if points > bal[a_from]:
        raise InsufficientPoints(
            f"member {from_member_id} has {bal[a_from]} points, cannot transfer {points}"
        )
    tx = _new_tx(s, "transfer", f"transfer:{key}", phash, at, actor=actor)
    post_entries(s, [entry(tx, "transfer", a_from, a_to, points, at,
                           memo=f"member {from_member_id} -> member {to_member_id}")])
    s.add(Transfer(from_member_id=from_member_id, to_member_id=to_member_id, points=points,
                   tx_id=tx, created_at=at))
    s.flush()
    return tx


def post_adjustment(
    s: Session,
    member_id: int,
    points: int,
    *,
    key: str,
    at: dt.datetime,
    memo: str,
    actor: Actor,
) -> int:
    """One adjustment entry (+ credits, - debits the member) inside the
    caller's transaction; the caller (an approval) holds the decision."""
    if not isinstance(points, int) or isinstance(points, bool) or points == 0:
        raise ValidationError("points", N_("must be a non-zero whole number"))
    phash = payload_hash({"member_id": member_id, "points": points})
    if (tx := _existing_tx(s, f"adjustment:{key}", phash)) is not None:
        return tx
    acc = account_of(s, member_id)
    bal = lock_accounts(s, [acc])[acc]
    if bal + points < 0:
        raise InsufficientPoints(
            N_("member %(id)s has %(balance)s points; removing %(n)s would make it negative",
               id=member_id, balance=Number(bal), n=Number(-points))
        )
    tx = _new_tx(s, "adjustment", f"adjustment:{key}", phash, at, actor=actor)
    if points > 0:
        row = entry(tx, "adjustment", ADJUSTMENT, acc, points, at, memo=memo)
    else:
        row = entry(tx, "adjustment", acc, ADJUSTMENT, -points, at, memo=memo)
    post_entries(s, [row])
    return tx


# --------------------------------------------------------------------------
# expiry


@dataclass(frozen=True)
class ExpiryResult:
    as_of: dt.datetime
    members: int
    points: int
    tx_id: int | None
    replayed: bool = False


def expirable_points_query(as_of: dt.datetime, expiry_days: int, account_ids=None):
    """Per member account, points to expire at ``as_of`` (FIFO, set-based).

    Points are spent oldest first, so what is left of everything credited up
    to ``as_of - expiry_days`` after all spending and earlier expiries is due:
    ``max(0, credited_before_cutoff - spent - expired)``.
    """
    cutoff = as_of - dt.timedelta(days=expiry_days)
    e = LedgerEntry.__table__
    credits = select(
        e.c.credit_account_id.label("acc"),
        case((e.c.effective_at <= cutoff, e.c.amount), else_=0).label("early_in"),
        literal(0).label("spent"),
        literal(0).label("expired"),
    ).where(e.c.credit_account_id > ADJUSTMENT)
    debits = select(
        e.c.debit_account_id.label("acc"),
        literal(0).label("early_in"),
        case(
            (and_(e.c.kind != "expiry", e.c.effective_at <= as_of), e.c.amount), else_=0
        ).label("spent"),
        case((e.c.kind == "expiry", e.c.amount), else_=0).label("expired"),
    ).where(e.c.debit_account_id > ADJUSTMENT)
    if account_ids is not None:
        credits = credits.where(e.c.credit_account_id.in_(account_ids))
        debits = debits.where(e.c.debit_account_id.in_(account_ids))
    u = union_all(credits, debits).subquery()
    due = func.sum(u.c.early_in) - func.sum(u.c.spent) - func.sum(u.c.expired)
    return (
        select(u.c.acc, due.label("due"))
        .group_by(u.c.acc)
        .having(due > 0)
        .order_by(u.c.acc)
    )


@transactional
def expire_points(
    s: Session, as_of: dt.datetime | None = None, *, actor: Actor = SYSTEM
) -> ExpiryResult:
    """Expire every member's points older than the expiry period, in one pass.

    Idempotent per ``as_of``: running it again expires nothing more.
    """
    as_of = as_of or clock.utcnow()
    expiry_days = s.scalar(select(ProgramSettings.expiry_days).where(ProgramSettings.id == 1))
    key = f"expiry:{as_of.isoformat()}"
    phash = payload_hash({"as_of": as_of.isoformat(), "expiry_days": expiry_days})
    existing = s.execute(
        select(LedgerTransaction.id, LedgerTransaction.payload_hash).where(
            LedgerTransaction.idempotency_key == key
        )
    ).first()
    if existing is not None:
        n, pts = s.execute(
            select(func.count(), func.coalesce(func.sum(LedgerEntry.amount), 0)).where(
                LedgerEntry.tx_id == existing.id
            )
        ).one()
        return ExpiryResult(as_of, n, int(pts), existing.id, replayed=True)
    if not expiry_days:
        return ExpiryResult(as_of, 0, 0, None)
    candidates = [r.acc for r in s.execute(expirable_points_query(as_of, expiry_days))]
    if not candidates:
        return ExpiryResult(as_of, 0, 0, None)
    rows: list[dict] = []
    tx = None
    for start in range(0, len(candidates), 5000):
        chunk = candidates[start : start + 5000]
        balances = lock_accounts(s, chunk)
        # recompute under the locks: an order may have spent some meanwhile
        due = s.execute(expirable_points_query(as_of, expiry_days, chunk)).all()
        if tx is None and due:
            tx = _new_tx(s, "expiry", key, phash, as_of, actor=actor)
        for acc, amount in due:
            amount = min(int(amount), balances[acc])
            if amount > 0:
                rows.append(entry(tx, "expiry", acc, BREAKAGE, amount, as_of,
                                  memo=f"expired after {expiry_days} days"))
    for start in range(0, len(rows), 5000):
        post_entries(s, rows[start : start + 5000])
    return ExpiryResult(as_of, len(rows), sum(r["amount"] for r in rows), tx)
