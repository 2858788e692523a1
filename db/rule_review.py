"""What a supervisor approves: the simulation a submitted version was checked with.

A version is submitted for approval only after a simulation of exactly its
content, against the version still in force, on the membership data as it is
at submission. "As it is" is a data fingerprint of what a simulation reads
(:func:`data_fingerprint`): the members (how many, the highest id, how many
are active) and the members' orders (how many, the highest id, how many are
refunded). Every ledger change a simulation depends on comes with one of these
(an order's accrual and referral bonus, a refund's reversals); redemptions,
transfers, adjustments and expiry change balances, not tiers or accrual, so
they do not make a simulation stale. Counts and highest ids together also
catch a row whose id was taken before the simulation and committed after it.

A shop that sells while a supervisor works would never let a fingerprint
stand still, so a little new data is tolerated: a simulation stays current
while what changed is at most ``TOLERATED_SHARE`` of what it read and it is
younger than ``TOLERATED_AGE``; anything more, or any change to an older
simulation, and it must run again. The approver sees every change listed.

While no version is in force there is nothing to simulate against, and the
first version is submitted without one.

The simulation's figures are recorded in the audit log (append-only) with the
fingerprint and a key of the simulated content, so the approver reads the
numbers the version was submitted on and whether the data has changed since.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from typing import Any

import pandas as pd
from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from db import audit, clock, rules
from db.actor import Actor
from db.errors import InvalidState
from db.i18n import N_, Message
from db.models import AuditLog, Member, Order
from db.rules import Rules, get_rules, rules_in_force
from db.simulation import SimulationResult

SIMULATE_ACTION = "rules.simulate"
FINGERPRINT_LABELS = {
    "members": N_("members"), "members_max_id": N_("newest member"),
    "members_active": N_("active members"), "orders": N_("member orders"),
    "orders_max_id": N_("newest member order"), "orders_refunded": N_("refunded member orders"),
}


def joined(items: list[str], sep: str = ", ") -> str:
    """``items`` joined by ``sep`` (", " or "; "), each still translatable."""
    if not items:
        return ""
    out = items[0]
    for item in items[1:]:
        out = (N_("%(a)s; %(b)s", a=out, b=item) if sep == "; "
               else N_("%(a)s, %(b)s", a=out, b=item))
    return out


TOLERATED_SHARE = 0.01  # new or changed members and orders, of those simulated
TOLERATED_AGE = dt.timedelta(hours=24)


class SimulationRequired(InvalidState):
    """A submission without a simulation of the version on the current data."""


def data_fingerprint(s: Session) -> dict[str, int]:
    """The data a simulation reads, summed up: equal fingerprints, same input."""
    members, max_member, active = s.execute(
        select(func.count(), func.max(Member.id),
               func.sum(case((Member.status == "active", 1), else_=0)))
    ).one()
    orders, max_order, refunded = s.execute(
        select(func.count(), func.max(Order.id),
               func.sum(case((Order.status == "refunded", 1), else_=0)))
        .where(Order.member_id.is_not(None))
    ).one()
    return {
        "members": int(members or 0), "members_max_id": int(max_member or 0),
        "members_active": int(active or 0), "orders": int(orders or 0),
        "orders_max_id": int(max_order or 0), "orders_refunded": int(refunded or 0),
    }


def content_key(r: Rules) -> str:
    """What a simulation depends on in a version: tiers, point value, tier window."""
    body = {
        "point_value_minor": r.point_value_minor, "tier_window_days": r.tier_window_days,
        "tiers": [[t.name, t.threshold_minor, t.accrual_rate_bp, t.referral_rate_bp]
                  for t in r.tiers],
    }
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:32]


@dataclass(frozen=True)
class RecordedSimulation:
    """A simulation as recorded when it ran (figures as in SimulationResult)."""

    rule_set_id: int
    recorded_at: dt.datetime
    by: str
    as_of: dt.datetime
    days: int
    in_force_id: int
    in_force_name: str
    content: str
    data: dict[str, int]
    members: int
    orders: int
    moved_up: int
    moved_down: int
    matrix: pd.DataFrame
    points: dict[str, dict[str, int]]
    liability_change_minor: int


def record_simulation(s: Session, actor: Actor, result: SimulationResult,
                      data: dict[str, int]) -> None:
    """The audit row of a simulation, with what the approver is shown.

    ``data``: the fingerprint taken before the simulation read anything (so a
    change during the run makes the record stale, never the other way)."""
    m = result.matrix
    summary = {
        "as_of": result.as_of.isoformat(), "days": result.days,
        "in_force_id": result.current.rule_set_id, "in_force_name": result.current.name,
        "content": content_key(result.draft), "data": data,
        "members": result.members, "orders": result.orders,
        "moved_up": result.moved_up, "moved_down": result.moved_down,
        "matrix": {"rows": [str(x) for x in m.index], "columns": [str(x) for x in m.columns],
                   "cells": m.to_numpy().astype(int).tolist()},
        "points": result.points, "liability_change_minor": result.liability_change_minor,
    }
    audit.record(
        s, actor.name, SIMULATE_ACTION, actor_id=actor.id, object_type="rule_set",
        object_id=result.draft.rule_set_id, after=summary,
        detail=f"{result.days} days, {result.members} members",
    )


def latest_simulation(s: Session, rule_set_id: int) -> RecordedSimulation | None:
    """The version's most recent recorded simulation, if any."""
    row = s.execute(
        select(AuditLog.at, AuditLog.actor, AuditLog.after)
        .where(AuditLog.action == SIMULATE_ACTION, AuditLog.object_type == "rule_set",
               AuditLog.object_id == str(rule_set_id), AuditLog.after.is_not(None))
        .order_by(AuditLog.id.desc())
        .limit(1)
    ).first()
    if row is None:
        return None
    d: dict[str, Any] = json.loads(row.after)
    mx = d["matrix"]
    matrix = pd.DataFrame(
        mx["cells"] or [[] for _ in mx["rows"]],
        index=pd.CategoricalIndex(mx["rows"], categories=mx["rows"], name="tier_current"),
        columns=pd.CategoricalIndex(mx["columns"], categories=mx["columns"],
                                    name="tier_draft"),
    )
    return RecordedSimulation(
        rule_set_id=rule_set_id, recorded_at=row.at, by=row.actor,
        as_of=dt.datetime.fromisoformat(d["as_of"]), days=int(d["days"]),
        in_force_id=int(d["in_force_id"]), in_force_name=str(d["in_force_name"]),
        content=str(d["content"]), data={k: int(v) for k, v in d["data"].items()},
        members=int(d["members"]), orders=int(d["orders"]), moved_up=int(d["moved_up"]),
        moved_down=int(d["moved_down"]), matrix=matrix, points=d["points"],
        liability_change_minor=int(d["liability_change_minor"]),
    )


