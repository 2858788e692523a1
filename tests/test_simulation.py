"""Simulation figures against a small hand-computed example."""

from __future__ import annotations

import datetime as dt

import pytest

from db import ledger, rules
from db.errors import LoyaltyError, ValidationError
from db.ledger import OrderIn
from db.simulation import Cancelled, simulate
from tests.support.factories import T0, member, publish, staff

DRAFT = [
    {"name": "Basic", "threshold": "0", "accrual_rate": "2", "referral_rate": "0.5"},
    {"name": "Premium", "threshold": "3000", "accrual_rate": "4", "referral_rate": "2"},
]


def at(days: int) -> dt.datetime:
    return T0 + dt.timedelta(days=days, hours=10)


@pytest.fixture
def example(any_db):
    d = any_db
    with d.begin() as s:
        publish(s)  # Bronze 0 / 1 % / 0.5 %, Silver 1000 / 3 % / 1 %, Gold 5000 / 5 % / 2 %
        a = member(s, "A", segment="student")
        member(s, "B", referrer_id=a)
        draft = rules.create_draft(s, staff(s, "author", "supervisor"), "draft", DRAFT)
    for ref, cust, day, units in [("o1", "A", 5, 2000), ("o2", "A", 20, 500),
                                  ("o3", "B", 30, 1000), ("o4", "B", 40, 4500),
                                  ("g1", "guest", 50, 9999)]:
        ledger.post_order(d, OrderIn(ref, cust, at(day), units * 100))
    return d, draft


def test_hand_computed_example(example):
    d, draft = example
    with d.read() as s:
        r = simulate(s, draft, days=90, as_of=T0 + dt.timedelta(days=100))
    # period [day 10, day 100): o2, o3, o4 (o1 is before; the guest earns nothing)
    assert r.orders == 3 and r.members == 2
    assert r.points["accrual"] == {"actual": 160, "current": 160, "draft": 120}
    assert r.points["referral"] == {"actual": 55, "current": 55, "draft": 27}
    assert r.liability_change_minor == (120 + 27 - 160 - 55) * 100
    assert r.matrix.loc["Silver", "Basic"] == 1  # A: spend 2500
    assert r.matrix.loc["Gold", "Premium"] == 1  # B: spend 5500
    assert int(r.matrix.to_numpy().sum()) == 2
    assert (r.moved_up, r.moved_down, r.unchanged) == (0, 2, 0)
    seg = r.by_segment.set_index("segment")
    assert seg.loc["student", "points_current"] == 15 and seg.loc["student", "points_draft"] == 10
    assert seg.loc["regular", "points_change"] == (20 + 90) - (10 + 135)
    assert r.by_day["current_points"].sum() == 215


def test_rolling_window_draft(example):
    d, _ = example
    with d.begin() as s:
        w = rules.create_draft(s, staff(s, "author", "supervisor"), "windowed", DRAFT,
                               tier_window_days=15)
    with d.read() as s:
        r = simulate(s, w, days=90, as_of=T0 + dt.timedelta(days=100))
    # with a 15-day window nobody reaches Premium: all accrue at 2 %
    assert r.points["accrual"]["draft"] == 10 + 20 + 90
    assert r.matrix["Premium"].sum() == 0  # today's 15-day spend is 0 for both


def test_progress_and_cancel(example):
    d, draft = example
    seen = []
    with d.read() as s:
        simulate(s, draft, as_of=T0 + dt.timedelta(days=100),
                 progress=lambda f, m: seen.append(f))
        assert seen[-1] == 1.0 and seen == sorted(seen)
        with pytest.raises(Cancelled):
            simulate(s, draft, as_of=T0 + dt.timedelta(days=100), cancelled=lambda: True)


def test_refusals(db):
    with db.begin() as s:
        draft = rules.create_draft(s, staff(s, "author", "supervisor"), "draft", DRAFT)
    with db.read() as s:
        with pytest.raises(LoyaltyError, match="no published rule version"):
            simulate(s, draft)
        with pytest.raises(ValidationError):
            simulate(s, draft, days=0)


