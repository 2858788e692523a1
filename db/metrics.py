"""The program's KPIs, each defined once (PRODUCT.md, "KPI definitions").

Every KPI is a few set-based SQL queries (SQLAlchemy Core, the same text on
SQLite and PostgreSQL) over a half-open period ``[date_from, date_to)`` of
naive UTC datetimes, and returns plain data: numerator, denominator and value.
The value is ``None`` when the denominator is 0 (or negative, which only
reversals booked in the period can cause): a KPI never invents a number.

Choices where PRODUCT.md leaves room (each function says why):

- A *customer* is an ``orders.customer_ref`` (members and guests alike); a
  *member's* order is one with ``member_id`` set.
- *Ordered* (participation, activity) counts every order paid in the window,
  including ones refunded later: the customer did come. Everything called
  *paid* (revenue, AOV, repeat, frequency, LTV, referral conversion) counts
  only orders whose status is still ``paid``.
- Points *issued* are ``accrual`` + ``referral_bonus`` entries; *redeemed*
  ``redemption``; *expired* ``expiry``; each net of the ``reversal`` entries
  that reverse them, booked when the reversal happened (so a closed period's
  figures never change, at the price of an occasional negative net).
  Adjustments and transfers are neither issued nor redeemed.

Where the incremental rollups (db/rollups.py) have folded in every row there
is (``rollups.usable``) and the question fits them (day-aligned periods,
windows ending after the last event), a KPI reads them instead of the raw
tables: the same definition, computed from smaller tables, so the pages and
``loyalty kpis --json`` agree. tests/test_rollups.py proves both paths equal.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd
from sqlalchemy import (
    ColumnElement,
    DateTime,
    Integer,
    and_,
    case,
    cast,
    exists,
    extract,
    func,
    literal_column,
    select,
    type_coerce,
    union,
)
from sqlalchemy.orm import Session

from db import clock, program, rollups
from db.errors import ValidationError
from db.i18n import N_
from db.models import (
    ENTRY_KINDS,
    Account,
    LedgerEntry,
    Member,
    Order,
    RuleSet,
)

ISSUED_KINDS = ("accrual", "referral_bonus")
PROGRAM_ACCOUNT_KINDS = ("issuance", "redemption", "breakage", "adjustment")
DEFAULT_POINT_VALUE_MINOR = 100
# the average Gregorian month, for periods that are not whole calendar months
AVG_MONTH_DAYS = 365.2425 / 12
RATE_DIGITS = 4
FREQS = ("day", "week", "month", "year")

# The member segments as the pages name them (the stored values never change).
SEGMENT_LABELS: dict[str, str] = {
    "regular": N_("regular"),
    "student": N_("student"),
    "pensioner": N_("pensioner"),
    "large_family": N_("large family"),
    "corporate": N_("corporate"),
}

# What each number on the pages means (shown on hover); the functions below
# are the definitions, these are their one-line summaries.
DEFINITIONS: dict[str, str] = {
    "participation_rate": N_("Customers who ordered as members ÷ all customers who ordered in "
        "the period (by shop customer id; refunded orders count: the visit happened)."),
    "active_member_rate": N_("Members with an order or a point redemption in the last N days "
        "(program setting, default 30) ÷ all members who had joined by then."),
    "redemption_rate": N_("Points redeemed ÷ points issued (accrual + referral bonus) in the "
        "period, each net of the refund reversals booked in the period."),
    "breakage_rate": N_("Of the points members stopped holding in the period, the share that "
        "expired unused: points expired ÷ (points expired + points redeemed), each net of "
        "reversals. Never above 100 %."),
    "points_liability": N_("Outstanding member points × the point value in force, in money: "
        "what the program owes if every point were spent."),
    "referral_conversion": N_("Members who joined through a referral in the period and have a "
        "paid order ÷ members who joined through a referral in the period."),
    "repeat_purchase_rate": N_("Customers with 2 or more paid orders in the period ÷ customers "
        "with at least one."),
    "purchase_frequency": N_("Paid orders ÷ customers with a paid order, per month of the period."),
    "average_check": N_("Paid revenue ÷ paid orders (refunded orders excluded), members and "
        "guests side by side."),
    "ltv": N_("Cumulative paid revenue per member by calendar months since joining, per monthly "
        "join cohort."),
    "retention": N_("Share of a join cohort's members with a paid order in each month since "
        "joining."),
    "revenue": N_("Paid revenue (after points, net of part refunds; refunded orders "
        "excluded), by payment date."),
    "orders": N_("Paid orders (refunded orders excluded), by payment date."),
    "points_issued": N_("Accrual + referral bonus points credited, net of refund reversals."),
    "points_redeemed": N_("Points spent on orders and rewards, net of refund reversals."),
    "points_expired": N_("Points expired unused (breakage), net of reversals."),
    "points_cost": N_("Points issued × point value: what the program gave away, in money."),
    "enrolled": N_("All members who have joined, any status."),
    "new_members": N_("Members whose joining date falls in the period."),
    "earning_within": N_("Of the members who joined in the 30 days before the last N days, the "
        "share whose first accrual came within N days of joining."),
    "referred_members": N_("Members who joined through another member's referral link."),
    "referral_share": N_("Members who joined through a referral ÷ all members who joined, in "
        "the period."),
    "referral_bonus": N_("Points credited to referrers for their referred members' orders, net "
        "of refund reversals."),
    "transfers": N_("Points moved between members and the number of transfers."),
    "top_receivers": N_("Members who received the most points by transfer in the period: many "
        "senders or large sums are a fraud signal worth a look."),
    "tier_mix": N_("Paid orders by the tier the order was accrued under (orders.tier), per "
        "month: the tier mix of buying members, not a member-count snapshot."),
}

_o = Order.__table__
_e = LedgerEntry.__table__
_m = Member.__table__
_a = Account.__table__


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Ratio:
    """A KPI as the two counts it comes from, so a reader can check it."""

    numerator: int
    denominator: int
    value: float | None

    def as_dict(self, digits: int = RATE_DIGITS) -> dict[str, Any]:
        return {
            "numerator": self.numerator,
            "denominator": self.denominator,
            "value": None if self.value is None else round(self.value, digits),
        }


def ratio(numerator: int, denominator: int, scale: float = 1.0) -> Ratio:
    """numerator / denominator / scale, None rather than a division by <= 0."""
    value = numerator / denominator / scale if denominator > 0 and scale > 0 else None
    return Ratio(int(numerator), int(denominator), value)


@dataclass(frozen=True)
class Split:
    """The same KPI for all customers, members and guests side by side."""

    all: Ratio
    members: Ratio
    guests: Ratio

    def as_dict(self, digits: int = RATE_DIGITS) -> dict[str, Any]:
        return {k: getattr(self, k).as_dict(digits) for k in ("all", "members", "guests")}


@dataclass(frozen=True)
class PurchaseFrequency:
    """Paid orders per paying customer per month (``months`` = period length)."""

    months: float
    split: Split

    def as_dict(self) -> dict[str, Any]:
        return {"months": round(self.months, 4), **self.split.as_dict(3)}


@dataclass(frozen=True)
class PointsFlows:
    """Points moved in a period, gross and reversed (reversals booked when made)."""

    issued: int = 0
    issued_reversed: int = 0
    redeemed: int = 0
    redeemed_reversed: int = 0
    expired: int = 0
    expired_reversed: int = 0

    @property
    def issued_net(self) -> int:
        return self.issued - self.issued_reversed

    @property
    def redeemed_net(self) -> int:
        return self.redeemed - self.redeemed_reversed

    @property
    def expired_net(self) -> int:
        return self.expired - self.expired_reversed

    def as_dict(self) -> dict[str, int]:
        return {
            **asdict(self),
            "issued_net": self.issued_net,
            "redeemed_net": self.redeemed_net,
            "expired_net": self.expired_net,
        }


@dataclass(frozen=True)
class Breakage:
    """Breakage rate and the two flows it is made of (see :func:`breakage_of`)."""

    ratio: Ratio
    expired: int
    redeemed: int
    basis: str = "expired_of_used"

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.ratio.as_dict(),
            "basis": self.basis,
            "expired": self.expired,
            "redeemed": self.redeemed,
        }


@dataclass(frozen=True)
class Liability:
    """Outstanding member points and what they are worth."""

    as_of: dt.datetime
    points: int
    point_value_minor: int
    amount_minor: int
    currency: str

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "as_of": _iso(self.as_of)}


@dataclass(frozen=True)
class ActiveRate:
    ratio: Ratio
    days: int
    as_of: dt.datetime

    def as_dict(self) -> dict[str, Any]:
        return {**self.ratio.as_dict(), "days": self.days, "as_of": _iso(self.as_of)}


# --------------------------------------------------------------------------- helpers


def _naive_utc(value: dt.datetime | dt.date) -> dt.datetime:
    """Accept dates and aware datetimes; the database stores naive UTC."""
    if not isinstance(value, dt.datetime):
        return dt.datetime.combine(value, dt.time())
    if value.tzinfo is not None:
        return value.astimezone(dt.UTC).replace(tzinfo=None)
    return value


def _period(
    date_from: dt.datetime | dt.date, date_to: dt.datetime | dt.date
) -> tuple[dt.datetime, dt.datetime]:
    f, t = _naive_utc(date_from), _naive_utc(date_to)
    if t <= f:
        raise ValidationError("date_to", N_("the period must end after it starts"))
    return f, t


def _iso(value: dt.datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _int(value: Any) -> int:
    """SUM() is NULL on no rows and NUMERIC (Decimal) on PostgreSQL."""
    return 0 if value is None else int(value)


def _in_window(col: Any, f: dt.datetime | None, t: dt.datetime) -> ColumnElement[bool]:
    return col < t if f is None else and_(col >= f, col < t)


def months_between(f: dt.datetime, t: dt.datetime) -> float:
    """Whole calendar months when both ends are month starts, else days / 30.44."""
    if f.day == t.day == 1 and f.time() == t.time() == dt.time():
        return float((t.year - f.year) * 12 + t.month - f.month)
    return (t - f).total_seconds() / 86400 / AVG_MONTH_DAYS


def _dialect(s: Session) -> str:
    return s.get_bind().dialect.name


def date_bucket(col: Any, freq: str, dialect: str) -> ColumnElement[dt.datetime]:
    """The start of the day/week (Monday)/month/year ``col`` falls in.

    The one place date truncation differs by dialect. ``freq`` is checked
    against a whitelist and inlined as a literal, so PostgreSQL sees the same
    expression in SELECT and GROUP BY.
    """
    if freq not in FREQS:
        raise ValidationError("freq", N_("must be one of %(choices)s", choices=", ".join(FREQS)))
    if dialect == "postgresql":
        return func.date_trunc(literal_column(f"'{freq}'"), col)
    fmt = {
        "day": "%Y-%m-%d 00:00:00",
        "week": "%Y-%m-%d 00:00:00",
        "month": "%Y-%m-01 00:00:00",
        "year": "%Y-01-01 00:00:00",
    }[freq]
    args = [literal_column(f"'{fmt}'"), col]
    if freq == "week":  # back to the Monday on or before
        args += [literal_column("'-6 days'"), literal_column("'weekday 1'")]
    # the SQLite DATETIME result processor parses the text into a datetime
    return type_coerce(func.strftime(*args), DateTime())


def _py_bucket(value: dt.datetime, freq: str) -> dt.datetime:
    day = dt.datetime.combine(value.date(), dt.time())
    if freq == "day":
        return day
    if freq == "week":
        return day - dt.timedelta(days=day.weekday())
    if freq == "month":
        return day.replace(day=1)
    return day.replace(month=1, day=1)


def _month_index(col: Any) -> ColumnElement[int]:
    """year * 12 + month - 1: months since year 0, for month arithmetic in SQL."""
    return cast(extract("year", col), Integer) * 12 + cast(extract("month", col), Integer) - 1


def point_value_minor(s: Session, as_of: dt.datetime) -> int:
    """point_value_minor of the rule version in force at ``as_of`` (else 100)."""
    value = s.execute(
        select(RuleSet.point_value_minor)
        .where(RuleSet.status == "published", RuleSet.effective_at <= _naive_utc(as_of))
        .order_by(RuleSet.effective_at.desc(), RuleSet.id.desc())
        .limit(1)
    ).scalar()
    return DEFAULT_POINT_VALUE_MINOR if value is None else int(value)


# --------------------------------------------------------------------------- orders


def _per_customer(where: ColumnElement[bool], *keys: Any) -> Any:
    """Orders folded to one row per customer (and ``keys``): one GROUP BY instead
    of several COUNT(DISTINCT)s, each of which costs SQLite a temp B-tree."""
    member = _o.c.member_id.is_not(None)
    paid = _o.c.status == "paid"

    def total(cond: ColumnElement[bool], value: Any = 1) -> Any:
        return func.sum(case((cond, value), else_=0))

    # guests' figures are the differences: two aggregates fewer per row
    return (
        select(
            *keys,
            func.max(case((member, 1), else_=0)).label("member"),
            total(paid).label("paid"),
            total(and_(paid, member)).label("paid_m"),
            total(paid, _o.c.amount_minor).label("rev"),
            total(and_(paid, member), _o.c.amount_minor).label("rev_m"),
        )
        .where(where)
        .group_by(*keys, _o.c.customer_ref)
        .subquery()
    )


def order_stats(s: Session, f: dt.datetime, t: dt.datetime) -> dict[str, int]:
    """One pass over the period's orders (ix_orders_paid_cover) for every order KPI."""
    c = _per_customer(_in_window(_o.c.paid_at, f, t)).c

    def n(expr: Any) -> Any:
        return func.coalesce(func.sum(expr), 0)

    row = s.execute(
        select(
            func.count().label("customers"),
            n(c.member).label("member_customers"),
            n(case((c.paid > 0, 1), else_=0)).label("paying_customers"),
            n(case((c.paid_m > 0, 1), else_=0)).label("paying_member_customers"),
            n(case((c.paid > c.paid_m, 1), else_=0)).label("paying_guest_customers"),
            n(case((c.paid >= 2, 1), else_=0)).label("repeat_customers"),
            n(c.paid).label("paid_orders"),
            n(c.paid_m).label("paid_orders_members"),
            n(c.paid - c.paid_m).label("paid_orders_guests"),
            n(c.rev).label("revenue"),
            n(c.rev_m).label("revenue_members"),
            n(c.rev - c.rev_m).label("revenue_guests"),
        )
    ).one()
    return {k: _int(v) for k, v in row._mapping.items()}


