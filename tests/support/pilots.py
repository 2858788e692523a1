"""A small pilot program: a published version, a draft to try, members with
tiers; creating and starting a pilot on it, and orders during it."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import update

from db import pilots, rules
from db.actor import Actor
from db.ledger import OrderIn, post_order
from db.models import Member
from tests.support.factories import member, publish, staff

PILOT_TIERS = [
    {"name": "Bronze", "threshold": "0", "accrual_rate": "4", "referral_rate": "0.5"},
    {"name": "Silver", "threshold": "1000", "accrual_rate": "6", "referral_rate": "1"},
    {"name": "Gold", "threshold": "5000", "accrual_rate": "8", "referral_rate": "2"},
]
START = dt.datetime(2025, 6, 1)
END = dt.datetime(2025, 7, 1)


def _program(s, n: int = 40, *, segment_every: int = 0) -> tuple[Actor, int, list[int]]:
    """A published version from T0, a draft to try, ``n`` members with tiers."""
    publish(s)
    sup = staff(s, "sue", "supervisor")
    draft = rules.create_draft(s, sup, "Richer", PILOT_TIERS)
    ids = []
    for i in range(n):
        seg = "student" if segment_every and i % segment_every == 0 else "regular"
        mid = member(s, f"C{i:04d}", segment=seg)
        ids.append(mid)
    # a tier cache to stratify on: three uneven tiers
    for i, mid in enumerate(ids):
        tier = "Gold" if i % 7 == 0 else "Silver" if i % 3 == 0 else "Bronze"
        s.execute(update(Member).where(Member.id == mid).values(tier=tier))
    return sup, draft, ids


def _start(s, requester, pilot_id, **kw):
    """The four-eyes start: ``requester`` asks, a second supervisor approves."""
    pilots.request_start(s, requester, pilot_id, **kw)
    pilots.start_pilot(s, staff(s, f"ok{pilot_id}", "supervisor"), pilot_id, **kw)


def _create(s, sup, draft, **kw):
    name = kw.pop("name", "P1")
    args = dict(pilot_share=50, seed=7, start_at=START, planned_end_at=END,
                primary_metric="spend_per_member", min_effect="100", now=START)
    args.update(kw)
    return pilots.create_pilot(s, sup, name, draft, **args)


def _orders(s, ext: dict[int, str], plan: list[tuple[int, dt.datetime, int]]) -> None:
    for k, (mid, at, amount) in enumerate(sorted(plan, key=lambda x: x[1])):
        post_order(s, OrderIn(f"R{k:05d}", ext[mid], at, amount))
