"""A realistic demo program: rule history, members, a year of orders, all through the engine.

Deterministic for a given ``seed`` and ``start`` (numpy ``Generator``; every
decision that depends on a balance reads the engine's balance, and the order
of operations is fixed). Accrual, referral bonuses, tiers, redemptions and
transfers are decided by :class:`db.bulk.BulkPoster` (the engine's own
``decide_accrual``), refunds by :func:`db.ledger.refund_order` and expiry by
:func:`db.ledger.expire_points` - so ``loyalty check`` is clean afterwards.

The business it imitates (see /shared seeds): about 25 % of first-time
buyers become loyal, attached customers buy 50 % more often, the average
check grows from about 800 to 900 RUB as a customer becomes loyal; ~30 % of
orders come from guests (non-members); ~15 % of members joined through a
referral link, some referrers were referred themselves; weekly rhythm and a
December peak; segments behave differently.

Generation is vectorised per calendar month; posting runs in payment order.
Refunds are processed in a weekly batch (Monday night, when the shop is
closed), expiry monthly, so the poster's in-memory state is reloaded
(``sync_balances`` / ``note_refund``) only at those points.
"""

from __future__ import annotations

import datetime as dt
import secrets
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from db import audit, clock, ledger, rule_review, rules, settings_changes, users
from db.actor import SYSTEM, Actor
from db.demo.pilot import seed_demo_pilot
from db.errors import InvalidState, ValidationError
from db.ledger import OrderIn
from db.models import (
    Account,
    LedgerEntry,
    LedgerTransaction,
    Member,
    Order,
    ProgramSettings,
    RuleSet,
)
from db.session import Database

DAY = 86_400
PRE_MONTHS = 12  # members who joined before the demo year did so in the 12 months before

# segment: (share, check multiplier, frequency multiplier, loyalty multiplier)
SEGMENT_PROFILE = {
    "regular": (0.58, 1.00, 1.00, 1.00),
    "student": (0.14, 0.60, 1.25, 0.85),
    "pensioner": (0.12, 0.75, 1.10, 1.30),
    "large_family": (0.10, 1.45, 1.30, 1.20),
    "corporate": (0.06, 2.60, 0.70, 1.00),
}
SEGMENT_NAMES = tuple(SEGMENT_PROFILE)

# customer classes
NEVER, ONCE, OCCASIONAL, LOYAL, ATTACHED = range(5)
LOYAL_SHARE = 0.25  # of first-time buyers
ATTACHED_SHARE = 0.40  # of the loyal
LOYAL_ORDERS_PER_MONTH = 3.0
ATTACHED_BOOST = 1.5  # "attached customers buy 50 % more often"
OCCASIONAL_ORDERS_PER_YEAR = 2.0
MEAN_CHURN_DAYS = 540
BASE_CHECK = 800.0  # RUB, a new customer's mean check; grows to ~900 when loyal
LOYAL_CHECK_GROWTH = 0.125
CHECK_SIGMA = 0.55
GUEST_SHARE = 0.30  # of all orders
REFERRED_SHARE = 0.15
PRE_START_SHARE = 0.15
REFUND_SHARE = 0.003
MAX_REFUNDS_PER_MONTH = 250
WEEKLY_REFUNDS_UP_TO = 5_000  # members; bigger programs refund monthly (each batch
# makes the poster reload every balance: ~80 ms at 20k members, seconds at 1M)
VOUCHERS = (300, 500, 1000, 2000)
REDEEM_AT_CHECKOUT = {ONCE: 0.0, OCCASIONAL: 0.10, LOYAL: 0.20, ATTACHED: 0.28}
VOUCHERS_PER_MONTH = {LOYAL: 0.10, ATTACHED: 0.15}
TRANSFERS_PER_MONTH = 0.05
BLOCKED_SHARE = 0.002

WEEKDAY = np.array([0.85, 0.85, 0.90, 0.95, 1.15, 1.30, 1.00])  # Mon..Sun
MONTH_SEASON = {1: 0.85, 2: 0.88, 3: 0.95, 4: 0.95, 5: 1.00, 6: 0.95, 7: 0.92, 8: 0.97,
                9: 1.00, 10: 1.02, 11: 1.10, 12: 1.35}
HOURS = np.arange(8, 23)  # the shop is open 08:00-23:00 UTC; refunds run at night
HOUR_W = np.array([2, 3, 4, 5, 6, 6, 5, 4, 5, 7, 8, 8, 6, 4, 2], dtype=float)
HOUR_W /= HOUR_W.sum()

FIRST = ("Aleksandr", "Anna", "Dmitry", "Elena", "Ivan", "Maria", "Sergey", "Olga", "Andrey",
         "Tatiana", "Mikhail", "Natalia", "Alexey", "Irina", "Nikolai", "Svetlana", "Pavel",
         "Ekaterina", "Artem", "Yulia", "Fatima", "Omar", "Dewi", "Budi", "Layla", "Ahmad")
LAST = ("Ivanov", "Petrov", "Smirnov", "Kuznetsov", "Popov", "Volkov", "Sokolov", "Lebedev",
        "Kozlov", "Novikov", "Morozov", "Pavlov", "Orlov", "Fedorov", "Nikitin", "Zakharov",
        "Hassan", "Rahman", "Santoso", "Wijaya", "Haddad", "Saleh")