def participation_rate(
    s: Session, date_from: dt.datetime | dt.date, date_to: dt.datetime | dt.date
) -> Ratio:
    """Customers who ordered as members ÷ all customers who ordered, in the period.

    Counted by customer_ref, so a customer who ordered both as a guest and as
    a member counts once in each; refunded orders count (the visit happened).
    """
    f, t = _period(date_from, date_to)
    fast = _participation_from_rollups(s, f, t)
    if fast is not None:
        return fast
    st = order_stats(s, f, t)
    return participation_of(st)


def _participation_from_rollups(s: Session, f: dt.datetime, t: dt.datetime) -> Ratio | None:
    """Two range counts on rollup_customers, valid when no order is at/after ``t``."""
    if not rollups.usable(s):
        return None
    last = rollups.from_micros(rollups.state(s)["max_order_at"])
    if last is not None and last >= t:
        return None
    rc = rollups.RollupCustomer
    customers = s.scalar(select(func.count()).where(rc.last_order_at >= f))
    member_customers = s.scalar(select(func.count()).where(rc.last_member_order_at >= f))
    return ratio(_int(member_customers), _int(customers))


def participation_of(st: dict[str, int]) -> Ratio:
    return ratio(st["member_customers"], st["customers"])


def average_check_of(st: dict[str, int]) -> Split:
    """Paid revenue ÷ paid orders (minor units), members vs guests side by side."""
    return Split(
        all=ratio(st["revenue"], st["paid_orders"]),
        members=ratio(st["revenue_members"], st["paid_orders_members"]),
        guests=ratio(st["revenue_guests"], st["paid_orders_guests"]),
    )


