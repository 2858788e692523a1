"""Pilots page callbacks over HTTP: role refusals and the form's messages."""

from __future__ import annotations

import base64
import datetime as dt
import json
from typing import Any

import pytest

from dashboard import access
from db.models import Pilot
from db.session import Database
from pages.pilots import Pilots as ids
from tests.support.web import (
    UPDATE,
    _poll,
    callback_body,
    job_token,
    key_of,
    keys_writing,
    logged_in,
    logout,
)

WRITES = {
    "create": ids.CREATE_MSG,
    "start/end/cancel/roll-out": ids.ACTION_MSG,
    "upload check": ids.UPLOAD_INFO,
}


@pytest.mark.parametrize("what", list(WRITES))
def test_executive_is_refused_the_supervisor_callbacks(client, web_app, what):
    logged_in(client, "executive")
    key = key_of(web_app, WRITES[what])
    r = client.post(UPDATE, json=callback_body(web_app, key, {
        f"{ids.CREATE}.n_clicks": 1, f"{ids.END}.n_clicks": 1, f"{ids.ROLLOUT}.n_clicks": 1,
        f"{ids.PICK}.value": 1}))
    assert r.status_code == 403


def test_executive_is_refused_the_power_preview(client, web_app):
    logged_in(client, "executive")
    key = next(k for k in keys_writing(web_app, ids.PREVIEW_OUT)
               if ids.CREATE_MSG not in k)
    r = client.post(UPDATE, json=callback_body(web_app, key, {f"{ids.PREVIEW}.n_clicks": 1}))
    assert r.status_code == 403


def _token(client, web_app) -> str:
    """The signed identity the page's pickers callback hands the browser."""
    r = client.post(UPDATE, json=callback_body(web_app, key_of(web_app, ids.ACTOR), {
        f"{ids.REFRESH}.data": 0}))
    assert r.status_code == 200, r.get_data(as_text=True)[:300]
    return r.get_json()["response"][ids.ACTOR]["data"]


def test_executive_reads_results_in_the_background_and_support_is_refused(client, web_app):
    logged_in(client, "executive")
    key = key_of(web_app, ids.RESULTS)
    b = callback_body(web_app, key, {f"{ids.PICK}.value": 1, f"{ids.REFRESH}.data": 0,
                                     f"{ids.ACTOR}.data": _token(client, web_app)})
    r = client.post(UPDATE, json=b)
    assert r.status_code == 200, r.get_data(as_text=True)[:300]
    handles = r.get_json()
    assert set(handles) >= {"cacheKey", "job"}  # a job, not the results in the request
    out = _poll(client, b, handles)
    text = json.dumps(out)
    assert "Verdict" in text and "Too little data" in text
    export = out[ids.RESULTS_CSV]["data"]
    assert export["pilot_id"] == 1 and "spend_per_member,welch" in export["csv"]
    # the export sends what the job computed, without computing it again
    sent = client.post(UPDATE, json=callback_body(web_app, key_of(web_app, ids.DOWNLOAD), {
        f"{ids.EXPORT}.n_clicks": 1, f"{ids.PICK}.value": 1, f"{ids.RESULTS_CSV}.data": export}))
    assert sent.status_code == 200
    assert "spend_per_member,welch" in sent.get_json()["response"][ids.DOWNLOAD]["data"]["content"]
    # but an executive may not act on a pilot
    act = client.post(UPDATE, json=callback_body(web_app, key_of(web_app, ids.ACTION_MSG), {
        f"{ids.END}.n_clicks": 1, f"{ids.PICK}.value": 1}))
    assert act.status_code == 403

    # support may not open the page: refused when starting the job, polling it,
    # cancelling it, reading the pickers or exporting
    logout(client)
    logged_in(client, "support")
    assert client.post(UPDATE, json=b).status_code == 403
    assert client.post(f"{UPDATE}?cacheKey={handles['cacheKey']}&job={handles['job']}",
                       json=b).status_code == 403
    cancel = f"{ids.RESULTS_CANCEL}.id"
    assert access.callback_roles(web_app.callback_map[cancel]["callback"]) == {
        "supervisor", "executive"}
    assert client.post(UPDATE, json=callback_body(web_app, cancel, {}, [
        f"{ids.RESULTS_CANCEL}.n_clicks"])).status_code == 403
    for out_id in (ids.ACTOR, ids.DOWNLOAD, ids.LIST):
        assert client.post(UPDATE, json=callback_body(
            web_app, key_of(web_app, out_id), {})).status_code == 403, out_id


def test_results_job_rechecks_the_role_and_reports_progress(web_app, web_seed):
    """The job body without a request (as in a Celery worker): the signed
    identity decides, and the account as it is now."""

    from callbacks.pilots import results_job

    _url, seeded = web_seed

    def token(uid: int, name: str, role: str) -> str:
        return job_token(web_app, uid, name, role)

    steps: list[Any] = []

    def run(tok: str | None) -> str:
        return json.dumps(results_job(steps.append, 1, tok),
                          default=lambda o: o.to_plotly_json())

    assert "Verdict" in run(token(seeded["ed"], "ed", "executive"))
    pcts = [pct for pct, _ in steps]
    assert pcts == sorted(pcts) and pcts[-1] == 100 and len(pcts) >= 6
    assert any("bootstrap" in label for _, label in steps)
    assert "may not run this" in run(token(seeded["sam"], "sam", "support"))
    assert "out of date or not yours" in run(None)


