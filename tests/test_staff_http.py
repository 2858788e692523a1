"""The staff page over HTTP: a supervisor account made there waits for a second supervisor."""

from __future__ import annotations

from benchmarks.dash_requests import UPDATE
from benchmarks.small_program import SECOND_SUPERVISOR
from db import users
from db.session import Database
from pages.staff import Staff as ids
from tests.support.web import callback_body, key_for, logged_in, login


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


def test_a_supervisor_creates_an_api_key_on_the_staff_page_and_revokes_it(web_app, web_seed):
    """The key is shown once on the page, works against the API, and stops
    when revoked; support may not create keys."""
    import re

    from db import api_keys

    sue = web_app.server.test_client()
    logged_in(sue, "supervisor")
    create = key_for(web_app, ids.KEY_CREATED)
    r = sue.post(UPDATE, json=callback_body(web_app, create, {
        f"{ids.KEY_CREATE}.n_clicks": 1, f"{ids.KEY_NAME}.value": "Website read",
        f"{ids.KEY_SCOPES}.value": ["read"], f"{ids.REFRESH}.data": 0}))
    assert r.status_code == 200
    page = r.get_data(as_text=True)
    token = re.search(r"lk_[0-9a-f]{12}_[A-Za-z0-9_-]{43}", page).group(0)
    assert "not shown again" in page

    api = web_app.server.test_client()
    auth = {"Authorization": f"Bearer {token}"}
    assert api.get("/api/v1/members/nobody", headers=auth).status_code == 404
    r = api.post("/api/v1/orders", headers={**auth, "Idempotency-Key": "k"}, json={})
    assert r.status_code == 403  # read only

    d = Database(web_seed[0])
    try:
        with d.read() as s:
            kid = next(k.id for k in api_keys.list_keys(s) if k.name == "Website read")
    finally:
        d.dispose()
    r = sue.post(UPDATE, json=callback_body(web_app, key_for(web_app, ids.KEY_REVOKED), {
        f"{ids.KEY_REVOKE}.n_clicks": 1, f"{ids.KEY_PICK}.value": kid,
        f"{ids.REFRESH}.data": 0}))
    assert r.status_code == 200 and "is revoked" in r.get_data(as_text=True)
    assert api.get("/api/v1/members/nobody", headers=auth).status_code == 401

    sam = web_app.server.test_client()
    logged_in(sam, "support")
    r = sam.post(UPDATE, json=callback_body(web_app, create, {
        f"{ids.KEY_CREATE}.n_clicks": 1, f"{ids.KEY_NAME}.value": "Sneaky",
        f"{ids.KEY_SCOPES}.value": ["orders"], f"{ids.REFRESH}.data": 0}))
    assert r.status_code == 403
