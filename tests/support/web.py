"""The web app over HTTP (Flask test client): signing in and out, requests
shaped like the Dash renderer's for a callback, and the identity a page hands
its background job."""

from __future__ import annotations

import re
import time
from typing import Any

from benchmarks.dash_requests import UPDATE, request_body
from benchmarks.dash_requests import keys_writing as keys_in
from benchmarks.small_program import PASSWORD, STAFF
from dashboard import access
from db.models import AuditLog
from db.session import Database

WEB_SECRET = "test-secret-key-not-for-production"


def csrf_token_from(html: str) -> str:
    m = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert m, "no CSRF token in the page"
    return m.group(1)


def login(client, username: str, password: str | None = None, next_path: str = "/"):
    """Log in through the real form (GET for the CSRF token, then POST)."""
    page = client.get("/login")
    return client.post(
        "/login",
        data={
            "username": username,
            "password": PASSWORD if password is None else password,
            "csrf_token": csrf_token_from(page.get_data(as_text=True)),
            "next": next_path,
        },
    )


def logout(client):
    """Sign out through the real form: GET /logout shows it, POST signs out."""
    page = client.get("/logout")
    assert page.status_code == 200, page.status_code
    r = client.post("/logout", data={"csrf_token": csrf_token_from(page.get_data(as_text=True))})
    assert r.status_code == 302, r.status_code
    return r


USER = {role: username for role, (username, _name) in STAFF.items()}


def server_callbacks(app) -> dict[str, dict[str, Any]]:
    """Every server-side callback Dash knows (clientside ones have no function)."""
    return {k: v for k, v in app.callback_map.items() if v.get("callback") is not None}


def callback_body(app, key: str, values: dict[str, Any] | None = None,
                  changed: list[str] | None = None) -> dict[str, Any]:
    """A request body shaped like the Dash renderer's for callback ``key``."""
    return request_body(key, app.callback_map[key], values, changed)


def key_for(app, output_id: str) -> str:
    """The callback-map key of the callback writing to component ``output_id``."""
    keys = keys_in(server_callbacks(app), output_id)
    assert len(keys) == 1, (output_id, keys)
    return keys[0]


def page_of_callback(entry: dict[str, Any]) -> dict[str, Any] | None:
    module = access.innermost(entry["callback"]).__module__
    if not module.startswith("callbacks."):
        return None
    return next(
        (p for p in access.registered_pages()
         if p["module"] == "pages." + module.split(".", 1)[1]),
        None,
    )


def client_at(web_app, address: str):
    """A fresh test client whose requests come from ``address``."""
    c = web_app.server.test_client()
    c.environ_base["REMOTE_ADDR"] = address
    return c


def logged_in(client, role: str):
    r = login(client, USER[role])
    assert r.status_code == 302, r.get_data(as_text=True)[:500]
    return client


def audit_rows(db_url: str, action: str) -> list[tuple[str, str | None]]:
    """(actor, after) of the audit rows with ``action``, oldest first."""
    d = Database(db_url)
    try:
        with d.read() as s:
            return [
                (r.actor, r.after)
                for r in s.query(AuditLog).filter(AuditLog.action == action).order_by(AuditLog.id)
            ]
    finally:
        d.dispose()


def job_token(web_app, user_id: int, username: str, role: str) -> str:
    """The signed identity a page hands its background job, minted as for a
    signed-in session of ``user_id`` (its session version read from the database)."""
    import flask
    from flask_login import login_user

    from dashboard import jobs
    from dashboard.auth import SESSION_VERSION, StaffSession
    from dashboard.context import get_db
    from db import users

    with web_app.server.test_request_context("/"):
        with get_db().read() as s:
            info = users.get_user(s, user_id)
        flask.session[SESSION_VERSION] = info.session_version if info else 0
        login_user(StaffSession(user_id, username, username, role))
        return jobs.identity_token()


def callback_key(app, module: str, name: str) -> str:
    keys = [k for k, v in app.callback_map.items() if v.get("callback") is not None
            and access.innermost(v["callback"]).__module__ == module
            and access.innermost(v["callback"]).__name__ == name]
    assert len(keys) == 1, (module, name, keys)
    return keys[0]


def rules_key(app, fn_name: str) -> str:
    """The callback-map key of the rules page's server callback ``fn_name``."""
    return callback_key(app, "callbacks.rules", fn_name)


def call(client, app, module: str, name: str, values: dict[str, Any],
         changed: list[str] | None = None):
    key = callback_key(app, module, name)
    return client.post(UPDATE, json=callback_body(app, key, values, changed))


def response(r) -> dict[str, Any]:
    assert r.status_code == 200, r.get_data(as_text=True)[:500]
    return r.get_json()["response"]


def keys_writing(app, output_id: str) -> list[str]:
    """Callback-map keys of the callbacks whose outputs include ``output_id``."""
    out = []
    for key in server_callbacks(app):
        parts = key[2:-2].split("...") if key.startswith("..") else [key]
        if any(p.rsplit(".", 1)[0] == output_id for p in parts):
            out.append(key)
    return out


def key_of(app, output_id: str) -> str:
    keys = keys_writing(app, output_id)
    assert len(keys) == 1, (output_id, keys)
    return keys[0]


def _poll(client, b: dict[str, Any], handles: dict[str, str], timeout: float = 90) -> Any:
    deadline = time.time() + timeout
    while time.time() < deadline:
        r = client.post(f"{UPDATE}?cacheKey={handles['cacheKey']}&job={handles['job']}",
                        json=b)
        assert r.status_code in (200, 204), r.status_code
        if r.status_code == 200 and "response" in (r.get_json() or {}):
            return r.get_json()["response"]
        time.sleep(0.3)
    raise AssertionError("the results job did not finish")


def _overview_token(client, web_app) -> str:
    """The signed identity the overview page's identity callback hands the browser."""
    from pages.overview import Overview as ov_ids

    r = client.post(UPDATE, json=callback_body(web_app, key_of(web_app, ov_ids.ACTOR), {
        f"{ov_ids.LOADED}.data": 0}))
    assert r.status_code == 200, r.get_data(as_text=True)[:300]
    return r.get_json()["response"][ov_ids.ACTOR]["data"]


def submit_adjustment(client, app, **fields: Any) -> dict[str, Any]:
    """The adjustment request form's submit, with ``fields`` (member, points,
    reason, comment, ticket, entry) as typed; the callback's outputs."""
    values = {"adjreq-submit.n_clicks": 1, "adjreq-member.value": fields.get("member"),
              "adjreq-points.value": fields.get("points"),
              "adjreq-reason.value": fields.get("reason"),
              "adjreq-comment.value": fields.get("comment"),
              "adjreq-ticket.value": fields.get("ticket"),
              "adjreq-entry.value": fields.get("entry"), "adjreq-version.data": 0}
    return response(call(client, app, "callbacks.adjustments_request", "submit", values,
                         ["adjreq-submit.n_clicks"]))
