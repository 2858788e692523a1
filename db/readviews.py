"""Small read-only views for the web pages, straight from the tables: the
database probe behind the outage banner, the pilot list and the audit log.

Everything returns plain frozen dataclasses, never ORM objects, and every
list has a LIMIT.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from db.models import (
    AuditLog,
    Pilot,
    PilotMember,
    RuleSet,
)
from db.session import Database

MAX_ROWS = 500


def ping(db: Database) -> bool:
    """True when the database answers a trivial query at once (for the
    outage banner); see :meth:`Database.probe`."""
    return db.probe() is None


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
