"""The demo pilot: a pilot with a real effect, on a database the demo seeder
filled, started through the same four-eyes path as on the page."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from db import audit, rules, users
from db.actor import Actor
from db.bulk import BulkPoster
from db.errors import InvalidState, ValidationError
from db.ledger import OrderIn, expire_points
from db.models import LedgerTransaction, Member, Order
from db.pilots.lifecycle import create_pilot, request_start, start_pilot
from db.pilots.parsing import BP, MAX_PILOT_DAYS
from db.pilots.power import pilot_groups
from db.session import Database


@dataclass(frozen=True)
class DemoPilotReport:
    pilot_id: int
    rule_set_id: int
    start_at: dt.datetime
    data_until: dt.datetime
    n_pilot: int
    n_control: int
    member_orders: int
    guest_orders: int
    pilot_orders: int

    def summary(self) -> str:
        return (f"demo pilot #{self.pilot_id}: {self.n_pilot:,} pilot / {self.n_control:,} "
                f"control members from {self.start_at:%Y-%m-%d}; {self.member_orders:,} member "
                f"and {self.guest_orders:,} guest orders to {self.data_until:%Y-%m-%d}")


DEMO_SEGMENTS = ("regular", "pensioner")
DEMO_HOURS = np.arange(8, 23)


DEMO_REDEEM_SHARE = 0.15


def seed_demo_pilot(
    db: Any,
    *,
    seed: int = 42,
    effect: float = 0.25,
    days: int = 60,
    segments: tuple[str, ...] = DEMO_SEGMENTS,
    share_percent: int = 20,
    extra_accrual_bp: int = 200,
) -> DemoPilotReport:
    """A pilot with a real effect, on a database the demo seeder filled.

    The pilot starts at the midnight after the last recorded operation, so no
    existing order falls inside its window; then ``days`` days of orders for
    the whole active membership are posted through the engine
    (:class:`db.bulk.BulkPoster`, in payment order): each member keeps the
    order rate of their last 180 days and their own average check, the
    pilot group orders ``effect`` (0.25 = 25 %) more often, and guests keep
    buying. ``loyalty check`` stays clean. The history grows by ``days``
    days: seed the base history to end ``days`` before today.
    """
    if isinstance(db, Database):
        return db.write_tx(lambda s: _seed_demo_pilot(s, seed, effect, days, segments,
                                                      share_percent, extra_accrual_bp))
    return _seed_demo_pilot(db, seed, effect, days, segments, share_percent, extra_accrual_bp)


def _seed_demo_pilot(s: Session, seed: int, effect: float, days: int, segments: tuple[str, ...],
                     share_percent: int, extra_accrual_bp: int) -> DemoPilotReport:
    if not 0 <= effect <= 5:
        raise ValidationError("effect", "must be between 0 and 5 (0.25 = +25 % orders)")
    if not 7 <= days <= MAX_PILOT_DAYS:
        raise ValidationError("days", f"must be 7 to {MAX_PILOT_DAYS}")
    last = max(
        (x for x in (s.scalar(select(func.max(Order.paid_at))),
                     s.scalar(select(func.max(Order.refunded_at))),
                     s.scalar(select(func.max(LedgerTransaction.effective_at)))) if x),
        default=None,
    )
    if last is None:
        raise InvalidState("the database has no orders: run the demo seeder first")
    start = dt.datetime.combine(last.date() + dt.timedelta(days=1), dt.time())
    published = rules.rules_in_force(s, start)
    if published is None:
        raise InvalidState("no published rule version is in force: nothing to pilot against")
    u = users.get_user_by_name(s, "supervisor")
    u2 = users.get_user_by_name(s, "supervisor2")
    if u is None or u2 is None:
        raise InvalidState("the demo pilot needs the demo's two supervisors: run the demo seeder")
    actor = Actor(u.username, u.id, u.role)
    approver = Actor(u2.username, u2.id, u2.role)
    tier_rows = [
        {"name": t.name, "threshold": f"{t.threshold_minor / 100:.2f}",
         "accrual_rate": f"{min(BP, t.accrual_rate_bp + extra_accrual_bp) / 100:.2f}",
         "referral_rate": f"{t.referral_rate_bp / 100:.2f}"}
        for t in published.tiers
    ]
    pp = extra_accrual_bp / 100
    rs_id = rules.create_draft(
        s, actor, f"Pilot: +{pp:g} pp accrual on every tier", tier_rows,
        point_value_minor=published.point_value_minor,
        tier_window_days=published.tier_window_days, based_on_id=published.rule_set_id,
        note=f"{published.name} with {pp:g} percentage points more accrual; tried on a pilot "
             "group before anyone submits it.",
    )
    created = create_pilot(
        s, actor, f"Demo: +{pp:g} pp accrual for {' and '.join(segments)}", rs_id,
        population={"segments": list(segments), "active_within_days": 180},
        pilot_share=share_percent, seed=seed, start_at=start,
        planned_end_at=start + dt.timedelta(days=days),
        primary_metric="spend_per_member", min_effect="500", now=start,
    )
    # the same four-eyes path as on the page: one requests, the other approves
    request_start(s, actor, created.pilot_id, now=start, allow_past=True)
    start_pilot(s, approver, created.pilot_id, now=start, allow_past=True)

    rng = np.random.default_rng([seed & 0xFFFFFFFF, 7_007])
    hist_from = start - dt.timedelta(days=180)
    members = pd.DataFrame(
        s.execute(select(Member.id, Member.external_id).where(Member.status == "active")).all(),
        columns=["member_id", "external_id"],
    )
    recent = pd.DataFrame(
        s.execute(select(Order.member_id, func.count()).where(
            Order.member_id.is_not(None), Order.status == "paid", Order.paid_at >= hist_from,
            Order.paid_at < start).group_by(Order.member_id)).all(),
        columns=["member_id", "n"],
    )
    checks = pd.DataFrame(
        s.execute(select(Order.member_id, func.avg(Order.amount_minor)).where(
            Order.member_id.is_not(None), Order.status == "paid").group_by(Order.member_id)
        ).all(),
        columns=["member_id", "check"],
    )
    groups = pilot_groups(s, created.pilot_id)
    m = (members.merge(recent, on="member_id", how="left")
         .merge(checks, on="member_id", how="left")
         .merge(groups[["member_id", "grp"]], on="member_id", how="left"))
    m["n"] = m["n"].fillna(0)
    m["check"] = m["check"].astype(float).fillna(80_000.0)
    rate = m["n"].to_numpy(float) / 180 * np.where(m["grp"].to_numpy() == "pilot", 1 + effect, 1)
    counts = rng.poisson(rate * days)
    who = np.repeat(np.arange(len(m)), counts)
    day = rng.integers(0, days, len(who))
    t_sec = (day * 86_400 + rng.choice(DEMO_HOURS, len(who)) * 3600
             + rng.integers(0, 3600, len(who)))
    amount = np.maximum(100, np.round(
        m["check"].to_numpy(float)[who] * rng.lognormal(-0.5**2 / 2, 0.5, len(who)))).astype(
        np.int64)
    guests = [r for (r,) in s.execute(
        select(Order.customer_ref).where(Order.member_id.is_(None)).distinct().limit(50_000))]
    n_guest = int(round(len(who) * 0.43)) if guests else 0
    g_ref = rng.integers(0, max(len(guests), 1), n_guest)
    g_t = (rng.integers(0, days, n_guest) * 86_400 + rng.choice(DEMO_HOURS, n_guest) * 3600
           + rng.integers(0, 3600, n_guest))
    g_amt = np.maximum(100, np.round(76_000 * rng.lognormal(-0.5**2 / 2, 0.5, n_guest))).astype(
        np.int64)
    # one time line, member orders first within a second (as the seeder does)
    kind = np.concatenate([np.zeros(len(who), np.int8), np.ones(n_guest, np.int8)])
    t_all = np.concatenate([t_sec, g_t])
    order = np.lexsort((kind, t_all))
    ids = m["member_id"].to_numpy(np.int64)
    ext = m["external_id"].tolist()
    poster = BulkPoster(s)
    poster.prepare(ids[np.unique(who)].tolist(), start)
    member_orders = pilot_orders = 0
    # members keep paying part of some orders with points, as in the base history
    redeem_rng = np.random.default_rng([seed, 7])
    redeem_u = redeem_rng.random(len(order))
    for seq, i in enumerate(order.tolist()):
        when = start + dt.timedelta(seconds=int(t_all[i]))
        ref = f"P{created.pilot_id}-{seq + 1:08d}"
        if kind[i] == 0:
            j = int(who[i])
            bal = poster.balance_of(int(ids[j]))
            use = 0
            if bal >= 100 and redeem_u[seq] < DEMO_REDEEM_SHARE:
                use = int(min(bal, amount[i] // 100 * 3 // 10))
            poster.post(OrderIn(ref, ext[j], when, int(amount[i]), use), int(ids[j]))
            member_orders += 1
            pilot_orders += m["grp"].iat[j] == "pilot"
        else:
            k = i - len(who)
            poster.post(OrderIn(ref, guests[int(g_ref[k])], when, int(g_amt[k])), None)
        if seq % 50_000 == 49_999:
            poster.flush()
    poster.flush()
    expire_points(s, start + dt.timedelta(days=days), actor=actor)
    audit.record(s, actor.name, "pilot.demo", actor_id=actor.id, object_type="pilot",
                 object_id=created.pilot_id,
                 after={"effect": effect, "days": days, "member_orders": member_orders,
                        "guest_orders": n_guest})
    return DemoPilotReport(created.pilot_id, rs_id, start, start + dt.timedelta(days=days),
                           created.n_pilot, created.n_control, member_orders, n_guest,
                           int(pilot_orders))
