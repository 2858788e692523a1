"""Small read-only views for the web pages, straight from the tables.

They give the pages honest first views (lists, counts) while the domain
services (rules, pilots, adjustments, metrics) grow; a page moves to the
service function once it exists. Everything returns plain frozen
dataclasses or DataFrames, never ORM objects, and every list has a LIMIT.
KPI ratios are not computed here: ``db.metrics`` is the one place that
defines them. These are raw counts.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pandas as pd
from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.orm import Session, aliased

from db.models import (
    Account,
    AdjustmentRequest,
    AuditLog,
    LedgerEntry,
    Member,
    Order,
    Pilot,
    PilotMember,
    ProgramSettings,
    RuleSet,
    StaffUser,
    Tier,
)
from db.session import Database

MAX_ROWS = 500


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def ping(db: Database) -> bool:
    """True when the database answers a trivial query at once (for the
    outage banner); see :meth:`Database.probe`."""
    return db.probe() is None


def currency(s: Session) -> str:
    return s.scalar(select(ProgramSettings.currency).where(ProgramSettings.id == 1)) or "RUB"


# ------------------------------------------------------------------ rules


@dataclass(frozen=True)
class TierView:
    position: int
    name: str
    threshold_minor: int
    accrual_rate_bp: int
    referral_rate_bp: int


@dataclass(frozen=True)
class RuleSetView:
    id: int
    name: str
    status: str
    effective_at: dt.datetime | None
    created_at: dt.datetime
    created_by: str
    approved_by: str
    point_value_minor: int
    tier_window_days: int | None
    note: str
    tiers: tuple[TierView, ...]

    def in_force(self, versions: list[RuleSetView], now: dt.datetime | None = None) -> bool:
        """Published, effective, and the latest such: the version orders accrue under."""
        now = now or _now()
        live = [
            v for v in versions
            if v.status == "published" and v.effective_at is not None and v.effective_at <= now
        ]
        return bool(live) and max(live, key=lambda v: (v.effective_at, v.id)).id == self.id


def list_rule_sets(s: Session, limit: int = 50) -> list[RuleSetView]:
    """Rule-set versions, newest first, each with its tiers."""
    creator = aliased(StaffUser)
    approver = aliased(StaffUser)
    rows = s.execute(
        select(RuleSet, creator.username, approver.username)
        .outerjoin(creator, creator.id == RuleSet.created_by_id)
        .outerjoin(approver, approver.id == RuleSet.approved_by_id)
        .order_by(RuleSet.id.desc())
        .limit(min(limit, MAX_ROWS))
    ).all()
    ids = [r[0].id for r in rows]
    tiers: dict[int, list[TierView]] = {i: [] for i in ids}
    if ids:
        for t in s.scalars(
            select(Tier).where(Tier.rule_set_id.in_(ids)).order_by(Tier.position)
        ):
            tiers[t.rule_set_id].append(
                TierView(t.position, t.name, t.threshold_minor, t.accrual_rate_bp,
                         t.referral_rate_bp)
            )
    return [
        RuleSetView(
            rs.id, rs.name, rs.status, rs.effective_at, rs.created_at, created or "",
            approved or "", rs.point_value_minor, rs.tier_window_days, rs.note or "",
            tuple(tiers[rs.id]),
        )
        for rs, created, approved in rows
    ]


# ------------------------------------------------------------------ pilots


@dataclass(frozen=True)
class PilotView:
    id: int
    name: str
    status: str
    rule_set: str
    primary_metric: str
    pilot_share_bp: int
    start_at: dt.datetime
    planned_end_at: dt.datetime
    ended_at: dt.datetime | None
    pilot_members: int
    control_members: int


def list_pilots(s: Session, limit: int = 100) -> list[PilotView]:
    """Pilots, newest first, with the size of each group."""
    pilot_n = func.sum(case((PilotMember.grp == "pilot", 1), else_=0))
    control_n = func.sum(case((PilotMember.grp == "control", 1), else_=0))
    sizes = (
        select(PilotMember.pilot_id, pilot_n.label("p"), control_n.label("c"))
        .group_by(PilotMember.pilot_id)
        .subquery()
    )
    rows = s.execute(
        select(Pilot, RuleSet.name, sizes.c.p, sizes.c.c)
        .join(RuleSet, RuleSet.id == Pilot.rule_set_id)
        .outerjoin(sizes, sizes.c.pilot_id == Pilot.id)
        .order_by(Pilot.start_at.desc(), Pilot.id.desc())
        .limit(min(limit, MAX_ROWS))
    ).all()
    return [
        PilotView(
            p.id, p.name, p.status, rs_name, p.primary_metric, p.pilot_share_bp, p.start_at,
            p.planned_end_at, p.ended_at, int(pn or 0), int(cn or 0),
        )
        for p, rs_name, pn, cn in rows
    ]


# ------------------------------------------------------------------ members


@dataclass(frozen=True)
class MemberView:
    id: int
    external_id: str
    name: str
    email: str
    phone: str
    joined_at: dt.datetime
    segment: str
    tier: str
    status: str
    balance: int
    referrer_external_id: str


def search_members(s: Session, query: str, limit: int = 50) -> list[MemberView]:
    """Members whose external id, name, email or phone contains ``query``.

    An exact external id comes first. An empty query lists the newest members.
    """
    q = (query or "").strip()
    referrer = aliased(Member)
    stmt = (
        select(Member, Account.balance, referrer.external_id)
        .outerjoin(Account, and_(Account.member_id == Member.id, Account.kind == "member"))
        .outerjoin(referrer, referrer.id == Member.referrer_id)
    )
    if q:
        like = f"%{q.lower()}%"
        stmt = stmt.where(
            or_(
                Member.external_id == q,
                func.lower(Member.external_id).like(like),
                func.lower(Member.name).like(like),
                func.lower(Member.email).like(like),
                Member.phone.like(f"%{q}%"),
            )
        ).order_by(case((Member.external_id == q, 0), else_=1), Member.name, Member.id)
    else:
        stmt = stmt.order_by(Member.joined_at.desc(), Member.id.desc())
    rows = s.execute(stmt.limit(max(1, min(limit, MAX_ROWS)))).all()
    return [
        MemberView(
            m.id, m.external_id, m.name or "", m.email or "", m.phone or "", m.joined_at,
            m.segment, m.tier or "", m.status, int(balance or 0), ref or "",
        )
        for m, balance, ref in rows
    ]


def get_member(s: Session, member_id: int) -> MemberView | None:
    referrer = aliased(Member)
    row = s.execute(
        select(Member, Account.balance, referrer.external_id)
        .outerjoin(Account, and_(Account.member_id == Member.id, Account.kind == "member"))
        .outerjoin(referrer, referrer.id == Member.referrer_id)
        .where(Member.id == member_id)
    ).first()
    if row is None:
        return None
    m, balance, ref = row
    return MemberView(
        m.id, m.external_id, m.name or "", m.email or "", m.phone or "", m.joined_at,
        m.segment, m.tier or "", m.status, int(balance or 0), ref or "",
    )


@dataclass(frozen=True)
class LedgerLine:
    id: int
    effective_at: dt.datetime
    kind: str
    points: int  # signed, as the member's balance saw it
    memo: str


def member_ledger(s: Session, member_id: int, limit: int = 100) -> list[LedgerLine]:
    """The latest entries touching a member's account, signed (+ in, - out)."""
    acct = s.scalar(
        select(Account.id).where(Account.member_id == member_id, Account.kind == "member")
    )
    if acct is None:
        return []
    rows = s.scalars(
        select(LedgerEntry)
        .where(or_(LedgerEntry.debit_account_id == acct, LedgerEntry.credit_account_id == acct))
        .order_by(LedgerEntry.id.desc())
        .limit(min(limit, MAX_ROWS))
    ).all()
    return [
        LedgerLine(
            e.id, e.effective_at, e.kind,
            e.amount if e.credit_account_id == acct else -e.amount, e.memo or "",
        )
        for e in rows
    ]


