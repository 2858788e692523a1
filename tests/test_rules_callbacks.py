"""Tier-rules callbacks over HTTP (as the Dash renderer posts them): roles,
four-eyes at the callback level, server-side validation, the background
simulation through /_dash-update-component and the job's own role check."""

from __future__ import annotations

import datetime as dt
import json
import time
from typing import Any

import pytest
from sqlalchemy import func, select

from dashboard import access
from db import rule_review, rules, users
from db.actor import Actor
from db.models import AuditLog, RuleSet
from db.session import Database
from tests.support.factories import DEFAULT_TIERS, simulated
from tests.support.web import (
    UPDATE,
    audit_rows,
    callback_body,
    job_token,
    logged_in,
    logout,
)
from tests.support.web import rules_key as key_of

WRITES = ("save_draft", "edit_tier_rows", "propose_expiry", "decide_expiry", "copy_version",
          "decide", "reevaluate")
READS = ("load_versions", "show_version", "field_feedback", "show_diff", "run_simulation",
         "show_expiry_proposal", "show_review")


def body(app, fn_name: str, values: dict[str, Any], changed: str) -> dict[str, Any]:
    b = callback_body(app, key_of(app, fn_name), values, [changed])
    # the renderer sends an allow_duplicate output without its "@hash" suffix
    for o in b["outputs"] if isinstance(b["outputs"], list) else [b["outputs"]]:
        o["property"] = o["property"].split("@", 1)[0]
    return b


def response(r) -> dict[str, Any]:
    assert r.status_code == 200, (r.status_code, r.get_data(as_text=True)[:500])
    return r.get_json()["response"]


@pytest.fixture
def web_db(web_seed):
    url, ids = web_seed
    d = Database(url)
    yield d, ids
    d.dispose()


def new_pending(d: Database, author_id: int, name: str) -> int:
    def tx(s):
        u = users.get_user(s, author_id)
        actor = Actor(u.username, u.id, u.role)
        rid = rules.create_draft(s, actor, name, DEFAULT_TIERS)
        simulated(s, actor, rid)
        rule_review.submit(s, actor, rid)
        return rid

    return d.write_tx(tx)


def test_every_rules_callback_declares_the_expected_roles(web_app):
    for name in WRITES:
        fn = web_app.callback_map[key_of(web_app, name)]["callback"]
        assert access.callback_roles(fn) == {"supervisor"}, name
    for name in READS:
        fn = web_app.callback_map[key_of(web_app, name)]["callback"]
        assert access.callback_roles(fn) == {"supervisor", "executive"}, name
    writes = {n for n in WRITES + READS
              if access.callback_writes(web_app.callback_map[key_of(web_app, n)]["callback"])}
    assert writes == {"save_draft", "propose_expiry", "decide_expiry", "copy_version", "decide",
                      "reevaluate"}


@pytest.mark.parametrize("name", WRITES)
def test_executive_gets_403_on_every_write(client, web_app, name):
    logged_in(client, "executive")
    r = client.post(UPDATE, json=callback_body(web_app, key_of(web_app, name)))
    assert r.status_code == 403


@pytest.mark.parametrize("name", WRITES + READS)
def test_support_gets_403_on_every_rules_callback(client, web_app, name):
    logged_in(client, "support")
    r = client.post(UPDATE, json=callback_body(web_app, key_of(web_app, name)))
    assert r.status_code == 403


def test_executive_reads_the_versions(client, web_app):
    logged_in(client, "executive")
    data = response(client.post(UPDATE, json=body(web_app, "load_versions", {},
                                                  "rules-saved.data")))
    labels = [o["label"] for o in data["rules-version"]["options"]]
    # other tests of the session may publish versions: exactly one is in force
    assert sum("— in force" in x for x in labels) == 1
    assert data["rules-actor"]["data"]  # the signed identity for the simulation