def data_changes(before: dict[str, int], now: dict[str, int]) -> list[Message]:
    """What changed between two fingerprints, in words ("3 more member orders")."""
    out = []
    for key in ("members", "members_active", "orders", "orders_refunded"):
        diff = now.get(key, 0) - before.get(key, 0)
        if diff > 0:
            out.append(N_("%(n)s more %(what)s", n=f"{diff:,}", what=FINGERPRINT_LABELS[key]))
        elif diff < 0:
            out.append(N_("%(n)s fewer %(what)s", n=f"{-diff:,}", what=FINGERPRINT_LABELS[key]))
    if not out and now != before:
        out.append(N_("members or orders written since"))
    return out


def staleness(s: Session, rule_set_id: int, rec: RecordedSimulation | None,
              now: dt.datetime | None = None) -> list[Message]:
    """Why ``rec`` is not a simulation of this version on the current data
    (empty: it is, within the tolerance). The reasons are sentences for the page."""
    if rec is None:
        return [N_("it has not been simulated yet")]
    reasons = []
    if rec.content != content_key(get_rules(s, rule_set_id)):
        reasons.append(N_("the version was edited after it was simulated"))
    live = rules_in_force(s)
    if live is not None and live.rule_set_id != rec.in_force_id:
        reasons.append(N_("the version in force is now #%(now)s, the simulation compared it "
                          "with #%(then)s", now=live.rule_set_id, then=rec.in_force_id))
    now_data = data_fingerprint(s)
    changes = data_changes(rec.data, now_data)
    if changes and not tolerated(rec, now_data, now):
        reasons.append(N_("the data changed since it was simulated (%(changes)s)",
                          changes=joined(changes)))
    return reasons


def tolerated(rec: RecordedSimulation, data: dict[str, int], now: dt.datetime | None) -> bool:
    """A recent simulation and a small change: still what the version does."""
    now = now or clock.utcnow()
    if now - rec.recorded_at > TOLERATED_AGE:
        return False
    read = max(1, rec.data.get("members", 0) + rec.data.get("orders", 0))
    changed = sum(abs(data.get(k, 0) - rec.data.get(k, 0))
                  for k in ("members", "members_active", "orders", "orders_refunded"))
    return changed <= TOLERATED_SHARE * read


def require_current_simulation(s: Session, rule_set_id: int) -> None:
    """Refuse (SimulationRequired) unless the version's latest simulation is
    of its present content, against the version in force, on the current data."""
    if rules_in_force(s) is None:
        return  # nothing to simulate against: the first version
    rec = latest_simulation(s, rule_set_id)
    reasons = staleness(s, rule_set_id, rec)
    if not reasons:
        return
    if rec is None:
        raise SimulationRequired(N_(
            "#%(id)s is not submitted: run its simulation first (Simulation tab). "
            "A version is submitted only after a simulation on the current membership data, "
            "so the approver sees what it does.", id=rule_set_id))
    raise SimulationRequired(N_(
        "#%(id)s is not submitted: its last simulation (%(when)s UTC) is out of date: "
        "%(reasons)s. Run the simulation again (Simulation tab), then submit.",
        id=rule_set_id, when=f"{rec.recorded_at:%Y-%m-%d %H:%M}",
        reasons=joined(reasons, "; ")))


def submit(s: Session, actor: Actor, rule_set_id: int, *, require_simulation: bool = True
           ) -> None:
    """Submit a draft for approval: only once it has been simulated on the
    current data against the version in force, so the
    approver sees what it does. ``require_simulation=False`` is for writing
    past history (demo data, fixtures), where there is no "current" to
    simulate on."""
    rs = rules.load_for_update(s, rule_set_id)
    if rs.status != "draft":
        raise InvalidState(N_("rule set %(id)s is %(status)s, only a draft can be submitted",
                              id=rule_set_id, status=rs.status))
    if require_simulation:
        require_current_simulation(s, rule_set_id)
    rs.status = "pending"
    rs.submitted_at = clock.utcnow()
    audit.record(
        s, actor.name, "rules.submit", actor_id=actor.id, object_type="rule_set",
        object_id=rs.id, before={"status": "draft"}, after={"status": "pending"},
    )
