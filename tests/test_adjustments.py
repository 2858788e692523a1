"""Adjustment requests, approvals, rejections, cancels, history: every rule
and every refusal with its message, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy import func, select

from db import adjustments as adj
from db import ledger
from db.actor import Actor
from db.adjustments import AdjustmentFilters
from db.errors import Forbidden, InsufficientPoints, InvalidState, NotFound, ValidationError
from db.integrity import run_check
from db.models import AdjustmentRequest, AuditLog, LedgerEntry
from pages.adjustments_review import adjustments_csv
from tests.support.factories import member, staff


@pytest.fixture
def prog(any_db):
    d = any_db
    with d.begin() as s:
        a = member(s, "A", name="Anna")
        b = member(s, "B", name="=HYPERLINK(\"http://evil\")")
        people = {
            "sam": staff(s, "sam", "support"),
            "tom": staff(s, "tom", "support"),
            "sue": staff(s, "sue", "supervisor"),
            "sid": staff(s, "sid", "supervisor"),
            "ed": staff(s, "ed", "executive"),
        }
    # 1,000 points for A through an approved goodwill adjustment
    r = adj.request_adjustment(d, people["sam"], a, 1000, "goodwill", "opening balance")
    adj.approve_adjustment(d, people["sue"], r.id)
    return d, a, b, people


def entries_of(d, request_id: int) -> int:
    with d.read() as s:
        tx = s.scalar(select(AdjustmentRequest.tx_id).where(AdjustmentRequest.id == request_id))
        if tx is None:
            return 0
        return s.scalar(select(func.count()).select_from(LedgerEntry)
                        .where(LedgerEntry.tx_id == tx))


def balance(d, member_id: int) -> int:
    with d.read() as s:
        return ledger.balance(s, member_id)


# ------------------------------------------------------------------ request


@pytest.mark.parametrize(
    ("kwargs", "field", "message"),
    [
        ({"points": 0}, "points", "non-zero whole number"),
        ({"points": 1.5}, "points", "non-zero whole number"),
        ({"points": True}, "points", "non-zero whole number"),
        ({"points": 10**12 + 1}, "points", "at most"),
        ({"reason_code": "bribe"}, "reason_code", "choose a reason from the list"),
        ({"comment": "   "}, "comment", "is required"),
        ({"ticket_ref": "T" * 65}, "ticket_ref", "at most 64"),
        ({"corrects_entry_id": 99999}, "corrects_entry_id", "not in this member's ledger"),
    ],
)
def test_request_validation_names_the_field(prog, kwargs, field, message):
    d, a, _b, people = prog
    args = {"points": 10, "reason_code": "goodwill", "comment": "why"} | kwargs
    with pytest.raises(ValidationError) as exc:
        adj.request_adjustment(d, people["sam"], a, args.pop("points"), args.pop("reason_code"),
                               args.pop("comment"), **args)
    assert exc.value.field == field and message in exc.value.message


def test_request_refusals(prog):
    d, a, b, people = prog
    with pytest.raises(Forbidden, match="staff user"):
        adj.request_adjustment(d, Actor("cli"), a, 5, "goodwill", "x")
    with pytest.raises(Forbidden, match="only support staff and supervisors"):
        adj.request_adjustment(d, people["ed"], a, 5, "goodwill", "x")
    with pytest.raises(NotFound, match="member 999"):
        adj.request_adjustment(d, people["sam"], 999, 5, "goodwill", "x")
    with pytest.raises(Forbidden, match="must be requested by a supervisor"):
        adj.request_adjustment(d, people["sam"], a, 50_001, "goodwill", "x")
    with pytest.raises(InsufficientPoints, match="has 1,000 points; removing 1,001"):
        adj.request_adjustment(d, people["sam"], a, -1001, "wrong_accrual", "x")
    # an entry of another member cannot be the one corrected
    with d.read() as s:
        a_entry = s.scalar(select(LedgerEntry.id))
    with pytest.raises(ValidationError, match="not in this member's ledger"):
        adj.request_adjustment(d, people["sam"], b, 5, "goodwill", "x",
                               corrects_entry_id=a_entry)
    with d.read() as s:
        assert s.scalar(select(func.count()).select_from(AdjustmentRequest)) == 1


def test_request_limits_and_links(prog):
    d, a, _b, people = prog
    with d.read() as s:
        entry = s.scalar(select(LedgerEntry.id))
        lim = adj.limits(s)
    assert (lim.second_approval_over, lim.supervisor_request_over) == (5000, 50_000)
    small = adj.request_adjustment(d, people["sam"], a, -1000, "wrong_accrual", "undo",
                                   ticket_ref=" T-9 ", corrects_entry_id=entry)
    big = adj.request_adjustment(d, people["sam"], a, 5001, "goodwill", "big")
    huge = adj.request_adjustment(d, people["sue"], a, 50_001, "other", "huge by a supervisor")
    assert (small.approvals_required, big.approvals_required, huge.approvals_required) == (1, 2, 2)
    with d.read() as s:
        row = adj.get_adjustment(s, small.id)
    assert (row.ticket_ref, row.corrects_entry_id, row.member_balance) == ("T-9", entry, 1000)


# ------------------------------------------------------------------ approve / reject


def test_approve_refusals_and_exactly_one_entry(prog):
    d, a, _b, people = prog
    r = adj.request_adjustment(d, people["sam"], a, 300, "missing_accrual", "order 7")
    with pytest.raises(Forbidden, match="only a supervisor"):
        adj.approve_adjustment(d, people["sam"], r.id)
    with pytest.raises(Forbidden, match="only a supervisor"):
        adj.approve_adjustment(d, people["ed"], r.id)
    with pytest.raises(NotFound):
        adj.approve_adjustment(d, people["sue"], 999)
    own = adj.request_adjustment(d, people["sue"], a, 5, "goodwill", "mine")
    with pytest.raises(Forbidden, match="cannot approve your own"):
        adj.approve_adjustment(d, people["sue"], own.id)
    assert adj.approve_adjustment(d, people["sid"], r.id).status == "approved"
    with pytest.raises(InvalidState, match="already approved"):
        adj.approve_adjustment(d, people["sue"], r.id)  # the second click / the other one
    assert entries_of(d, r.id) == 1 and balance(d, a) == 1300


def test_two_approvals_by_two_supervisors(prog):
    d, a, _b, people = prog
    r = adj.request_adjustment(d, people["sam"], a, 6000, "goodwill", "big")
    first = adj.approve_adjustment(d, people["sue"], r.id)
    assert (first.status, first.tx_id) == ("pending", None) and entries_of(d, r.id) == 0
    with pytest.raises(Forbidden, match="second approval from a different supervisor"):
        adj.approve_adjustment(d, people["sue"], r.id)
    with pytest.raises(Forbidden, match="gave this request its first approval"):
        adj.reject_adjustment(d, people["sue"], r.id, "changed my mind")
    assert adj.approve_adjustment(d, people["sid"], r.id).status == "approved"
    assert entries_of(d, r.id) == 1 and balance(d, a) == 7000


def test_approval_refused_when_the_balance_changed_writes_nothing(prog):
    d, a, _b, people = prog
    r = adj.request_adjustment(d, people["sam"], a, -800, "fraud_reversal", "chargeback")
    ledger.redeem(d, a, 500, key="spent-meanwhile")  # 1000 -> 500
    with d.read() as s:
        n_entries = s.scalar(select(func.count()).select_from(LedgerEntry))
        n_audit = s.scalar(select(func.count()).select_from(AuditLog))
    with pytest.raises(InsufficientPoints, match="Nothing was written"):
        adj.approve_adjustment(d, people["sue"], r.id)
    with d.read() as s:
        assert s.get(AdjustmentRequest, r.id).status == "pending"
        assert s.scalar(select(func.count()).select_from(LedgerEntry)) == n_entries
        assert s.scalar(select(func.count()).select_from(AuditLog)) == n_audit
    assert balance(d, a) == 500
    # the supervisor rejects it instead
    assert adj.reject_adjustment(d, people["sue"], r.id, "balance already spent").status == \
        "rejected"


def test_reject_refusals(prog):
    d, a, _b, people = prog
    r = adj.request_adjustment(d, people["sam"], a, 10, "goodwill", "x")
    with pytest.raises(ValidationError) as exc:
        adj.reject_adjustment(d, people["sue"], r.id, "  ")
    assert exc.value.field == "reason"
    with pytest.raises(Forbidden, match="only a supervisor"):
        adj.reject_adjustment(d, people["sam"], r.id, "no")
    own = adj.request_adjustment(d, people["sue"], a, 10, "goodwill", "mine")
    with pytest.raises(Forbidden, match="cannot decide on your own"):
        adj.reject_adjustment(d, people["sue"], own.id, "no")
    assert adj.reject_adjustment(d, people["sid"], r.id, "no ticket").status == "rejected"
    with pytest.raises(InvalidState, match="already rejected"):
        adj.reject_adjustment(d, people["sue"], r.id, "no")
    with pytest.raises(InvalidState, match="already rejected"):
        adj.approve_adjustment(d, people["sue"], r.id)
    assert entries_of(d, r.id) == 0


def test_cancel_by_the_requester_only_while_pending(prog):
    d, a, _b, people = prog
    r = adj.request_adjustment(d, people["sam"], a, 10, "goodwill", "typo")
    with pytest.raises(Forbidden, match="only the requester"):
        adj.cancel_adjustment(d, people["tom"], r.id)
    with pytest.raises(Forbidden, match="only the requester"):
        adj.cancel_adjustment(d, people["sue"], r.id)
    with pytest.raises(Forbidden, match="staff user"):
        adj.cancel_adjustment(d, Actor("cli"), r.id)
    assert adj.cancel_adjustment(d, people["sam"], r.id).status == "cancelled"
    with pytest.raises(InvalidState, match="already cancelled"):
        adj.approve_adjustment(d, people["sue"], r.id)
    with pytest.raises(InvalidState, match="already cancelled"):
        adj.cancel_adjustment(d, people["sam"], r.id)
    done = adj.request_adjustment(d, people["sam"], a, 10, "goodwill", "x")
    adj.approve_adjustment(d, people["sue"], done.id)
    with pytest.raises(InvalidState, match="already approved"):
        adj.cancel_adjustment(d, people["sam"], done.id)


def test_every_step_is_audited(prog):
    d, a, _b, people = prog
    r1 = adj.request_adjustment(d, people["sam"], a, 6000, "goodwill", "big")
    adj.approve_adjustment(d, people["sue"], r1.id)
    adj.approve_adjustment(d, people["sid"], r1.id)
    r2 = adj.request_adjustment(d, people["sam"], a, 5, "goodwill", "x")
    adj.reject_adjustment(d, people["sue"], r2.id, "nope")
    r3 = adj.request_adjustment(d, people["sam"], a, 5, "goodwill", "x")
    adj.cancel_adjustment(d, people["sam"], r3.id)
    with d.read() as s:
        rows = s.execute(select(AuditLog.actor, AuditLog.action, AuditLog.object_id, AuditLog.after)
                         .where(AuditLog.object_type == "adjustment",
                                AuditLog.object_id.in_([str(r1.id), str(r2.id), str(r3.id)]))
                         .order_by(AuditLog.id)).all()
    assert [(who, what) for who, what, _o, _a in rows] == [
        ("sam", "adjustment.request"), ("sue", "adjustment.first_approval"),
        ("sid", "adjustment.approve"), ("sam", "adjustment.request"),
        ("sue", "adjustment.reject"), ("sam", "adjustment.request"), ("sam", "adjustment.cancel"),
    ]
    assert json.loads(rows[2][3])["status"] == "approved"
    with d.read() as s:
        assert run_check(s).ok


# ------------------------------------------------------------------ history


def test_history_filters(prog):
    d, a, b, people = prog
    r1 = adj.request_adjustment(d, people["tom"], b, 5, "transfer_dispute", "t")
    adj.reject_adjustment(d, people["sid"], r1.id, "no")
    r2 = adj.request_adjustment(d, people["sam"], a, 6000, "goodwill", "big")
    adj.approve_adjustment(d, people["sid"], r2.id)  # first approval only

    def ids(**kw) -> list[int]:
        with d.read() as s:
            return [r.id for r in adj.list_adjustments(s, AdjustmentFilters(**kw))]

    first = 1  # the fixture's approved opening balance
    assert ids() == [r2.id, r1.id, first]
    assert ids(status="rejected") == [r1.id]
    assert ids(requested_by_id=people["tom"].id) == [r1.id]
    assert ids(approver_id=people["sid"].id) == [r2.id, r1.id]  # first approver or decider
    assert ids(approver_id=people["sue"].id) == [first]
    assert ids(reason_code="transfer_dispute") == [r1.id]
    assert ids(member_id=a) == [r2.id, first]
    today = dt.datetime.now(dt.UTC).date()
    assert ids(date_from=today, date_to=today) == [r2.id, r1.id, first]
    assert ids(date_to=today - dt.timedelta(days=1)) == []
    for bad, field in ((AdjustmentFilters(status="done"), "status"),
                       (AdjustmentFilters(reason_code="x"), "reason_code"),
                       (AdjustmentFilters(date_from=today, date_to=today - dt.timedelta(days=1)),
                        "dates")):
        with d.read() as s, pytest.raises(ValidationError) as exc:
            adj.list_adjustments(s, bad)
        assert exc.value.field == field
    with d.read() as s:
        with pytest.raises(NotFound):
            adj.get_adjustment(s, 999)
        row = adj.get_adjustment(s, r2.id)
    assert (row.first_approver, row.decided_by, row.status) == ("sid", "", "pending")


def test_csv_export_guards_formulas_and_keeps_numbers(prog):
    d, a, b, people = prog
    adj.request_adjustment(d, people["sam"], b, 5, "other", "@SUM(A1:A9)", ticket_ref="+1-555")
    adj.request_adjustment(d, people["sam"], a, -5, "wrong_accrual", "-2+3")
    with d.read() as s:
        text = adjustments_csv(adj.list_adjustments(s))
    lines = text.splitlines()
    assert lines[0].startswith("id,requested_at,requested_by,member_id")
    assert "'@SUM(A1:A9)" in text and "'+1-555" in text and "'-2+3" in text
    assert "'=HYPERLINK" in text.replace('"', "")
    # a negative point value stays a number
    assert any(",-5,wrong_accrual," in line for line in lines)