def test_own_draft_approval_gets_the_message_and_executive_gets_403(client, web_app, web_db,
                                                                    web_seed):
    d, ids = web_db
    rid = new_pending(d, ids["sue"], "Four eyes")
    when = (dt.datetime.now(dt.UTC) + dt.timedelta(days=30)).strftime("%Y-%m-%dT%H:%M")
    values = {"rules-pending-grid.selectedRows": [{"id": rid}], "rules-effective-at.value": when,
              "rules-decision-note.value": ""}
    logged_in(client, "executive")
    before = len(audit_rows(web_seed[0], "access.refused"))
    r = client.post(UPDATE, json=body(web_app, "decide", values, "rules-approve.n_clicks"))
    assert r.status_code == 403
    assert len(audit_rows(web_seed[0], "access.refused")) == before + 1

    logout(client)
    logged_in(client, "supervisor")  # sue, the author
    data = response(client.post(UPDATE, json=body(web_app, "decide", values,
                                                  "rules-approve.n_clicks")))
    assert "the author of a rule set cannot approve it" in json.dumps(data)
    with d.read() as s:
        assert s.get(RuleSet, rid).status == "pending"


def test_second_supervisor_approves_and_past_time_is_refused_next_to_the_field(
        client, web_app, web_db):
    d, ids = web_db
    rid = new_pending(d, ids["sue"], "Approved by sid")
    from benchmarks.small_program import SECOND_SUPERVISOR
    from tests.support.web import login

    assert login(client, SECOND_SUPERVISOR).status_code == 302
    values = {"rules-pending-grid.selectedRows": [{"id": rid}],
              "rules-effective-at.value": "2020-01-01T00:00", "rules-decision-note.value": ""}
    data = response(client.post(UPDATE, json=body(web_app, "decide", values,
                                                  "rules-approve.n_clicks")))
    assert data["rules-effective-at"]["invalid"] is True
    assert data["rules-effective-feedback"]["children"] == "must not be in the past"
    values["rules-effective-at.value"] = (dt.datetime.now(dt.UTC) + dt.timedelta(
        days=3650 + rid)).strftime("%Y-%m-%dT%H:%M")
    data = response(client.post(UPDATE, json=body(web_app, "decide", values,
                                                  "rules-approve.n_clicks")))
    assert "approved: it takes effect" in json.dumps(data)
    with d.read() as s:
        rs = s.get(RuleSet, rid)
        assert rs.status == "published" and rs.approved_by_id == ids[SECOND_SUPERVISOR]


def test_reject_needs_a_reason_next_to_the_field(client, web_app, web_db):
    d, ids = web_db
    rid = new_pending(d, ids["sue"], "To reject")
    from benchmarks.small_program import SECOND_SUPERVISOR
    from tests.support.web import login

    login(client, SECOND_SUPERVISOR)
    values = {"rules-pending-grid.selectedRows": [{"id": rid}],
              "rules-effective-at.value": "", "rules-decision-note.value": " "}
    data = response(client.post(UPDATE, json=body(web_app, "decide", values,
                                                  "rules-reject.n_clicks")))
    assert data["rules-decision-note"]["invalid"] is True
    values["rules-decision-note.value"] = "too generous"
    response(client.post(UPDATE, json=body(web_app, "decide", values, "rules-reject.n_clicks")))
    with d.read() as s:
        assert s.get(RuleSet, rid).status == "rejected"
        assert s.get(RuleSet, rid).decision_note == "too generous"


def _draft_of_sue(d: Database, ids: dict[str, int], name: str) -> int:
    def tx(s):
        from db.actor import Actor

        return rules.create_draft(s, Actor("sue", ids["sue"], "supervisor"), name, DEFAULT_TIERS)

    return d.write_tx(tx)