def purchase_frequency_of(st: dict[str, int], months: float) -> PurchaseFrequency:
    """Paid orders ÷ paying customers ÷ months in the period.

    "Active customers" are the customers with a paid order in the period; the
    per-month scaling makes a year comparable with a month (a year's value is
    lower than the average month's: a customer active in one month of twelve
    counts for the whole year). Members and guests side by side.
    """
    return PurchaseFrequency(
        months=months,
        split=Split(
            all=ratio(st["paid_orders"], st["paying_customers"], months),
            members=ratio(st["paid_orders_members"], st["paying_member_customers"], months),
            guests=ratio(st["paid_orders_guests"], st["paying_guest_customers"], months),
        ),
    )


def repeat_of(st: dict[str, int]) -> Ratio:
    """Customers with 2+ paid orders in the period ÷ customers with 1+ (by customer_ref)."""
    return ratio(st["repeat_customers"], st["paying_customers"])


def referral_conversion(
    s: Session, date_from: dt.datetime | dt.date, date_to: dt.datetime | dt.date
) -> Ratio:
    """Referred members who joined in the period and had a paid order before
    date_to ÷ referred members who joined in the period.

    The cohort is fixed by joining date and the conversion window ends with
    the period, so a closed period's figure does not drift as time passes
    (late joiners have less time to convert: compare like with like).
    """
    f, t = _period(date_from, date_to)
    if rollups.usable(s):
        rm = rollups.RollupMember
        row = s.execute(
            select(
                func.count(),
                func.coalesce(func.sum(case((rm.first_paid_at < t, 1), else_=0)), 0),
            ).where(rm.referrer_id.is_not(None), rm.joined_at >= f, rm.joined_at < t)
        ).one()
        return ratio(_int(row[1]), _int(row[0]))
    converted = exists().where(_o.c.member_id == _m.c.id, _o.c.status == "paid", _o.c.paid_at < t)
    row = s.execute(
        select(
            func.count(),
            func.coalesce(func.sum(case((converted, 1), else_=0)), 0),
        ).where(_m.c.referrer_id.is_not(None), _in_window(_m.c.joined_at, f, t))
    ).one()
    return ratio(_int(row[1]), _int(row[0]))


