"""Small, deterministic program data for the benchmarks and the tests.

``seed_small``: a small program database for the web tests and the load
check. Plain inserts into the models (the demo seeder lives in db.demo); staff
users go through db.users so their passwords are real argon2 hashes.
``publish`` and ``staff``: a published rule version and staff accounts,
through the real services (the tests' builders, tests/support/factories.py,
build on them).
"""

from __future__ import annotations

import datetime as dt
import hashlib

from sqlalchemy.orm import Session

from db import rule_review, rules, users
from db.actor import Actor
from db.models import (
    Account,
    AdjustmentRequest,
    LedgerEntry,
    LedgerTransaction,
    Member,
    Order,
    Pilot,
    PilotMember,
    RuleSet,
    Tier,
)
from db.session import Database

PASSWORD = "correct-horse-42"
# one account per role, plus spares the tests may change without side effects
STAFF = {
    "supervisor": ("sue", "Sue Pervisor"),
    "executive": ("ed", "Ed Executive"),
    "support": ("sam", "Sam Support"),
}
SECOND_SUPERVISOR = "sid"
DISABLED_USER = "dora"  # created active, disabled at the end of the seed
THROTTLE_USER = "tom"  # the rate-limit test hammers this one
VICTIM_USER = "vic"  # disabled mid-session by a test
MEMBER_NAMES = ["Anna Petrova", "Boris Ivanov", "Chen Wei", "Dewi Lestari", "Omar Haddad"]
ISSUANCE_ACCOUNT = 1

T0 = dt.datetime(2025, 1, 1)

DEFAULT_TIERS = [
    {"name": "Bronze", "threshold": "0", "accrual_rate": "1", "referral_rate": "0.5"},
    {"name": "Silver", "threshold": "1000", "accrual_rate": "3", "referral_rate": "1"},
    {"name": "Gold", "threshold": "5000", "accrual_rate": "5", "referral_rate": "2"},
]


def staff(s, username: str, role: str) -> Actor:
    u = users.get_user_by_name(s, username) or users.create_user(
        s, username, "password-123", role
    )
    return Actor(u.username, u.id, u.role)


def publish(
    s,
    tiers=None,
    *,
    effective_at: dt.datetime = T0,
    name: str = "Rules",
    point_value_minor: int = 100,
    tier_window_days: int | None = None,
) -> int:
    """Create, submit and approve (by a second supervisor) a rule version."""
    author = staff(s, "author", "supervisor")
    approver = staff(s, "approver", "supervisor")
    rid = rules.create_draft(
        s, author, name, tiers or DEFAULT_TIERS,
        point_value_minor=point_value_minor, tier_window_days=tier_window_days,
    )
    rule_review.submit(s, author, rid, require_simulation=False)
    rules.approve(s, approver, rid, effective_at, allow_past=True)
    return rid


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None).replace(microsecond=0)