# the Russian names as a Russian shop's records hold them: every third member
# (by number, so the demo stays the same for the same seed) is written in
# Cyrillic, a woman's surname in its feminine form; the email stays Latin
CYRILLIC_FIRST = {
    "Aleksandr": "Александр", "Anna": "Анна", "Dmitry": "Дмитрий", "Elena": "Елена",
    "Ivan": "Иван", "Maria": "Мария", "Sergey": "Сергей", "Olga": "Ольга", "Andrey": "Андрей",
    "Tatiana": "Татьяна", "Mikhail": "Михаил", "Natalia": "Наталья", "Alexey": "Алексей",
    "Irina": "Ирина", "Nikolai": "Николай", "Svetlana": "Светлана", "Pavel": "Павел",
    "Ekaterina": "Екатерина", "Artem": "Артём", "Yulia": "Юлия",
}
CYRILLIC_LAST = {
    "Ivanov": "Иванов", "Petrov": "Петров", "Smirnov": "Смирнов", "Kuznetsov": "Кузнецов",
    "Popov": "Попов", "Volkov": "Волков", "Sokolov": "Соколов", "Lebedev": "Лебедев",
    "Kozlov": "Козлов", "Novikov": "Новиков", "Morozov": "Морозов", "Pavlov": "Павлов",
    "Orlov": "Орлов", "Fedorov": "Фёдоров", "Nikitin": "Никитин", "Zakharov": "Захаров",
}
FEMININE = frozenset({"Anna", "Elena", "Maria", "Olga", "Tatiana", "Natalia", "Irina",
                      "Svetlana", "Ekaterina", "Yulia"})
CYRILLIC_EVERY = 3


def member_name(first: str, last: str, number: int) -> str:
    """The demo member's name: in Cyrillic for every third member whose first
    and last names are Russian, else in Latin letters."""
    if number % CYRILLIC_EVERY == 0 and first in CYRILLIC_FIRST and last in CYRILLIC_LAST:
        surname = CYRILLIC_LAST[last] + ("а" if first in FEMININE else "")
        return f"{CYRILLIC_FIRST[first]} {surname}"
    return f"{first} {last}"

V1_TIERS = [
    {"name": "Bronze", "threshold": "0", "accrual_rate": "3", "referral_rate": "1"},
    {"name": "Silver", "threshold": "10000", "accrual_rate": "5", "referral_rate": "2"},
    {"name": "Gold", "threshold": "30000", "accrual_rate": "7", "referral_rate": "3"},
]
REJECTED_TIERS = [
    {"name": "Bronze", "threshold": "0", "accrual_rate": "6", "referral_rate": "2"},
    {"name": "Silver", "threshold": "10000", "accrual_rate": "10", "referral_rate": "4"},
    {"name": "Gold", "threshold": "30000", "accrual_rate": "14", "referral_rate": "6"},
]
V2_TIERS = [
    {"name": "Bronze", "threshold": "0", "accrual_rate": "3", "referral_rate": "1.5"},
    {"name": "Silver", "threshold": "8000", "accrual_rate": "5", "referral_rate": "2.5"},
    {"name": "Gold", "threshold": "25000", "accrual_rate": "7", "referral_rate": "3.5"},
    {"name": "Platinum", "threshold": "60000", "accrual_rate": "10", "referral_rate": "5"},
]
DRAFT_TIERS = [
    {"name": "Bronze", "threshold": "0", "accrual_rate": "2.5", "referral_rate": "1.5"},
    {"name": "Silver", "threshold": "8000", "accrual_rate": "5", "referral_rate": "2.5"},
    {"name": "Gold", "threshold": "25000", "accrual_rate": "7.5", "referral_rate": "3.5"},
    {"name": "Platinum", "threshold": "50000", "accrual_rate": "10", "referral_rate": "5"},
]

DEMO_STAFF = (
    ("supervisor", "supervisor", "Demo Supervisor"),
    ("supervisor2", "supervisor", "Second Supervisor"),
    ("executive", "executive", "Demo Executive"),
    ("support", "support", "Demo Support"),
)

# event kinds, in the order they run when they share a second
GUEST_ORDER, MEMBER_ORDER, VOUCHER, TRANSFER = range(4)


UNCHANGED = "(unchanged)"
DEMO_PILOT_DAYS = 60
DEMO_PILOT_MIN_MEMBERS = 2_000


class DemoStaff(NamedTuple):
    """Unpacks as ``username, password, role`` (what ``loyalty demo`` prints)."""

    username: str
    password: str  # the new random password, or UNCHANGED for an existing account
    role: str

    @property
    def created(self) -> bool:
        return self.password != UNCHANGED


@dataclass
class SeedReport:
    members: int = 0
    referred_members: int = 0
    orders: int = 0
    member_orders: int = 0
    guest_orders: int = 0
    entries: int = 0
    checkout_redemptions: int = 0
    vouchers: int = 0
    transfers: int = 0
    refunds: int = 0
    expiry_runs: int = 0
    points_expired: int = 0
    points_accrued: int = 0
    referral_bonus: int = 0
    published_versions: int = 0
    tiers: dict[str, int] = field(default_factory=dict)
    start: dt.datetime | None = None
    end: dt.datetime | None = None
    seconds: float = 0.0
    staff: list[DemoStaff] = field(default_factory=list)
    pilot: Any = None  # db.demo.pilot.DemoPilotReport when a demo pilot was seeded
    adjustments: int = 0
    recent_signups: int = 0  # members who joined after the base history (see _recent_signups)

    def _per_s(self, n: int) -> float:
        return n / self.seconds if self.seconds > 0 else 0.0

    @property
    def orders_per_second(self) -> float:
        return self._per_s(self.orders)

    @property
    def entries_per_second(self) -> float:
        return self._per_s(self.entries)

    @property
    def members_per_second(self) -> float:
        return self._per_s(self.members)

    @property
    def rows_per_second(self) -> float:
        return self._per_s(self.orders + self.entries + self.members)

    def __str__(self) -> str:
        lines = [self.summary()]
        lines.append(
            f"{self.published_versions} published rule versions; tiers: "
            + ", ".join(f"{k or 'none'} {v:,}" for k, v in self.tiers.items())
            + f"; {self.checkout_redemptions:,} checkout redemptions, {self.vouchers:,} "
            f"vouchers, {self.transfers:,} transfers, {self.refunds:,} refunds, "
            f"{self.points_expired:,} points expired in {self.expiry_runs} runs"
        )
        if self.pilot is not None:
            lines.append(self.pilot.summary())
        if self.recent_signups:
            lines.append(f"{self.recent_signups:,} members joined since the base history "
                         "(sign-ups and first orders up to now)")
        for st in self.staff:
            if st.created:
                lines.append(f"created staff {st.username} ({st.role}), password {st.password}")
        return "\n".join(lines)

    def summary(self) -> str:
        return (
            f"{self.members:,} members ({self.referred_members:,} referred), "
            f"{self.orders:,} orders ({self.guest_orders:,} guest), {self.entries:,} ledger "
            f"entries in {self.seconds:.1f} s: {self.orders_per_second:,.0f} orders/s, "
            f"{self.entries_per_second:,.0f} entries/s, {self.members_per_second:,.0f} members/s"
        )


