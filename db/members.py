"""Members: search and the profile support staff and supervisors work from.

Search is built to stay fast on a million members: every query is either an
exact key (member id, customer id) or a prefix range on one indexed search
key, ordered by (key, id), so the database reads the matching slice of one
index and stops after the page (migration 0002 creates the indexes). There
is no ``%text%`` scan. Pages are fetched by offset for the grid's infinite
row model; a page never exceeds :data:`MAX_PAGE` rows.

Personal data is masked here, in the service, for the roles that do not
need it (see :func:`pii_visible`), so unmasked values never leave the
server for them.

The ledger view computes the running balance in SQL with a window function
over the member's entries (both legs, UNION ALL of the two indexed sides),
newest first, optionally filtered by kind after the window so the balance
column stays the real balance after each line.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, func, literal, select, union_all
from sqlalchemy.orm import Session, aliased

from db import clock, program
from db.errors import NotFound, ValidationError
from db.i18n import N_
from db.ledger import qualifying_spend
from db.models import (
    ENTRY_KINDS,
    Account,
    AdjustmentRequest,
    LedgerEntry,
    Member,
    Order,
    StaffUser,
    Transfer,
)
from db.rules import load_rulebook

# what users read for the stored values (which never change): the web layer
# shows them with dashboard.i18n.translate; the overview shares the segments'
SEGMENT_LABELS = {
    "regular": N_("Regular"), "student": N_("Students"), "pensioner": N_("Pensioners"),
    "large_family": N_("Large families"), "corporate": N_("Corporate"),
}
MEMBER_STATUS_LABELS = {"active": N_("active"), "blocked": N_("blocked"),
                        "closed": N_("closed")}
ENTRY_KIND_LABELS = {
    "accrual": N_("accrual"), "redemption": N_("redemption"), "transfer": N_("transfer"),
    "referral_bonus": N_("referral bonus"), "adjustment": N_("adjustment"),
    "expiry": N_("expiry"), "reversal": N_("reversal"),
}
ORDER_STATUS_LABELS = {"paid": N_("paid"), "refunded": N_("refunded"),
                       "part_refunded": N_("part refunded")}

SEARCH_FIELDS = ("auto", "member_id", "external_id", "email", "phone", "name")
MAX_PAGE = 500
MIN_PREFIX = {"name": 1, "email": 1, "phone": 3, "external_id": 1}
_PHONE_CHARS = re.compile(r"[\s\-().]")


# ------------------------------------------------------------------ masking


def pii_visible(role: str | None) -> bool:
    """Support identifies callers by email and phone, so sees them in full;
    everybody else (supervisors deciding adjustments) sees them masked."""
    return role == "support"


def mask_email(email: str | None) -> str:
    """"anna.petrova@example.com" -> "a***@example.com"."""
    if not email:
        return ""
    local, _, domain = email.partition("@")
    return f"{local[:1]}***@{domain}" if domain else f"{email[:1]}***"


def mask_phone(phone: str | None) -> str:
    """"+79001234567" -> "+7900*****67": enough to tell numbers apart, not to call."""
    if not phone:
        return ""
    keep_head, keep_tail = 5, 2
    if len(phone) <= keep_head + keep_tail:
        return phone[:2] + "*" * max(len(phone) - 2, 0)
    return phone[:keep_head] + "*" * (len(phone) - keep_head - keep_tail) + phone[-keep_tail:]


def _pii(email: str | None, phone: str | None, reveal: bool) -> tuple[str, str]:
    if reveal:
        return email or "", phone or ""
    return mask_email(email), mask_phone(phone)


# ------------------------------------------------------------------ search


@dataclass(frozen=True)
class MemberHit:
    id: int
    external_id: str
    name: str
    email: str
    phone: str
    tier: str
    status: str
    balance: int
    joined_at: dt.datetime


@dataclass(frozen=True)
class SearchPage:
    rows: list[MemberHit]
    field: str  # the field actually searched ("newest" for an empty query)
    term: str  # the normalised term
    more: bool  # there are rows after this page


def classify(query: str) -> tuple[str, str]:
    """(field, term) the "auto" search uses for a query, from its shape:
    ``@`` -> email; digits (with + ( ) - spaces) -> number (member id,
    customer id or phone); anything else -> name (or an exact customer id)."""
    q = (query or "").strip()
    if not q:
        return "newest", ""
    if "@" in q:
        return "email", q.lower()
    compact = _PHONE_CHARS.sub("", q)
    if re.fullmatch(r"\+?\d+", compact):
        return "number", compact
    return "name", q.lower()


def _next_prefix(p: str) -> str:
    """The smallest string greater than every string starting with ``p``
    (byte/code-point order): bump the last character."""
    return p[:-1] + chr(ord(p[-1]) + 1)


def _key(s: Session, col: Any, lower: bool) -> Any:
    """The indexed search key of migration 0002 (byte order on both engines)."""
    expr = func.lower(col) if lower else col
    return expr.collate("C") if s.get_bind().dialect.name == "postgresql" else expr


def _hits(s: Session, where: Any, order: list[Any], offset: int, limit: int,
          reveal: bool) -> list[MemberHit]:
    rows = s.execute(
        select(Member.id, Member.external_id, Member.name, Member.email, Member.phone,
               Member.tier, Member.status, Member.joined_at, Account.balance)
        .outerjoin(Account, Account.member_id == Member.id)
        .where(where)
        .order_by(*order)
        .offset(offset)
        .limit(limit)
    ).all()
    out = []
    for r in rows:
        email, phone = _pii(r.email, r.phone, reveal)
        out.append(MemberHit(r.id, r.external_id, r.name or "", email, phone, r.tier or "",
                             r.status, int(r.balance or 0), r.joined_at))
    return out


def search_members(
    s: Session,
    query: str,
    field: str = "auto",
    *,
    offset: int = 0,
    limit: int = 100,
    reveal: bool = False,
) -> SearchPage:
    """One page of members matching ``query`` in ``field`` (see SEARCH_FIELDS).

    Exact hits (member id, customer id) come first, then the prefix matches of
    the one search key, ordered by (key, id). ``reveal`` shows email and
    phone unmasked (see :func:`pii_visible`); without it, email and phone
    match only in full (exactly, case-insensitive for email), never by prefix.
    """
    if field not in SEARCH_FIELDS:
        raise ValidationError("field", N_("must be one of %(choices)s",
                                             choices=", ".join(SEARCH_FIELDS)))
    if not isinstance(offset, int) or offset < 0:
        raise ValidationError("offset", N_("must be a non-negative whole number"))
    limit = max(1, min(int(limit), MAX_PAGE))
    q = (query or "").strip()[:200]
    if len(q) > 100:
        raise ValidationError("query", N_("at most %(n)s characters", n=100))
    kind, term = classify(q) if field == "auto" else (field, q)
    if not q:
        rows = _hits(s, literal(True), [Member.id.desc()], offset, limit + 1, reveal)
        return SearchPage(rows[:limit], "newest", "", len(rows) > limit)

    exact: list[Any] = []  # conditions of the exact hits, best first
    prefix: tuple[Any, str] | None = None  # (key expression, prefix)
    if kind in ("number", "member_id"):
        digits = term.lstrip("+")
        if kind == "member_id" and not digits.isdigit():
            raise ValidationError("query", N_("a member id is a whole number"))
        if digits.isdigit() and len(digits) <= 18:
            exact.append(Member.id == int(digits))
        if kind == "number":
            exact.append(Member.external_id == term)
            phone = term if term.startswith("+") else "+" + term
            if len(digits) >= MIN_PREFIX["phone"]:
                prefix = (_key(s, Member.phone, False), phone)
    elif kind == "external_id":
        exact.append(Member.external_id == term)
        prefix = (_key(s, Member.external_id, False), term)
    elif kind == "phone":
        compact = _PHONE_CHARS.sub("", term)
        if not re.fullmatch(r"\+?\d+", compact):
            raise ValidationError("query",
                                  N_("a phone number has only digits (and a leading +)"))
        phone = compact if compact.startswith("+") else "+" + compact
        if len(phone) - 1 < MIN_PREFIX["phone"]:
            raise ValidationError("query", N_("type at least %(n)s digits of the phone number",
                                                n=MIN_PREFIX["phone"]))
        prefix = (_key(s, Member.phone, False), phone)
    elif kind == "email":
        prefix = (_key(s, Member.email, True), term.lower())
    else:  # name
        exact.append(Member.external_id == q)
        prefix = (_key(s, Member.name, True), term.lower())
        if field == "auto" and " " not in q:
            # "anna.p" may be the start of an email: when no name starts with
            # it, search emails instead (one indexed probe decides)
            key, p = prefix
            if s.scalar(select(Member.id).where(key >= p, key < _next_prefix(p)).limit(1)) \
                    is None:
                kind, prefix = "email", (_key(s, Member.email, True), term.lower())

    if not reveal and prefix is not None and kind in ("number", "phone", "email"):
        # masked contacts are found by their whole value only: a prefix search
        # would spell a masked email or phone out one character at a time
        key, p = prefix
        exact.append(key == p)
        prefix = None

    # exact hits: at most a couple of rows, looked up by unique keys
    found: list[MemberHit] = []
    for cond in exact:
        for h in _hits(s, cond, [Member.id], 0, 1, reveal):
            if all(h.id != f.id for f in found):
                found.append(h)
    rows = found[offset:offset + limit + 1]
    if prefix is not None and len(rows) <= limit:
        key, p = prefix
        where = and_(key >= p, key < _next_prefix(p))
        if found:
            where = and_(where, Member.id.not_in([f.id for f in found]))
        rows += _hits(s, where, [key, Member.id], max(0, offset - len(found)),
                      limit + 1 - len(rows), reveal)
    return SearchPage(rows[:limit], kind, term, len(rows) > limit)


# ------------------------------------------------------------------ profile


@dataclass(frozen=True)
class TierProgress:
    rule_set_name: str
    pilot: bool  # the member is in a pilot group: the pilot's draft rules apply
    window_days: int | None
    qualifying_spend_minor: int
    tier: str
    next_tier: str | None
    next_threshold_minor: int | None
    remaining_minor: int  # 0 at the top tier
    percent: int  # 0..100, progress from this tier's threshold to the next


@dataclass(frozen=True)
class Profile:
    id: int
    external_id: str
    name: str
    email: str
    phone: str
    joined_at: dt.datetime
    segment: str
    status: str
    tier_cached: str
    balance: int
    referrer_id: int | None
    referrer_external_id: str
    referrer_name: str
    currency: str
    progress: TierProgress | None  # None when no rule version is in force


def tier_progress(s: Session, member_id: int, at: dt.datetime | None = None
                  ) -> TierProgress | None:
    """Tier and progress to the next one under the rules that apply now
    (the version in force, or the member's pilot), from the orders."""
    at = at or clock.utcnow()
    book = load_rulebook(s, [member_id])
    rules, pilot_id = book.for_member(member_id, at)
    if rules is None or not rules.tiers:
        return None
    # orders paid up to now count (qualifying_spend takes "strictly before")
    spend = qualifying_spend(s, member_id, at + dt.timedelta(microseconds=1),
                             rules.tier_window_days)
    tier = rules.tier_for(spend)
    i = rules.tiers.index(tier)
    nxt = rules.tiers[i + 1] if i + 1 < len(rules.tiers) else None
    if nxt is None:
        percent, remaining = 100, 0
    else:
        span = nxt.threshold_minor - tier.threshold_minor
        percent = max(0, min(100, (spend - tier.threshold_minor) * 100 // span))
        remaining = nxt.threshold_minor - spend
    return TierProgress(
        rules.name, pilot_id is not None, rules.tier_window_days, spend, tier.name,
        nxt.name if nxt else None, nxt.threshold_minor if nxt else None, remaining, percent,
    )


def get_profile(s: Session, member_id: int, *, reveal: bool = False,
                at: dt.datetime | None = None) -> Profile:
    referrer = aliased(Member)
    row = s.execute(
        select(Member, Account.balance, referrer.external_id, referrer.name)
        .outerjoin(Account, Account.member_id == Member.id)
        .outerjoin(referrer, referrer.id == Member.referrer_id)
        .where(Member.id == member_id)
    ).first()
    if row is None:
        raise NotFound(N_("member %(id)s does not exist", id=member_id))
    m, bal, ref_ext, ref_name = row
    email, phone = _pii(m.email, m.phone, reveal)
    currency = program.currency(s)
    return Profile(
        m.id, m.external_id, m.name or "", email, phone, m.joined_at, m.segment, m.status,
        m.tier or "", int(bal or 0), m.referrer_id, ref_ext or "", ref_name or "", currency,
        tier_progress(s, m.id, at),
    )


def member_account(s: Session, member_id: int) -> int:
    acc = s.scalar(select(Account.id).where(Account.member_id == member_id))
    if acc is None:
        raise NotFound(N_("member %(id)s does not exist", id=member_id))
    return acc


@dataclass(frozen=True)
class LedgerRow:
    id: int
    effective_at: dt.datetime
    kind: str
    points: int  # signed: + into the member's account, - out of it
    balance_after: int  # running balance after this entry
    memo: str
    order_id: int | None
    tx_id: int


@dataclass(frozen=True)
class LedgerPage:
    rows: list[LedgerRow]
    total: int  # lines matching the filter


def ledger_page(
    s: Session, member_id: int, *, kind: str | None = None, offset: int = 0, limit: int = 100
) -> LedgerPage:
    """The member's entries, newest first, with the running balance after each."""
    if kind and kind not in ENTRY_KINDS:
        raise ValidationError("kind", N_("must be one of %(choices)s",
                                           choices=", ".join(ENTRY_KINDS)))
    limit = max(1, min(int(limit), MAX_PAGE))
    acc = member_account(s, member_id)
    e = LedgerEntry.__table__
    cols = [e.c.id, e.c.effective_at, e.c.kind, e.c.memo, e.c.order_id, e.c.tx_id]
    legs = union_all(
        select(*cols, e.c.amount.label("points")).where(e.c.credit_account_id == acc),
        select(*cols, (-e.c.amount).label("points")).where(e.c.debit_account_id == acc),
    ).subquery()
    running = select(
        legs, func.sum(legs.c.points).over(order_by=legs.c.id).label("balance_after")
    ).subquery()
    stmt = select(running)
    count = select(func.count()).select_from(legs)
    if kind:
        stmt = stmt.where(running.c.kind == kind)
        count = count.where(legs.c.kind == kind)
    rows = s.execute(stmt.order_by(running.c.id.desc()).offset(max(0, offset)).limit(limit)).all()
    return LedgerPage(
        [LedgerRow(r.id, r.effective_at, r.kind, int(r.points), int(r.balance_after),
                   r.memo or "", r.order_id, r.tx_id) for r in rows],
        int(s.scalar(count) or 0),
    )


@dataclass(frozen=True)
class OrderRow:
    id: int
    order_ref: str
    paid_at: dt.datetime
    amount_minor: int  # paid and not refunded
    points_redeemed: int
    status: str
    tier: str
    points_earned: int  # accrual entries of the order (before any refund)
    refunded_minor: int = 0  # given back by part refunds

    @property
    def paid_minor(self) -> int:
        return self.amount_minor + self.refunded_minor

    @property
    def money_back_minor(self) -> int:
        """All money given back: the whole order once refunded."""
        return self.paid_minor if self.status == "refunded" else self.refunded_minor


def member_orders(s: Session, member_id: int, limit: int = 200) -> tuple[list[OrderRow], int]:
    """The latest orders with the points each earned; and how many there are."""
    acc = member_account(s, member_id)
    earned = (
        select(func.coalesce(func.sum(LedgerEntry.amount), 0))
        .where(LedgerEntry.order_id == Order.id, LedgerEntry.kind == "accrual",
               LedgerEntry.credit_account_id == acc)
        .scalar_subquery()
    )
    rows = s.execute(
        select(Order.id, Order.order_ref, Order.paid_at, Order.amount_minor,
               Order.points_redeemed, Order.status, Order.tier, earned.label("earned"),
               Order.refunded_minor)
        .where(Order.member_id == member_id)
        .order_by(Order.paid_at.desc(), Order.id.desc())
        .limit(min(limit, MAX_PAGE))
    ).all()
    total = s.scalar(select(func.count()).select_from(Order).where(Order.member_id == member_id))
    return [OrderRow(r.id, r.order_ref, r.paid_at, r.amount_minor, r.points_redeemed, r.status,
                     r.tier or "", int(r.earned or 0), int(r.refunded_minor or 0))
            for r in rows], int(total or 0)


@dataclass(frozen=True)
class ReferralRow:
    member_id: int
    external_id: str
    name: str
    joined_at: dt.datetime
    bonus_points: int  # referral bonus earned on their orders, net of refund reversals


def member_referrals(s: Session, member_id: int, limit: int = 200
                     ) -> tuple[list[ReferralRow], int]:
    """Members this member referred, with the bonus each one's orders earned."""
    acc = member_account(s, member_id)
    bonus = aliased(LedgerEntry)
    rev = aliased(LedgerEntry)
    earned = (
        select(func.coalesce(func.sum(bonus.amount), 0))
        .join(Order, Order.id == bonus.order_id)
        .where(Order.member_id == Member.id, bonus.kind == "referral_bonus",
               bonus.credit_account_id == acc)
        .scalar_subquery()
    )
    reversed_ = (
        select(func.coalesce(func.sum(rev.amount), 0))
        .join(bonus, bonus.id == rev.reverses_entry_id)
        .join(Order, Order.id == bonus.order_id)
        .where(Order.member_id == Member.id, bonus.kind == "referral_bonus",
               bonus.credit_account_id == acc, rev.debit_account_id == acc)
        .scalar_subquery()
    )
    rows = s.execute(
        select(Member.id, Member.external_id, Member.name, Member.joined_at,
               (earned - reversed_).label("bonus"))
        .where(Member.referrer_id == member_id)
        # by id (join order), not joined_at: ordering by joined_at tempts SQLite
        # into walking the whole joined_at index instead of the referrer index
        .order_by(Member.id.desc())
        .limit(min(limit, MAX_PAGE))
    ).all()
    total = s.scalar(select(func.count()).select_from(Member)
                     .where(Member.referrer_id == member_id))
    return [ReferralRow(r.id, r.external_id, r.name or "", r.joined_at, int(r.bonus or 0))
            for r in rows], int(total or 0)


@dataclass(frozen=True)
class TransferRow:
    id: int
    at: dt.datetime
    direction: str  # "in" / "out"
    other_id: int
    other_external_id: str
    other_name: str
    points: int  # signed as the member's balance saw it


def member_transfers(s: Session, member_id: int, limit: int = 200) -> list[TransferRow]:
    other = aliased(Member)
    out = []
    for direction, mine, theirs in (("out", Transfer.from_member_id, Transfer.to_member_id),
                                    ("in", Transfer.to_member_id, Transfer.from_member_id)):
        for r in s.execute(
            select(Transfer.id, Transfer.created_at, Transfer.points, other.id.label("oid"),
                   other.external_id, other.name)
            .join(other, other.id == theirs)
            .where(mine == member_id)
            .order_by(Transfer.created_at.desc(), Transfer.id.desc())
            .limit(min(limit, MAX_PAGE))
        ):
            out.append(TransferRow(r.id, r.created_at, direction, r.oid, r.external_id,
                                   r.name or "", r.points if direction == "in" else -r.points))
    out.sort(key=lambda t: (t.at, t.id), reverse=True)
    return out[:limit]


@dataclass(frozen=True)
class MemberAdjustment:
    id: int
    requested_at: dt.datetime
    points: int
    reason_code: str
    status: str
    requested_by: str
    decided_by: str
    comment: str


def member_adjustments(s: Session, member_id: int, limit: int = 200) -> list[MemberAdjustment]:
    """The member's adjustment requests, pending first, then newest first."""
    req = aliased(StaffUser)
    dec = aliased(StaffUser)
    rows = s.execute(
        select(AdjustmentRequest, req.username, dec.username)
        .join(req, req.id == AdjustmentRequest.requested_by_id)
        .outerjoin(dec, dec.id == AdjustmentRequest.decided_by_id)
        .where(AdjustmentRequest.member_id == member_id)
        .order_by((AdjustmentRequest.status == "pending").desc(),
                  AdjustmentRequest.requested_at.desc(), AdjustmentRequest.id.desc())
        .limit(min(limit, MAX_PAGE))
    ).all()
    return [MemberAdjustment(a.id, a.requested_at, a.points, a.reason_code, a.status,
                             rq or "", dc or "", a.comment or "") for a, rq, dc in rows]


def entry_choices(s: Session, member_id: int, limit: int = 200) -> list[LedgerRow]:
    """Recent entries a correction may name (the request form's picker);
    adjustment entries included, program-side accounts never."""
    return ledger_page(s, member_id, limit=limit).rows


def resolve_member(s: Session, ref: str) -> int:
    """A member id from what staff type: the member id or the customer id."""
    ref = (ref or "").strip()
    if not ref:
        raise ValidationError("member", N_("enter the member id or the customer id"))
    mid = s.scalar(select(Member.id).where(Member.external_id == ref))
    if mid is None and ref.isdigit() and len(ref) <= 18:
        mid = s.scalar(select(Member.id).where(Member.id == int(ref)))
    if mid is None:
        raise ValidationError("member", N_("no member with id or customer id “%(ref)s”",
                                            ref=ref))
    return mid

