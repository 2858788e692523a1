"""Every callback answers a request with wrongly typed values with a refusal, never a 500,
and such a request changes nothing."""

from __future__ import annotations

import pytest

from benchmarks.dash_requests import UPDATE, request_body
from dashboard import access
from db.models import AuditLog
from db.session import Database
from tests.support.web import USER, server_callbacks

BAD = {
    "object": {"x": 1},
    "list of objects": [{"x": [1, 2]}],
    "huge number": 10**30,
    "boolean": True,
    "fraction": -1.5,
    "text with NUL": "zz\x00",
    # the right shape for most properties, but nothing a form offers
    "plain text": "zz",
    "unknown id": 987_654_321,
    "negative": -5,
    "empty list": [],
}


# audited reads and refusals, not changes
READ_ACTIONS = ("access.refused", "auth.login")


def _plain(app) -> list[str]:
    """The callbacks a request runs in the web process (background ones run in a job)."""
    return sorted(k for k, e in server_callbacks(app).items()
                  if not e.get("long") and not e.get("background"))


def _audit_count(url: str) -> int:
    d = Database(url)
    try:
        with d.read() as s:
            return s.query(AuditLog).filter(AuditLog.action.not_in(READ_ACTIONS)).count()
    finally:
        d.dispose()


@pytest.mark.parametrize("bad", list(BAD))
def test_wrong_types_are_refused_not_crashed(web_app, web_seed, bad):
    from tests.support.web import login

    url, _ = web_seed
    before = _audit_count(url)
    clients = {}
    for role, user in USER.items():
        c = web_app.server.test_client()
        assert login(c, user).status_code == 302
        clients[role] = c
    crashed = []
    for key in _plain(web_app):
        entry = web_app.callback_map[key]
        roles = access.callback_roles(entry["callback"]) or {"supervisor"}
        client = clients[sorted(roles)[0]]
        names = [f"{i['id']}.{i['property']}" for i in entry["inputs"] + entry.get("state", [])]
        body = request_body(key, entry, dict.fromkeys(names, BAD[bad]),
                            changed=names[:1])
        try:  # under TESTING an unhandled exception reaches the test client
            status = client.post(UPDATE, json=body).status_code
        except Exception as exc:  # noqa: BLE001 - a crash is what this test looks for
            import traceback

            frame = traceback.extract_tb(exc.__traceback__)[-1]
            status = f"{type(exc).__name__}: {exc} at {frame.filename}:{frame.lineno}"[-300:]
        if not isinstance(status, int) or status >= 500:
            crashed.append((key[:80], status))
    assert crashed == [], "\n".join(map(str, crashed))
    assert _audit_count(url) == before


def test_the_shape_check_names_the_value_it_refuses(client, web_app):
    from tests.support.web import key_for, logged_in

    logged_in(client, "supervisor")
    key = key_for(web_app, "staff-grid")
    body = request_body(key, web_app.callback_map[key], {"staff-refresh.data": 1})
    body["inputs"][0] = {"id": "staff-create", "property": "n_clicks", "value": {"x": 1}}
    r = client.post(UPDATE, json=body)
    assert r.status_code == 400
    assert r.get_json() == {"error": "refused: staff-create.n_clicks must be a non-negative "
                                     "whole number"}
    body["inputs"][0] = {"id": "staff-refresh", "property": "data", "value": "a\x00b"}
    r = client.post(UPDATE, json=body)
    assert r.status_code == 400 and "NUL" in r.get_json()["error"]
