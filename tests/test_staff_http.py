"""The staff page over HTTP: a supervisor account made there waits for a second supervisor."""

from __future__ import annotations

from dashboard.ids import Staff as ids
from db import users
from db.session import Database
from tests.conftest import login
from tests.dash_requests import UPDATE
from tests.seed import SECOND_SUPERVISOR
from tests.test_auth_http import callback_body, key_for, logged_in


def test_create_a_supervisor_then_a_second_supervisor_approves(web_app, web_seed):
    url, _ = web_seed
    sue = web_app.server.test_client()
    logged_in(sue, "supervisor")
    r = sue.post(UPDATE, json=callback_body(web_app, key_for(web_app, ids.CREATE_RESULT), {
        f"{ids.CREATE}.n_clicks": 1, f"{ids.NEW_USERNAME}.value": "newsup",
        f"{ids.NEW_FULL_NAME}.value": "New Sup", f"{ids.NEW_ROLE}.value": "supervisor",
        f"{ids.NEW_PASSWORD}.value": "Quartz-Lantern-77", f"{ids.REFRESH}.data": 0}))
    assert r.status_code == 200 and "created disabled" in r.get_data(as_text=True)
    d = Database(url)
    try:
        with d.read() as s:
            created = users.get_user_by_name(s, "newsup")
            assert created.role == "supervisor" and not created.active
            from db import staff_grants

            (grant,) = [g for g in staff_grants.pending(s) if g.username == "newsup"]
        decide = key_for(web_app, ids.GRANT_RESULT)

        def approve(client) -> str:
            r = client.post(UPDATE, json=callback_body(web_app, decide, {
                f"{ids.GRANT_APPROVE}.n_clicks": 1, f"{ids.GRANT_PICK}.value": grant.id,
                f"{ids.GRANT_REASON}.value": None, f"{ids.REFRESH}.data": 0},
                changed=[f"{ids.GRANT_APPROVE}.n_clicks"]))
            assert r.status_code == 200
            return r.get_data(as_text=True)

        assert "four-eyes" in approve(sue)
        sid = web_app.server.test_client()
        assert login(sid, SECOND_SUPERVISOR).status_code == 302
        assert "is an active supervisor" in approve(sid)
        with d.begin() as s:
            assert users.get_user_by_name(s, "newsup").active
            users.set_active(s, grant.user_id, False, actor="test")  # as it was for other tests
    finally:
        d.dispose()