# ------------------------------------------------------------------ adjustments


@dataclass(frozen=True)
class AdjustmentView:
    id: int
    member_external_id: str
    member_name: str
    points: int
    reason_code: str
    comment: str
    ticket_ref: str
    status: str
    approvals_required: int
    requested_by: str
    requested_at: dt.datetime
    decided_by: str
    decided_at: dt.datetime | None
    decision_reason: str


def list_adjustments(
    s: Session,
    *,
    status: str | None = None,
    requested_by_id: int | None = None,
    limit: int = 200,
) -> list[AdjustmentView]:
    """Adjustment requests, newest first; ``requested_by_id`` narrows to one requester."""
    requester = aliased(StaffUser)
    decider = aliased(StaffUser)
    stmt = (
        select(AdjustmentRequest, Member.external_id, Member.name, requester.username,
               decider.username)
        .join(Member, Member.id == AdjustmentRequest.member_id)
        .join(requester, requester.id == AdjustmentRequest.requested_by_id)
        .outerjoin(decider, decider.id == AdjustmentRequest.decided_by_id)
    )
    if status:
        stmt = stmt.where(AdjustmentRequest.status == status)
    if requested_by_id is not None:
        stmt = stmt.where(AdjustmentRequest.requested_by_id == requested_by_id)
    rows = s.execute(
        stmt.order_by(AdjustmentRequest.requested_at.desc(), AdjustmentRequest.id.desc())
        .limit(min(limit, MAX_ROWS))
    ).all()
    return [
        AdjustmentView(
            a.id, ext, name or "", a.points, a.reason_code, a.comment or "", a.ticket_ref or "",
            a.status, a.approvals_required, req or "", a.requested_at, dec or "", a.decided_at,
            a.decision_reason or "",
        )
        for a, ext, name, req, dec in rows
    ]