def test_invalid_save_marks_the_cells_and_saves_nothing(client, web_app, web_db):
    d, ids = web_db
    rid = _draft_of_sue(d, ids, "Edit me")
    rows = [{"name": "Bronze", "threshold": "0", "accrual_rate": "1", "referral_rate": "0.5",
             "rid": "a"},
            {"name": "Silver", "threshold": "0", "accrual_rate": "300", "referral_rate": "1",
             "rid": "b"}]
    values = {"rules-version.value": rid, "rules-grid.virtualRowData": rows,
              "rules-name.value": "", "rules-note.value": "", "rules-point-value.value": "0",
              "rules-window-mode.value": "rolling", "rules-window-days.value": "abc"}
    logged_in(client, "supervisor")
    data = response(client.post(UPDATE, json=body(web_app, "save_draft", values,
                                                  "rules-save.n_clicks")))
    grid = data["rules-grid"]["rowData"]
    assert grid[1]["_err_threshold"] == "must be greater than the previous tier's 0.00"
    assert grid[1]["_err_accrual_rate"] == "too large: at most 100 %"
    assert "Threshold" not in grid[0]["problems"] and "From spend" in grid[1]["problems"]
    assert data["rules-problems"]["data"] == {
        "name": "is required", "point_value": "must be more than 0",
        "tier_window_days": "abc is not a whole number of days: enter one from 1 to 3,660"}
    assert "rules-saved" not in data
    with d.read() as s:
        assert rules.get_rules(s, rid).name == "Edit me"

    rows[1].update(threshold="2500", accrual_rate="3.5")
    values.update({"rules-name.value": "Edited", "rules-point-value.value": "0.50",
                   "rules-window-days.value": "365"})
    data = response(client.post(UPDATE, json=body(web_app, "save_draft", values,
                                                  "rules-submit.n_clicks")))
    # saved, but not submitted: the edited content has not been simulated
    assert data["rules-saved"]["data"]["select"] == rid
    assert "not submitted: run its simulation first" in json.dumps(
        data["rules-edit-result"]["children"])
    with d.read() as s:
        r = rules.get_rules(s, rid)
        assert (r.name, r.point_value_minor, r.tier_window_days) == ("Edited", 50, 365)
        assert r.tiers[1].threshold_minor == 250_000 and r.tiers[1].accrual_rate_bp == 350
        assert s.get(RuleSet, rid).status == "draft"
    d.write_tx(lambda s: simulated(s, Actor("sue", ids["sue"], "supervisor"), rid))
    data = response(client.post(UPDATE, json=body(web_app, "save_draft", values,
                                                  "rules-submit.n_clicks")))
    assert "submitted" in json.dumps(data["rules-edit-result"]["children"])
    with d.read() as s:
        assert s.get(RuleSet, rid).status == "pending"


def test_another_supervisors_draft_is_read_only(client, web_app, web_db):
    d, ids = web_db
    rid = _draft_of_sue(d, ids, "Sue's")
    from benchmarks.small_program import SECOND_SUPERVISOR
    from tests.support.web import login

    login(client, SECOND_SUPERVISOR)
    data = response(client.post(UPDATE, json=body(web_app, "show_version",
                                                  {"rules-version.value": rid},
                                                  "rules-version.value")))
    assert data["rules-save"]["disabled"] is True
    assert "only its author edits it" in json.dumps(data["rules-version-info"])
    values = {"rules-version.value": rid, "rules-grid.virtualRowData": [
        {"name": "Only", "threshold": "0", "accrual_rate": "1", "referral_rate": "1"}],
        "rules-name.value": "Hijack", "rules-point-value.value": "1",
        "rules-window-mode.value": "lifetime"}
    data = response(client.post(UPDATE, json=body(web_app, "save_draft", values,
                                                  "rules-save.n_clicks")))
    assert "only the author can edit this draft" in json.dumps(data)


# ---------------------------------------------------------------- background simulation


def _poll(client, b: dict[str, Any], handles: dict[str, str], timeout: float = 60) -> Any:
    deadline = time.time() + timeout
    while time.time() < deadline:
        r = client.post(f"{UPDATE}?cacheKey={handles['cacheKey']}&job={handles['job']}",
                        json=b)
        if r.status_code == 200 and "response" in (r.get_json() or {}):
            return r.get_json()["response"]
        assert r.status_code in (200, 204), r.status_code
        time.sleep(0.3)
    raise AssertionError("the simulation did not finish")


def test_background_simulation_runs_through_the_guard(client, web_app, web_seed):
    logged_in(client, "supervisor")
    token = response(client.post(UPDATE, json=body(web_app, "load_versions", {},
                                                   "rules-saved.data")))["rules-actor"]["data"]
    draft_id = next(v for v in _versions(web_seed) if v.name == "Richer gold").id
    b = body(web_app, "run_simulation", {"rules-sim-run.n_clicks": 1,
                                         "rules-version.value": draft_id,
                                         "rules-sim-days.value": 90, "rules-actor.data": token},
             "rules-sim-run.n_clicks")
    r = client.post(UPDATE, json=b)
    assert r.status_code == 200
    handles = r.get_json()
    assert set(handles) >= {"cacheKey", "job"}
    out = json.dumps(_poll(client, b, handles))
    assert "rules-sim-matrix" in out and "heatmap" in out and "Richer gold" in out

    # another role holding the handles is still refused by the guard on the poll
    logout(client)
    logged_in(client, "support")
    r = client.post(f"{UPDATE}?cacheKey={handles['cacheKey']}&job={handles['job']}", json=b)
    assert r.status_code == 403
    assert client.post(UPDATE, json=b).status_code == 403