def seed_small(db: Database) -> dict[str, int]:
    """Staff of every role, five members with accounts, orders over the last
    months, a published and a draft rule set, a pilot, an adjustment request.
    Returns a few ids the tests use."""
    ids: dict[str, int] = {}

    def staff(s: Session) -> None:
        for role, (username, full_name) in STAFF.items():
            ids[username] = users.create_user(s, username, PASSWORD, role,
                                              full_name=full_name).id
        for username, role in ((SECOND_SUPERVISOR, "supervisor"), (DISABLED_USER, "support"),
                               (THROTTLE_USER, "support"), (VICTIM_USER, "support")):
            ids[username] = users.create_user(s, username, PASSWORD, role,
                                              full_name=username.title()).id

    db.write_tx(staff)
    db.write_tx(lambda s: users.set_active(s, ids[DISABLED_USER], False, actor="seed"))

    def program(s: Session) -> None:
        now = _now()
        published = RuleSet(
            name="Launch tiers", status="published", point_value_minor=100,
            effective_at=now - dt.timedelta(days=400), created_by_id=ids["sue"],
            approved_by_id=ids[SECOND_SUPERVISOR], created_at=now - dt.timedelta(days=401),
            decided_at=now - dt.timedelta(days=400),
        )
        published.tiers = [
            Tier(position=0, name="Bronze", threshold_minor=0, accrual_rate_bp=300,
                 referral_rate_bp=100),
            Tier(position=1, name="Silver", threshold_minor=2_000_000, accrual_rate_bp=500,
                 referral_rate_bp=200),
            Tier(position=2, name="Gold", threshold_minor=10_000_000, accrual_rate_bp=750,
                 referral_rate_bp=300),
        ]
        draft = RuleSet(name="Richer gold", status="draft", point_value_minor=100,
                        created_by_id=ids["sue"], based_on_id=None)
        draft.tiers = [
            Tier(position=0, name="Bronze", threshold_minor=0, accrual_rate_bp=300,
                 referral_rate_bp=100),
            Tier(position=1, name="Gold", threshold_minor=8_000_000, accrual_rate_bp=900,
                 referral_rate_bp=300),
        ]
        s.add_all([published, draft])
        s.flush()
        ids["rule_set"] = published.id

        members = []
        for i, name in enumerate(MEMBER_NAMES):
            m = Member(
                external_id=f"C{1000 + i}", name=name,
                email=f"{name.split()[0].lower()}@example.com", phone=f"+7900000{i:04d}",
                joined_at=now - dt.timedelta(days=300 - 40 * i), segment="regular",
                tier="Bronze", referrer_id=members[0].id if i == 3 else None,
            )
            s.add(m)
            s.flush()
            s.add(Account(kind="member", member_id=m.id, balance=0))
            members.append(m)
        s.flush()
        ids["member"] = members[0].id

        n = 0
        for i, m in enumerate(members):
            for k in range(3):
                n += 1
                s.add(_order(n, m.external_id, m.id, now - dt.timedelta(days=5 + 30 * k + i),
                             150_000 + 10_000 * i, published.id))
        for k in range(4):  # guests
            n += 1
            s.add(_order(n, f"G{k}", None, now - dt.timedelta(days=3 + 20 * k), 90_000, None))
        s.flush()

        # one accrual for the first member, so the ledger view has a line
        acct = s.query(Account).filter_by(member_id=members[0].id).one()
        tx = LedgerTransaction(kind="accrual", idempotency_key="seed-accrual-1",
                               payload_hash="0" * 64, actor="seed",
                               effective_at=now - dt.timedelta(days=5))
        s.add(tx)
        s.flush()
        s.add(LedgerEntry(tx_id=tx.id, kind="accrual", debit_account_id=ISSUANCE_ACCOUNT,
                          credit_account_id=acct.id, amount=4500,
                          effective_at=now - dt.timedelta(days=5), rule_set_id=published.id,
                          rate_bp=300, memo="Начальные баллы"))
        acct.balance = 4500

        pilot = Pilot(name="Gold for regulars", rule_set_id=draft.id, status="running",
                      random_seed=42, start_at=now - dt.timedelta(days=10),
                      planned_end_at=now + dt.timedelta(days=50), created_by_id=ids["sue"])
        s.add(pilot)
        s.flush()
        for i, m in enumerate(members[:4]):
            s.add(PilotMember(pilot_id=pilot.id, member_id=m.id,
                              grp="pilot" if i % 2 == 0 else "control"))
        s.add(AdjustmentRequest(member_id=members[1].id, points=250, reason_code="goodwill",
                                comment="Late delivery", ticket_ref="T-1",
                                requested_by_id=ids["sam"]))

    db.write_tx(program)
    return ids


def _order(n: int, customer: str, member_id: int | None, paid_at: dt.datetime, amount: int,
           rule_set_id: int | None) -> Order:
    ref = f"O{n:05d}"
    return Order(order_ref=ref, customer_ref=customer, member_id=member_id, paid_at=paid_at,
                 amount_minor=amount, status="paid", rule_set_id=rule_set_id,
                 tier="Bronze" if member_id else None,
                 payload_hash=hashlib.sha256(ref.encode()).hexdigest())