# ------------------------------------------------------------------ live counts


@dataclass(frozen=True)
class LiveCounts:
    at: dt.datetime
    days: int
    members: int
    members_active_status: int
    members_joined: int
    orders_paid: int
    member_orders_paid: int
    customers_ordered: int
    members_ordered: int
    points_issued: int
    points_redeemed: int
    referred_members: int
    referred_members_ordered: int
    outstanding_points: int


def live_counts(s: Session, *, days: int = 30, now: dt.datetime | None = None) -> LiveCounts:
    """Raw counts behind participation, redemption and referral, over ``days``."""
    now = now or _now()
    since = now - dt.timedelta(days=days)
    paid = and_(Order.status == "paid", Order.paid_at >= since, Order.paid_at <= now)

    members, active, joined = s.execute(
        select(
            func.count(Member.id),
            func.coalesce(func.sum(case((Member.status == "active", 1), else_=0)), 0),
            func.coalesce(func.sum(case((Member.joined_at >= since, 1), else_=0)), 0),
        )
    ).one()
    orders, member_orders = s.execute(
        select(
            func.count(Order.id),
            func.coalesce(func.sum(case((Order.member_id.is_not(None), 1), else_=0)), 0),
        ).where(paid)
    ).one()
    customers = s.scalar(select(func.count(func.distinct(Order.customer_ref))).where(paid)) or 0
    members_ordered = (
        s.scalar(
            select(func.count(func.distinct(Order.member_id))).where(
                paid, Order.member_id.is_not(None)
            )
        )
        or 0
    )
    in_window = and_(LedgerEntry.effective_at >= since, LedgerEntry.effective_at <= now)
    issued = s.scalar(
        select(func.coalesce(func.sum(LedgerEntry.amount), 0)).where(
            in_window, LedgerEntry.kind.in_(("accrual", "referral_bonus"))
        )
    )
    redeemed = s.scalar(
        select(func.coalesce(func.sum(LedgerEntry.amount), 0)).where(
            in_window, LedgerEntry.kind == "redemption"
        )
    )
    referred = s.scalar(select(func.count(Member.id)).where(Member.referrer_id.is_not(None)))
    referred_ordered = s.scalar(
        select(func.count(func.distinct(Order.member_id)))
        .join(Member, Member.id == Order.member_id)
        .where(Member.referrer_id.is_not(None), Order.status == "paid")
    )
    outstanding = s.scalar(
        select(func.coalesce(func.sum(Account.balance), 0)).where(Account.kind == "member")
    )
    return LiveCounts(
        now, days, int(members), int(active), int(joined), int(orders), int(member_orders),
        int(customers), int(members_ordered), int(issued or 0), int(redeemed or 0),
        int(referred or 0), int(referred_ordered or 0), int(outstanding or 0),
    )


