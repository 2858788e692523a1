"""Tier-rule services: validation, editing, copies and rollback, diff, states,
publishing at an effective time through the real ledger, four-eyes,
concurrent approval, expiry setting and the audited tier pass."""

from __future__ import annotations

import datetime as dt
import json
import threading

import pytest
from sqlalchemy import func, select

from db import ledger, program, rule_history, rule_review, rules
from db.errors import Forbidden, InvalidState, NotFound, ValidationError
from db.ledger import OrderIn
from db.models import AuditLog, Member, ProgramSettings, RuleSet
from db.rules import MAX_TIERS, Problem, RuleValidationError, validate_settings, validate_tiers
from tests.support.factories import DEFAULT_TIERS, T0, member, publish, simulated, staff


def row(name="Bronze", threshold="0", accrual="1", referral="0.5") -> dict:
    return {"name": name, "threshold": threshold, "accrual_rate": accrual,
            "referral_rate": referral}


def problems_of(rows) -> list[tuple[int | None, str, str]]:
    return [(p.row, p.field, p.message) for p in validate_tiers(rows)[1]]


def audit_actions(s) -> list[str]:
    return list(s.scalars(select(AuditLog.action).order_by(AuditLog.id)))


# ---------------------------------------------------------------- validation


def test_valid_rows_parse_to_integers():
    tiers, problems = validate_tiers([row(), row("Silver", "1000.50", "3.25", "1")])
    assert problems == []
    assert [(t.name, t.threshold_minor, t.accrual_rate_bp, t.referral_rate_bp)
            for t in tiers] == [("Bronze", 0, 100, 50), ("Silver", 100050, 325, 100)]


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        ([row(name="")], (0, "name", "is required")),
        ([row(name="   ")], (0, "name", "is required")),
        ([row(name="x" * 65)], (0, "name", "at most 64 characters")),
        ([row(), row("bronze", "10")], (1, "name", "'bronze' is already used by tier 1")),
        ([row(threshold="5")], (0, "threshold", "the first tier must start at 0")),
        ([row(), row("Silver", "0")],
         (1, "threshold", "must be greater than the previous tier's 0.00")),
        ([row(), row("Silver", "100"), row("Gold", "50")],
         (2, "threshold", "must be greater than the previous tier's 100.00")),
        ([row(), row("Silver", "-1")], (1, "threshold", "must not be negative")),
        ([row(), row("Silver", "NaN")], (1, "threshold", "must be a finite number")),
        ([row(), row("Silver", "1e308")],
         (1, "threshold", "too large: at most 10,000,000,000,000")),
        ([row(), row("Silver", "abc")], (1, "threshold", "must be a number")),
        ([row(), row("Silver", "10.005")], (1, "threshold", "at most 2 decimals")),
        ([row(), row("Silver", "")], (1, "threshold", "is required")),
        ([row(accrual="100.01")], (0, "accrual_rate", "too large: at most 100 %")),
        ([row(accrual="-0.5")], (0, "accrual_rate", "must be between 0 and 100 %")),
        ([row(accrual="1.255")], (0, "accrual_rate", "at most 2 decimals")),
        ([row(accrual="inf")], (0, "accrual_rate", "must be a finite number")),
        ([row(accrual=float("nan"))], (0, "accrual_rate", "must be a finite number")),
        ([row(accrual=True)], (0, "accrual_rate", "must be a number")),
        ([row(referral="101")], (0, "referral_rate", "too large: at most 100 %")),
        ([row(referral="1e308")], (0, "referral_rate", "too large: at most 100 %")),
        ([row(referral=None)], (0, "referral_rate", "is required")),
        ([], (None, "tiers", "need 1 to 12 tiers, got 0")),
        ([row()] + [row(f"T{i}", str(i)) for i in range(1, MAX_TIERS + 1)],
         (None, "tiers", "need 1 to 12 tiers, got 13")),
    ],
)
def test_every_rule_has_its_message(rows, expected):
    assert expected in problems_of(rows)


def test_every_problem_is_reported_at_once():
    found = problems_of([row(threshold="1"), row("", "abc", "200", "x")])
    assert {(r, f) for r, f, _ in found} == {
        (0, "threshold"), (1, "name"), (1, "threshold"), (1, "accrual_rate"),
        (1, "referral_rate")}


def test_boundaries_are_accepted():
    tiers, problems = validate_tiers([row(accrual="0", referral="100"),
                                      row("Top", "100000000000", "100", "0")])
    assert problems == [] and tiers[1].accrual_rate_bp == 10_000