def active_member_rate(
    s: Session, as_of: dt.datetime | dt.date | None = None, days: int | None = None
) -> ActiveRate:
    """Members with an order or a redemption in ``[as_of - days, as_of)`` ÷ members
    who had joined before ``as_of`` (any status: "all members").

    ``days`` defaults to the program's active_days; ``as_of`` to now.
    """
    as_of = clock.utcnow() if as_of is None else _naive_utc(as_of)
    if days is None:
        days = program.program_info(s).active_days
    if days <= 0:
        raise ValidationError("days", N_("must be positive"))
    start = as_of - dt.timedelta(days=days)
    fast = _active_from_rollups(s, start, as_of)
    if fast is not None:
        return ActiveRate(fast, days, as_of)
    ordered = select(_o.c.member_id.label("member_id")).where(
        _o.c.member_id.is_not(None), _in_window(_o.c.paid_at, start, as_of)
    )
    redeemed = (
        select(_a.c.member_id.label("member_id"))
        .select_from(_e.join(_a, _a.c.id == _e.c.debit_account_id))
        .where(
            _e.c.kind == "redemption",
            _in_window(_e.c.effective_at, start, as_of),
            _a.c.member_id.is_not(None),
        )
    )
    active = union(ordered, redeemed).subquery()
    numerator = s.execute(
        select(func.count())
        .select_from(active.join(_m, _m.c.id == active.c.member_id))
        .where(_m.c.joined_at < as_of)
    ).scalar_one()
    denominator = s.execute(select(func.count()).where(_m.c.joined_at < as_of)).scalar_one()
    return ActiveRate(ratio(_int(numerator), _int(denominator)), days, as_of)


