"""Live and overview callbacks over HTTP: who may run them, and what comes back."""

from __future__ import annotations

import json
from typing import Any

import pytest

from dashboard import access
from pages.live import KEYS
from pages.live import Live as live_ids
from pages.overview import Overview as ov_ids
from tests.support.web import (
    UPDATE,
    _overview_token,
    _poll,
    callback_body,
    job_token,
    key_of,
    keys_writing,
    logged_in,
    logout,
)


def _live_key(app) -> str:
    return key_of(app, live_ids.UPDATED)



def test_overview_callbacks_refuse_support(client, web_app):
    logged_in(client, "support")
    keys = {k for out in (ov_ids.SUMMARY, ov_ids.KPI_GRID, ov_ids.MONTHLY_GRID, ov_ids.ACTOR)
            for k in keys_writing(web_app, out)}
    assert len(keys) == 4  # the page job, the identity and the two CSV exports
    for key in keys:
        r = client.post(UPDATE, json=callback_body(web_app, key, {
            f"{ov_ids.MONTHS}.value": 3, f"{ov_ids.KPI_CSV}.n_clicks": 1,
            f"{ov_ids.MONTHLY_CSV}.n_clicks": 1, f"{ov_ids.LOADED}.data": 0,
            f"{ov_ids.ACTOR}.data": "forged"}))
        assert r.status_code == 403, key
    cancel = f"{ov_ids.CANCEL}.id"
    assert access.callback_roles(web_app.callback_map[cancel]["callback"]) == {
        "supervisor", "executive"}
    assert client.post(UPDATE, json=callback_body(web_app, cancel, {}, [
        f"{ov_ids.CANCEL}.n_clicks"])).status_code == 403


@pytest.mark.parametrize("role", ["supervisor", "executive"])
def test_overview_for_supervisor_and_executive(client, web_app, role):
    logged_in(client, role)
    key = key_of(web_app, ov_ids.SUMMARY)
    token = _overview_token(client, web_app)
    for segment in ("", "student"):
        b = callback_body(web_app, key, {
            f"{ov_ids.MONTHS}.value": 12, f"{ov_ids.SEGMENT}.value": segment,
            f"{ov_ids.ACTOR}.data": token})
        r = client.post(UPDATE, json=b)
        assert r.status_code == 200, r.get_data(as_text=True)[:300]
        handles = r.get_json()
        assert set(handles) >= {"cacheKey", "job"}  # a job, not the figures in the request
        resp = _poll(client, b, handles)
        rows = resp[ov_ids.KPI_GRID]["rowData"]
        assert {"Revenue, members", "Average check, guests", "Points liability at the end, "
                "in money"} <= {row["metric"] for row in rows}
        assert all(row["definition"] for row in rows)
        assert resp[ov_ids.LTV_FIG]["figure"]["layout"]["title"]["text"].startswith("LTV")
    # support may not poll the job an executive started
    logout(client)
    logged_in(client, "support")
    assert client.post(f"{UPDATE}?cacheKey={handles['cacheKey']}&job={handles['job']}",
                       json=b).status_code == 403


def test_overview_job_rechecks_the_role_and_reports_progress(web_app, web_seed):
    """The job body without a request: the signed identity decides."""

    from callbacks.overview import overview_job

    _url, seeded = web_seed

    def token(uid: int, name: str, role: str) -> str:
        return job_token(web_app, uid, name, role)

    steps: list[Any] = []

    def run(tok: str | None) -> str:
        return json.dumps(overview_job(steps.append, 3, "", tok),
                          default=lambda o: o.to_plotly_json())

    assert "Revenue, members" in run(token(seeded["ed"], "ed", "executive"))
    pcts = [pct for pct, _ in steps]
    assert pcts == sorted(pcts) and pcts[-1] == 100 and len(pcts) >= 6
    assert any("retention" in label for _, label in steps)
    assert "may not run this" in run(token(seeded["sam"], "sam", "support"))
    assert "out of date or not yours" in run(None)


@pytest.mark.parametrize("role", ["supervisor", "executive", "support"])
def test_live_refresh_for_every_role_sends_only_changes(client, web_app, role):
    logged_in(client, role)
    key = _live_key(web_app)
    values = {f"{live_ids.INTERVAL}.n_intervals": 1, f"{live_ids.DAYS}.value": 30}
    r = client.post(UPDATE, json=callback_body(web_app, key, values))
    assert r.status_code == 200, r.get_data(as_text=True)[:300]
    resp = r.get_json()["response"]
    assert "updated" in json.dumps(resp[live_ids.UPDATED])
    shown = {live_ids.value(k): resp[live_ids.value(k)]["children"] for k in KEYS}
    assert all(v != "…" for v in shown.values())
    # the second tick with the browser's current state: nothing but the time travels
    values |= {f"{cid}.children": text for cid, text in shown.items()}
    values[f"{live_ids.LAST}.data"] = resp[live_ids.LAST]["data"]
    r = client.post(UPDATE, json=callback_body(web_app, key, values))
    resp2 = r.get_json()["response"]
    assert set(resp2) == {live_ids.UPDATED, live_ids.LAST}


def test_window_change_is_open_to_every_live_role(client, web_app):
    logged_in(client, "support")
    key = key_of(web_app, live_ids.INTERVAL)
    r = client.post(UPDATE, json=callback_body(web_app, key, {f"{live_ids.DAYS}.value": 7},
                                               changed=[f"{live_ids.DAYS}.value"]))
    assert r.status_code == 200


def test_live_refresh_refused_without_login(client, web_app):
    r = client.post(UPDATE, json=callback_body(web_app, _live_key(web_app), {
        f"{live_ids.INTERVAL}.n_intervals": 1}))
    assert r.status_code in (302, 401, 403)
