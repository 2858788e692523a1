"""The program database: SQLAlchemy 2.0 models.

Conventions (see docs/ARCHITECTURE.md):
- money is integer minor units (``*_minor``), points are integers, rates are
  integer basis points (``*_bp``: 525 = 5.25 %); no floats in balances;
- datetimes are naive UTC;
- the ledger is double entry, one row per movement (``debit`` -> ``credit``),
  so the whole ledger sums to zero by construction. Member accounts cache
  their balance (used for row locks and a database CHECK that it never goes
  below zero); the integrity check proves cache == sum of entries.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    event,
    inspect,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from db import clock

# BIGINT on PostgreSQL, INTEGER on SQLite (only "INTEGER PRIMARY KEY" is a rowid
# alias there, i.e. auto-increments).
BigId = BigInteger().with_variant(Integer(), "sqlite")

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

ROLES = ("supervisor", "executive", "support")
# the languages of the web app; a staff user with none chosen gets the configured default
LANGUAGES = ("en", "ru")
MEMBER_STATUSES = ("active", "blocked", "closed")
SEGMENTS = ("regular", "student", "pensioner", "large_family", "corporate")
RULE_STATUSES = ("draft", "pending", "published", "rejected")
ENTRY_KINDS = (
    "accrual",
    "redemption",
    "transfer",
    "referral_bonus",
    "adjustment",
    "expiry",
    "reversal",
)
ACCOUNT_KINDS = ("member", "issuance", "redemption", "breakage", "adjustment")
ADJUSTMENT_REASONS = (
    "goodwill",
    "missing_accrual",
    "wrong_accrual",
    "fraud_reversal",
    "transfer_dispute",
    "other",
)
ADJUSTMENT_STATUSES = ("pending", "approved", "rejected", "cancelled")
PILOT_STATUSES = ("draft", "running", "ended", "cancelled")
PILOT_METRICS = ("spend_per_member", "orders_per_member", "average_check", "active_rate")


def _in(col: str, values: tuple[str, ...]) -> str:
    return f"{col} IN ({', '.join(repr(v) for v in values)})"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


# the program's settings before anyone changes them (db.program reads them)
DEFAULT_CURRENCY = "RUB"
DEFAULT_ACTIVE_DAYS = 30


def _now() -> dt.datetime:
    return clock.utcnow()


class ProgramSettings(Base):
    """One row (id = 1): settings that are not part of a rule version."""

    __tablename__ = "program_settings"
    __table_args__ = (
        CheckConstraint("id = 1", name="single_row"),
        CheckConstraint("expiry_days IS NULL OR expiry_days > 0", name="expiry_positive"),
        CheckConstraint("adjustment_second_approval_points > 0", name="adj_limit_positive"),
        CheckConstraint(
            "adjustment_supervisor_request_points >= adjustment_second_approval_points",
            name="adj_limits_ordered",
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, default=1)
    currency: Mapped[str] = mapped_column(String(3), default=DEFAULT_CURRENCY)
    # unused points expire this many days after they were earned; NULL = never
    expiry_days: Mapped[int | None] = mapped_column(Integer, default=365)
    # adjustments of more than this many points (absolute) need two approvals
    adjustment_second_approval_points: Mapped[int] = mapped_column(BigInteger, default=5000)
    # adjustments of more than this many points may only be requested by a supervisor
    adjustment_supervisor_request_points: Mapped[int] = mapped_column(BigInteger, default=50000)
    active_days: Mapped[int] = mapped_column(Integer, default=DEFAULT_ACTIVE_DAYS)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=_now)


class StaffUser(Base):
    __tablename__ = "staff_users"
    __table_args__ = (
        CheckConstraint(_in("role", ROLES), name="role_known"),
        CheckConstraint(_in("language", LANGUAGES), name="language_known"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    full_name: Mapped[str] = mapped_column(String(200), default="")
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=_now)
    last_login_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    # signed into each session at login and compared on every request: a
    # bump (logout, role, password or active flag changed) ends every
    # session of the account, including cookies saved earlier
    session_version: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    # the language the user chose in the navbar; None: the configured default
    language: Mapped[str | None] = mapped_column(String(8))


class RateLimitHit(Base):
    """One counted event (a failed sign-in, a member search) under a limit
    key, for the limits shared by every web process (:mod:`db.ratelimit`)."""

    __tablename__ = "rate_limit_hits"
    __table_args__ = (
        Index("ix_rate_limit_hits_key_at", "key", "at_ms"),
        Index("ix_rate_limit_hits_at", "at_ms"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    key: Mapped[str] = mapped_column(String(200))
    at_ms: Mapped[int] = mapped_column(BigInteger)  # epoch milliseconds


ACCOUNT_FIELDS_ENDING_SESSIONS = ("role", "active", "password_hash")


@event.listens_for(StaffUser, "before_update")
def _end_sessions_on_account_change(_mapper, _connection, user: StaffUser) -> None:
    """Whatever code changes an account's role, password or active flag,
    its sessions end: the version is bumped in the same UPDATE."""
    attrs = inspect(user).attrs
    changed = any(attrs[a].history.has_changes() for a in ACCOUNT_FIELDS_ENDING_SESSIONS)
    if changed and not attrs.session_version.history.has_changes():
        user.session_version = (user.session_version or 0) + 1


GRANT_STATUSES = ("pending", "approved", "rejected")


class StaffRoleRequest(Base):
    """Creating or promoting a supervisor: waits for a second supervisor.

    ``kind`` "create": the account was created disabled and its approval
    enables it; "promote": the account keeps its role until approved.
    """

    __tablename__ = "staff_role_requests"
    __table_args__ = (
        CheckConstraint("kind IN ('create', 'promote')", name="kind_known"),
        CheckConstraint(_in("status", GRANT_STATUSES), name="status_known"),
        Index("ix_staff_role_requests_status", "status", "id"),
        Index("ix_staff_role_requests_user", "user_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("staff_users.id"))
    kind: Mapped[str] = mapped_column(String(16))
    role: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    requested_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))
    requested_at: Mapped[dt.datetime] = mapped_column(DateTime, default=_now)
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))
    decided_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    note: Mapped[str] = mapped_column(Text, default="", server_default="")


class SettingsChange(Base):
    """A proposed change of program settings (JSON ``{field: new value}``),
    with its simulated effect; a second supervisor applies or rejects it."""

    __tablename__ = "settings_changes"
    __table_args__ = (
        CheckConstraint(_in("status", GRANT_STATUSES), name="status_known"),
        Index("ix_settings_changes_status", "status", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    changes: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    requested_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))
    requested_at: Mapped[dt.datetime] = mapped_column(DateTime, default=_now)
    effect: Mapped[str] = mapped_column(Text, default="{}", server_default="{}")
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))
    decided_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    note: Mapped[str] = mapped_column(Text, default="", server_default="")


class RuleSet(Base):
    """A version of the tier rules.

    draft -> pending (submitted) -> published (approved, with effective_at) or
    rejected. A published version is never edited. "Superseded" and
    "scheduled" are derived from effective_at and the clock, not stored, so
    the engine never depends on a job having flipped a flag in time.
    """

    __tablename__ = "rule_sets"
    __table_args__ = (
        CheckConstraint(_in("status", RULE_STATUSES), name="status_known"),
        CheckConstraint(
            "(status = 'published') = (effective_at IS NOT NULL)", name="published_has_effective"
        ),
        CheckConstraint("point_value_minor > 0", name="point_value_positive"),
        CheckConstraint(
            "tier_window_days IS NULL OR tier_window_days > 0", name="window_positive"
        ),
        CheckConstraint(
            "approved_by_id IS NULL OR approved_by_id <> created_by_id", name="four_eyes"
        ),
        Index("ix_rule_sets_status_effective", "status", "effective_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    note: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16), default="draft")
    # minor currency units one point is worth (100 = 1 point is 1.00 unit)
    point_value_minor: Mapped[int] = mapped_column(BigInteger, default=100)
    # qualifying spend window for tiers; NULL = lifetime
    tier_window_days: Mapped[int | None] = mapped_column(Integer)
    effective_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    based_on_id: Mapped[int | None] = mapped_column(ForeignKey("rule_sets.id"))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=_now)
    submitted_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    approved_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))
    decided_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    decision_note: Mapped[str] = mapped_column(Text, default="")

    tiers: Mapped[list[Tier]] = relationship(
        back_populates="rule_set", order_by="Tier.position", cascade="all, delete-orphan"
    )


class Tier(Base):
    __tablename__ = "tiers"
    __table_args__ = (
        UniqueConstraint("rule_set_id", "position", name="uq_tiers_position"),
        UniqueConstraint("rule_set_id", "name", name="uq_tiers_name"),
        CheckConstraint("position >= 0", name="position_nonneg"),
        CheckConstraint("threshold_minor >= 0", name="threshold_nonneg"),
        CheckConstraint("position > 0 OR threshold_minor = 0", name="first_tier_zero"),
        CheckConstraint("accrual_rate_bp BETWEEN 0 AND 10000", name="accrual_rate_range"),
        CheckConstraint("referral_rate_bp BETWEEN 0 AND 10000", name="referral_rate_range"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    rule_set_id: Mapped[int] = mapped_column(ForeignKey("rule_sets.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(64))
    threshold_minor: Mapped[int] = mapped_column(BigInteger)
    accrual_rate_bp: Mapped[int] = mapped_column(Integer)
    referral_rate_bp: Mapped[int] = mapped_column(Integer)

    rule_set: Mapped[RuleSet] = relationship(back_populates="tiers")


class Member(Base):
    __tablename__ = "members"
    __table_args__ = (
        CheckConstraint(_in("status", MEMBER_STATUSES), name="status_known"),
        CheckConstraint("referrer_id IS NULL OR referrer_id <> id", name="no_self_referral"),
        Index("ix_members_email", "email"),
        Index("ix_members_phone", "phone"),
        Index("ix_members_name", "name"),
        Index("ix_members_joined_at", "joined_at"),
        Index("ix_members_referrer_id", "referrer_id"),
        Index("ix_members_segment_tier", "segment", "tier"),
        Index("uq_members_referral_code", "referral_code", unique=True),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    # the shop's customer id
    external_id: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    email: Mapped[str | None] = mapped_column(String(200))
    phone: Mapped[str | None] = mapped_column(String(32))
    joined_at: Mapped[dt.datetime] = mapped_column(DateTime)
    segment: Mapped[str] = mapped_column(String(32), default="regular")
    referrer_id: Mapped[int | None] = mapped_column(ForeignKey("members.id"))
    status: Mapped[str] = mapped_column(String(16), default="active")
    # cache of the tier at the last evaluation, for display and filtering;
    # accrual always derives the tier from the orders themselves
    tier: Mapped[str | None] = mapped_column(String(64))
    tier_evaluated_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    # the member's code for inviting others (random, given on first use)
    referral_code: Mapped[str | None] = mapped_column(String(16))


class Account(Base):
    """A points account: one per member, plus one per program account kind."""

    __tablename__ = "accounts"
    __table_args__ = (
        CheckConstraint(_in("kind", ACCOUNT_KINDS), name="kind_known"),
        CheckConstraint("(kind = 'member') = (member_id IS NOT NULL)", name="member_kind"),
        CheckConstraint("kind <> 'member' OR balance >= 0", name="member_nonneg"),
        UniqueConstraint("kind", "member_id", name="uq_accounts_kind_member"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    member_id: Mapped[int | None] = mapped_column(ForeignKey("members.id"), unique=True)
    # cached for member accounts; program accounts are hot rows, so their
    # balance is only ever derived from the entries (NULL here)
    balance: Mapped[int | None] = mapped_column(BigInteger)


class Order(Base):
    __tablename__ = "orders"
    __table_args__ = (
        CheckConstraint("amount_minor >= 0", name="amount_nonneg"),
        CheckConstraint("points_redeemed >= 0", name="redeemed_nonneg"),
        CheckConstraint("refunded_minor >= 0", name="refunded_nonneg"),
        CheckConstraint("status IN ('paid', 'refunded')", name="status_known"),
        CheckConstraint(
            "(status = 'refunded') = (refunded_at IS NOT NULL)", name="refunded_has_time"
        ),
        # covering: set-based passes read these columns of millions of orders
        Index("ix_orders_member_status_paid", "member_id", "status", "paid_at", "amount_minor"),
        # a period's member orders by time (rule simulation, period KPIs)
        Index("ix_orders_paid_cover", "paid_at", "status", "member_id", "amount_minor"),
        Index(
            "ix_orders_customer_paid",
            "customer_ref", "paid_at", "member_id", "status", "amount_minor",
        ),
        # a pilot's orders (pilot results, its latest order)
        Index("ix_orders_pilot_paid", "pilot_id", "paid_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    # the shop's order id: unique, the idempotency key of posting
    order_ref: Mapped[str] = mapped_column(String(64), unique=True)
    # the shop's customer id (members and guests alike)
    customer_ref: Mapped[str] = mapped_column(String(64))
    member_id: Mapped[int | None] = mapped_column(ForeignKey("members.id"))
    paid_at: Mapped[dt.datetime] = mapped_column(DateTime)
    # money paid (after points) and not taken back by a part refund, in minor
    # units: what revenue and qualifying spend count while the order is paid
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    # money taken back by part refunds; amount_minor + refunded_minor is what
    # was paid. The final refund sets status "refunded" and leaves both as
    # they were (a refunded order counts nowhere).
    refunded_minor: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    points_redeemed: Mapped[int] = mapped_column(BigInteger, default=0)
    status: Mapped[str] = mapped_column(String(16), default="paid")
    refunded_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    # the rule version and tier the accrual used (NULL for guests)
    rule_set_id: Mapped[int | None] = mapped_column(ForeignKey("rule_sets.id"))
    tier: Mapped[str | None] = mapped_column(String(64))
    pilot_id: Mapped[int | None] = mapped_column(ForeignKey("pilots.id"))
    # hash of the posted payload; a replay with another payload is an error
    payload_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=_now)


class LedgerTransaction(Base):
    """The journal header: one business operation, one idempotency key."""

    __tablename__ = "ledger_transactions"
    __table_args__ = (Index("ix_ledger_transactions_order_id", "order_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    idempotency_key: Mapped[str] = mapped_column(String(128), unique=True)
    payload_hash: Mapped[str] = mapped_column(String(64))
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id"))
    actor: Mapped[str] = mapped_column(String(64), default="system")
    # business time of the operation (the order's payment time, ...)
    effective_at: Mapped[dt.datetime] = mapped_column(DateTime)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=_now)


class OrderRefund(Base):
    """One refund of an order, whole or part: how much money came back and
    the points that could not be clawed back. Append-only, like the ledger."""

    __tablename__ = "order_refunds"
    __table_args__ = (
        CheckConstraint("amount_minor >= 0", name="amount_nonneg"),
        CheckConstraint("unrecovered >= 0", name="unrecovered_nonneg"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), index=True)
    tx_id: Mapped[int] = mapped_column(ForeignKey("ledger_transactions.id"), unique=True)
    # the shop's id of a part refund ("" for the final, whole refund)
    refund_ref: Mapped[str] = mapped_column(String(64), default="")
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    # a part refund leaves the order paid; the final one refunds it
    partial: Mapped[bool] = mapped_column(Boolean)
    unrecovered: Mapped[int] = mapped_column(BigInteger, default=0)
    # money still paid on the order right after this refund (0 after the final)
    remaining_minor: Mapped[int] = mapped_column(BigInteger)
    refunded_at: Mapped[dt.datetime] = mapped_column(DateTime)


class LedgerEntry(Base):
    """An immutable movement of points from one account to another.

    Append-only: UPDATE and DELETE are refused by database triggers.
    """

    __tablename__ = "ledger_entries"
    __table_args__ = (
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint("debit_account_id <> credit_account_id", name="two_accounts"),
        CheckConstraint(_in("kind", ENTRY_KINDS), name="kind_known"),
        CheckConstraint(
            "(kind = 'reversal') = (reverses_entry_id IS NOT NULL)", name="reversal_links"
        ),
        CheckConstraint(
            "rate_bp IS NULL OR rate_bp BETWEEN 0 AND 10000", name="rate_range"
        ),
        Index("ix_ledger_entries_debit", "debit_account_id", "id"),
        Index("ix_ledger_entries_credit", "credit_account_id", "id"),
        Index("ix_ledger_entries_kind_at", "kind", "effective_at"),
        Index("ix_ledger_entries_order_id", "order_id"),
        Index("uq_ledger_entries_reversal_tx", "reverses_entry_id", "tx_id", unique=True),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tx_id: Mapped[int] = mapped_column(ForeignKey("ledger_transactions.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    debit_account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    credit_account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    amount: Mapped[int] = mapped_column(BigInteger)
    effective_at: Mapped[dt.datetime] = mapped_column(DateTime)
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id"))
    rule_set_id: Mapped[int | None] = mapped_column(ForeignKey("rule_sets.id"))
    rate_bp: Mapped[int | None] = mapped_column(Integer)
    # a reversal names the entry it reverses; part refunds reverse an entry
    # in several transactions, each at most once
    reverses_entry_id: Mapped[int | None] = mapped_column(ForeignKey("ledger_entries.id"))
    memo: Mapped[str] = mapped_column(String(255), default="")


class Transfer(Base):
    __tablename__ = "transfers"
    __table_args__ = (
        CheckConstraint("points > 0", name="points_positive"),
        CheckConstraint("from_member_id <> to_member_id", name="two_members"),
        Index("ix_transfers_from", "from_member_id"),
        Index("ix_transfers_to", "to_member_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    from_member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    to_member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    points: Mapped[int] = mapped_column(BigInteger)
    tx_id: Mapped[int] = mapped_column(ForeignKey("ledger_transactions.id"), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime)


class AdjustmentRequest(Base):
    __tablename__ = "adjustment_requests"
    __table_args__ = (
        CheckConstraint("points <> 0", name="points_nonzero"),
        CheckConstraint(_in("reason_code", ADJUSTMENT_REASONS), name="reason_known"),
        CheckConstraint(_in("status", ADJUSTMENT_STATUSES), name="status_known"),
        CheckConstraint("approvals_required IN (1, 2)", name="approvals_1_2"),
        CheckConstraint(
            "first_approver_id IS NULL OR first_approver_id <> requested_by_id",
            name="first_four_eyes",
        ),
        CheckConstraint(
            "decided_by_id IS NULL OR decided_by_id <> requested_by_id", name="four_eyes"
        ),
        CheckConstraint(
            "first_approver_id IS NULL OR decided_by_id IS NULL "
            "OR first_approver_id <> decided_by_id",
            name="two_approvers_differ",
        ),
        CheckConstraint("(status = 'approved') = (tx_id IS NOT NULL)", name="approved_has_tx"),
        Index("ix_adjustment_requests_status", "status", "requested_at"),
        Index("ix_adjustment_requests_member", "member_id"),
        # a form sent twice (a double click) files one request
        Index("uq_adjustment_requests_form_token", "requested_by_id", "form_token",
              unique=True),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    points: Mapped[int] = mapped_column(BigInteger)
    reason_code: Mapped[str] = mapped_column(String(32))
    comment: Mapped[str] = mapped_column(Text)
    ticket_ref: Mapped[str] = mapped_column(String(64), default="")
    corrects_entry_id: Mapped[int | None] = mapped_column(ForeignKey("ledger_entries.id"))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    approvals_required: Mapped[int] = mapped_column(Integer, default=1)
    requested_by_id: Mapped[int] = mapped_column(ForeignKey("staff_users.id"))
    requested_at: Mapped[dt.datetime] = mapped_column(DateTime, default=_now)
    first_approver_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))
    first_approved_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))
    decided_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    decision_reason: Mapped[str] = mapped_column(Text, default="")
    tx_id: Mapped[int | None] = mapped_column(
        ForeignKey("ledger_transactions.id"), unique=True
    )
    # the random token of the form instance that filed it (None from elsewhere)
    form_token: Mapped[str | None] = mapped_column(String(64))


class Pilot(Base):
    __tablename__ = "pilots"
    __table_args__ = (
        CheckConstraint(_in("status", PILOT_STATUSES), name="status_known"),
        CheckConstraint(_in("primary_metric", PILOT_METRICS), name="metric_known"),
        CheckConstraint("pilot_share_bp BETWEEN 1 AND 9999", name="share_range"),
        CheckConstraint("planned_end_at > start_at", name="end_after_start"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    rule_set_id: Mapped[int] = mapped_column(ForeignKey("rule_sets.id"))
    status: Mapped[str] = mapped_column(String(16), default="draft")
    population: Mapped[str] = mapped_column(Text, default="{}")  # JSON filter description
    pilot_share_bp: Mapped[int] = mapped_column(Integer, default=5000)
    random_seed: Mapped[int] = mapped_column(BigInteger)
    primary_metric: Mapped[str] = mapped_column(String(32), default="spend_per_member")
    min_effect: Mapped[str] = mapped_column(String(32), default="")
    start_at: Mapped[dt.datetime] = mapped_column(DateTime)
    planned_end_at: Mapped[dt.datetime] = mapped_column(DateTime)
    ended_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=_now)
    # four-eyes: one supervisor requests the start, another approves it
    start_requested_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))
    start_requested_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    started_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))


class PilotMember(Base):
    __tablename__ = "pilot_members"
    __table_args__ = (
        CheckConstraint("grp IN ('pilot', 'control')", name="group_known"),
        Index("ix_pilot_members_member", "member_id", "pilot_id"),
    )

    pilot_id: Mapped[int] = mapped_column(ForeignKey("pilots.id"), primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), primary_key=True)
    grp: Mapped[str] = mapped_column(String(8))
    stratum: Mapped[str] = mapped_column(String(64), default="")


class AuditLog(Base):
    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_log_at", "at"),
        Index("ix_audit_log_actor", "actor", "at"),
        Index("ix_audit_log_action", "action", "at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime, default=_now)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))
    # username, or "cli"/"system" for actions without a staff user
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    object_type: Mapped[str] = mapped_column(String(64), default="")
    object_id: Mapped[str] = mapped_column(String(64), default="")
    before: Mapped[str | None] = mapped_column(Text)  # JSON
    after: Mapped[str | None] = mapped_column(Text)  # JSON
    detail: Mapped[str] = mapped_column(Text, default="")


# --------------------------------------------------------------------------- rollups
# Incremental aggregates for the live and overview pages (db/rollups.py): brought
# up to date from new rows only (watermarks), rebuilt from scratch by a command.


class RollupState(Base):
    """Watermarks: the highest ids of each source table already folded in."""

    __tablename__ = "rollup_state"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=_now)


class RollupDaily(Base):
    """Additive counters per day (UTC), metric, member segment and order tier.

    ``segment`` is '' for guests and program-level counters, ``tier`` '' where
    no tier applies. Only sums live here: distinct counts are not additive
    across days and come from the per-member / per-customer tables.
    """

    __tablename__ = "rollup_daily"

    metric: Mapped[str] = mapped_column(String(32), primary_key=True)
    day: Mapped[dt.datetime] = mapped_column(DateTime, primary_key=True)
    segment: Mapped[str] = mapped_column(String(32), primary_key=True, default="")
    tier: Mapped[str] = mapped_column(String(64), primary_key=True, default="")
    value: Mapped[int] = mapped_column(BigInteger, default=0)


class RollupMember(Base):
    """One row per member: first/last activity, so a trailing window's distinct
    counts are an indexed range count instead of a scan of orders."""

    __tablename__ = "rollup_members"
    __table_args__ = (
        Index("ix_rollup_members_joined_earn", "joined_at", "first_earn_at"),
        Index("ix_rollup_members_activity", "last_activity_at"),
        Index("ix_rollup_members_first_paid", "first_paid_at"),
    )

    member_id: Mapped[int] = mapped_column(BigId, primary_key=True)
    joined_at: Mapped[dt.datetime] = mapped_column(DateTime)
    segment: Mapped[str] = mapped_column(String(32), default="regular")
    referrer_id: Mapped[int | None] = mapped_column(BigId)
    first_order_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    first_paid_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    first_earn_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    last_order_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    last_activity_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    paid_orders: Mapped[int] = mapped_column(BigInteger, default=0)


class RollupCustomer(Base):
    """One row per customer_ref (members and guests): last order, last order as
    a member — participation over a trailing window is two range counts."""

    __tablename__ = "rollup_customers"
    __table_args__ = (
        Index("ix_rollup_customers_last", "last_order_at"),
        Index("ix_rollup_customers_last_member", "last_member_order_at"),
    )

    customer_ref: Mapped[str] = mapped_column(String(64), primary_key=True)
    last_order_at: Mapped[dt.datetime] = mapped_column(DateTime)
    last_member_order_at: Mapped[dt.datetime | None] = mapped_column(DateTime)


class RollupReferrer(Base):
    """Per referrer: members referred and net referral bonus points earned."""

    __tablename__ = "rollup_referrers"
    __table_args__ = (Index("ix_rollup_referrers_bonus", "bonus_points"),)

    member_id: Mapped[int] = mapped_column(BigId, primary_key=True)
    referred: Mapped[int] = mapped_column(BigInteger, default=0)
    bonus_points: Mapped[int] = mapped_column(BigInteger, default=0)


class RollupTransferIn(Base):
    """Points received by transfer per day and receiving member (fraud signal)."""

    __tablename__ = "rollup_transfers_in"

    day: Mapped[dt.datetime] = mapped_column(DateTime, primary_key=True)
    member_id: Mapped[int] = mapped_column(BigId, primary_key=True)
    points: Mapped[int] = mapped_column(BigInteger, default=0)
    transfers: Mapped[int] = mapped_column(BigInteger, default=0)


class RollupMemberMonth(Base):
    """Per member and calendar month (``year * 12 + month - 1``) from joining on:
    paid orders and paid revenue. Active in a month = ``paid_orders > 0``, so a
    cohort's distinct active members are maintained by counting 0 <-> >0
    transitions into rollup_cohort_months (refunds included)."""

    __tablename__ = "rollup_member_months"

    member_id: Mapped[int] = mapped_column(BigId, primary_key=True)
    month: Mapped[int] = mapped_column(Integer, primary_key=True)
    cohort: Mapped[int] = mapped_column(Integer)
    segment: Mapped[str] = mapped_column(String(32), default="regular")
    paid_orders: Mapped[int] = mapped_column(BigInteger, default=0)
    revenue: Mapped[int] = mapped_column(BigInteger, default=0)


class RollupCohortMonth(Base):
    """Per join-month cohort, order month and member segment: paid revenue,
    paid orders and members with a paid order that month (LTV, retention)."""

    __tablename__ = "rollup_cohort_months"

    cohort: Mapped[int] = mapped_column(Integer, primary_key=True)
    month: Mapped[int] = mapped_column(Integer, primary_key=True)
    segment: Mapped[str] = mapped_column(String(32), primary_key=True, default="")
    members: Mapped[int] = mapped_column(BigInteger, default=0)
    paid_orders: Mapped[int] = mapped_column(BigInteger, default=0)
    revenue: Mapped[int] = mapped_column(BigInteger, default=0)


# ---------------------------------------------------------------- import staging
# An order import (db.importer) stages its work here in short committed
# batches, keyed by the import's id, and makes it visible in one final
# transaction that copies the staged rows into the program tables. Nothing
# here is program data: a crashed import leaves rows that are discarded.
# ``import_rows`` are the file's accepted rows; the ``import_<table>`` mirrors
# hold rows computed for the program table of that name, with ids that are
# negative placeholders on SQLite (numbered at the final copy) and sequence
# values on PostgreSQL; they have no foreign keys on purpose.

IMPORT_STATES = ("running", "applying", "applied", "failed", "discarding")


class ImportRun(Base):
    __tablename__ = "import_runs"
    __table_args__ = (CheckConstraint(_in("status", IMPORT_STATES), name="status_known"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    actor: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[dt.datetime] = mapped_column(DateTime)
    heartbeat_at: Mapped[dt.datetime] = mapped_column(DateTime)


class ImportRow(Base):
    """A data row of the file that passed the row checks and is the first
    with its order id. ``state``: 0 to post, 1 already in the database with
    the same details, 2 already there with other details (a bad row)."""

    __tablename__ = "import_rows"
    __table_args__ = (
        Index("ix_import_rows_ref", "import_id", "order_ref"),
        Index("ix_import_rows_post", "import_id", "state", "paid_at", "line"),
    )

    import_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    line: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    state: Mapped[int] = mapped_column(Integer)
    customer: Mapped[str] = mapped_column(String(64))
    order_ref: Mapped[str] = mapped_column(String(64))
    paid_at: Mapped[dt.datetime] = mapped_column(DateTime)
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    referrer: Mapped[str | None] = mapped_column(String(64))
    points: Mapped[int] = mapped_column(BigInteger)
    payload_hash: Mapped[str] = mapped_column(String(64))


def _staged(name: str, key: str, *columns) -> Table:
    return Table(
        name, Base.metadata,
        Column("import_id", String(32), primary_key=True),
        Column(key, BigInteger, primary_key=True, autoincrement=False),
        *columns,
    )


def _c(name: str, type_) -> Column:
    return Column(name, type_, nullable=True)


STAGED = {
    "members": _staged(
        "import_members", "id", _c("external_id", String(64)), _c("name", String(200)),
        _c("email", String(200)), _c("phone", String(32)), _c("joined_at", DateTime),
        _c("segment", String(32)), _c("referrer_id", BigInteger), _c("status", String(16)),
    ),
    "accounts": _staged(
        "import_accounts", "id", _c("kind", String(16)), _c("member_id", BigInteger),
        _c("balance", BigInteger),
    ),
    "orders": _staged(
        "import_orders", "id", _c("order_ref", String(64)), _c("customer_ref", String(64)),
        _c("member_id", BigInteger), _c("paid_at", DateTime), _c("amount_minor", BigInteger),
        _c("points_redeemed", BigInteger), _c("status", String(16)),
        _c("refunded_at", DateTime), _c("rule_set_id", BigInteger), _c("tier", String(64)),
        _c("pilot_id", BigInteger), _c("payload_hash", String(64)), _c("created_at", DateTime),
    ),
    "ledger_transactions": _staged(
        "import_ledger_transactions", "id", _c("kind", String(32)),
        _c("idempotency_key", String(128)), _c("payload_hash", String(64)),
        _c("order_id", BigInteger), _c("actor", String(64)), _c("effective_at", DateTime),
        _c("created_at", DateTime),
    ),
    "ledger_entries": _staged(
        "import_ledger_entries", "id", _c("tx_id", BigInteger), _c("kind", String(16)),
        _c("debit_account_id", BigInteger), _c("credit_account_id", BigInteger),
        _c("amount", BigInteger), _c("effective_at", DateTime), _c("order_id", BigInteger),
        _c("rule_set_id", BigInteger), _c("rate_bp", Integer),
        _c("reverses_entry_id", BigInteger), _c("memo", String(255)),
    ),
}
# net balance change per account and the last tier per member, written once
STAGED_BALANCES = _staged("import_balances", "account_id", _c("delta", BigInteger))
STAGED_TIERS = _staged(
    "import_tiers", "member_id", _c("tier", String(64)), _c("tier_evaluated_at", DateTime)
)


API_SCOPES = ("orders", "redeem", "transfer", "read")


class ApiKey(Base):
    """A key a shop's systems call the HTTP API with. Only a SHA-256 of the
    secret is kept (the secret is random, 256 bits: a slow hash adds nothing);
    ``prefix`` finds the row, ``scopes`` is a space-separated subset of
    API_SCOPES."""

    __tablename__ = "api_keys"
    __table_args__ = (Index("ix_api_keys_created", "created_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    secret_hash: Mapped[str] = mapped_column(String(64))
    scopes: Mapped[str] = mapped_column(String(64))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=_now)
    revoked_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime)


class ApiRequest(Base):
    """The first response to each Idempotency-Key of a key: a replay gets it
    again; the same key with another request body is refused."""

    __tablename__ = "api_requests"
    __table_args__ = (
        UniqueConstraint("api_key_id", "idempotency_key", name="uq_api_requests_key"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    api_key_id: Mapped[int] = mapped_column(ForeignKey("api_keys.id"))
    idempotency_key: Mapped[str] = mapped_column(String(255))
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer)
    response: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=_now)


class FormSubmission(Base):
    """The last submission of a form instance (a page's random token) and its
    answer: the same submission sent again right after (a double click) gets
    the answer back and changes nothing. Only successes are kept."""

    __tablename__ = "form_submissions"
    __table_args__ = (
        UniqueConstraint("staff_user_id", "token", name="uq_form_submissions_token"),
        Index("ix_form_submissions_created", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    staff_user_id: Mapped[int] = mapped_column(ForeignKey("staff_users.id"))
    token: Mapped[str] = mapped_column(String(64))
    form: Mapped[str] = mapped_column(String(64))
    request_hash: Mapped[str] = mapped_column(String(64))
    result: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=_now)
