"""The life of a pilot: ``create_pilot`` (draft: eligible population,
groups drawn and stored) -> ``request_start`` (one supervisor) ->
``start_pilot`` (a second supervisor approves; running: the engine applies
the pilot's rule set to pilot-group orders, see
:meth:`db.rules.RuleBook.for_member`) -> ``end_pilot`` (everyone back on
the published rules) -> ``rollout_draft`` (a normal draft that goes through
the approval)."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import and_, func, insert, select
from sqlalchemy.orm import Session

from db import audit, clock, rules
from db.actor import Actor
from db.errors import Forbidden, FormErrors, InvalidState, ValidationError
from db.i18n import N_
from db.models import Order, Pilot, PilotMember, RuleSet
from db.pilots.info import get_pilot, staff_name
from db.pilots.parsing import (
    PopulationFilter,
    parse_member_csv,
    parse_min_effect,
    parse_population,
    parse_share_bp,
)
from db.pilots.population import assign_groups, eligible_population, lock_assignment
from db.pilots.power import check_dates, form_problems
from db.text import MAX_REASON, check_length


@dataclass(frozen=True)
class PilotCreated:
    pilot_id: int
    n_pilot: int
    n_control: int
    left_out: int


def _snapshot(p: Pilot) -> dict[str, Any]:
    return {"name": p.name, "status": p.status, "rule_set_id": p.rule_set_id,
            "start_at": p.start_at, "planned_end_at": p.planned_end_at, "ended_at": p.ended_at,
            "start_requested_by_id": p.start_requested_by_id,
            "started_by_id": p.started_by_id}


def create_pilot(
    s: Session,
    actor: Actor,
    name: str,
    rule_set_id: int,
    *,
    population: PopulationFilter | dict | None = None,
    member_ids: list[int] | None = None,
    member_file: str | bytes | None = None,
    source_note: str = "",
    pilot_share: Any = 50,
    seed: int | None = None,
    start_at: dt.datetime,
    planned_end_at: dt.datetime,
    primary_metric: str = "spend_per_member",
    min_effect: Any,
    now: dt.datetime | None = None,
) -> PilotCreated:
    """Save a draft pilot with its drawn groups (nothing changes for members yet).

    ``member_file`` (an uploaded CSV) is parsed here, so a bad file refuses
    the whole pilot inside the same transaction.
    """
    problems = form_problems(name, rule_set_id, pilot_share, seed, start_at, planned_end_at,
                             primary_metric, min_effect)
    if problems:
        raise FormErrors(problems)
    name = (name or "").strip()
    share_bp = parse_share_bp(pilot_share)
    effect = parse_min_effect(min_effect, primary_metric)
    check_dates(start_at, planned_end_at)
    if seed is None:
        seed = int(np.random.default_rng().integers(1, 2**31 - 1))
    rs = s.get(RuleSet, rule_set_id) if rule_set_id is not None else None
    if rs is None:
        raise ValidationError("rule_set_id", N_("choose the draft rule set to try"))
    if rs.status not in ("draft", "pending"):
        raise ValidationError(
            "rule_set_id", N_("rule set %(id)s is %(status)s: a pilot tries a draft or pending one",
                              id=rs.id, status=rs.status)
        )
    if not rs.tiers:
        raise ValidationError("rule_set_id", N_("the rule set has no tiers"))
    if member_file is not None:
        member_ids = parse_member_csv(s, member_file)
    pop = None if member_ids is not None else parse_population(population)
    lock_assignment(s)
    if s.scalar(select(Pilot.id).where(Pilot.name == name)):
        raise ValidationError("name", N_("a pilot named %(name)s already exists", name=repr(name)))
    at = min(start_at, now or clock.utcnow())
    eligible, left_out = eligible_population(s, population=pop, member_ids=member_ids, at=at)
    groups = assign_groups(eligible, share_bp, seed)
    n_p = int((groups["grp"] == "pilot").sum())
    n_c = len(groups) - n_p
    if n_p == 0 or n_c == 0:
        raise ValidationError(
            "population",
            N_("%(n)s eligible member(s) (%(left_out)s left out: inactive or already in a "
               "pilot) - too few to form both a pilot and a control group",
               n=len(groups), left_out=left_out),
        )
    described = (
        {"source": "file", "members": len(member_ids), "note": source_note}
        if member_ids is not None else {"source": "filter", **pop.as_dict()}
    )
    described["eligible"] = len(groups)
    described["left_out"] = left_out
    p = Pilot(
        name=name, rule_set_id=rs.id, status="draft", population=json.dumps(described),
        pilot_share_bp=share_bp, random_seed=seed, primary_metric=primary_metric,
        min_effect=str(effect), start_at=start_at, planned_end_at=planned_end_at,
        created_by_id=actor.id, created_at=now or clock.utcnow(),
    )
    s.add(p)
    s.flush()
    rows = [
        {"pilot_id": p.id, "member_id": int(m), "grp": g, "stratum": st[:64]}
        for m, st, g in groups[["member_id", "stratum", "grp"]].itertuples(index=False)
    ]
    for i in range(0, len(rows), 10_000):
        s.execute(insert(PilotMember), rows[i : i + 10_000])
    audit.record(
        s, actor.name, "pilot.create", actor_id=actor.id, object_type="pilot", object_id=p.id,
        after={**_snapshot(p), "population": described, "share_bp": share_bp, "seed": seed,
               "metric": primary_metric, "min_effect": str(effect), "pilot": n_p,
               "control": n_c},
    )
    return PilotCreated(p.id, n_p, n_c, left_out)


def _overlap(s: Session, pilot_id: int) -> int:
    """Members of this pilot who are also in another running pilot."""
    other = (
        select(PilotMember.member_id)
        .join(Pilot, Pilot.id == PilotMember.pilot_id)
        .where(Pilot.status == "running", Pilot.id != pilot_id)
    )
    return int(s.scalar(
        select(func.count()).select_from(PilotMember)
        .where(PilotMember.pilot_id == pilot_id, PilotMember.member_id.in_(other))
    ) or 0)


def _check_startable(s: Session, p: Pilot, now: dt.datetime, allow_past: bool) -> RuleSet:
    if p.start_at < now - dt.timedelta(minutes=5) and not allow_past:
        raise ValidationError("start_at",
                              N_("is in the past: change the dates or create it again"))
    rs = s.get(RuleSet, p.rule_set_id)
    if rs is None or rs.status == "rejected":
        raise InvalidState(
            N_("the pilot's rule set was rejected; create a pilot with another one"))
    clash = s.scalar(
        select(func.count()).select_from(Order)
        .join(PilotMember, and_(PilotMember.member_id == Order.member_id,
                                PilotMember.pilot_id == p.id, PilotMember.grp == "pilot"))
        .where(Order.paid_at >= p.start_at, Order.paid_at < p.planned_end_at)
    )
    if clash:
        raise InvalidState(
            N_("%(n)s order(s) of pilot-group members are already recorded after the start: "
               "they were accrued under the published rules; choose a later start", n=clash)
        )
    if n := _overlap(s, p.id):
        raise InvalidState(
            N_("%(n)s member(s) of this pilot are already in another running pilot", n=n))
    return rs


def request_start(
    s: Session, actor: Actor, pilot_id: int, *, now: dt.datetime | None = None,
    allow_past: bool = False,
) -> None:
    """Ask for a draft pilot to start: members' points change only when a
    second supervisor approves (:func:`start_pilot`)."""
    now = now or clock.utcnow()
    lock_assignment(s)
    p = get_pilot(s, pilot_id, lock=True)
    if p.status != "draft":
        raise InvalidState(N_("pilot %(id)s is %(status)s; only a draft pilot can be started",
                              id=pilot_id, status=p.status))
    if p.start_requested_by_id is not None:
        raise InvalidState(
            N_("the start was already requested by %(name)s: "
               "another supervisor approves or sends it back",
               name=staff_name(s, p.start_requested_by_id))
        )
    _check_startable(s, p, now, allow_past)
    before = _snapshot(p)
    p.start_requested_by_id = actor.id
    p.start_requested_at = now
    audit.record(s, actor.name, "pilot.start_request", actor_id=actor.id, object_type="pilot",
                 object_id=p.id, before=before, after=_snapshot(p))


def start_pilot(
    s: Session, actor: Actor, pilot_id: int, *, now: dt.datetime | None = None,
    allow_past: bool = False,
) -> None:
    """Approve a requested start: draft -> running (four-eyes).

    From ``start_at`` the engine applies the pilot's rule set to the pilot
    group's orders, so the approver is a supervisor who neither wrote that
    rule set, nor created the pilot, nor requested its start. A start in the
    past would re-label orders already accrued, so it is refused (the demo
    seeder starts its pilot after the last order)."""
    now = now or clock.utcnow()
    lock_assignment(s)
    p = get_pilot(s, pilot_id, lock=True)
    if p.status != "draft":
        raise InvalidState(N_("pilot %(id)s is %(status)s; only a draft pilot can be started",
                              id=pilot_id, status=p.status))
    if p.start_requested_by_id is None:
        raise InvalidState(
            N_("nobody has requested this pilot's start yet: one supervisor requests it, "
               "another approves it")
        )
    rs = _check_startable(s, p, now, allow_past)
    involved = {p.start_requested_by_id, p.created_by_id, rs.created_by_id} - {None}
    if actor.id is None or actor.id in involved:
        raise Forbidden(
            N_("four-eyes: the start must be approved by a supervisor who did not write the "
               "pilot's rules, create the pilot or request its start")
        )
    before = _snapshot(p)
    p.status = "running"
    p.started_by_id = actor.id
    audit.record(s, actor.name, "pilot.start", actor_id=actor.id, object_type="pilot",
                 object_id=p.id, before=before,
                 after={**_snapshot(p),
                        "requested_by": staff_name(s, p.start_requested_by_id),
                        "approved_by": actor.name})


def send_back_start(s: Session, actor: Actor, pilot_id: int, reason: str) -> None:
    """Refuse a requested start: the pilot stays a draft, the request is cleared."""
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError("reason", N_("say why the start is sent back"))
    check_length("reason", reason, MAX_REASON)
    p = get_pilot(s, pilot_id, lock=True)
    if p.status != "draft" or p.start_requested_by_id is None:
        raise InvalidState(N_("pilot %(id)s has no start waiting for approval", id=pilot_id))
    before = _snapshot(p)
    p.start_requested_by_id = None
    p.start_requested_at = None
    audit.record(s, actor.name, "pilot.start_rejected", actor_id=actor.id, object_type="pilot",
                 object_id=p.id, before=before, after=_snapshot(p), detail=reason[:2000])


def end_pilot(s: Session, actor: Actor, pilot_id: int, *, now: dt.datetime | None = None) -> None:
    """running -> ended now: every member is back on the published rules."""
    now = now or clock.utcnow()
    p = get_pilot(s, pilot_id, lock=True)
    if p.status != "running":
        raise InvalidState(N_("pilot %(id)s is %(status)s; only a running pilot can be ended",
                              id=pilot_id, status=p.status))
    before = _snapshot(p)
    p.status = "ended"
    p.ended_at = max(now, p.start_at)
    audit.record(s, actor.name, "pilot.end", actor_id=actor.id, object_type="pilot",
                 object_id=p.id, before=before, after=_snapshot(p))


def cancel_pilot(s: Session, actor: Actor, pilot_id: int) -> None:
    """draft -> cancelled: its members become free for another pilot."""
    p = get_pilot(s, pilot_id, lock=True)
    if p.status != "draft":
        raise InvalidState(N_("pilot %(id)s is %(status)s; only a draft pilot can be cancelled",
                              id=pilot_id, status=p.status))
    before = _snapshot(p)
    p.status = "cancelled"
    audit.record(s, actor.name, "pilot.cancel", actor_id=actor.id, object_type="pilot",
                 object_id=p.id, before=before, after=_snapshot(p))


def _tier_rows(rs: RuleSet) -> list[dict[str, str]]:
    """A rule set's tiers in the editor's form (currency units, percent)."""
    return [
        {"name": t.name, "threshold": f"{t.threshold_minor // 100}.{t.threshold_minor % 100:02d}",
         "accrual_rate": f"{t.accrual_rate_bp // 100}.{t.accrual_rate_bp % 100:02d}",
         "referral_rate": f"{t.referral_rate_bp // 100}.{t.referral_rate_bp % 100:02d}"}
        for t in sorted(rs.tiers, key=lambda t: t.position)
    ]


def rollout_draft(s: Session, actor: Actor, pilot_id: int, *, now: dt.datetime | None = None
                  ) -> int:
    """A new draft with the pilot's rules, based on the published version in
    force; it goes through the normal submit/approve like any other draft."""
    p = get_pilot(s, pilot_id)
    if p.status not in ("running", "ended"):
        raise InvalidState(N_("pilot %(id)s is %(status)s: only a run pilot can be rolled out",
                              id=pilot_id, status=p.status))
    src = s.get(RuleSet, p.rule_set_id)
    in_force = s.scalar(
        select(RuleSet.id)
        .where(RuleSet.status == "published", RuleSet.effective_at <= (now or clock.utcnow()))
        .order_by(RuleSet.effective_at.desc(), RuleSet.id.desc()).limit(1)
    )
    rid = rules.create_draft(
        s, actor, f"Roll-out of pilot {p.name}"[:200], _tier_rows(src),
        point_value_minor=src.point_value_minor, tier_window_days=src.tier_window_days,
        based_on_id=in_force,
        note=f"Roll-out of pilot #{p.id} '{p.name}' (rule set #{src.id} '{src.name}').",
    )
    audit.record(s, actor.name, "pilot.rollout", actor_id=actor.id, object_type="pilot",
                 object_id=p.id, after={"draft_rule_set_id": rid, "based_on_id": in_force})
    return rid
