"""Program settings that change money go through four-eyes, as rule versions do.

The points expiry period decides how many points members lose. A supervisor
*proposes* a new value; the proposal carries its simulated effect (points
that would expire within the next 90 days under the current and the
proposed period); a second supervisor applies or refuses it. Nothing
changes for members before the approval, and one proposal waits at a time.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, aliased

from db import audit, clock, program
from db.actor import Actor
from db.errors import Forbidden, InvalidState, NotFound, ValidationError, too_large
from db.i18n import N_
from db.ledger import expirable_points_query
from db.models import ProgramSettings, SettingsChange, StaffUser
from db.text import MAX_REASON, check_length

MAX_EXPIRY_DAYS = 3660
EFFECT_HORIZON_DAYS = 90



def check_expiry_days(days: Any) -> int | None:
    """``days`` as stored: a whole number 1..MAX_EXPIRY_DAYS, or None (never)."""
    if isinstance(days, int) and not isinstance(days, bool) and days > MAX_EXPIRY_DAYS:
        raise ValidationError("expiry_days", too_large(
            N_("%(n)s days (ten years)", n=f"{MAX_EXPIRY_DAYS:,}")))
    if days is not None and (
        not isinstance(days, int) or isinstance(days, bool) or not 1 <= days <= MAX_EXPIRY_DAYS
    ):
        raise ValidationError(
            "expiry_days",
            N_("must be a whole number of days from 1 to %(most)s (ten years), or never",
               most=MAX_EXPIRY_DAYS))
    return days


@dataclass(frozen=True)
class ExpiryEffect:
    """Points due to expire by ``until`` if members spend nothing more."""

    until: dt.datetime
    current_days: int | None
    proposed_days: int | None
    current_points: int
    current_members: int
    proposed_points: int
    proposed_members: int

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "until": self.until.isoformat()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ExpiryEffect:
        return cls(**{**d, "until": dt.datetime.fromisoformat(d["until"])})


def _due(s: Session, until: dt.datetime, days: int | None) -> tuple[int, int]:
    if days is None:
        return 0, 0
    q = expirable_points_query(until, days).subquery()
    n, pts = s.execute(select(func.count(), func.coalesce(func.sum(q.c.due), 0))).one()
    return int(pts), int(n)


def expiry_effect(s: Session, proposed_days: int | None, *, now: dt.datetime | None = None
                  ) -> ExpiryEffect:
    """What the next :data:`EFFECT_HORIZON_DAYS` days of expiry would take,
    under the period in force and under ``proposed_days`` (FIFO, as
    :func:`db.ledger.expire_points` does)."""
    until = (now or clock.utcnow()) + dt.timedelta(days=EFFECT_HORIZON_DAYS)
    current = program.program_info(s).expiry_days
    cp, cm = _due(s, until, current)
    pp, pm = _due(s, until, proposed_days)
    return ExpiryEffect(until, current, proposed_days, cp, cm, pp, pm)


@dataclass(frozen=True)
class Proposal:
    id: int
    changes: dict[str, Any]
    status: str
    requested_by: str
    requested_by_id: int | None
    requested_at: dt.datetime
    effect: ExpiryEffect | None
    decided_by: str
    decided_at: dt.datetime | None
    note: str


def propose_expiry(s: Session, actor: Actor, days: Any, *, now: dt.datetime | None = None
                   ) -> int:
    """Propose a new expiry period (None = never); nothing changes yet."""
    days = check_expiry_days(days)
    ps = s.get(ProgramSettings, 1, with_for_update=True)
    if ps is None:
        raise NotFound(N_("program settings are missing: run `loyalty init-db`"))
    if ps.expiry_days == days:
        raise ValidationError("expiry_days", N_("is already the period in force"))
    waiting = s.scalar(select(SettingsChange.id).where(SettingsChange.status == "pending"))
    if waiting is not None:
        raise InvalidState(N_(
            "settings change #%(id)s is waiting for approval: approve or refuse it first",
            id=waiting))
    effect = expiry_effect(s, days, now=now)
    c = SettingsChange(changes=json.dumps({"expiry_days": days}), status="pending",
                       requested_by_id=actor.id, requested_at=now or clock.utcnow(),
                       effect=json.dumps(effect.as_dict()))
    s.add(c)
    s.flush()
    audit.record(s, actor.name, "settings.propose", actor_id=actor.id,
                 object_type="program_settings", object_id=1,
                 before={"expiry_days": ps.expiry_days},
                 after={"expiry_days": days, "change_id": c.id, "effect": effect.as_dict()})
    return c.id


def _pending(s: Session, change_id: int) -> SettingsChange:
    c = s.get(SettingsChange, change_id, with_for_update=True)
    if c is None:
        raise NotFound(N_("settings change %(id)s does not exist", id=change_id))
    if c.status != "pending":
        raise InvalidState(N_("settings change %(id)s is already %(status)s", id=change_id,
                              status=c.status))
    return c


def approve(s: Session, actor: Actor, change_id: int, *, now: dt.datetime | None = None) -> None:
    """The second supervisor's yes: the new value applies from now."""
    c = _pending(s, change_id)
    if actor.id is None or actor.id == c.requested_by_id:
        raise Forbidden(N_("four-eyes: the supervisor who proposed a settings change cannot "
                           "approve it"))
    changes = json.loads(c.changes)
    days = check_expiry_days(changes["expiry_days"])
    ps = s.get(ProgramSettings, 1, with_for_update=True)
    before = ps.expiry_days
    ps.expiry_days = days
    ps.updated_at = now or clock.utcnow()
    c.status = "approved"
    c.decided_by_id = actor.id
    c.decided_at = now or clock.utcnow()
    audit.record(s, actor.name, "settings.update", actor_id=actor.id,
                 object_type="program_settings", object_id=1, before={"expiry_days": before},
                 after={"expiry_days": days, "change_id": c.id,
                        "proposed_by": _name(s, c.requested_by_id), "approved_by": actor.name})


def reject(s: Session, actor: Actor, change_id: int, reason: str) -> None:
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError("reason", N_("say why the change is refused"))
    check_length("reason", reason, MAX_REASON)
    c = _pending(s, change_id)
    c.status = "rejected"
    c.decided_by_id = actor.id
    c.decided_at = clock.utcnow()
    c.note = reason[:2000]
    audit.record(s, actor.name, "settings.reject", actor_id=actor.id,
                 object_type="program_settings", object_id=1,
                 after={"change_id": c.id, **json.loads(c.changes)}, detail=reason[:2000])


def _name(s: Session, user_id: int | None) -> str:
    if user_id is None:
        return "cli"
    return s.scalar(select(StaffUser.username).where(StaffUser.id == user_id)) or f"#{user_id}"


def waiting(s: Session) -> Proposal | None:
    """The proposal waiting for approval, if any."""
    asker = aliased(StaffUser)
    row = s.execute(
        select(SettingsChange, asker.username)
        .outerjoin(asker, asker.id == SettingsChange.requested_by_id)
        .where(SettingsChange.status == "pending").order_by(SettingsChange.id).limit(1)
    ).first()
    if row is None:
        return None
    c, by = row
    try:
        effect = ExpiryEffect.from_dict(json.loads(c.effect or "{}"))
    except (TypeError, ValueError, KeyError):
        effect = None
    return Proposal(c.id, json.loads(c.changes), c.status, by or "cli", c.requested_by_id,
                    c.requested_at, effect, "", None, c.note or "")