def _active_from_rollups(s: Session, start: dt.datetime, as_of: dt.datetime) -> Ratio | None:
    """A range count on rollup_members.last_activity_at, valid when nothing
    (order, entry, member) is dated at/after ``as_of``."""
    if not rollups.usable(s):
        return None
    st = rollups.state(s)
    if max(st["max_order_at"], st["max_entry_at"], st["max_joined_at"]) >= rollups.to_micros(as_of):
        return None
    rm = rollups.RollupMember
    active = s.scalar(
        select(func.count()).where(rm.last_activity_at >= start, rm.last_activity_at < as_of)
    )
    members = rollups.daily_sum(s, ["new_members"], None, None)["new_members"]
    return ratio(_int(active), members)


# --------------------------------------------------------------------------- points


def _day_aligned(*values: dt.datetime | None) -> bool:
    return all(v is None or v.time() == dt.time() for v in values)


_FLOW_METRICS = {
    "issued": ("pts_accrual", "pts_referral_bonus"),
    "issued_reversed": ("pts_rev_accrual", "pts_rev_referral_bonus"),
    "redeemed": ("pts_redemption",),
    "redeemed_reversed": ("pts_rev_redemption",),
    "expired": ("pts_expiry",),
    "expired_reversed": ("pts_rev_expiry",),
}