@dataclass
class MonthContext:
    """What a hook sees at the start of each demo month (e.g. to start a demo pilot)."""

    session: Session
    poster: object  # db.bulk.BulkPoster
    index: int
    month_start: dt.datetime
    month_end: dt.datetime
    member_ids: np.ndarray  # ids of the members created so far (0 where not yet)
    rng: np.random.Generator


Hook = Callable[[MonthContext], None]


# --------------------------------------------------------------------------
# staff


def ensure_demo_staff(s: Session) -> list[DemoStaff]:
    """The demo accounts ``supervisor``, ``supervisor2``, ``executive``, ``support``.

    New accounts get a random password, returned once (print it); existing
    ones are left alone (password ``UNCHANGED``).
    """
    out = []
    for username, role, full_name in DEMO_STAFF:
        u = users.get_user_by_name(s, username)
        if u is not None:
            out.append(DemoStaff(username, UNCHANGED, u.role))
            continue
        password = secrets.token_urlsafe(12)
        users.create_user(s, username, password, role, full_name=full_name, actor="cli")
        out.append(DemoStaff(username, password, role))
    return out


DEMO_ADJUSTMENTS = (  # (points, reason, comment, decision)
    (150, "missing_accrual", "Receipt shows an order the shop did not send", "approve"),
    (500, "goodwill", "Delivery two days late; apology points", "approve"),
    (-80, "wrong_accrual", "Order accrued twice at the till", "reject"),
    (300, "transfer_dispute", "Member says a transfer went to the wrong card", None),
    (200, "goodwill", "Birthday gesture agreed with the store manager", None),
)


def _demo_adjustments(s: Session, rng: np.random.Generator) -> int:
    """A few requests from the demo support account, some decided by a demo
    supervisor, so the approval queue and the history are not empty.
    Only when the demo staff accounts exist."""
    from db import adjustments

    try:
        support, supervisor = _actor(s, "support"), _actor(s, "supervisor")
    except InvalidState:
        return 0
    rows = s.execute(
        select(Member.id).join(Account, Account.member_id == Member.id)
        .where(Member.status == "active", Account.balance >= 100).order_by(Member.id)
    ).scalars().all()
    if len(rows) < len(DEMO_ADJUSTMENTS):
        return 0
    picks = rng.choice(len(rows), len(DEMO_ADJUSTMENTS), replace=False)
    # dated just after the last recorded operation, so the history stays in time order
    last = max(
        s.scalar(select(func.max(Order.paid_at))),
        s.scalar(select(func.max(LedgerTransaction.effective_at))),
    )
    for n, (points, reason, comment, decision) in enumerate(DEMO_ADJUSTMENTS):
        at = last + dt.timedelta(minutes=10 * (n + 1))
        req = adjustments.request_adjustment(
            s, support, int(rows[picks[n]]), points, reason, comment,
            ticket_ref=f"HD-{20500 + n}", at=at,
        )
        if decision == "approve":
            adjustments.approve_adjustment(s, supervisor, req.id, at=at + dt.timedelta(minutes=5))
        elif decision == "reject":
            adjustments.reject_adjustment(
                s, supervisor, req.id, "The second accrual was a different order",
                at=at + dt.timedelta(minutes=5),
            )
    return len(DEMO_ADJUSTMENTS)


def _actor(s: Session, username: str) -> Actor:
    u = users.get_user_by_name(s, username)
    if u is None:
        raise InvalidState(f"staff user {username!r} does not exist")
    return Actor(u.username, u.id, u.role)


# --------------------------------------------------------------------------
# time helpers


