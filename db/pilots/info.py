"""Read views of pilots for the page: one pilot's facts, the choices of the
forms."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from db import clock
from db.errors import NotFound
from db.i18n import N_
from db.models import Member, Pilot, PilotMember, RuleSet, StaffUser, Tier


def get_pilot(s: Session, pilot_id: int, *, lock: bool = False) -> Pilot:
    p = s.get(Pilot, pilot_id, with_for_update=lock)
    if p is None:
        raise NotFound(N_("pilot %(id)s does not exist", id=pilot_id))
    return p

def staff_name(s: Session, user_id: int | None) -> str:
    if user_id is None:
        return N_("the system")
    return s.scalar(select(StaffUser.username).where(StaffUser.id == user_id)) or f"#{user_id}"


@dataclass(frozen=True)
class PilotInfo:
    id: int
    name: str
    status: str
    rule_set_id: int
    rule_set_name: str
    rule_set_status: str
    primary_metric: str
    min_effect: str
    share_bp: int
    seed: int
    start_at: dt.datetime
    planned_end_at: dt.datetime
    ended_at: dt.datetime | None
    population: dict[str, Any]
    n_pilot: int
    n_control: int
    created_by: str = ""
    start_requested_by: str | None = None
    start_requested_at: dt.datetime | None = None
    started_by: str | None = None

    @property
    def window_end(self) -> dt.datetime:
        return min(self.planned_end_at, self.ended_at) if self.ended_at else self.planned_end_at

    def past_planned_end(self, now: dt.datetime | None = None) -> bool:
        """Still running although its planned end has passed: nobody ended it
        (the results stop at the planned end; the pilot rules still apply)."""
        return self.status == "running" and (now or clock.utcnow()) >= self.planned_end_at


def pilot_info(s: Session, pilot_id: int) -> PilotInfo:
    p = get_pilot(s, pilot_id)
    rs = s.get(RuleSet, p.rule_set_id)
    sizes = dict(s.execute(
        select(PilotMember.grp, func.count()).where(PilotMember.pilot_id == pilot_id)
        .group_by(PilotMember.grp)
    ).all())
    try:
        population = json.loads(p.population or "{}")
    except ValueError:
        population = {}
    return PilotInfo(p.id, p.name, p.status, rs.id, rs.name, rs.status, p.primary_metric,
                     p.min_effect, p.pilot_share_bp, p.random_seed, p.start_at, p.planned_end_at,
                     p.ended_at, population, int(sizes.get("pilot", 0)),
                     int(sizes.get("control", 0)), staff_name(s, p.created_by_id),
                     staff_name(s, p.start_requested_by_id) if p.start_requested_by_id else None,
                     p.start_requested_at,
                     staff_name(s, p.started_by_id) if p.started_by_id else None)


def pilot_choices(s: Session) -> list[tuple[int, str, str]]:
    """(id, name, status) of every pilot, newest first, for a picker."""
    return [tuple(r) for r in s.execute(
        select(Pilot.id, Pilot.name, Pilot.status).order_by(Pilot.start_at.desc(), Pilot.id.desc())
    ).all()]


def trial_rule_sets(s: Session) -> list[tuple[int, str, str]]:
    """(id, name, status) of the draft and pending rule sets a pilot can try."""
    return [tuple(r) for r in s.execute(
        select(RuleSet.id, RuleSet.name, RuleSet.status)
        .where(RuleSet.status.in_(("draft", "pending")))
        .where(select(Tier.id).where(Tier.rule_set_id == RuleSet.id).exists())
        .order_by(RuleSet.id.desc())
    ).all()]


def tier_names(s: Session) -> list[str]:
    return [t for t in s.scalars(select(Member.tier).distinct().order_by(Member.tier)) if t]
