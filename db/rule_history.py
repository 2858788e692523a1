"""The life of rule versions over time: their history and state, the
program-wide expiry setting shown beside them, and the audited tier pass.

A version's *state* is derived, never stored: a published version is
"scheduled" before its ``effective_at``, "in force" while it is the latest
effective one, "superseded" after a later one takes effect (see
docs/ARCHITECTURE.md, "Rule versions are derived, not flagged").
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session, aliased

from db import audit, clock
from db.actor import Actor
from db.errors import InvalidState, NotFound
from db.i18n import N_
from db.models import RuleSet, StaffUser
from db.rules import Rules, rules_from_rows
from db.tiers import TierPass, reevaluate_tiers

STATES = ("draft", "pending", "scheduled", "in force", "superseded", "rejected")



@dataclass(frozen=True)
class Version:
    id: int
    name: str
    status: str  # stored: draft, pending, published, rejected
    state: str  # derived: one of STATES
    note: str
    author: str
    author_id: int | None
    approver: str
    created_at: dt.datetime
    submitted_at: dt.datetime | None
    decided_at: dt.datetime | None
    effective_at: dt.datetime | None
    decision_note: str
    based_on_id: int | None
    rules: Rules


def derive_states(
    published: list[tuple[int, dt.datetime]], now: dt.datetime
) -> dict[int, str]:
    """{id: scheduled | in force | superseded} for published (id, effective_at)."""
    effective = [(at, i) for i, at in published if at <= now]
    in_force = max(effective)[1] if effective else None
    return {
        i: "scheduled" if at > now else "in force" if i == in_force else "superseded"
        for i, at in published
    }


def versions(s: Session, *, now: dt.datetime | None = None, limit: int = 200) -> list[Version]:
    """Every version, newest first, with author, approver and derived state."""
    now = now or clock.utcnow()
    author = aliased(StaffUser)
    approver = aliased(StaffUser)
    rows = s.execute(
        select(RuleSet, author.username, approver.username)
        .outerjoin(author, author.id == RuleSet.created_by_id)
        .outerjoin(approver, approver.id == RuleSet.approved_by_id)
        .order_by(RuleSet.id.desc())
        .limit(limit)
    ).all()
    published = s.execute(
        select(RuleSet.id, RuleSet.effective_at).where(RuleSet.status == "published")
    ).all()
    states = derive_states([(i, at) for i, at in published], now)
    return [
        Version(
            id=rs.id, name=rs.name, status=rs.status, state=states.get(rs.id, rs.status),
            note=rs.note or "", author=a or "", author_id=rs.created_by_id, approver=b or "",
            created_at=rs.created_at, submitted_at=rs.submitted_at, decided_at=rs.decided_at,
            effective_at=rs.effective_at, decision_note=rs.decision_note or "",
            based_on_id=rs.based_on_id, rules=rules_from_rows(rs),
        )
        for rs, a, b in rows
    ]


def version(s: Session, rule_set_id: int, *, now: dt.datetime | None = None) -> Version:
    found = [v for v in versions(s, now=now, limit=10_000) if v.id == rule_set_id]
    if not found:
        raise NotFound(N_("rule set %(id)s does not exist", id=rule_set_id))
    return found[0]


# --------------------------------------------------------------------------
# the tier pass, on demand


def reevaluate_now(
    s: Session, actor: Actor, rule_set_id: int, *, now: dt.datetime | None = None
) -> TierPass:
    """Re-evaluate every member's cached tier under the version in force.

    ``rule_set_id`` is the version the supervisor looked at: if another one
    took effect meanwhile the pass is refused rather than run under rules
    they did not see.
    """
    now = now or clock.utcnow()
    published = s.execute(
        select(RuleSet.id, RuleSet.effective_at).where(RuleSet.status == "published")
    ).all()
    state = derive_states([(i, at) for i, at in published], now).get(rule_set_id)
    if state != "in force":
        raise InvalidState(
            N_("rule set %(id)s is not the version in force (it is %(state)s)",
               id=rule_set_id, state=state) if state
            else N_("rule set %(id)s is not the version in force", id=rule_set_id))
    result = reevaluate_tiers(s, now)
    audit.record(
        s, actor.name, "tiers.reevaluate", actor_id=actor.id, object_type="rule_set",
        object_id=rule_set_id, after={"members": result.members, "changed": result.changed,
                                      "distribution": result.distribution},
    )
    return result