def points_flows(
    s: Session, date_from: dt.datetime | dt.date | None, date_to: dt.datetime | dt.date
) -> PointsFlows:
    """Points issued, redeemed and expired in the period, and their reversals.

    ``date_from=None`` means since the beginning. Uses ix_ledger_entries_kind_at.
    """
    t = _naive_utc(date_to)
    f = None if date_from is None else _naive_utc(date_from)
    if f is not None and t <= f:
        raise ValidationError("date_to", N_("the period must end after it starts"))
    if _day_aligned(f, t) and rollups.usable(s):
        names = [m for ms in _FLOW_METRICS.values() for m in ms]
        got = rollups.daily_sum(s, names, f, t)
        return PointsFlows(**{k: sum(got[m] for m in ms) for k, ms in _FLOW_METRICS.items()})
    gross = s.execute(
        select(_e.c.kind, func.sum(_e.c.amount))
        .where(
            _e.c.kind.in_((*ISSUED_KINDS, "redemption", "expiry")),
            _in_window(_e.c.effective_at, f, t),
        )
        .group_by(_e.c.kind)
    ).all()
    orig = _e.alias("reversed_entry")
    reversed_ = s.execute(
        select(orig.c.kind, func.sum(_e.c.amount))
        .select_from(_e.join(orig, orig.c.id == _e.c.reverses_entry_id))
        .where(_e.c.kind == "reversal", _in_window(_e.c.effective_at, f, t))
        .group_by(orig.c.kind)
    ).all()
    g = {k: _int(v) for k, v in gross}
    r = {k: _int(v) for k, v in reversed_}
    return PointsFlows(
        issued=sum(g.get(k, 0) for k in ISSUED_KINDS),
        issued_reversed=sum(r.get(k, 0) for k in ISSUED_KINDS),
        redeemed=g.get("redemption", 0),
        redeemed_reversed=r.get("redemption", 0),
        expired=g.get("expiry", 0),
        expired_reversed=r.get("expiry", 0),
    )


def breakage_of(expired_net: int, redeemed_net: int) -> Breakage:
    """The breakage rate of a period from its net expired and redeemed points:
    expired ÷ (expired + redeemed), each floored at zero.

    PRODUCT.md defines breakage as points expired ÷ points issued over the
    cohort of issued points. A point ends its life in a member's balance by
    being redeemed or expiring (a transfer only moves it to another member),
    so over the points that ended their life in the period, expired ÷
    (expired + redeemed) is that share, measured on a cohort that has fully
    matured. Its numerator is part of its denominator, so it never exceeds
    100 %. Points expired in the period ÷ points issued one expiry term
    earlier has no such bound: the expiry job expires whatever is left of
    every earlier credit (transfers and adjustments too), and a week holding
    a month's expiry run set against a week's issuance goes past 100 %.
    A period whose reversals exceed its redemptions or expiries (a refund
    restoring points spent earlier) counts zero of that kind.
    """
    expired, redeemed = max(int(expired_net), 0), max(int(redeemed_net), 0)
    return Breakage(ratio(expired, expired + redeemed), expired, redeemed)


def points_liability(s: Session, as_of: dt.datetime | dt.date | None = None) -> Liability:
    """Outstanding member points at ``as_of`` × the point value in force then.

    Starts from the member balance cache (== sum of entries, proven by the
    integrity check) and takes back the member-side effect of entries dated at
    or after ``as_of``: cheap for recent dates, exact for any date.
    """
    as_of = clock.utcnow() if as_of is None else _naive_utc(as_of)
    value = point_value_minor(s, as_of)
    currency = program.currency(s)
    if rollups.usable(s):
        after_all = rollups.state(s)["max_entry_at"] < rollups.to_micros(as_of)
        if after_all or _day_aligned(as_of):
            points = rollups.daily_sum(s, ["member_net"], None, None if after_all else as_of)[
                "member_net"
            ]
            return Liability(as_of, points, value, points * value, currency)
    cached = s.execute(
        select(func.coalesce(func.sum(_a.c.balance), 0)).where(_a.c.kind == "member")
    ).scalar_one()
    program_ids = list(
        s.execute(select(_a.c.id).where(_a.c.kind.in_(PROGRAM_ACCOUNT_KINDS))).scalars()
    )
    later = 0
    if program_ids:
        into_members = and_(
            _e.c.debit_account_id.in_(program_ids), _e.c.credit_account_id.not_in(program_ids)
        )
        out_of_members = and_(
            _e.c.credit_account_id.in_(program_ids), _e.c.debit_account_id.not_in(program_ids)
        )
        later = s.execute(
            select(
                func.coalesce(
                    func.sum(
                        case(
                            (into_members, _e.c.amount),
                            (out_of_members, -_e.c.amount),
                            else_=0,
                        )
                    ),
                    0,
                )
            ).where(_e.c.kind.in_(ENTRY_KINDS), _e.c.effective_at >= as_of)
        ).scalar_one()
    points = _int(cached) - _int(later)
    return Liability(as_of, points, value, points * value, currency)


# --------------------------------------------------------------------------- LTV


