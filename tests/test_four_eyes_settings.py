"""Points expiry changes money: one supervisor proposes it with its simulated
effect, a second applies or refuses it."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from db import settings_changes as sc
from db.errors import Forbidden, InvalidState, ValidationError
from db.ledger import OrderIn, expire_points, post_order
from db.models import AuditLog, ProgramSettings
from tests.support.factories import member, publish, staff

NOW = dt.datetime(2026, 6, 1)


def _earned(s) -> None:
    """Two members with 1 % accrual: 10 points 300 days ago, 20 points 100 days ago."""
    publish(s)
    member(s, "A")
    member(s, "B")
    post_order(s, OrderIn("a1", "A", NOW - dt.timedelta(days=300), 100_000))
    post_order(s, OrderIn("b1", "B", NOW - dt.timedelta(days=100), 200_000))


def test_effect_counts_what_each_period_would_expire_in_90_days(any_db):
    with any_db.begin() as s:
        _earned(s)
        # in force: 365 days -> by NOW+90 the 300-day-old points are 390 days old
        e = sc.expiry_effect(s, 180, now=NOW)
        assert (e.current_days, e.current_points, e.current_members) == (365, 10, 1)
        # 180 days: the 100-day-old points are 190 days old by then, too
        assert (e.proposed_points, e.proposed_members) == (30, 2)
        never = sc.expiry_effect(s, None, now=NOW)
        assert (never.proposed_points, never.proposed_members) == (0, 0)


def test_one_supervisor_cannot_change_expiry_alone(any_db):
    with any_db.begin() as s:
        _earned(s)
        ann, bob = staff(s, "ann", "supervisor"), staff(s, "bob", "supervisor")
        cid = sc.propose_expiry(s, ann, 30, now=NOW)
        assert s.get(ProgramSettings, 1).expiry_days == 365  # nothing changed yet
        with pytest.raises(InvalidState, match="waiting for approval"):
            sc.propose_expiry(s, bob, 60, now=NOW)
        with pytest.raises(Forbidden, match="four-eyes"):
            sc.approve(s, ann, cid)
        waiting = sc.waiting(s)
        assert waiting.id == cid and waiting.effect.proposed_points == 30
    # expiry run before the approval uses the period in force
    with any_db.begin() as s:
        assert expire_points(s, NOW).points == 0
    with any_db.begin() as s:
        sc.approve(s, bob, cid)
        assert s.get(ProgramSettings, 1).expiry_days == 30
        assert sc.waiting(s) is None
        after = s.scalars(select(AuditLog.after).where(AuditLog.action == "settings.update")
                          ).all()
        assert any('"proposed_by": "ann"' in a and '"approved_by": "bob"' in a for a in after)
    with any_db.begin() as s:
        assert expire_points(s, NOW + dt.timedelta(days=1)).points == 30


def test_bad_or_idle_proposals_change_nothing(db):
    with db.begin() as s:
        ann, bob = staff(s, "ann", "supervisor"), staff(s, "bob", "supervisor")
        for bad in (0, -5, 2.5, "90", True):
            with pytest.raises(ValidationError, match="whole number of days"):
                sc.propose_expiry(s, ann, bad)
        for huge in (3661, 10**30):
            with pytest.raises(ValidationError, match="too large: at most 3,660 days"):
                sc.propose_expiry(s, ann, huge)
        with pytest.raises(ValidationError, match="already the period in force"):
            sc.propose_expiry(s, ann, 365)
        cid = sc.propose_expiry(s, ann, None)
        with pytest.raises(ValidationError, match="say why"):
            sc.reject(s, bob, cid, "")
        sc.reject(s, bob, cid, "breakage would vanish from the forecast")
        assert s.get(ProgramSettings, 1).expiry_days == 365
        with pytest.raises(InvalidState, match="already rejected"):
            sc.approve(s, bob, cid)


def test_the_rules_page_proposes_and_a_second_supervisor_approves(web_app, web_seed):
    from benchmarks.small_program import SECOND_SUPERVISOR
    from db.session import Database
    from pages.rules import Rules as ids
    from tests.support.web import UPDATE, callback_body, logged_in, login
    from tests.support.web import rules_key as key_of

    url, _ = web_seed
    sue = web_app.server.test_client()
    logged_in(sue, "supervisor")
    r = sue.post(UPDATE, json=callback_body(web_app, key_of(web_app, "propose_expiry"), {
        f"{ids.EXPIRY_SAVE}.n_clicks": 1, f"{ids.EXPIRY}.value": "200",
        f"{ids.EXPIRY_NEVER}.value": False, f"{ids.EXPIRY_CHANGED}.data": 0}))
    assert "Proposed" in r.get_data(as_text=True)
    shown = sue.post(UPDATE, json=callback_body(
        web_app, key_of(web_app, "show_expiry_proposal"), {f"{ids.EXPIRY_CHANGED}.data": 1}))
    assert "rules-expiry-effect" in shown.get_data(as_text=True)
    decide = key_of(web_app, "decide_expiry")

    def approve(client) -> str:
        return client.post(UPDATE, json=callback_body(web_app, decide, {
            f"{ids.EXPIRY_APPROVE}.n_clicks": 1, f"{ids.EXPIRY_REASON}.value": None,
            f"{ids.EXPIRY_CHANGED}.data": 1}, changed=[f"{ids.EXPIRY_APPROVE}.n_clicks"])
        ).get_data(as_text=True)

    assert "four-eyes" in approve(sue)
    d = Database(url)
    try:
        with d.read() as s:
            before = s.get(ProgramSettings, 1).expiry_days
        assert before != 200
        sid = web_app.server.test_client()
        assert login(sid, SECOND_SUPERVISOR).status_code == 302
        assert "expire after 200 days" in approve(sid)
        with d.begin() as s:
            assert s.get(ProgramSettings, 1).expiry_days == 200
            s.get(ProgramSettings, 1).expiry_days = before  # as it was for the other tests
    finally:
        d.dispose()
