"""The set-based tier pass."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from db import ledger
from db.ledger import OrderIn
from db.models import Member
from db.tiers import reevaluate_tiers
from tests.support.factories import T0, member, publish

V2 = [
    {"name": "Start", "threshold": "0", "accrual_rate": "1", "referral_rate": "0"},
    {"name": "Top", "threshold": "3000", "accrual_rate": "6", "referral_rate": "0"},
]


def test_pass_follows_the_version_in_force(any_db):
    d = any_db
    with d.begin() as s:
        publish(s)
        publish(s, V2, effective_at=T0 + dt.timedelta(days=30), name="v2")
        for ext in ("A", "B", "C"):
            member(s, ext)
    for ref, cust, day, units in [("1", "A", 1, 6000), ("2", "B", 2, 1500), ("3", "B", 3, 2000)]:
        ledger.post_order(d, OrderIn(ref, cust, T0 + dt.timedelta(days=day), units * 100))
    with d.begin() as s:
        p = reevaluate_tiers(s, T0 + dt.timedelta(days=10))
        assert p.distribution == {"Gold": 1, "Silver": 1, "Bronze": 1}
    with d.begin() as s:
        p = reevaluate_tiers(s, T0 + dt.timedelta(days=40))
        tiers = dict(s.execute(select(Member.external_id, Member.tier)).all())
    assert tiers == {"A": "Top", "B": "Top", "C": "Start"}
    assert p.changed == 3 and p.members == 3
    with d.begin() as s:
        assert reevaluate_tiers(s, T0 + dt.timedelta(days=41)).changed == 0


def test_rolling_window_lets_members_fall_back(db):
    with db.begin() as s:
        publish(s, tier_window_days=30)
        member(s, "A")
    ledger.post_order(db, OrderIn("1", "A", T0 + dt.timedelta(days=1), 600000))
    with db.begin() as s:
        assert reevaluate_tiers(s, T0 + dt.timedelta(days=20)).distribution == {"Gold": 1}
    with db.begin() as s:
        assert reevaluate_tiers(s, T0 + dt.timedelta(days=40)).distribution == {"Bronze": 1}