def ltv_cohorts(
    s: Session, date_from: dt.datetime | dt.date, date_to: dt.datetime | dt.date
) -> pd.DataFrame:
    """Cumulative paid revenue per member by calendar months since joining, for
    the monthly cohorts of members who joined in the period, observed up to date_to.

    Long table, one row per (cohort, months_since_join) up to the last month
    observed (that month may be partial): ``cohort`` (month start),
    ``months_since_join``, ``members`` (cohort size), ``revenue_minor`` (paid in
    that month), ``cumulative_revenue_minor``, ``ltv_minor`` (cumulative ÷
    members, float). Only the aggregate comes out of SQL.
    """
    f, t = _period(date_from, date_to)
    fast = rollups.cohort_rows(s, f, t)
    if fast is not None:  # rollup_cohort_months: same definition, no order scan
        sizes = list(fast[0].items())
        revenue = [(c, m - c, r) for c, m, _a, _n, r in fast[1]]
    else:
        sizes, revenue = _ltv_raw(s, f, t)
    return _ltv_frame(sizes, revenue, t)


def _ltv_raw(s: Session, f: dt.datetime, t: dt.datetime) -> tuple[list[Any], list[Any]]:
    """Cohort sizes and (cohort, months since joining, paid revenue) from the
    members and orders tables."""
    cohort = _month_index(_m.c.joined_at)
    sizes = s.execute(
        select(cohort.label("cohort"), func.count().label("members"))
        .where(_in_window(_m.c.joined_at, f, t))
        .group_by(cohort)
    ).all()
    since = _month_index(_o.c.paid_at) - cohort
    revenue = s.execute(
        select(
            cohort.label("cohort"),
            since.label("k"),
            func.sum(_o.c.amount_minor).label("revenue"),
        )
        .select_from(_o.join(_m, _m.c.id == _o.c.member_id))
        .where(
            _in_window(_m.c.joined_at, f, t),
            _o.c.status == "paid",
            _o.c.paid_at < t,
            _o.c.paid_at >= _m.c.joined_at,
        )
        .group_by(cohort, since)
    ).all()
    return list(sizes), list(revenue)