def add_months(d: dt.datetime, n: int) -> dt.datetime:
    """The same day ``n`` months later (clamped to the month's last day)."""
    y, m = divmod(d.month - 1 + n, 12)
    first_next = dt.date(d.year + y + (m + 1) // 12, (m + 1) % 12 + 1, 1)
    last_day = (first_next - dt.timedelta(days=1)).day
    return d.replace(year=d.year + y, month=m + 1, day=min(d.day, last_day))


def _day_factors(first_day: dt.date, days: int) -> np.ndarray:
    """Seasonality x weekday for each day: December peak, quiet New Year holidays."""
    f = np.empty(days)
    for i in range(days):
        d = first_day + dt.timedelta(days=i)
        x = MONTH_SEASON[d.month] * WEEKDAY[d.weekday()]
        if d.month == 12 and d.day >= 15:
            x *= 1.3
        elif d.month == 1 and d.day <= 8:
            x *= 0.7
        f[i] = x
    return f


# --------------------------------------------------------------------------
# rules


def _publish_history(
    s: Session, author: Actor, approver: Actor, start: dt.datetime, end: dt.datetime,
    months: int,
) -> int:
    """v1 at the start; a rejected promo; v2 (Platinum) at ~month 7; a draft for later."""

    def backdate(rid: int, created: dt.datetime, decided: dt.datetime | None) -> None:
        rs = s.get(RuleSet, rid)
        rs.created_at = created
        rs.submitted_at = created + dt.timedelta(days=2)
        if decided is not None:
            rs.decided_at = decided

    v1 = rules.create_draft(s, author, "Launch: Bronze / Silver / Gold", V1_TIERS,
                            note="Programme launch: 3 / 5 / 7 % back, referral 1-3 %.")
    rule_review.submit(s, author, v1, require_simulation=False)
    rules.approve(s, approver, v1, start, allow_past=True, note="Agreed with sales and accounting")
    backdate(v1, start - dt.timedelta(days=21), start - dt.timedelta(days=14))
    published = 1
    v2_at = add_months(start, max(1, round(months * 7 / 12))) if months >= 2 else None
    if v2_at is not None and v2_at < end:
        promo = rules.create_draft(s, author, "Summer promo: double points", REJECTED_TIERS,
                                   based_on_id=v1, note="Double every rate for the summer.")
        rule_review.submit(s, author, promo, require_simulation=False)
        rules.reject(s, approver, promo,
                     "Doubles the points liability; accounting wants a pilot first.")
        backdate(promo, v2_at - dt.timedelta(days=75), v2_at - dt.timedelta(days=70))
        v2 = rules.create_draft(
            s, author, "Platinum tier, lower thresholds", V2_TIERS, based_on_id=v1,
            note="Adds Platinum from 60,000 RUB; Silver from 8,000, Gold from 25,000.",
        )
        rule_review.submit(s, author, v2, require_simulation=False)
        rules.approve(s, approver, v2, v2_at, allow_past=True,
                      note="Simulated on the live membership first")
        backdate(v2, v2_at - dt.timedelta(days=30), v2_at - dt.timedelta(days=20))
        published += 1
        draft = rules.create_draft(
            s, author, "Proposal: richer Gold, Platinum from 50,000", DRAFT_TIERS,
            based_on_id=v2, note="Draft for the next review: simulate before submitting.",
        )
        backdate(draft, end - dt.timedelta(days=5), None)
    return published


# --------------------------------------------------------------------------
# the population


@dataclass
class _Population:
    n: int
    join: np.ndarray  # seconds from start (negative: joined before the demo year)
    batch: np.ndarray  # creation batch (calendar month index from start - PRE_MONTHS)
    segment: np.ndarray
    klass: np.ndarray
    first: np.ndarray  # first purchase, seconds from start (inf: none in the year)
    active_from: np.ndarray  # repeat orders from here
    active_until: np.ndarray
    rate: np.ndarray  # repeat orders per day
    check: np.ndarray  # mean check, RUB, of a new customer
    referrer: np.ndarray  # member index, -1 none
    p_redeem: np.ndarray
    p_voucher: np.ndarray  # per month
    p_transfer: np.ndarray  # per month
    transfer_to: np.ndarray  # member index
    orders_so_far: np.ndarray


def _population(
    rng: np.random.Generator, n: int, start: dt.datetime, bounds: np.ndarray, span: float
) -> _Population:
    pre = rng.random(n) < PRE_START_SHARE
    days = int(span // DAY)
    # join days in the year: growth through the year, more in the busy season
    w = (1 + 0.6 * np.arange(days) / max(days, 1)) * _day_factors(start.date(), days)
    jday = rng.choice(days, size=n, p=w / w.sum())
    jtime = jday * DAY + rng.choice(HOURS, size=n, p=HOUR_W) * 3600 + rng.integers(0, 3600, n)
    pre_span = float(-bounds[0])
    join = np.where(pre, -rng.random(n) * pre_span, jtime.astype(float))
    join = np.sort(join)
    pre = join < 0
    batch = np.searchsorted(bounds, join, side="right") - 1

    shares = np.array([p[0] for p in SEGMENT_PROFILE.values()])
    segment = rng.choice(len(SEGMENT_NAMES), size=n, p=shares / shares.sum())
    prof = np.array(list(SEGMENT_PROFILE.values()))
    check_mult, freq_mult, loyal_mult = prof[segment, 1], prof[segment, 2], prof[segment, 3]

    referred = (rng.random(n) < REFERRED_SHARE) & (batch > 0)
    u = rng.random(n)
    loyal_p = np.clip(LOYAL_SHARE * loyal_mult, 0, 0.6)
    klass = np.where(
        u < 0.60, ONCE, np.where(u < 0.60 + 0.15, OCCASIONAL, LOYAL)
    ).astype(np.int8)
    # loyalty by segment: move the top of the distribution
    klass = np.where(u >= 1 - loyal_p, LOYAL, np.where(klass == LOYAL, OCCASIONAL, klass))
    buyer = rng.random(n) < np.where(referred, 0.95, 0.88)
    klass = np.where(buyer, klass, NEVER)
    upre = rng.random(n)  # members from before the year: established customers
    klass = np.where(pre, np.where(upre < 0.25, NEVER, np.where(upre < 0.55, OCCASIONAL, LOYAL)),
                     klass).astype(np.int8)
    klass = np.where((klass == LOYAL) & (rng.random(n) < ATTACHED_SHARE), ATTACHED, klass)

    joined_at_till = rng.random(n) < 0.55
    delay = np.where(joined_at_till, 120.0, rng.exponential(4 * DAY, n))
    first = join + delay
    first = np.where(pre | (klass == NEVER), np.inf, first)
    first = np.where(first >= span, np.inf, first)
    active_from = np.where(pre, 0.0, first + DAY)
    active_until = np.where(
        klass >= LOYAL, active_from + rng.exponential(MEAN_CHURN_DAYS * DAY, n), np.inf
    )
    rate = np.zeros(n)
    rate = np.where(klass == OCCASIONAL,
                    OCCASIONAL_ORDERS_PER_YEAR / 365 * rng.gamma(2.0, 0.5, n), rate)
    loyal_rate = LOYAL_ORDERS_PER_MONTH / 30.4 * freq_mult * rng.gamma(4.0, 0.25, n)
    rate = np.where(klass == LOYAL, loyal_rate, rate)
    rate = np.where(klass == ATTACHED, loyal_rate * ATTACHED_BOOST, rate)
    check = BASE_CHECK * check_mult * rng.lognormal(-0.02, 0.2, n)

    # referrals: from members created in an earlier batch, preferably loyal and
    # themselves referred (chains)
    capable_p = 0.05 + 0.12 * (klass >= LOYAL) + 0.25 * referred
    pool = np.flatnonzero(rng.random(n) < capable_p)
    batch_first = np.searchsorted(batch, np.arange(batch.max() + 2))
    limit = np.searchsorted(pool, batch_first[batch])
    pick = (rng.random(n) * limit).astype(np.int64)
    referrer = np.where(referred & (limit > 0), pool[np.minimum(pick, max(len(pool) - 1, 0))]
                        if len(pool) else -1, -1)

    p_redeem = np.vectorize(REDEEM_AT_CHECKOUT.get, otypes=[float])(
        np.where(klass == NEVER, ONCE, klass)
    )
    p_voucher = np.where(klass == LOYAL, VOUCHERS_PER_MONTH[LOYAL],
                         np.where(klass == ATTACHED, VOUCHERS_PER_MONTH[ATTACHED], 0.0))
    family = (segment == SEGMENT_NAMES.index("large_family")) | (referrer >= 0)
    p_transfer = np.where(family & (klass >= OCCASIONAL), TRANSFERS_PER_MONTH, 0.0)
    other = (rng.random(n) * np.arange(n)).astype(np.int64)  # an earlier member: family
    transfer_to = np.where(referrer >= 0, referrer, other)
    p_transfer = np.where(transfer_to == np.arange(n), 0.0, p_transfer)
    return _Population(n, join, batch, segment, klass, first, active_from, active_until, rate,
                       check, referrer, p_redeem, p_voucher, p_transfer, transfer_to,
                       np.zeros(n, dtype=np.int64))


def _contact(first: str, last: str, number: int, phone: int | None, email: bool = True
             ) -> dict[str, str | None]:
    """A demo member's name, email (made unique by ``number``) and phone."""
    return {"name": member_name(first, last, number),
            "email": f"{first}.{last}{number}@example.com".lower() if email else None,
            "phone": f"+7{phone}" if phone is not None else None}


def _member_rows(rng: np.random.Generator, idx: np.ndarray, pop: _Population,
                 start: dt.datetime, ids: np.ndarray) -> list[dict]:
    first = rng.integers(0, len(FIRST), len(idx))
    last = rng.integers(0, len(LAST), len(idx))
    has_email = rng.random(len(idx)) < 0.7
    has_phone = rng.random(len(idx)) < 0.8
    phone = rng.integers(900_000_0000, 999_999_9999, len(idx))
    joined = (np.datetime64(start, "us")
              + (pop.join[idx] * 1e6).astype("timedelta64[us]")).astype("datetime64[s]").tolist()
    rows = []
    for k, i in enumerate(idx.tolist()):
        fn, ln = FIRST[first[k]], LAST[last[k]]
        ref = pop.referrer[i]
        rows.append({
            "external_id": f"C{i + 1:07d}",
            "joined_at": joined[k],
            **_contact(fn, ln, i + 1, int(phone[k]) if has_phone[k] else None, has_email[k]),
            "segment": SEGMENT_NAMES[pop.segment[i]],
            "referrer_id": int(ids[ref]) if ref >= 0 else None,
        })
    return rows


def _recent_signups(s: Session, rng: np.random.Generator, since: dt.datetime,
                    until: dt.datetime, actor: Actor) -> tuple[int, int]:
    """Sign-ups from ``since`` (the end of the base history) to ``until``, at the
    rate of the base history's last 60 days, about 15 % through a referral link,
    most of them ordering soon after joining: so the live page's participation
    and referral figures have recent joiners to count. The demo pilot has drawn
    its groups before: these members are in neither. Written by the engine's
    bulk path, in time order; their orders interleave with the pilot period's."""
    if until <= since:
        return 0, 0
    joined_recently = s.scalar(select(func.count()).select_from(Member).where(
        Member.joined_at >= since - dt.timedelta(days=60), Member.joined_at < since)) or 0
    span = (until - since).total_seconds()
    n = int(rng.poisson(joined_recently / 60 * span / DAY))
    if n == 0:
        return 0, 0
    referrers = [i for (i,) in s.execute(
        select(Member.id).where(Member.status == "active", Member.joined_at < since)
        .order_by(Member.id))]
    join = np.sort(rng.random(n) * span)
    first = join + np.where(rng.random(n) < 0.55, 120.0, rng.exponential(4 * DAY, n))
    second = first + rng.exponential(12 * DAY, n)
    buys = rng.random(n) < 0.88
    again = rng.random(n) < 0.35
    names_f = rng.integers(0, len(FIRST), n)
    names_l = rng.integers(0, len(LAST), n)
    phone = rng.integers(900_000_0000, 999_999_9999, n)
    segment = rng.integers(0, len(SEGMENT_NAMES), n)
    referred = rng.random(n) < REFERRED_SHARE
    amount = np.maximum(100, np.round(80_000 * rng.lognormal(-0.125, 0.5, (n, 2)))).astype(
        np.int64)
    base = s.scalar(select(func.count()).select_from(Member)) or 0
    rows, orders = [], []
    for k in range(n):
        fn, ln = FIRST[names_f[k]], LAST[names_l[k]]
        ext = f"C{base + k + 1:07d}"
        ref = referrers[int(rng.integers(0, len(referrers)))] if referred[k] and referrers else None
        rows.append({"external_id": ext, "joined_at": since + dt.timedelta(seconds=float(join[k])),
                     **_contact(fn, ln, base + k + 1, int(phone[k])),
                     "segment": SEGMENT_NAMES[segment[k]], "referrer_id": ref})
        for j, t in enumerate((first[k], second[k])):
            if buys[k] and (j == 0 or again[k]) and t < span:
                orders.append((float(t), k, ext, int(amount[k, j])))
    from db.bulk import BulkPoster

    # the referrers' state holds all their orders, those of the pilot period
    # included, so a bonus uses the referrer's tier at the payment time
    poster = BulkPoster(s, actor=actor)
    poster.prepare({r["referrer_id"] for r in rows if r["referrer_id"]}, since)
    ids = poster.add_members(rows)
    for t, k, ext, amt in sorted(orders):
        poster.post(OrderIn(f"N{k + 1:07d}-{int(t)}", ext, since + dt.timedelta(seconds=t), amt),
                    ids[k])
    poster.flush()
    return n, int(referred.sum()) if referrers else 0


# --------------------------------------------------------------------------
# one month of events


def _month_events(
    rng: np.random.Generator, pop: _Population, ms: float, me: float, factors: np.ndarray,
    guest_pool: int,
) -> dict[str, np.ndarray]:
    n = pop.n
    fmax = factors.max()

    def day_time(t: np.ndarray) -> np.ndarray:
        """Keep the day, draw a time of day from the shop's hours."""
        day = np.floor((t - ms) / DAY)
        return ms + day * DAY + rng.choice(HOURS, size=len(t), p=HOUR_W) * 3600 \
            + rng.integers(0, 3600, len(t))

    # first purchases
    fi = np.flatnonzero((pop.first >= ms) & (pop.first < me))
    ft = pop.first[fi]
    # repeat orders: thinned Poisson process over the member's active window
    lo = np.maximum(pop.active_from, ms)
    hi = np.minimum(pop.active_until, me)
    expo = np.clip(hi - lo, 0, None) / DAY
    cand = rng.poisson(pop.rate * expo * fmax)
    ri = np.repeat(np.arange(n), cand)
    rt = lo[ri] + rng.random(len(ri)) * (hi[ri] - lo[ri])
    keep = rng.random(len(ri)) * fmax < factors[((rt - ms) // DAY).astype(np.int64)]
    ri, rt = ri[keep], day_time(rt[keep])
    keep = (rt >= lo[ri]) & (rt < me)
    ri, rt = ri[keep], rt[keep]
    mi = np.concatenate([fi, ri])
    mt = np.concatenate([ft, rt])
    is_first = np.concatenate([np.ones(len(fi), bool), np.zeros(len(ri), bool)])
    growth = 1 + LOYAL_CHECK_GROWTH * np.minimum(pop.orders_so_far[mi], 8) / 8
    mamount = pop.check[mi] * growth * rng.lognormal(-CHECK_SIGMA**2 / 2, CHECK_SIGMA, len(mi))
    np.add.at(pop.orders_so_far, mi, 1)
    mu = rng.random(len(mi))
    redeem_u = np.where(is_first | (mu >= pop.p_redeem[mi]), -1.0, mu / np.maximum(
        pop.p_redeem[mi], 1e-9))

    # guest orders: ~30 % of all
    ng = rng.poisson(len(mi) * GUEST_SHARE / (1 - GUEST_SHARE))
    gday = rng.choice(len(factors), size=ng, p=factors / factors.sum())
    gt = day_time(ms + gday * DAY + 0.0)
    gi = (guest_pool * rng.random(ng) ** 2).astype(np.int64)  # some guests come back
    gamount = BASE_CHECK * 0.95 * rng.lognormal(-CHECK_SIGMA**2 / 2, CHECK_SIGMA, ng)

    # vouchers and transfers (decided at posting time from the balance)
    def occasional(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        k = rng.poisson(p * expo / 30.4)
        i = np.repeat(np.arange(n), k)
        t = day_time(lo[i] + rng.random(len(i)) * (hi[i] - lo[i]))
        ok = (t >= lo[i]) & (t < me)
        return i[ok], t[ok]

    vi, vt = occasional(pop.p_voucher)
    ti, tt = occasional(pop.p_transfer)
    # a transfer needs its receiver to exist by then
    ok = pop.join[pop.transfer_to[ti]] <= tt
    ti, tt = ti[ok], tt[ok]

    kind = np.concatenate([
        np.full(len(mi), MEMBER_ORDER, np.int8), np.full(ng, GUEST_ORDER, np.int8),
        np.full(len(vi), VOUCHER, np.int8), np.full(len(ti), TRANSFER, np.int8),
    ])
    t = np.concatenate([mt, gt, vt, tt]).astype(np.int64)
    who = np.concatenate([mi, gi, vi, ti])
    amount = np.concatenate([
        np.round(mamount * 100), np.round(gamount * 100), np.zeros(len(vi)), np.zeros(len(ti))
    ]).astype(np.int64)
    amount = np.maximum(amount, 100)
    u = np.concatenate([redeem_u, np.full(ng, -1.0), rng.random(len(vi)), rng.random(len(ti))])
    order = np.lexsort((kind, t))
    return {"kind": kind[order], "t": t[order], "who": who[order], "amount": amount[order],
            "u": u[order]}


# --------------------------------------------------------------------------
# the seeder


def seed(
    db: Database | Session,
    *,
    members: int = 20_000,
    seed: int = 42,
    start: dt.datetime | None = None,
    months: int = 12,
    progress: bool = True,
    author: Actor | None = None,
    approver: Actor | None = None,
    expiry_days: int = 180,
    hooks: Sequence[Hook] = (),
    actor: Actor = SYSTEM,
    pilot: bool | None = None,
) -> SeedReport:
    """Fill an empty program database with ``members`` members and ``months`` of history.

    ``start`` defaults to today (UTC midnight) minus ``months`` months, so the
    history ends today; pass it explicitly for a reproducible database.
    ``pilot`` (default: from DEMO_PILOT_MIN_MEMBERS members on) adds a demo
    pilot with a real effect over DEMO_PILOT_DAYS more days of orders
    (:func:`db.demo.pilot.seed_demo_pilot`).
    ``author``/``approver`` (two supervisors) sign the rule history; when not
    given, :func:`ensure_demo_staff` provides them and the report carries
    the passwords of accounts it created.
    """
    if isinstance(db, Database):
        return db.write_tx(lambda s: _seed(s, members, seed, start, months, progress, author,
                                           approver, expiry_days, hooks, actor, pilot))
    return _seed(db, members, seed, start, months, progress, author, approver, expiry_days,
                 hooks, actor, pilot)


def _seed(
    s: Session, n: int, seed_: int, start: dt.datetime | None, months: int, progress: bool,
    author: Actor | None, approver: Actor | None, expiry_days: int, hooks: Sequence[Hook],
    actor: Actor, pilot: bool | None = None,
) -> SeedReport:
    from db.bulk import BulkPoster

    t0 = time.perf_counter()
    if not 1 <= n <= 50_000_000:
        raise ValidationError("members", "must be 1 to 50,000,000")
    if not 1 <= months <= 120:
        raise ValidationError("months", "must be 1 to 120")
    if s.scalar(select(func.count()).select_from(Member)) or s.scalar(
        select(func.count()).select_from(Order)
    ):
        raise InvalidState("the program database already has members or orders; "
                           "demo data goes into an empty one")
    if pilot is None:
        pilot = n >= DEMO_PILOT_MIN_MEMBERS
    if start is None:
        today = clock.utcnow()
        # the demo pilot adds DEMO_PILOT_DAYS of history after the base year
        start = add_months(today, -months) - dt.timedelta(days=DEMO_PILOT_DAYS + 2 if pilot else 0)
    start = start.replace(tzinfo=None, hour=0, minute=0, second=0, microsecond=0)
    end = add_months(start, months)
    rep = SeedReport(start=start, end=end)

    if author is None or approver is None:
        rep.staff = ensure_demo_staff(s)
        author, approver = _actor(s, "supervisor"), _actor(s, "supervisor2")
    rep.published_versions = _publish_history(s, author, approver, start, end, months)
    if s.get(ProgramSettings, 1).expiry_days != expiry_days:
        # the same four-eyes path as on the page: one proposes, the other approves
        change = settings_changes.propose_expiry(s, author, expiry_days, now=start)
        settings_changes.approve(s, approver, change, now=start)

    rng = np.random.default_rng(seed_)
    # month boundaries, as seconds from start: PRE_MONTHS before, then the demo months
    bounds_dt = [add_months(start, k) for k in range(-PRE_MONTHS, months + 1)]
    bounds = np.array([(b - start).total_seconds() for b in bounds_dt])
    span = float(bounds[-1])
    pop = _population(rng, n, start, bounds, span)
    rep.members = n
    rep.referred_members = int((pop.referrer >= 0).sum())

    poster = BulkPoster(s, actor=actor)
    ids = np.zeros(n, dtype=np.int64)
    ext = [f"C{i + 1:07d}" for i in range(n)]
    start64 = np.datetime64(start, "us")
    guest_pool = max(int(n * 1.2), 10)
    order_seq = other_seq = 0
    pending_refunds: dict[int, list[tuple]] = {}  # batch second -> orders to refund

    # refunds run in a batch at night (03:00 UTC, the shop is closed): weekly on
    # Mondays for small programs; monthly (with the expiry run) for bigger ones
    if n <= WEEKLY_REFUNDS_UP_TO:
        first_monday = (7 - start.weekday()) % 7
        refund_batches = np.arange(first_monday * DAY + 3 * 3600, span, 7 * DAY)
    else:
        refund_batches = bounds[PRE_MONTHS + 1 :] + 3 * 3600
    refund_batches = refund_batches[refund_batches < span].astype(np.int64)

    def at(sec: int) -> dt.datetime:
        return start + dt.timedelta(seconds=int(sec))

    def settle(upto: int, expiry_at: dt.datetime | None = None) -> None:
        """Expiry (at ``expiry_at``) then the refund batches due by ``upto``, through
        the engine's own services; then the poster reloads the balances."""
        due = sorted(b for b in pending_refunds if b <= upto)
        expire = expiry_at is not None and (expiry_at - start).days > expiry_days
        if not due and not expire:
            return
        poster.flush()
        if expire:
            r = ledger.expire_points(s, expiry_at, actor=actor)
            rep.expiry_runs += 1
            rep.points_expired += r.points
        for b in due:
            for k, (ref, mid, paid, amount) in enumerate(pending_refunds.pop(b)):
                ledger.refund_order(s, ref, at=at(b + 37 * k), actor=actor)
                if mid is not None:
                    poster.note_refund(mid, paid, amount)
                rep.refunds += 1
        poster.sync_balances()

    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=int(span // DAY), unit="day", desc="demo data", file=sys.stderr,
                   leave=True)
    shown_day = 0
    n_batches = PRE_MONTHS + months
    batch_first = np.searchsorted(pop.batch, np.arange(n_batches + 1))
    for b in range(n_batches):
        k = b - PRE_MONTHS
        idx = np.arange(batch_first[b], batch_first[b + 1])
        if len(idx):
            new_ids = poster.add_members(_member_rows(rng, idx, pop, start, ids))
            ids[idx] = new_ids
        if k < 0:
            continue
        ms, me = bounds[b], bounds[b + 1]
        if k > 0:
            settle(int(ms) + 3 * 3600, expiry_at=bounds_dt[b])
        for hook in hooks:
            hook(MonthContext(s, poster, k, bounds_dt[b], bounds_dt[b + 1], ids, rng))
        first_day = bounds_dt[b].date()
        factors = _day_factors(first_day, int(np.ceil((me - ms) / DAY)))
        ev = _month_events(rng, pop, ms, me, factors, guest_pool)
        kinds, ts, whos = ev["kind"].tolist(), ev["t"].tolist(), ev["who"].tolist()
        amounts, us = ev["amount"].tolist(), ev["u"].tolist()
        times = (start64 + ev["t"].astype("timedelta64[s]")).astype("datetime64[us]").tolist()
        # refunds: chosen now, run in the first weekly batch after the customer asks
        refund = (rng.random(len(kinds)) < REFUND_SHARE) & (ev["kind"] <= MEMBER_ORDER)
        chosen = np.flatnonzero(refund)
        if len(chosen) > MAX_REFUNDS_PER_MONTH:  # refund_order is a per-order service
            refund[:] = False
            refund[rng.choice(chosen, MAX_REFUNDS_PER_MONTH, replace=False)] = True
        asked = ev["t"] + rng.exponential(4 * DAY, len(kinds)).astype(np.int64)
        batch_i = np.searchsorted(refund_batches, asked)
        refund_at = np.where(batch_i < len(refund_batches),
                             refund_batches[np.minimum(batch_i, len(refund_batches) - 1)], -1)
        refund_at = np.where(refund, refund_at, -1).tolist()
        next_refund = min(pending_refunds, default=1 << 62)
        next_day = (shown_day + 1) * DAY
        mark = min(next_refund, next_day)
        for i, kind in enumerate(kinds):
            t = ts[i]
            if t >= mark:
                if t >= next_refund:
                    settle(t)
                    next_refund = min(pending_refunds, default=1 << 62)
                if t >= next_day:
                    day = t // DAY
                    if bar is not None:
                        bar.update(day - shown_day)
                    shown_day = day
                    next_day = (day + 1) * DAY
                mark = min(next_refund, next_day)
            when = times[i]
            m = whos[i]
            if kind == MEMBER_ORDER or kind == GUEST_ORDER:
                order_seq += 1
                ref = f"D{order_seq:09d}"
                gross = amounts[i]
                if kind == GUEST_ORDER:
                    poster.post(OrderIn(ref, f"G{m + 1:07d}", when, gross), None)
                    rep.guest_orders += 1
                    mid = None
                    paid = gross
                else:
                    mid = int(ids[m])
                    pts = 0
                    u = us[i]
                    if u >= 0 and gross >= 20_000:
                        bal = poster.balance_of(mid)
                        if bal >= 100:
                            pts = min(bal, int(gross * (0.1 + 0.2 * u)) // 100)
                    paid = gross - pts * 100
                    r = poster.post(OrderIn(ref, ext[m], when, paid, pts), mid)
                    rep.member_orders += 1
                    rep.points_accrued += r.accrued
                    rep.referral_bonus += r.referral_bonus
                    if pts:
                        rep.checkout_redemptions += 1
                if refund_at[i] >= 0:
                    pending_refunds.setdefault(refund_at[i], []).append((ref, mid, when, paid))
                    if refund_at[i] < next_refund:
                        next_refund = refund_at[i]
                        mark = min(mark, next_refund)
            elif kind == VOUCHER:
                mid = int(ids[m])
                bal = poster.balance_of(mid)
                fits = [v for v in VOUCHERS if v <= bal]
                if fits:
                    other_seq += 1
                    poster.redeem(mid, fits[int(us[i] * len(fits))], when,
                                  f"demo:voucher:{other_seq}")
                    rep.vouchers += 1
            else:  # TRANSFER
                mid = int(ids[m])
                bal = poster.balance_of(mid)
                if bal >= 100:
                    other_seq += 1
                    pts = max(50, int(bal * (0.2 + 0.5 * us[i])))
                    poster.transfer(mid, int(ids[pop.transfer_to[m]]), pts, when,
                                    f"demo:transfer:{other_seq}")
                    rep.transfers += 1
        poster.flush()
        if bar is not None:
            bar.set_postfix(orders=f"{rep.member_orders + rep.guest_orders:,}",
                            entries=f"{poster.counts['entries']:,}", refresh=False)
    settle(int(span))
    settle(int(span), expiry_at=end)
    if bar is not None:
        bar.update(max(0, int(span // DAY) - shown_day))
        bar.close()

    # a few accounts blocked by support (fraud suspicion) at the end of the year
    blocked = np.flatnonzero(rng.random(n) < BLOCKED_SHARE)
    for i in range(0, len(blocked), 5000):
        s.execute(update(Member).where(Member.id.in_(ids[blocked[i:i + 5000]].tolist()))
                  .values(status="blocked"))
    if pilot:
        rep.pilot = seed_demo_pilot(s, seed=seed_, days=DEMO_PILOT_DAYS)
        now = clock.utcnow()
        rep.recent_signups, referred = _recent_signups(
            s, np.random.default_rng([seed_, 13]), rep.pilot.start_at,
            # up to two hours ago: the demo adjustments come after the last operation
            min(now - dt.timedelta(hours=2), rep.pilot.data_until + dt.timedelta(days=2)),
            actor)
        rep.members += rep.recent_signups
        rep.referred_members += referred
    rep.adjustments = _demo_adjustments(s, np.random.default_rng([seed_, 11]))
    rep.orders = s.scalar(select(func.count()).select_from(Order))
    rep.entries = s.scalar(select(func.count()).select_from(LedgerEntry))
    rep.tiers = {t or "": c for t, c in s.execute(
        select(Member.tier, func.count()).group_by(Member.tier).order_by(Member.tier))}
    rep.seconds = time.perf_counter() - t0
    audit.record(s, actor.name, "demo.seed", object_type="program", detail=rep.summary(),
                 after={"members": n, "seed": seed_, "start": start, "months": months})
    return rep

