"""Who may join a pilot and which group each goes to.

The eligible population (filter or uploaded list, active members, minus
members already in a draft or running pilot - in either group) is stratified
by tier; within each tier a permutation drawn from
``numpy.random.default_rng([seed, stratum index])`` sends the first
``round(share x n)`` members to the pilot group and the rest to the control
group, so the draw is reproducible from the stored seed and the pilot share
per tier is exact to one member."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from db import clock
from db.models import Member, Order, Pilot, PilotMember
from db.pilots.parsing import ADVISORY_LOCK_KEY, BP, NO_TIER, PopulationFilter


def lock_assignment(s: Session) -> None:
    """Serialise pilot assignment: two pilots created at once must not share members.

    PostgreSQL: a transaction-level advisory lock. SQLite: write sessions
    already begin IMMEDIATE, so writers are serialised by the database lock.
    """
    if s.get_bind().dialect.name == "postgresql":
        s.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": ADVISORY_LOCK_KEY})


def _busy_members():
    """Members in a draft or running pilot (either group)."""
    return (
        select(PilotMember.member_id)
        .join(Pilot, Pilot.id == PilotMember.pilot_id)
        .where(Pilot.status.in_(("draft", "running")))
    )


def eligible_population(
    s: Session,
    *,
    population: PopulationFilter | None = None,
    member_ids: list[int] | None = None,
    at: dt.datetime | None = None,
) -> tuple[pd.DataFrame, int]:
    """(members that may take part: ``member_id``, ``stratum``; how many were
    left out because they are inactive or already in a draft/running pilot).

    With ``member_ids`` (an uploaded list) the filter is not used.
    """
    at = at or clock.utcnow()
    q = select(Member.id.label("member_id"), Member.tier.label("stratum")).where(
        Member.status == "active"
    )
    if member_ids is None:
        f = population or PopulationFilter()
        if f.segments:
            q = q.where(Member.segment.in_(f.segments))
        if f.tiers:
            q = q.where(Member.tier.in_(f.tiers))
        if f.joined_from:
            q = q.where(Member.joined_at >= dt.datetime.combine(f.joined_from, dt.time()))
        if f.joined_to:
            q = q.where(
                Member.joined_at < dt.datetime.combine(f.joined_to, dt.time())
                + dt.timedelta(days=1)
            )
        if f.active_within_days:
            q = q.where(
                Member.id.in_(
                    select(Order.member_id).where(
                        Order.status == "paid",
                        Order.paid_at >= at - dt.timedelta(days=f.active_within_days),
                        Order.paid_at < at,
                        Order.member_id.is_not(None),
                    )
                )
            )
        candidates = pd.DataFrame(s.execute(q).all(), columns=["member_id", "stratum"])
        busy = set(s.scalars(_busy_members()))
        keep = ~candidates["member_id"].isin(busy)
        left_out = int((~keep).sum())
    else:
        wanted = pd.Index(member_ids)
        candidates = pd.DataFrame(s.execute(q).all(), columns=["member_id", "stratum"])
        candidates = candidates[candidates["member_id"].isin(wanted)]
        busy = set(s.scalars(_busy_members()))
        keep = ~candidates["member_id"].isin(busy)
        left_out = len(wanted) - int(keep.sum())
    out = candidates[keep].copy()
    out["member_id"] = out["member_id"].astype(np.int64)
    out["stratum"] = out["stratum"].fillna(NO_TIER).astype(str)
    return out.reset_index(drop=True), left_out


def assign_groups(population: pd.DataFrame, share_bp: int, seed: int) -> pd.DataFrame:
    """Stratified random assignment: ``member_id``, ``stratum``, ``grp``.

    Within each stratum (sorted by name; members sorted by id) a permutation
    from ``default_rng([seed, k])`` puts the first ``round(share x n)``
    members in the pilot group. The same population, share and seed always
    give the same groups.
    """
    if population.empty:
        return pd.DataFrame({"member_id": pd.Series([], dtype=np.int64),
                             "stratum": pd.Series([], dtype=str), "grp": pd.Series([], dtype=str)})
    pop = population.sort_values(["stratum", "member_id"]).reset_index(drop=True)
    grp = np.empty(len(pop), dtype=object)
    for k, (_stratum, idx) in enumerate(pop.groupby("stratum", sort=True).indices.items()):
        n = len(idx)
        n_pilot = (n * share_bp + BP // 2) // BP  # round half up, integers only
        perm = np.random.default_rng([int(seed) & 0xFFFFFFFF, k]).permutation(n)
        g = np.full(n, "control", dtype=object)
        g[perm[:n_pilot]] = "pilot"
        grp[idx] = g
    pop["grp"] = grp
    return pop[["member_id", "stratum", "grp"]]