@pytest.mark.parametrize(
    ("pv", "window", "field"),
    [(0, None, "point_value"), (-5, None, "point_value"), (10**9 + 1, None, "point_value"),
     (True, None, "point_value"), (100, 0, "tier_window_days"),
     (100, 3661, "tier_window_days"), (100, 1.5, "tier_window_days")],
)
def test_settings_rules(pv, window, field):
    assert [p.field for p in validate_settings(pv, window)] == [field]


def test_invalid_draft_is_never_saved(db):
    with db.begin() as s:
        author = staff(s, "author", "supervisor")
    with pytest.raises(RuleValidationError) as err, db.begin() as s:
        rules.create_draft(s, author, "bad", [row(threshold="10")], point_value_minor=0)
    assert {p.field for p in err.value.problems} == {"threshold", "point_value"}
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(RuleSet)) == 0
        assert "rules.draft" not in audit_actions(s)


# ---------------------------------------------------------------- editing


@pytest.fixture
def draft(db):
    with db.begin() as s:
        author = staff(s, "author", "supervisor")
        other = staff(s, "other", "supervisor")
        rid = rules.create_draft(s, author, "Draft", DEFAULT_TIERS, note="first")
    return db, rid, author, other


def test_update_draft_replaces_content_and_audits(draft):
    d, rid, author, _ = draft
    new_rows = [row(), row("Gold", "3000", "4.5", "2"), row("Platinum", "9000", "6", "3")]
    with d.begin() as s:
        rules.update_draft(s, author, rid, " Richer ", new_rows, point_value_minor=50,
                           tier_window_days=365, note="more tiers")
    with d.read() as s:
        r = rules.get_rules(s, rid)
        assert r.name == "Richer" and r.point_value_minor == 50 and r.tier_window_days == 365
        assert [(t.name, t.threshold_minor, t.accrual_rate_bp) for t in r.tiers] == [
            ("Bronze", 0, 100), ("Gold", 300000, 450), ("Platinum", 900000, 600)]
        assert s.get(RuleSet, rid).note == "more tiers"
        entry = s.scalars(select(AuditLog).where(AuditLog.action == "rules.update")).one()
        assert '"Silver"' in entry.before and '"Platinum"' in entry.after


def test_update_draft_reorders_tiers(draft):
    d, rid, author, _ = draft
    with d.read() as s:
        current = rules.tier_rows(rules.get_rules(s, rid))
    swapped = [current[0], {**current[2], "threshold": "1000"}, {**current[1], "threshold": "5000"}]
    with d.begin() as s:
        rules.update_draft(s, author, rid, "Draft", swapped, point_value_minor=100,
                           tier_window_days=None)
    with d.read() as s:
        assert [t.name for t in rules.get_rules(s, rid).tiers] == ["Bronze", "Gold", "Silver"]


def test_invalid_update_changes_nothing(draft):
    d, rid, author, _ = draft
    with d.read() as s:
        before = rules.get_rules(s, rid)
    with pytest.raises(RuleValidationError), d.begin() as s:
        rules.update_draft(s, author, rid, "Draft", [row(), row("Silver", "0")],
                           point_value_minor=100, tier_window_days=None)
    with d.read() as s:
        assert rules.get_rules(s, rid) == before
        assert "rules.update" not in audit_actions(s)


def test_only_the_author_edits_and_only_a_draft(draft):
    d, rid, author, other = draft
    with pytest.raises(Forbidden, match="only the author"), d.begin() as s:
        rules.update_draft(s, other, rid, "Mine", DEFAULT_TIERS, point_value_minor=100,
                           tier_window_days=None)
    with d.begin() as s:
        rule_review.submit(s, author, rid)
    with pytest.raises(InvalidState, match="only a draft can be edited"), d.begin() as s:
        rules.update_draft(s, author, rid, "Late", DEFAULT_TIERS, point_value_minor=100,
                           tier_window_days=None)


def test_rollback_is_a_new_draft_through_the_same_approval(draft):
    d, rid, author, other = draft
    with d.begin() as s:
        rule_review.submit(s, author, rid)
        rules.approve(s, other, rid, T0, allow_past=True)
        v2 = rules.create_draft(s, author, "v2", [row(), row("Silver", "2000", "9", "1")])
        simulated(s, author, v2)
        rule_review.submit(s, author, v2)
        rules.approve(s, other, v2, T0 + dt.timedelta(days=30), allow_past=True)
    with d.begin() as s:
        back = rules.copy_to_draft(s, other, rid, note="v2 cost too much",
                                    rollback=True)
    with d.read() as s:
        rs = s.get(RuleSet, back)
        assert rs.status == "draft" and rs.based_on_id == rid and rs.created_by_id == other.id
        assert rs.name == f"Rollback to #{rid} Draft"
        assert rules.get_rules(s, back).tiers == rules.get_rules(s, rid).tiers
        assert audit_actions(s)[-2:] == ["rules.draft", "rules.rollback"]
    with pytest.raises(Forbidden), d.begin() as s:  # its author cannot approve it either
        simulated(s, other, back)
        rule_review.submit(s, other, back)
        rules.approve(s, other, back, T0 + dt.timedelta(days=60), allow_past=True)
    with d.begin() as s:
        simulated(s, other, back)
        rule_review.submit(s, other, back)
        rules.approve(s, author, back, T0 + dt.timedelta(days=60), allow_past=True)
    with d.read() as s:
        assert rules.rules_in_force(s, T0 + dt.timedelta(days=61)).rule_set_id == back


