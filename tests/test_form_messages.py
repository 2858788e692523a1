"""What forms say when they refuse: every problem at once, by field, in words
a user reads (no internal names), "too large" for huge numbers, and free text
limited by the services themselves, not only by the page."""

from __future__ import annotations

import datetime as dt

import pytest

from db import adjustments, pilots, rule_review, rules, settings_changes, staff_grants, users
from db.errors import FormErrors, ValidationError
from db.models import ADJUSTMENT_REASONS, PILOT_METRICS, SEGMENTS
from db.text import MAX_COMMENT, MAX_REASON
from tests.support import factories

# what the code calls things; a user never reads these
INTERNAL = (*ADJUSTMENT_REASONS, *PILOT_METRICS, *[s for s in SEGMENTS if "_" in s],
            "accrual_rate", "referral_rate", "point_value", "tier_window_days", "reason_code")


def readable(*messages: str) -> bool:
    return not any(code in m for m in messages for code in INTERNAL)


def test_an_adjustment_request_reports_every_field_at_once(db):
    with db.begin() as s:
        sam = factories.staff(s, "sam2", "support")
        m = factories.member(s, "FORM-1")
    with pytest.raises(FormErrors) as refused:
        adjustments.request_adjustment(db, sam, m, 0, "typo", " ", ticket_ref="T" * 65)
    problems = refused.value.problems
    assert set(problems) == {"points", "reason_code", "comment", "ticket_ref"}
    assert readable(*problems.values())
    with pytest.raises(FormErrors) as huge:
        adjustments.request_adjustment(db, sam, m, 10**15, "goodwill", "x" * (MAX_COMMENT + 1))
    assert huge.value.problems["points"].startswith("too large")
    assert f"at most {MAX_COMMENT:,} characters" in huge.value.problems["comment"]
    # the limit itself is accepted
    assert adjustments.request_adjustment(db, sam, m, 5, "goodwill", "x" * MAX_COMMENT).id


def test_reasons_are_limited_by_the_services(db):
    with db.begin() as s:
        sam = factories.staff(s, "sam3", "support")
        sue = factories.staff(s, "sue3", "supervisor")
        sid = factories.staff(s, "sid3", "supervisor")
        m = factories.member(s, "FORM-2")
        rid = rules.create_draft(s, sue, "Draft", factories.DEFAULT_TIERS)
        rule_review.submit(s, sue, rid)
    too_long = "r" * (MAX_REASON + 1)
    req = adjustments.request_adjustment(db, sam, m, 5, "goodwill", "fine")
    with pytest.raises(ValidationError, match=f"at most {MAX_REASON} characters"):
        adjustments.reject_adjustment(db, sid, req.id, too_long)
    with pytest.raises(ValidationError, match=f"at most {MAX_REASON} characters"):
        db.write_tx(lambda s: rules.reject(s, sid, rid, too_long))
    with pytest.raises(ValidationError, match=f"at most {MAX_REASON} characters"):
        db.write_tx(lambda s: rules.approve(s, sid, rid, dt.datetime(2100, 1, 1),
                                            note=too_long))
    with pytest.raises(rules.RuleValidationError) as note:
        db.write_tx(lambda s: rules.update_draft(
            s, sue, rules.copy_to_draft(s, sue, rid), "Copy", factories.DEFAULT_TIERS,
            point_value_minor=100, tier_window_days=None, note="n" * (MAX_COMMENT + 1)))
    assert [p.field for p in note.value.problems] == ["note"]
    # settings and grants refuse an overlong reason too
    change = db.write_tx(lambda s: settings_changes.propose_expiry(s, sue, 400))
    with pytest.raises(ValidationError, match=f"at most {MAX_REASON} characters"):
        db.write_tx(lambda s: settings_changes.reject(s, sid, change, too_long))
    db.write_tx(lambda s: staff_grants.create_supervisor(s, sue, "newsup3", "purple-otter-9z"))
    with db.read() as s:
        grant = staff_grants.pending(s)[0].id
    with pytest.raises(ValidationError, match=f"at most {MAX_REASON} characters"):
        db.write_tx(lambda s: staff_grants.reject(s, sid, grant, too_long))


def test_rule_problems_name_fields_as_the_editor_does():
    tiers, problems = rules.validate_tiers([
        {"name": "Base", "threshold": "0", "accrual_rate": "1e30", "referral_rate": "-1"},
        {"name": "Top", "threshold": "1e40", "accrual_rate": "5", "referral_rate": "1"},
    ])
    assert tiers == []
    texts = [str(p) for p in problems]
    assert "tier 1, accrual %: too large: at most 100 %" in texts
    assert any(t.startswith("tier 2, from spend: too large") for t in texts)
    assert any(t.startswith("tier 1, referral %:") for t in texts)
    assert readable(*texts)
    window = rules.validate_settings(100, 10**12)
    assert [str(p) for p in window] == ["tier window: too large: at most 3660 days"]


def test_expiry_days_say_why_they_are_refused():
    with pytest.raises(ValidationError, match="too large: at most 3,660 days"):
        settings_changes.check_expiry_days(10**30)
    with pytest.raises(ValidationError, match="whole number of days from 1"):
        settings_changes.check_expiry_days(0)


def test_a_new_account_reports_every_field_at_once():
    problems = users.new_user_problems("bad name", "short", "boss", "n" * 201)
    assert set(problems) == {"username", "password", "role", "full_name"}
    assert problems["role"] == "choose a role from the list"
    with pytest.raises(FormErrors) as refused:
        users.validate_new_user("bad name", "short", "support")
    assert set(refused.value.problems) == {"username", "password"}


def test_the_pilot_form_reports_every_field_at_once():
    start = dt.datetime(2100, 1, 1)
    problems = pilots.form_problems("", None, "1e30", 2**70, start, start, "lift", "1")
    assert set(problems) == {"name", "rule_set_id", "primary_metric", "pilot_share",
                             "planned_end_at", "seed"}
    assert problems["pilot_share"].startswith("too large")
    assert problems["seed"].startswith("too large")
    assert readable(*problems.values())
    assert pilots.form_problems("Trial", 1, "50", 1, start, start + dt.timedelta(days=30),
                                "spend_per_member", "100") == {}
    with pytest.raises(ValidationError, match="too large"):
        pilots.parse_min_effect("1e20", "spend_per_member")
    with pytest.raises(ValidationError, match="too large"):
        pilots.parse_population({"active_within_days": "99999999"})
    assert "large_family" not in pilots.parse_population({"segments": ["large_family"]}
                                                         ).describe()
