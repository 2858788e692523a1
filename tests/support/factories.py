"""Small builders for test data, all through the real services. ``publish``
and ``staff`` are the benchmarks' too (benchmarks/small_program.py)."""

from __future__ import annotations

from benchmarks.small_program import DEFAULT_TIERS, T0, publish, staff
from db.ledger import create_member

__all__ = ["DEFAULT_TIERS", "T0", "member", "publish", "simulated", "staff"]


def member(s, ext: str, *, referrer_id: int | None = None, joined_at=T0, **kw) -> int:
    return create_member(s, ext, joined_at, referrer_id=referrer_id, **kw)


def simulated(s, actor, rule_set_id: int, *, days: int = 90) -> None:
    """Simulate a version and record it, as the page does before a submission."""
    from db import rule_review
    from db.simulation import simulate

    data = rule_review.data_fingerprint(s)
    rule_review.record_simulation(s, actor, simulate(s, rule_set_id, days=days), data)