def _ltv_frame(sizes: list[Any], revenue: list[Any], t: dt.datetime) -> pd.DataFrame:
    """The long LTV table from cohort sizes and per-month revenue."""
    columns = [
        "cohort",
        "months_since_join",
        "members",
        "revenue_minor",
        "cumulative_revenue_minor",
        "ltv_minor",
    ]
    if not sizes:
        return pd.DataFrame(columns=columns)
    end = t - dt.timedelta(microseconds=1)  # the last instant observed
    last = end.year * 12 + end.month - 1
    grid = pd.DataFrame(
        [(int(c), k, int(n)) for c, n in sizes for k in range(last - int(c) + 1)],
        columns=["cohort_idx", "months_since_join", "members"],
    )
    rev = pd.DataFrame(
        [(int(c), int(k), _int(v)) for c, k, v in revenue],
        columns=["cohort_idx", "months_since_join", "revenue_minor"],
    )
    df = grid.merge(rev, on=["cohort_idx", "months_since_join"], how="left")
    df["revenue_minor"] = df["revenue_minor"].fillna(0).astype("int64")
    df = df.sort_values(["cohort_idx", "months_since_join"], ignore_index=True)
    df["cumulative_revenue_minor"] = df.groupby("cohort_idx")["revenue_minor"].cumsum()
    df["ltv_minor"] = df["cumulative_revenue_minor"] / df["members"]
    df["cohort"] = pd.to_datetime([dt.datetime(c // 12, c % 12 + 1, 1) for c in df["cohort_idx"]])
    return df[columns]


# --------------------------------------------------------------------------- snapshot


def kpi_snapshot(
    s: Session,
    date_from: dt.datetime | dt.date,
    date_to: dt.datetime | dt.date,
    as_of: dt.datetime | dt.date | None = None,
) -> dict[str, Any]:
    """Every scalar KPI of the period as JSON-ready data (CLI ``kpis --json``,
    executive page). Point-in-time KPIs (active rate, liability) are taken at
    ``as_of``, by default the end of the period or now, whichever is earlier.
    """
    f, t = _period(date_from, date_to)
    as_of = min(t, clock.utcnow()) if as_of is None else _naive_utc(as_of)
    ps = program.program_info(s)
    currency, active_days = ps.currency, ps.active_days
    st = order_stats(s, f, t)
    flows = points_flows(s, f, t)
    return {
        "period": {"from": _iso(f), "to": _iso(t)},
        "as_of": _iso(as_of),
        "currency": currency,
        "participation_rate": participation_of(st).as_dict(),
        "active_member_rate": active_member_rate(s, as_of, active_days).as_dict(),
        "redemption_rate": ratio(flows.redeemed_net, flows.issued_net).as_dict(),
        "breakage_rate": breakage_of(flows.expired_net, flows.redeemed_net).as_dict(),
        "points_liability": points_liability(s, as_of).as_dict(),
        "referral_conversion": referral_conversion(s, f, t).as_dict(),
        "repeat_purchase_rate": repeat_of(st).as_dict(),
        "purchase_frequency": purchase_frequency_of(st, months_between(f, t)).as_dict(),
        "average_check_minor": average_check_of(st).as_dict(digits=0),
        "points": flows.as_dict(),
        "orders": {
            "paid_orders": st["paid_orders"],
            "paid_orders_members": st["paid_orders_members"],
            "paid_orders_guests": st["paid_orders_guests"],
            "paid_revenue_minor": st["revenue"],
            "paid_revenue_members_minor": st["revenue_members"],
            "paid_revenue_guests_minor": st["revenue_guests"],
            "customers": st["customers"],
            "member_customers": st["member_customers"],
        },
    }


# --------------------------------------------------------------------------- charts


def kpi_timeseries(
    s: Session,
    date_from: dt.datetime | dt.date,
    date_to: dt.datetime | dt.date,
    freq: str = "month",
) -> pd.DataFrame:
    """Per-bucket series for charts, aggregated in SQL, every bucket present.

    Columns: ``period`` (bucket start), ``points_issued``, ``points_redeemed``,
    ``points_expired`` (net of reversals), ``paid_orders_members``,
    ``paid_orders_guests``, ``customers``, ``member_customers``,
    ``participation_rate`` (NaN where nobody ordered).
    """
    f, t = _period(date_from, date_to)
    d = _dialect(s)
    eb = date_bucket(_e.c.effective_at, freq, d).label("period")
    gross = s.execute(
        select(eb, _e.c.kind, func.sum(_e.c.amount))
        .where(
            _e.c.kind.in_((*ISSUED_KINDS, "redemption", "expiry")),
            _in_window(_e.c.effective_at, f, t),
        )
        .group_by(eb, _e.c.kind)
    ).all()
    orig = _e.alias("reversed_entry")
    reversed_ = s.execute(
        select(eb, orig.c.kind, -func.sum(_e.c.amount))
        .select_from(_e.join(orig, orig.c.id == _e.c.reverses_entry_id))
        .where(_e.c.kind == "reversal", _in_window(_e.c.effective_at, f, t))
        .group_by(eb, orig.c.kind)
    ).all()
    series = {
        "accrual": "points_issued",
        "referral_bonus": "points_issued",
        "redemption": "points_redeemed",
        "expiry": "points_expired",
    }
    points = pd.DataFrame(
        [(p, series[k], _int(v)) for p, k, v in (*gross, *reversed_) if k in series],
        columns=["period", "series", "amount"],
    )
    ob = date_bucket(_o.c.paid_at, freq, d).label("period")
    c = _per_customer(_in_window(_o.c.paid_at, f, t), ob).c
    orders = pd.DataFrame(
        s.execute(
            select(
                c.period,
                func.sum(c.paid_m),
                func.sum(c.paid - c.paid_m),
                func.count(),
                func.sum(c.member),
            ).group_by(c.period)
        ).all(),
        columns=[
            "period",
            "paid_orders_members",
            "paid_orders_guests",
            "customers",
            "member_customers",
        ],
    )
    pd_freq = {"day": "D", "week": "W-MON", "month": "MS", "year": "YS"}[freq]
    index = pd.date_range(_py_bucket(f, freq), t - dt.timedelta(microseconds=1), freq=pd_freq)
    out = pd.DataFrame(index=pd.DatetimeIndex(index, name="period"))
    if not points.empty:
        points["period"] = pd.to_datetime(points["period"])
        wide = points.pivot_table(index="period", columns="series", values="amount", aggfunc="sum")
        out = out.join(wide)
    if not orders.empty:
        orders["period"] = pd.to_datetime(orders["period"])
        out = out.join(orders.set_index("period"))
    counts = [
        "points_issued",
        "points_redeemed",
        "points_expired",
        "paid_orders_members",
        "paid_orders_guests",
        "customers",
        "member_customers",
    ]
    for col in counts:
        out[col] = out[col].fillna(0).astype("int64") if col in out else 0
    out = out[counts].reset_index()
    # NaN, not a made-up 0, where nobody ordered
    out["participation_rate"] = out["member_customers"] / out["customers"].where(
        out["customers"] > 0
    )
    return out
