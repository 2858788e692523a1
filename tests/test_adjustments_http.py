"""The members and adjustments callbacks over HTTP, as the Dash renderer calls
them: role refusals (403), messages next to the fields, the decision race's
loser message, support pinned to their own requests, the CSV export."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from dashboard import access
from db import adjustments as adj
from db import clock, ledger
from db.actor import Actor
from db.models import AdjustmentRequest, AuditLog, LedgerEntry
from db.session import Database
from tests.support.web import (
    UPDATE,
    call,
    callback_body,
    logged_in,
    logout,
    response,
)
from tests.support.web import submit_adjustment as submit

MODULES = ("callbacks.members", "callbacks.adjustments_request", "callbacks.adjustments_review")
SUPERVISOR_ONLY = ("queue", "detail", "approve", "reject")


def text(out: dict[str, Any], component: str) -> str:
    return str(next(v for k, v in out.items() if k == component))


@pytest.fixture(scope="module")
def world(web_seed):
    """A member of our own in the web database, with 1,000 points."""
    url, ids = web_seed
    d = Database(url)
    with d.begin() as s:
        m = ledger.create_member(s, "HTTP-1", clock.utcnow(), name="Hattie Http",
                                 email="hattie@example.com", phone="+79990001122")
    sam = Actor("sam", ids["sam"], "support")
    sue = Actor("sue", ids["sue"], "supervisor")
    sid = Actor("sid", ids["sid"], "supervisor")
    r = adj.request_adjustment(d, sam, m, 1000, "goodwill", "opening")
    adj.approve_adjustment(d, sue, r.id)
    yield {"db": d, "url": url, "member": m, "sam": sam, "sue": sue, "sid": sid}
    # leave nothing pending for the other web tests (the browser queue)
    with d.read() as s:
        pending = s.execute(select(AdjustmentRequest.id, AdjustmentRequest.requested_by_id)
                            .where(AdjustmentRequest.member_id == m,
                                   AdjustmentRequest.status == "pending")).all()
    for rid, by in pending:
        adj.cancel_adjustment(d, Actor("requester", by, "support"), rid)
    d.dispose()


# ------------------------------------------------------------------ refusals


@pytest.mark.parametrize("role", ["executive", "support"])
def test_roles_refused_with_403(client, web_app, role):
    logged_in(client, role)
    refused = []
    for key, entry in web_app.callback_map.items():
        fn = entry.get("callback")
        if fn is None or access.innermost(fn).__module__ not in MODULES:
            continue
        name = access.innermost(fn).__name__
        if role == "support" and name not in SUPERVISOR_ONLY:
            continue
        r = client.post(UPDATE, json=callback_body(web_app, key))
        assert r.status_code == 403, (role, key, r.status_code)
        refused.append(name)
    expected = 15 if role == "executive" else len(SUPERVISOR_ONLY)
    assert len(refused) == expected, refused
    assert {"approve", "reject"} <= set(refused)


def test_support_forcing_an_approval_is_refused_and_audited(client, web_app, world):
    d = world["db"]
    r = adj.request_adjustment(d, world["sam"], world["member"], 7, "goodwill", "forced")
    logged_in(client, "support")
    resp = call(client, web_app, "callbacks.adjustments_review", "approve",
                {"adjreview-approve.n_clicks": 1, "adjreview-selected.data": r.id},
                ["adjreview-approve.n_clicks"])
    assert resp.status_code == 403
    with d.read() as s:
        assert s.get(AdjustmentRequest, r.id).status == "pending"
        assert s.scalar(select(func.count()).select_from(AuditLog).where(
            AuditLog.action == "access.refused",
            AuditLog.object_id.like("adjustments_review.approve%")))
    adj.cancel_adjustment(d, world["sam"], r.id)


# ------------------------------------------------------------------ the form


def feedback(out: dict[str, Any]) -> dict[str, str]:
    return {k.split("-", 1)[1].removesuffix("-feedback"): v["children"]
            for k, v in out.items() if k.endswith("-feedback") and v["children"]}


def test_form_messages_next_to_the_fields(client, web_app, world):
    logged_in(client, "support")
    m = str(world["member"])
    good = {"member": m, "points": "+25", "reason": "goodwill", "comment": "late parcel",
            "ticket": "T-1"}
    cases = [
        ({"member": "nobody"}, "member", "no member with id or customer id"),
        ({"member": ""}, "member", "enter the member id"),
        ({"points": "abc"}, "points", "whole number of points"),
        ({"points": "1.5"}, "points", "whole number of points"),
        ({"points": ""}, "points", "enter the points"),
        ({"points": "0"}, "points", "non-zero"),
        ({"points": "-1,001"}, "points", "would make the balance negative"),
        ({"reason": ""}, "reason_code", "choose a reason from the list"),
        ({"comment": " "}, "comment", "is required"),
        ({"ticket": "X" * 65}, "ticket_ref", "at most 64"),
        ({"entry": 10**9}, "corrects_entry_id", "not in this member's ledger"),
    ]
    with world["db"].read() as s:
        before = s.scalar(select(func.count()).select_from(AdjustmentRequest))
    for change, field, message in cases:
        out = submit(client, web_app, **(good | change))
        fb = feedback(out)
        assert list(fb) == [field.replace("_code", "").replace("_ref", "")
                            .replace("corrects_entry_id", "entry")], (change, fb)
        assert message in next(iter(fb.values())), (change, fb)
        assert "Nothing was filed" in str(out["adjreq-result"]["children"])
    # over the supervisor-only limit: support is refused, a supervisor may
    out = submit(client, web_app, **(good | {"points": "60000"}))
    assert "must be requested by a supervisor" in str(out["adjreq-result"]["children"])
    with world["db"].read() as s:
        assert s.scalar(select(func.count()).select_from(AdjustmentRequest)) == before
    out = submit(client, web_app, **good)
    assert "filed" in str(out["adjreq-result"]["children"]) and feedback(out) == {}
    assert out["adjreq-version"]["data"] == 1 and out["adjreq-points"]["value"] == ""
    logout(client)
    logged_in(client, "supervisor")
    out = submit(client, web_app, **(good | {"points": "60000", "comment": "big one"}))
    assert "two approvals" in str(out["adjreq-result"]["children"])
    with world["db"].read() as s:
        assert s.scalar(select(func.count()).select_from(AdjustmentRequest)) == before + 2


# ------------------------------------------------------------------ decisions


def decide(client, app, name: str, request_id: int, reason: str | None = None
           ) -> dict[str, Any]:
    values = {f"adjreview-{name}.n_clicks": 1, "adjreview-selected.data": request_id,
              "adjreview-reject-reason.value": reason, "adjreview-version.data": 0}
    return response(call(client, app, "callbacks.adjustments_review", name, values,
                         [f"adjreview-{name}.n_clicks"]))


def decision(out: dict[str, Any]) -> str:
    return str(out["adjreview-decision"]["children"])


def test_approve_once_loser_gets_the_message(client, web_app, world):
    d, m = world["db"], world["member"]
    r = adj.request_adjustment(d, world["sam"], m, 40, "missing_accrual", "order 9")
    logged_in(client, "supervisor")
    first = decide(client, web_app, "approve", r.id)
    assert "approved" in decision(first) and "one entry" in decision(first)
    second = decide(client, web_app, "approve", r.id)  # a double click that got through
    assert "Not approved" in decision(second) and "already approved" in decision(second)
    with d.read() as s:
        tx = s.get(AdjustmentRequest, r.id).tx_id
        assert s.scalar(select(func.count()).select_from(LedgerEntry)
                        .where(LedgerEntry.tx_id == tx)) == 1


def test_own_request_and_changed_balance_are_refused_with_messages(client, web_app, world):
    d, m = world["db"], world["member"]
    own = adj.request_adjustment(d, world["sue"], m, 5, "goodwill", "mine")
    drain = adj.request_adjustment(d, world["sam"], m, -1000, "fraud_reversal", "chargeback")
    ledger.redeem(d, m, 100, key="http-spent")
    with d.read() as s:
        entries = s.scalar(select(func.count()).select_from(LedgerEntry))
    logged_in(client, "supervisor")
    assert "cannot approve your own" in decision(decide(client, web_app, "approve", own.id))
    out = decide(client, web_app, "approve", drain.id)
    assert "Nothing was written" in decision(out)
    with d.read() as s:
        assert s.scalar(select(func.count()).select_from(LedgerEntry)) == entries
        assert s.get(AdjustmentRequest, drain.id).status == "pending"
    # reject needs a reason, shown next to the field; then it works
    out = decide(client, web_app, "reject", drain.id, "")
    assert "say why" in out["adjreview-reject-feedback"]["children"]
    out = decide(client, web_app, "reject", drain.id, "points already spent")
    assert "rejected" in decision(out)
    adj.cancel_adjustment(d, world["sue"], own.id)


def test_detail_shows_balance_history_and_disables_own(client, web_app, world):
    d, m = world["db"], world["member"]
    r = adj.request_adjustment(d, world["sue"], m, 3, "goodwill", "detail")
    logged_in(client, "supervisor")
    out = response(call(client, web_app, "callbacks.adjustments_review", "detail",
                        {"adjreview-queue.selectedRows": [{"id": r.id}]},
                        ["adjreview-queue.selectedRows"]))
    body = str(out["adjreview-detail"]["children"])
    assert "Balance now" in body and "Recent ledger lines" in body and "You requested this" in body
    assert out["adjreview-approve"]["disabled"] is True
    queue = response(call(client, web_app, "callbacks.adjustments_review", "queue", {}))
    assert any(row["id"] == r.id for row in queue["adjreview-queue"]["rowData"])
    adj.cancel_adjustment(d, world["sue"], r.id)


# ------------------------------------------------------------------ history, export, search


def history(client, app, **values: Any) -> str:
    vals = {f"adjreview-{k}.value": v for k, v in values.items()}
    return response(call(client, app, "callbacks.adjustments_review", "history", vals)
                    )["adjreview-grid"]["children"].__repr__()


def test_support_is_pinned_to_their_own_requests(client, web_app, world, web_seed):
    _url, ids = web_seed
    theirs = adj.request_adjustment(world["db"], world["sue"], world["member"], 2, "other",
                                    "sues-own-request")
    logged_in(client, "supervisor")
    everything = history(client, web_app)
    assert "opening" in everything and "sues-own-request" in everything
    logout(client)
    logged_in(client, "support")
    # sam asks for sue's requests: the server keeps him to his own
    mine = history(client, web_app, requester=ids["sue"])
    assert "opening" in mine and "sues-own-request" not in mine
    adj.cancel_adjustment(world["db"], world["sue"], theirs.id)


def test_export_csv_is_audited_and_filtered(client, web_app, world):
    logged_in(client, "supervisor")
    values = {"adjreview-export.n_clicks": 1, "adjreview-status.value": "approved"}
    out = response(call(client, web_app, "callbacks.adjustments_review", "export_csv", values,
                        ["adjreview-export.n_clicks"]))
    data = out["adjreview-download"]["data"]
    assert data["filename"].startswith("adjustments-") and data["filename"].endswith(".csv")
    lines = data["content"].splitlines()
    assert lines[0].startswith("id,requested_at,requested_by,member_id")
    assert all(",approved," in line for line in lines[1:]) and len(lines) > 1
    with world["db"].read() as s:
        assert s.scalar(select(func.count()).select_from(AuditLog)
                        .where(AuditLog.action == "adjustment.export"))


def test_search_masks_personal_data_for_supervisors(client, web_app, world):
    values = {"members-grid.getRowsRequest": {"startRow": 0, "endRow": 100},
              "members-query.value": "hatt", "members-field.value": "auto"}
    logged_in(client, "support")
    rows = response(call(client, web_app, "callbacks.members", "search", values)
                    )["members-grid"]["getRowsResponse"]
    assert rows["rowCount"] == 1
    assert (rows["rowData"][0]["email"], rows["rowData"][0]["phone"]) == (
        "hattie@example.com", "+79990001122")
    logout(client)
    logged_in(client, "supervisor")
    out = response(call(client, web_app, "callbacks.members", "search", values))
    row = out["members-grid"]["getRowsResponse"]["rowData"][0]
    assert (row["email"], row["phone"]) == ("h***@example.com", "+7999*****22")
    bad = response(call(client, web_app, "callbacks.members", "search",
                        values | {"members-query.value": "+79", "members-field.value": "phone"}))
    assert "at least 3 digits" in bad["members-query-feedback"]["children"]


def test_profile_and_ledger_callbacks(client, web_app, world):
    logged_in(client, "support")
    out = response(call(client, web_app, "callbacks.members", "profile",
                        {"members-selected.data": world["member"]}))
    assert "Hattie Http" in str(out["members-profile"]["children"])
    led = response(call(client, web_app, "callbacks.members", "ledger",
                        {"members-ledger-grid.getRowsRequest": {"startRow": 0, "endRow": 100},
                         "members-selected.data": world["member"],
                         "members-ledger-kind.value": "adjustment"}))
    page = led["members-ledger-grid"]["getRowsResponse"]
    assert page["rowCount"] >= 1 and all(r["kind"] == "adjustment" for r in page["rowData"])
    missing = response(call(client, web_app, "callbacks.members", "profile",
                            {"members-selected.data": 10**9}))
    assert "does not exist" in str(missing["members-profile"]["children"])