def test_copy_of_a_missing_version(db):
    with db.begin() as s:
        author = staff(s, "author", "supervisor")
    with pytest.raises(NotFound), db.begin() as s:
        rules.copy_to_draft(s, author, 999)


def test_diff_names_added_removed_changed_and_settings(draft):
    d, rid, author, _ = draft
    with d.begin() as s:
        b = rules.create_draft(
            s, author, "Other", [row(), row("Silver", "1000", "3.5", "1"),
                                 row("Platinum", "8000", "7", "3")],
            point_value_minor=50, tier_window_days=180)
    with d.read() as s:
        out = rules.diff(rules.get_rules(s, rid), rules.get_rules(s, b))
    kinds = {c.name: (c.kind, c.fields) for c in out.tiers}
    assert kinds == {"Bronze": ("same", ()), "Silver": ("changed", ("accrual_rate_bp",)),
                     "Platinum": ("added", ()), "Gold": ("removed", ())}
    assert out.settings == (("name", "Draft", "Other"), ("point_value_minor", 100, 50),
                            ("tier_window_days", None, 180))
    assert out.changed
    with d.read() as s:
        assert not rules.diff(rules.get_rules(s, rid), rules.get_rules(s, rid)).changed


# ---------------------------------------------------------------- states


def test_states_are_derived_from_effective_at_and_the_clock(db):
    with db.begin() as s:
        v1 = publish(s, effective_at=T0, name="v1")
        v2 = publish(s, effective_at=T0 + dt.timedelta(days=10), name="v2")
        v3 = publish(s, effective_at=T0 + dt.timedelta(days=20), name="v3")
        author = staff(s, "author", "supervisor")
        d = rules.create_draft(s, author, "d", DEFAULT_TIERS)
        p = rules.create_draft(s, author, "p", DEFAULT_TIERS)
        simulated(s, author, p)
        rule_review.submit(s, author, p)
    with db.read() as s:
        now = T0 + dt.timedelta(days=15)
        states = {v.id: v.state for v in rule_history.versions(s, now=now)}
        assert states == {v1: "superseded", v2: "in force", v3: "scheduled", d: "draft",
                          p: "pending"}
        v = rule_history.version(s, p, now=now)
        assert v.author == "author" and v.submitted_at is not None
        assert rule_history.version(s, v2, now=now).approver == "approver"


# ---------------------------------------------------------------- publishing


def test_orders_before_the_effective_time_use_the_old_rates_after_the_new(any_db):
    d = any_db
    with d.begin() as s:
        publish(s, [row(accrual="1")], effective_at=T0, name="old")
        member(s, "M")
        author = staff(s, "author", "supervisor")
        approver = staff(s, "approver", "supervisor")
        new = rules.create_draft(s, author, "new", [row(accrual="4")])
        simulated(s, author, new)
        rule_review.submit(s, author, new)
    effective = T0 + dt.timedelta(days=10, hours=12)
    with d.begin() as s:  # approved a day before, for noon ten days later
        rules.approve(s, approver, new, effective, now=T0 + dt.timedelta(days=9))
    before = ledger.post_order(d, OrderIn("o1", "M", effective - dt.timedelta(seconds=1), 10_000))
    at = ledger.post_order(d, OrderIn("o2", "M", effective, 10_000))
    after = ledger.post_order(d, OrderIn("o3", "M", effective + dt.timedelta(days=3), 10_000))
    assert (before.accrued, at.accrued, after.accrued) == (1, 4, 4)
    assert before.rule_set_id != new and at.rule_set_id == new == after.rule_set_id


def test_effective_time_in_the_past_is_refused(draft):
    d, rid, author, other = draft
    with d.begin() as s:
        rule_review.submit(s, author, rid)
    with pytest.raises(ValidationError, match="must not be in the past"), d.begin() as s:
        rules.approve(s, other, rid, dt.datetime(2020, 1, 1))


