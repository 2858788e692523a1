"""A pilot puts a rule set on real members' points: its start takes two supervisors,
and the rule set it uses cannot change while the pilot is a draft or runs."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from db import pilots, rules
from db.errors import Forbidden, InvalidState
from db.integrity import run_check
from db.ledger import OrderIn, post_order
from db.models import AuditLog, Pilot, PilotMember
from tests.support.factories import member, publish, staff

RICH = [{"name": "Bronze", "threshold": "0", "accrual_rate": "100", "referral_rate": "0"}]
START = dt.datetime(2025, 6, 1)
END = dt.datetime(2025, 7, 1)


def _pilot(s, author, creator=None):
    """A 100 % accrual draft by ``author`` in a pilot created by ``creator``."""
    publish(s)
    draft = rules.create_draft(s, author, "Everything back", RICH)
    ids = [member(s, f"C{i:03d}") for i in range(6)]
    made = pilots.create_pilot(
        s, creator or author, "Generous", draft, member_ids=ids, pilot_share=50, seed=1,
        start_at=START, planned_end_at=END, min_effect="10", now=START)
    return draft, made.pilot_id


def test_one_supervisor_cannot_start_a_pilot_alone(any_db):
    with any_db.begin() as s:
        ann = staff(s, "ann", "supervisor")
        draft, pid = _pilot(s, ann)
        with pytest.raises(InvalidState, match="nobody has requested"):
            pilots.start_pilot(s, ann, pid, now=START)
        pilots.request_start(s, ann, pid, now=START)
        with pytest.raises(InvalidState, match="already requested by ann"):
            pilots.request_start(s, ann, pid, now=START)
        with pytest.raises(Forbidden, match="four-eyes"):
            pilots.start_pilot(s, ann, pid, now=START)
        assert s.get(Pilot, pid).status == "draft"
    # nothing changed for the members: an order in the window earns the published 1 %
    with any_db.begin() as s:
        r = post_order(s, OrderIn("o1", "C000", START + dt.timedelta(days=1), 10_000))
        assert r.accrued == 1


def test_the_author_of_the_rules_cannot_approve_a_start_someone_else_requested(db):
    with db.begin() as s:
        ann, bob = staff(s, "ann", "supervisor"), staff(s, "bob", "supervisor")
        cat = staff(s, "cat", "supervisor")
        draft, pid = _pilot(s, ann, creator=bob)
        pilots.request_start(s, bob, pid, now=START)
        with pytest.raises(Forbidden, match="did not write the pilot's rules"):
            pilots.start_pilot(s, ann, pid, now=START)
        with pytest.raises(Forbidden):
            pilots.start_pilot(s, bob, pid, now=START)
        pilots.start_pilot(s, cat, pid, now=START)
        p = s.get(Pilot, pid)
        assert (p.status, p.start_requested_by_id, p.started_by_id) == ("running", bob.id, cat.id)
        log = s.execute(select(AuditLog.action, AuditLog.actor).where(
            AuditLog.action.like("pilot.%")).order_by(AuditLog.id)).all()
        assert log == [("pilot.create", "bob"), ("pilot.start_request", "bob"),
                       ("pilot.start", "cat")]
        info = pilots.pilot_info(s, pid)
        assert (info.created_by, info.start_requested_by, info.started_by) == ("bob", "bob", "cat")


def test_a_start_sent_back_needs_a_new_request(db):
    with db.begin() as s:
        ann, bob = staff(s, "ann", "supervisor"), staff(s, "bob", "supervisor")
        _draft, pid = _pilot(s, ann)
        pilots.request_start(s, ann, pid, now=START)
        with pytest.raises(Exception, match="say why"):
            pilots.send_back_start(s, bob, pid, "  ")
        pilots.send_back_start(s, bob, pid, "the population is too small")
        with pytest.raises(InvalidState, match="nobody has requested"):
            pilots.start_pilot(s, bob, pid, now=START)
        assert s.scalar(select(AuditLog.detail).where(
            AuditLog.action == "pilot.start_rejected")) == "the population is too small"


def test_a_rule_set_in_a_draft_or_running_pilot_is_frozen(any_db):
    with any_db.begin() as s:
        ann, bob = staff(s, "ann", "supervisor"), staff(s, "bob", "supervisor")
        draft, pid = _pilot(s, ann)
        with pytest.raises(InvalidState, match="frozen: draft pilot"):
            rules.update_draft(s, ann, draft, "Even more", RICH, point_value_minor=100,
                               tier_window_days=None)
        pilots.request_start(s, ann, pid, now=START)
        pilots.start_pilot(s, bob, pid, now=START)
        with pytest.raises(InvalidState, match="frozen: running pilot"):
            rules.update_draft(s, ann, draft, "Even more", RICH, point_value_minor=100,
                               tier_window_days=None)
    # the pilot's orders accrue at the rules it was approved with, and the ledger checks
    with any_db.begin() as s:
        pilot_member = s.scalar(select(PilotMember.member_id).where(
            PilotMember.pilot_id == pid, PilotMember.grp == "pilot").limit(1))
        from db.models import Member

        ext = s.get(Member, pilot_member).external_id
        r = post_order(s, OrderIn("p1", ext, START + dt.timedelta(days=1), 10_000))
        assert r.accrued == 100
    with any_db.read() as s:
        assert run_check(s).ok
    with any_db.begin() as s:
        pilots.end_pilot(s, bob, pid, now=START + dt.timedelta(days=2))
        # a late order inside the window still accrues under it: still frozen
        with pytest.raises(InvalidState, match="frozen: ended pilot"):
            rules.update_draft(s, ann, draft, "Even more", RICH, point_value_minor=100,
                               tier_window_days=None)


def test_a_cancelled_pilot_frees_its_rule_set(db):
    with db.begin() as s:
        ann = staff(s, "ann", "supervisor")
        draft, pid = _pilot(s, ann)
        pilots.cancel_pilot(s, ann, pid)
        rules.update_draft(s, ann, draft, "Even more", RICH, point_value_minor=100,
                           tier_window_days=None)
