"""One clock (db.clock.utcnow) for the engine: a test pins it once and every
service and column default reads the pinned time."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from db import audit, clock, rule_review, rules
from db.models import AuditLog, RuleSet
from tests.support.factories import DEFAULT_TIERS, staff

PINNED = dt.datetime(2031, 5, 6, 7, 8, 9)


def test_the_clock_is_naive_utc() -> None:
    now = clock.utcnow()
    assert now.tzinfo is None
    assert abs(now - dt.datetime.now(dt.UTC).replace(tzinfo=None)) < dt.timedelta(seconds=5)


def test_a_pinned_clock_stamps_services_and_defaults(db, monkeypatch) -> None:
    monkeypatch.setattr(clock, "utcnow", lambda: PINNED)
    with db.begin() as s:
        audit.record(s, "tester", "clock.pinned")  # a column default
        author = staff(s, "author", "supervisor")
        rid = rules.create_draft(s, author, "Pinned", DEFAULT_TIERS)
        rule_review.submit(s, author, rid)  # a service (nothing in force: no simulation)
    with db.read() as s:
        assert s.scalar(select(AuditLog.at).where(AuditLog.action == "clock.pinned")) == PINNED
        rs = s.get(RuleSet, rid)
        assert (rs.created_at, rs.submitted_at) == (PINNED, PINNED)
