"""Supervisor grants: four-eyes on creating or promoting a supervisor.

A supervisor approves rules, pilots, settings and adjustments; one who could
make a second supervisor alone could approve their own requests through it.
So from the staff page:

- a new supervisor account is created *disabled*, with a pending ``create``
  grant; it can be enabled only by the grant's approval;
- promoting an account to supervisor leaves its role as it is, with a
  pending ``promote`` grant; the approval changes the role.

The approver is a supervisor other than the one who asked and other than
the account itself. The command line (``loyalty create-user``) creates
supervisors directly: it is the operator's bootstrap, run by whoever holds
the database.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session, aliased

from db import audit, clock, users
from db.actor import Actor
from db.errors import Forbidden, InvalidState, NotFound, ValidationError
from db.i18n import N_
from db.models import StaffRoleRequest, StaffUser
from db.text import MAX_REASON, check_length

PRIVILEGED = "supervisor"



@dataclass(frozen=True)
class Grant:
    id: int
    user_id: int
    username: str
    kind: str  # create | promote
    role: str
    status: str
    requested_by: str
    requested_by_id: int | None
    requested_at: dt.datetime


def _pending_for(s: Session, user_id: int) -> StaffRoleRequest | None:
    return s.scalar(select(StaffRoleRequest).where(
        StaffRoleRequest.user_id == user_id, StaffRoleRequest.status == "pending"))


def create_supervisor(
    s: Session, actor: Actor, username: str, password: str, *, full_name: str = ""
) -> users.UserInfo:
    """A disabled supervisor account and its pending grant."""
    info = users.create_user(s, username, password, PRIVILEGED, full_name=full_name,
                             actor=actor.name, actor_id=actor.id, active=False)
    _request(s, actor, info.id, "create")
    return info


def request_promotion(s: Session, actor: Actor, user_id: int) -> int:
    """Ask for ``user_id`` to become a supervisor; its role stays until approved."""
    u = s.get(StaffUser, user_id, with_for_update=True)
    if u is None:
        raise NotFound(N_("staff user %(id)s does not exist", id=user_id))
    if actor.id is not None and actor.id == user_id:
        raise ValidationError("role", N_("you cannot change your own role"))
    if u.role == PRIVILEGED:
        raise ValidationError("role", N_("%(username)s is already a supervisor",
                                         username=u.username))
    return _request(s, actor, user_id, "promote")


def _request(s: Session, actor: Actor, user_id: int, kind: str) -> int:
    if _pending_for(s, user_id) is not None:
        raise InvalidState(N_("a supervisor grant for this account is already waiting for "
                               "approval"))
    g = StaffRoleRequest(user_id=user_id, kind=kind, role=PRIVILEGED, status="pending",
                         requested_by_id=actor.id, requested_at=clock.utcnow())
    s.add(g)
    s.flush()
    audit.record(s, actor.name, "staff.grant_request", actor_id=actor.id,
                 object_type="staff_user", object_id=user_id,
                 after={"grant_id": g.id, "kind": kind, "role": PRIVILEGED})
    return g.id


def _decidable(s: Session, actor: Actor, grant_id: int) -> StaffRoleRequest:
    g = s.get(StaffRoleRequest, grant_id, with_for_update=True)
    if g is None:
        raise NotFound(N_("supervisor grant %(id)s does not exist", id=grant_id))
    if g.status != "pending":
        raise InvalidState(_already(g.status, grant_id))
    if actor.id is None or actor.id == g.user_id:
        raise Forbidden(N_("an account cannot decide on its own supervisor grant"))
    return g


def _already(status: str, grant_id: int) -> str:
    """A decided grant's refusal (one message per status, for the translations)."""
    if status == "approved":
        return N_("supervisor grant %(id)s is already approved", id=grant_id)
    return N_("supervisor grant %(id)s is already rejected", id=grant_id)


def approve(s: Session, actor: Actor, grant_id: int) -> users.UserInfo:
    """The second supervisor's yes: the account is enabled or promoted."""
    g = _decidable(s, actor, grant_id)
    if g.requested_by_id == actor.id:
        raise Forbidden(N_("four-eyes: the supervisor who asked for this grant cannot approve "
                            "it"))
    g.status = "approved"
    g.decided_by_id = actor.id
    g.decided_at = clock.utcnow()
    s.flush()
    if g.kind == "create":
        info = users.set_active(s, g.user_id, True, actor=actor.name, actor_id=actor.id)
    else:
        info = users.set_role(s, g.user_id, g.role, actor=actor.name, actor_id=actor.id,
                              granted=True)
    audit.record(s, actor.name, "staff.grant_approve", actor_id=actor.id,
                 object_type="staff_user", object_id=g.user_id,
                 before={"grant_id": g.id, "requested_by": _name(s, g.requested_by_id)},
                 after={"kind": g.kind, "role": g.role, "approved_by": actor.name})
    return info


def reject(s: Session, actor: Actor, grant_id: int, reason: str) -> None:
    """No: a new account stays disabled, a promotion does not happen."""
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError("reason", N_("say why the grant is refused"))
    check_length("reason", reason, MAX_REASON)
    g = _decidable(s, actor, grant_id)
    g.status = "rejected"
    g.decided_by_id = actor.id
    g.decided_at = clock.utcnow()
    g.note = reason[:2000]
    audit.record(s, actor.name, "staff.grant_reject", actor_id=actor.id,
                 object_type="staff_user", object_id=g.user_id,
                 before={"grant_id": g.id, "requested_by": _name(s, g.requested_by_id)},
                 after={"kind": g.kind, "role": g.role}, detail=reason[:2000])


def _name(s: Session, user_id: int | None) -> str:
    if user_id is None:
        return "cli"
    return s.scalar(select(StaffUser.username).where(StaffUser.id == user_id)) or f"#{user_id}"


def pending(s: Session) -> list[Grant]:
    """Grants waiting for a second supervisor, oldest first."""
    who = aliased(StaffUser)
    asker = aliased(StaffUser)
    rows = s.execute(
        select(StaffRoleRequest, who.username, asker.username)
        .join(who, who.id == StaffRoleRequest.user_id)
        .outerjoin(asker, asker.id == StaffRoleRequest.requested_by_id)
        .where(StaffRoleRequest.status == "pending")
        .order_by(StaffRoleRequest.id)
    ).all()
    return [Grant(g.id, g.user_id, name, g.kind, g.role, g.status, by or "cli",
                  g.requested_by_id, g.requested_at) for g, name, by in rows]