def test_cancel_callback_is_declared_for_the_simulation_roles(client, web_app):
    logged_in(client, "support")
    key = "rules-sim-cancel.id"
    assert access.callback_roles(web_app.callback_map[key]["callback"]) == {
        "supervisor", "executive"}
    assert client.post(UPDATE, json=callback_body(web_app, key, {}, [
        "rules-sim-cancel.n_clicks"])).status_code == 403
    logout(client)
    logged_in(client, "supervisor")
    assert client.post(UPDATE, json=callback_body(web_app, key, {}, [
        "rules-sim-cancel.n_clicks"])).status_code == 200


def _versions(web_seed):
    from db.rule_history import versions

    d = Database(web_seed[0])
    try:
        with d.read() as s:
            return versions(s)
    finally:
        d.dispose()


def _token(web_app, user_id: int, username: str, role: str) -> str:
    return job_token(web_app, user_id, username, role)


def test_job_rechecks_the_role_without_a_request(web_app, web_seed, web_db):
    """The job body runs with no request (as in a Celery worker): the signed
    identity decides, and the account as it is now in the database."""
    from callbacks.rules import simulation_job

    d, ids = web_db
    draft_id = next(v for v in _versions(web_seed) if v.name == "Richer gold").id
    steps: list[Any] = []

    def run(token: str | None) -> str:
        return json.dumps(simulation_job(steps.append, draft_id, 30, token),
                          default=lambda o: o.to_plotly_json())

    assert "rules-sim-matrix" in run(_token(web_app, ids["ed"], "ed", "executive"))
    assert steps and steps[-1][0] == 100
    assert "may not run this" in run(_token(web_app, ids["sam"], "sam", "support"))
    forged = _token(web_app, ids["sue"], "sue", "supervisor")[:-3] + "xyz"
    assert "out of date or not yours" in run(forged)
    assert "out of date or not yours" in run(None)

    # a supervisor demoted after opening the page is refused by the job
    uid = d.write_tx(lambda s: users.create_user(s, "dee", "password-12345", "supervisor").id)
    token = _token(web_app, uid, "dee", "supervisor")
    d.write_tx(lambda s: users.set_role(s, uid, "support", actor="test"))
    assert "may not run this" in run(token)

    # a job asked for by a session that has since ended (logout) is refused
    token = _token(web_app, ids["ed"], "ed", "executive")
    d.write_tx(lambda s: users.end_sessions(s, ids["ed"]))
    assert "session has ended" in run(token)


def test_reevaluation_job_runs_for_supervisors_only(web_app, web_seed, web_db):
    """The tier pass is a background job: it re-checks the signed identity
    (no request in a worker), runs under the version in force and is audited."""
    from callbacks.rules import reevaluate_job

    d, ids = web_db
    in_force = next(v for v in _versions(web_seed) if v.state == "in force").id

    def run(token: str | None, version: int | None = in_force) -> str:
        return json.dumps(reevaluate_job(version, token), default=lambda o: o.to_plotly_json())

    assert "may not run this" in run(_token(web_app, ids["ed"], "ed", "executive"))
    assert "out of date or not yours" in run(None)
    with d.read() as s:
        before = s.scalar(select(func.count()).select_from(AuditLog)
                          .where(AuditLog.action == "tiers.reevaluate"))
    done = run(_token(web_app, ids["sue"], "sue", "supervisor"))
    assert f"Tiers re-evaluated under #{in_force}" in done and "members changed tier" in done
    with d.read() as s:
        assert s.scalar(select(func.count()).select_from(AuditLog)
                        .where(AuditLog.action == "tiers.reevaluate")) == before + 1
    assert "No version is in force" in run(_token(web_app, ids["sue"], "sue", "supervisor"),
                                           None)
