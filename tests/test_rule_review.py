"""A version is submitted only after a simulation of its content, against the
version in force, on the current data; the record is what the approver reads."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from db import ledger, rule_review, rules
from db.ledger import OrderIn
from db.models import Member, RuleSet
from db.rule_review import SimulationRequired
from tests.support.factories import DEFAULT_TIERS, member, publish, simulated, staff

NOW = dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)
RICHER = [dict(t) for t in DEFAULT_TIERS]
RICHER[-1]["accrual_rate"] = "9"


@pytest.fixture
def program(any_db):
    """A version in force, one member with an order, a draft by ``author``."""
    d = any_db
    with d.begin() as s:
        publish(s, effective_at=NOW - dt.timedelta(days=400))
        author = staff(s, "author", "supervisor")
        member(s, "M1", joined_at=NOW - dt.timedelta(days=300))
    ledger.post_order(d, OrderIn("o1", "M1", NOW - dt.timedelta(days=10), 250_000))
    with d.begin() as s:
        rid = rules.create_draft(s, author, "Richer", RICHER)
    return d, author, rid


def test_submission_without_a_simulation_is_refused(program):
    d, author, rid = program
    with pytest.raises(SimulationRequired, match="run its simulation first"), d.begin() as s:
        rule_review.submit(s, author, rid)
    with d.read() as s:
        assert s.get(RuleSet, rid).status == "draft"
    with d.begin() as s:
        simulated(s, author, rid)
        rule_review.submit(s, author, rid)
    with d.read() as s:
        assert s.get(RuleSet, rid).status == "pending"


def test_a_new_order_makes_the_simulation_out_of_date(program):
    d, author, rid = program
    with d.begin() as s:
        simulated(s, author, rid)
    ledger.post_order(d, OrderIn("o2", "M1", NOW - dt.timedelta(hours=1), 10_000))
    with pytest.raises(SimulationRequired, match="1 more member orders"), d.begin() as s:
        rule_review.submit(s, author, rid)


def test_a_new_member_and_a_refund_make_it_out_of_date(program):
    d, author, rid = program
    with d.begin() as s:
        simulated(s, author, rid)
        member(s, "M2", joined_at=NOW - dt.timedelta(days=1))
    with pytest.raises(SimulationRequired, match="1 more members"), d.begin() as s:
        rule_review.submit(s, author, rid)
    with d.begin() as s:
        simulated(s, author, rid)
    with d.begin() as s:
        ledger.refund_order(s, "o1", at=NOW - dt.timedelta(hours=2))
    with pytest.raises(SimulationRequired, match="1 more refunded member orders"), d.begin() as s:
        rule_review.submit(s, author, rid)


def test_an_edit_after_the_simulation_makes_it_out_of_date(program):
    d, author, rid = program
    with d.begin() as s:
        simulated(s, author, rid)
        rules.update_draft(s, author, rid, "Richer", DEFAULT_TIERS, point_value_minor=100,
                           tier_window_days=None)
    with pytest.raises(SimulationRequired, match="edited after it was simulated"), \
            d.begin() as s:
        rule_review.submit(s, author, rid)
    with d.begin() as s:  # a new name alone changes nothing a simulation reads
        simulated(s, author, rid)
        rules.update_draft(s, author, rid, "Renamed", DEFAULT_TIERS, point_value_minor=100,
                           tier_window_days=None)
        rule_review.submit(s, author, rid)


def test_another_version_in_force_makes_it_out_of_date(program):
    d, author, rid = program
    with d.begin() as s:
        simulated(s, author, rid)
        newer = publish(s, effective_at=NOW - dt.timedelta(days=1), name="Newer")
    with pytest.raises(SimulationRequired, match=f"in force is now #{newer}"), d.begin() as s:
        rule_review.submit(s, author, rid)


def test_redemptions_do_not_make_it_out_of_date(program):
    d, author, rid = program
    with d.begin() as s:
        simulated(s, author, rid)
        m1 = s.scalar(select(Member.id).where(Member.external_id == "M1"))
    with d.begin() as s:
        ledger.redeem(s, m1, 10, key="red-1", at=NOW - dt.timedelta(minutes=5))
    with d.begin() as s:
        rule_review.submit(s, author, rid)


def test_the_first_version_needs_no_simulation(any_db):
    with any_db.begin() as s:
        author = staff(s, "author", "supervisor")
        rid = rules.create_draft(s, author, "First", DEFAULT_TIERS)
        rule_review.submit(s, author, rid)
        assert s.get(RuleSet, rid).status == "pending"


def test_the_record_holds_what_the_simulation_computed(program):
    d, author, rid = program
    from db.simulation import simulate

    with d.begin() as s:
        simulated(s, author, rid)
        rec = rule_review.latest_simulation(s, rid)
        again = simulate(s, rid, days=90)
        assert rule_review.staleness(s, rid, rec) == []
    assert (rec.members, rec.orders, rec.moved_up, rec.moved_down) == (
        again.members, again.orders, again.moved_up, again.moved_down)
    assert rec.matrix.to_numpy().tolist() == again.matrix.to_numpy().tolist()
    assert list(rec.matrix.columns) == list(again.matrix.columns)
    assert rec.points == again.points and rec.by == "author"
    assert rec.in_force_id == again.current.rule_set_id


def test_a_little_new_data_is_tolerated_for_a_day(program):
    """A shop keeps selling: up to 1 % new members and orders leave a fresh
    simulation current; more, or any change a day later, does not."""
    import dataclasses

    d, author, rid = program
    with d.begin() as s:
        simulated(s, author, rid)
        rec = rule_review.latest_simulation(s, rid)
    read = {"members": 150, "members_active": 150, "orders": 150, "orders_refunded": 0,
            "members_max_id": 150, "orders_max_id": 150}
    big = dataclasses.replace(rec, data=read)
    plus = {**read, "orders": 153, "orders_max_id": 153}  # 3 of 300: 1 %
    more = {**read, "orders": 154, "orders_max_id": 154}
    soon, later = rec.recorded_at + dt.timedelta(hours=2), rec.recorded_at + dt.timedelta(hours=25)
    assert rule_review.tolerated(big, plus, soon)
    assert not rule_review.tolerated(big, more, soon)
    assert not rule_review.tolerated(big, plus, later)
    ledger.post_order(d, OrderIn("o2", "M1", NOW - dt.timedelta(hours=1), 10_000))
    with d.read() as s:  # the program's own: 1 new order of 2 read
        assert "1 more member orders" in rule_review.staleness(s, rid, rec)[0]