def test_four_eyes_on_the_server(draft):
    d, rid, author, other = draft
    with d.begin() as s:
        rule_review.submit(s, author, rid)
    future = dt.datetime.now(dt.UTC).replace(tzinfo=None) + dt.timedelta(days=1)
    with pytest.raises(Forbidden, match="author of a rule set cannot approve"), d.begin() as s:
        rules.approve(s, author, rid, future)
    with pytest.raises(Forbidden), d.begin() as s:
        rules.reject(s, author, rid, "changed my mind")
    with d.read() as s:
        assert s.get(RuleSet, rid).status == "pending"
    with d.begin() as s:
        rules.approve(s, other, rid, future)
    with d.read() as s:
        assert s.get(RuleSet, rid).approved_by_id == other.id
        assert audit_actions(s)[-1] == "rules.publish"


@pytest.mark.parametrize("n", [6])
def test_concurrent_approval_publishes_once(any_db, n):
    d = any_db
    with d.begin() as s:
        author = staff(s, "author", "supervisor")
        approvers = [staff(s, f"sup{i}", "supervisor") for i in range(n)]
        rid = rules.create_draft(s, author, "race", DEFAULT_TIERS)
        rule_review.submit(s, author, rid)
    future = dt.datetime.now(dt.UTC).replace(tzinfo=None) + dt.timedelta(days=1)
    barrier = threading.Barrier(n)
    outcomes: list[str] = []
    lock = threading.Lock()

    def approve(actor) -> None:
        barrier.wait()
        try:
            d.write_tx(lambda s: rules.approve(s, actor, rid, future))
            result = "ok"
        except InvalidState:
            result = "invalid"
        except Exception as exc:  # noqa: BLE001 - any other outcome fails the test
            result = repr(exc)
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=approve, args=(a,)) for a in approvers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(outcomes) == ["invalid"] * (n - 1) + ["ok"]
    with d.read() as s:
        publishes = s.scalar(select(func.count()).select_from(AuditLog)
                             .where(AuditLog.action == "rules.publish"))
        assert publishes == 1 and s.get(RuleSet, rid).status == "published"


# ---------------------------------------------------------------- settings, tier pass


def test_expiry_setting_is_validated_and_audited(db):
    from db import settings_changes

    with db.begin() as s:
        sup = staff(s, "sup", "supervisor")
        other = staff(s, "other", "supervisor")
    for bad in (0, -1, 3661, 1.5, True):
        with pytest.raises(ValidationError), db.begin() as s:
            settings_changes.propose_expiry(s, sup, bad)
    for days in (90, None):
        with db.begin() as s:
            cid = settings_changes.propose_expiry(s, sup, days)
            settings_changes.approve(s, other, cid)
    with db.read() as s:
        assert s.get(ProgramSettings, 1).expiry_days is None
        rows = s.scalars(select(AuditLog).where(AuditLog.action == "settings.update")
                         .order_by(AuditLog.id)).all()
        assert [(json.loads(r.before), json.loads(r.after)["expiry_days"]) for r in rows] == [
            ({"expiry_days": 365}, 90), ({"expiry_days": 90}, None)]
        assert program.program_info(s).expiry_days is None


def test_reevaluate_now_only_for_the_version_in_force_and_audited(db):
    with db.begin() as s:
        v1 = publish(s, effective_at=T0)
        member(s, "A")
        member(s, "B")
        far = publish(s, effective_at=dt.datetime(2999, 1, 1), name="later")
        sup = staff(s, "sup", "supervisor")
    ledger.post_order(db, OrderIn("o1", "A", T0 + dt.timedelta(days=1), 600_000))
    with db.begin() as s:
        s.execute(Member.__table__.update().values(tier=None))
    with pytest.raises(InvalidState, match="scheduled"), db.begin() as s:
        rule_history.reevaluate_now(s, sup, far)
    with db.begin() as s:
        res = rule_history.reevaluate_now(s, sup, v1)
    assert res.members == 2 and res.changed == 2
    assert res.distribution == {"Gold": 1, "Bronze": 1}
    with db.read() as s:
        entry = s.scalars(select(AuditLog).where(AuditLog.action == "tiers.reevaluate")).one()
        assert entry.actor == "sup" and entry.object_id == str(v1)


def test_problem_text_names_the_tier():
    # named as the editor names the column, never by the field's code
    assert str(Problem(1, "threshold", "bad")) == "tier 2, from spend: bad"


def test_decimal_comma_and_huge_values():
    """'1,5' is a decimal comma; 1e308 is refused with a message (it used to
    raise decimal.InvalidOperation out of the validator)."""
    assert rules.parse_money_minor("1,5") == 150
    for huge in ("1e308", "9" * 400, 1e308):
        with pytest.raises(ValueError, match="too large: at most"):
            rules.parse_money_minor(huge)