# ------------------------------------------------------------------ overview


def monthly_sales(s: Session, *, months: int = 12, now: dt.datetime | None = None) -> pd.DataFrame:
    """Paid orders and revenue per month, members and guests side by side.

    Columns: month ("YYYY-MM"), buyer ("member"/"guest"), orders, revenue_minor.
    """
    now = now or _now()
    start = (now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
             - dt.timedelta(days=31 * (months - 1))).replace(day=1)
    if s.get_bind().dialect.name == "sqlite":
        # SQLAlchemy stores SQLite datetimes as ISO text: the month is a prefix
        # (several times cheaper than strftime per row)
        month = func.substr(Order.paid_at, 1, 7)
    else:
        month = func.to_char(Order.paid_at, "YYYY-MM")
    buyer = case((Order.member_id.is_not(None), "member"), else_="guest")
    rows = s.execute(
        select(
            month.label("month"),
            buyer.label("buyer"),
            func.count(Order.id),
            func.coalesce(func.sum(Order.amount_minor), 0),
        )
        .where(Order.status == "paid", Order.paid_at >= start, Order.paid_at <= now)
        .group_by(month, buyer)
        .order_by(month, buyer)
    ).all()
    return pd.DataFrame(
        [(m, b, int(n), int(r)) for m, b, n, r in rows],
        columns=["month", "buyer", "orders", "revenue_minor"],
    )


# ------------------------------------------------------------------ audit


@dataclass(frozen=True)
class AuditRow:
    id: int
    at: dt.datetime
    actor: str
    action: str
    object_type: str
    object_id: str
    before: str
    after: str
    detail: str


def search_audit(
    s: Session,
    *,
    actor: str | None = None,
    action: str | None = None,
    date_from: dt.date | None = None,
    date_to: dt.date | None = None,
    limit: int = 2000,
) -> list[AuditRow]:
    """Audit rows, newest first; ``date_to`` is inclusive (the whole day)."""
    stmt = select(AuditLog)
    if actor:
        stmt = stmt.where(AuditLog.actor == actor)
    if action:
        stmt = stmt.where(AuditLog.action == action)
    if date_from:
        stmt = stmt.where(AuditLog.at >= dt.datetime.combine(date_from, dt.time.min))
    if date_to:
        stmt = stmt.where(
            AuditLog.at < dt.datetime.combine(date_to + dt.timedelta(days=1), dt.time.min)
        )
    rows = s.scalars(stmt.order_by(AuditLog.at.desc(), AuditLog.id.desc()).limit(limit)).all()
    return [
        AuditRow(r.id, r.at, r.actor, r.action, r.object_type or "", r.object_id or "",
                 r.before or "", r.after or "", r.detail or "")
        for r in rows
    ]


def audit_filter_options(s: Session) -> tuple[list[str], list[str]]:
    """The actors and actions that occur in the log, for the filter dropdowns."""
    actors = list(s.scalars(select(AuditLog.actor).distinct().order_by(AuditLog.actor)))
    actions = list(s.scalars(select(AuditLog.action).distinct().order_by(AuditLog.action)))
    return actors, actions
