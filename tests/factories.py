"""Small builders for test data, all through the real services."""

from __future__ import annotations

import datetime as dt

from db import rule_review, rules, users
from db.actor import Actor
from db.ledger import create_member

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


def member(s, ext: str, *, referrer_id: int | None = None, joined_at=T0, **kw) -> int:
    return create_member(s, ext, joined_at, referrer_id=referrer_id, **kw)


def simulated(s, actor, rule_set_id: int, *, days: int = 90) -> None:
    """Simulate a version and record it, as the page does before a submission."""
    from db.simulation import simulate

    data = rule_review.data_fingerprint(s)
    rule_review.record_simulation(s, actor, simulate(s, rule_set_id, days=days), data)