def _form(values: dict[str, Any]) -> dict[str, Any]:
    base = {
        f"{ids.CREATE}.n_clicks": 1, f"{ids.NAME}.value": "HTTP pilot",
        f"{ids.RULE_SET}.value": None, f"{ids.SOURCE}.value": "file",
        f"{ids.SHARE}.value": "50", f"{ids.SEED}.value": 3,
        f"{ids.START_AT}.value": "2099-01-01 00:00", f"{ids.END_AT}.value": "2099-02-01",
        f"{ids.METRIC}.value": "spend_per_member", f"{ids.MIN_EFFECT}.value": "100",
        f"{ids.REFRESH}.data": 0,
    }
    base.update(values)
    return base


def _draft_id(url: str) -> int:
    from db.models import RuleSet

    d = Database(url)
    try:
        with d.read() as s:
            return s.query(RuleSet.id).filter(RuleSet.status == "draft").first()[0]
    finally:
        d.dispose()


def _pilots(url: str) -> int:
    d = Database(url)
    try:
        with d.read() as s:
            return s.query(Pilot).count()
    finally:
        d.dispose()


def test_bad_upload_lists_its_lines_and_creates_nothing(client, web_app, web_seed):
    url, _ids = web_seed
    logged_in(client, "supervisor")
    before = _pilots(url)
    contents = "data:text/csv;base64," + base64.b64encode(
        b"member_id\n1\nabc\n99999\n1\n").decode()
    check = client.post(UPDATE, json=callback_body(web_app, key_of(web_app, ids.UPLOAD_INFO), {
        f"{ids.UPLOAD}.contents": contents, f"{ids.UPLOAD}.filename": "bad.csv"}))
    assert check.status_code == 200, check.get_data(as_text=True)[:300]
    shown = json.dumps(check.get_json()["response"])
    for expected in ("line 3", "not a number", "line 4", "unknown member", "line 5",
                     "duplicate of line 2"):
        assert expected in shown, expected
    create = client.post(UPDATE, json=callback_body(
        web_app, key_of(web_app, ids.CREATE_MSG),
        _form({f"{ids.UPLOAD}.contents": contents, f"{ids.UPLOAD}.filename": "bad.csv",
               f"{ids.RULE_SET}.value": _draft_id(url)})))
    assert create.status_code == 200, create.get_data(as_text=True)[:300]
    resp = json.dumps(create.get_json()["response"])
    assert "Nothing was created" in resp and "unknown member" in resp
    assert _pilots(url) == before


def test_create_names_a_bad_date_next_to_its_field(client, web_app, web_seed):
    url, _ids = web_seed
    logged_in(client, "supervisor")
    before = _pilots(url)
    r = client.post(UPDATE, json=callback_body(web_app, key_of(web_app, ids.CREATE_MSG), _form(
        {f"{ids.SOURCE}.value": "filter", f"{ids.START_AT}.value": "tomorrow"})))
    assert r.status_code == 200
    resp = r.get_json()["response"]
    assert "2025-01-31" in resp[ids.FEEDBACK["start_at"]]["children"]
    assert resp[ids.FEEDBACK["name"]]["children"] == ""
    assert _pilots(url) == before


def test_the_start_button_requests_and_only_a_second_supervisor_approves(web_app, web_seed):
    """Over HTTP, as on the page: sue requests the start, her second click is
    refused (four-eyes), the second supervisor's click starts the pilot."""
    from benchmarks.small_program import SECOND_SUPERVISOR
    from db import pilots as service
    from db.actor import Actor
    from tests.support.factories import member
    from tests.support.web import login

    url, seeded = web_seed
    d = Database(url)
    try:
        with d.begin() as s:
            free = [member(s, f"FOUR-EYES-{i}") for i in range(6)]
            made = service.create_pilot(
                s, Actor("sue", seeded["sue"], "supervisor"), "Four eyes over HTTP",
                _draft_id(url), member_ids=free, pilot_share=50, seed=1,
                start_at=dt.datetime(2099, 1, 1), planned_end_at=dt.datetime(2099, 2, 1),
                min_effect="100")
        key = key_of(web_app, ids.ACTION_MSG)

        def click(client) -> str:
            r = client.post(UPDATE, json=callback_body(web_app, key, {
                f"{ids.START}.n_clicks": 1, f"{ids.PICK}.value": made.pilot_id,
                f"{ids.REFRESH}.data": 0}, changed=[f"{ids.START}.n_clicks"]))
            assert r.status_code == 200, r.get_data(as_text=True)[:300]
            return r.get_data(as_text=True)

        sue = web_app.server.test_client()
        logged_in(sue, "supervisor")
        assert "Start requested" in click(sue)
        assert "four-eyes" in click(sue)
        with d.read() as s:
            assert s.get(Pilot, made.pilot_id).status == "draft"
        sid = web_app.server.test_client()
        assert login(sid, SECOND_SUPERVISOR).status_code == 302
        assert "Pilot started" in click(sid)
        with d.begin() as s:
            assert s.get(Pilot, made.pilot_id).status == "running"
            # leave the shared database as it was for the other tests
            s.query(Pilot).filter(Pilot.id == made.pilot_id).update({"status": "cancelled"})
    finally:
        d.dispose()