def test_orders_at_one_moment_and_at_the_window_edge(db):
    """Two orders of one member at the same moment do not count towards each
    other (the engine's "strictly before"); an order exactly one window
    earlier does count ([t - window, t))."""
    with db.begin() as s:
        publish(s)  # lifetime: Bronze 0 / 1 %, Silver 1000 / 3 %, Gold 5000 / 5 %
        member(s, "A")
        windowed = rules.create_draft(s, staff(s, "author", "supervisor"), "windowed", DRAFT,
                                      tier_window_days=20)
    for ref, day, units in [("t1", 0, 2000), ("t2", 0, 2000), ("t3", 20, 500)]:
        ledger.post_order(db, OrderIn(ref, "A", at(day), units * 100))
    with db.read() as s:
        r = simulate(s, windowed, days=30, as_of=T0 + dt.timedelta(days=30))
    # current: t1 and t2 both at Bronze (20 + 20), t3 at Silver on 4000 spent (15)
    assert r.points["accrual"]["current"] == r.points["accrual"]["actual"] == 55
    # draft: t1, t2 Basic 2 % (40 + 40); t3 sees both (exactly 20 days earlier):
    # 4000 >= 3000, Premium 4 % of 500 = 20
    assert r.points["accrual"]["draft"] == 100
    # today (day 30): lifetime 4500 is Silver; the 20-day window holds t3 only: Basic
    assert r.matrix.loc["Silver", "Basic"] == 1


# a richer Gold, Silver from 2000: who changes tier and who earns another rate
# are different members
RICHER_GOLD = [
    {"name": "Bronze", "threshold": "0", "accrual_rate": "1", "referral_rate": "0.5"},
    {"name": "Silver", "threshold": "2000", "accrual_rate": "3", "referral_rate": "1"},
    {"name": "Gold", "threshold": "5000", "accrual_rate": "9", "referral_rate": "2"},
    {"name": "Platinum", "threshold": "8000", "accrual_rate": "9", "referral_rate": "3"},
]


def test_rate_moves_and_tier_moves_count_what_they_say(db):
    """The headline counts members by the accrual rate they earn at, the
    matrix by tier: both recomputed here from the same orders."""
    spends = {"A": 500, "B": 1500, "C": 2500, "D": 6000, "E": 7000, "F": 9000}
    with db.begin() as s:
        in_force = rules.get_rules(s, publish(s))
        for ext in spends:
            member(s, ext)
        draft_id = rules.create_draft(s, staff(s, "author", "supervisor"), "richer",
                                      RICHER_GOLD)
        draft = rules.get_rules(s, draft_id)
    for ext, units in spends.items():
        ledger.post_order(db, OrderIn(f"o-{ext}", ext, at(5), units * 100))
    with db.read() as s:
        r = simulate(s, draft_id, days=90, as_of=T0 + dt.timedelta(days=60))

    now = {ext: in_force.tier_for(units * 100) for ext, units in spends.items()}
    new = {ext: draft.tier_for(units * 100) for ext, units in spends.items()}
    rate_up = sum(new[x].accrual_rate_bp > now[x].accrual_rate_bp for x in spends)
    rate_down = sum(new[x].accrual_rate_bp < now[x].accrual_rate_bp for x in spends)
    changed = sum(new[x].name != now[x].name for x in spends)
    assert (r.moved_up, r.moved_down) == (rate_up, rate_down)
    assert r.unchanged == len(spends) - rate_up - rate_down
    assert r.tier_changed == changed
    off_diagonal = sum(int(r.matrix.loc[a, b]) for a in r.matrix.index
                       for b in r.matrix.columns if a != b)
    assert r.tier_changed == off_diagonal
    # D and E stay Gold at a higher rate: counted as a higher rate, not as a
    # tier change; B drops to Bronze (a tier change and a lower rate); F moves
    # to Platinum (both)
    assert r.matrix.loc["Gold", "Gold"] == 2 and r.matrix.loc["Gold", "Platinum"] == 1
    assert (rate_up, rate_down, changed) == (3, 1, 2)
