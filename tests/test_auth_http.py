"""The secure app shell over HTTP (Flask test client): login, guard, roles."""

from __future__ import annotations

import json
import re
import time
from typing import Any

import flask
import pytest
from flask_login import login_user
from werkzeug.exceptions import Forbidden

from benchmarks.dash_requests import UPDATE
from benchmarks.small_program import DISABLED_USER, THROTTLE_USER, VICTIM_USER
from dashboard import access
from dashboard.app import check_callback_roles, create_app
from dashboard.auth import WRONG_CREDENTIALS, StaffSession, session_settings
from dashboard.config import ConfigError, load_config
from dashboard.context import DB_EXTENSION
from db import users
from db.models import ROLES
from db.session import Database
from tests.support.web import (
    USER,
    audit_rows,
    callback_body,
    client_at,
    key_for,
    logged_in,
    login,
    logout,
    page_of_callback,
    server_callbacks,
)

# PRODUCT.md, "Pages and who may use them"
EXPECTED_PAGES = {
    "/overview": {"supervisor", "executive"},
    "/live": {"supervisor", "executive", "support"},
    "/rules": {"supervisor", "executive"},
    "/pilots": {"supervisor", "executive"},
    "/members": {"supervisor", "support"},
    # supervisors request the large adjustments only they may (db/adjustments.py)
    "/adjustments/request": {"support", "supervisor"},
    "/adjustments": {"supervisor", "support"},
    "/audit": {"supervisor"},
    "/staff": {"supervisor"},
}


# ---------------------------------------------------------------- registry


def test_every_product_page_is_registered_with_its_roles(web_app):
    registered = {
        p["path"]: set(access.page_roles(p)) for p in access.registered_pages()
        if p["path"] != "/404"
    }
    assert registered == EXPECTED_PAGES


def test_every_callback_declares_roles_within_its_page(web_app):
    callbacks = server_callbacks(web_app)
    assert len(callbacks) >= 14
    for key, entry in callbacks.items():
        if access.ROUTER_OUTPUT_MARK in key:
            continue
        roles = access.callback_roles(entry["callback"])
        assert roles, f"{key} has no @require_roles"
        page = page_of_callback(entry)
        if page is not None:
            assert roles <= access.page_roles(page), key


def test_startup_check_refuses_a_callback_without_roles():
    def naked() -> None:
        return None

    naked.__module__ = "callbacks.members"
    with pytest.raises(RuntimeError, match="no @require_roles"):
        check_callback_roles({"x.children": {"callback": naked}})


# ---------------------------------------------------------------- anonymous


def test_anonymous_page_gets_redirect_to_login(client, web_app):
    for page in access.registered_pages():
        r = client.get(page["path"])
        assert r.status_code == 302, page["path"]
        loc = r.headers["Location"]
        assert loc.startswith("/login?next="), loc
        assert page["path"].replace("/", "%2F") in loc


def test_anonymous_root_and_unknown_paths_redirect(client):
    for path in ("/", "/no-such-page", "/members/../staff"):
        r = client.get(path)
        assert r.status_code == 302 and r.headers["Location"].startswith("/login"), path


@pytest.mark.parametrize("path", ["/_dash-layout", "/_dash-dependencies"])
def test_anonymous_dash_json_routes_refused(client, path):
    r = client.get(path)
    assert r.status_code == 401
    assert r.get_json() == {"error": "login required"}


def test_anonymous_post_refused_for_every_callback(client, web_app):
    callbacks = server_callbacks(web_app)
    assert callbacks
    for key in callbacks:
        r = client.post(UPDATE, json=callback_body(web_app, key))
        assert r.status_code == 401, key
        assert "login required" in r.get_data(as_text=True)


def test_public_routes_stay_public(client, web_app):
    assert client.get("/login").status_code == 200
    assert client.get("/favicon.ico").status_code == 200
    css = client.get("/assets/vendor/bootstrap.min.css")
    assert css.status_code == 200 and b"Bootstrap" in css.data[:200]
    # a component suite script, as referenced by the index page
    authed = logged_in(web_app.server.test_client(), "support")
    html = authed.get("/live").get_data(as_text=True)
    suite = re.search(r'src="(/_dash-component-suites/[^"]+)"', html)
    assert suite, "index page lists no component suites"
    assert client.get(suite.group(1)).status_code == 200


# ---------------------------------------------------------------- roles


@pytest.mark.parametrize("role", ROLES)
def test_role_opens_its_pages_and_is_refused_the_others(client, role):
    logged_in(client, role)
    for path, roles in EXPECTED_PAGES.items():
        r = client.get(path)
        if role in roles:
            assert r.status_code == 200, (role, path)
        else:
            assert r.status_code == 403, (role, path)


@pytest.mark.parametrize("role", ROLES)
def test_role_refused_every_callback_of_pages_it_may_not_open(client, web_app, role):
    logged_in(client, role)
    refused = 0
    for key, entry in server_callbacks(web_app).items():
        roles = access.callback_roles(entry["callback"])
        page = page_of_callback(entry)
        if roles is None:  # Dash's router: checked by the page layouts below
            continue
        if role in roles and (page is None or access.role_may_open(role, page)):
            continue
        r = client.post(UPDATE, json=callback_body(web_app, key))
        assert r.status_code == 403, (role, key, r.status_code)
        refused += 1
    # supervisors may open every page (the request page too), so nothing is theirs to refuse
    assert refused == 0 if role == "supervisor" else refused >= 5


@pytest.mark.parametrize("role", ["support", "executive"])
def test_router_serves_403_content_for_a_forbidden_page(client, web_app, role):
    logged_in(client, role)
    key = next(k for k in web_app.callback_map if access.ROUTER_OUTPUT_MARK in k)
    body = callback_body(
        web_app, key, {"_pages_location.pathname": "/staff", "_pages_location.search": ""}
    )
    r = client.post(UPDATE, json=body)
    assert r.status_code == 200
    text = r.get_data(as_text=True)
    assert "403" in text and "Not allowed" in text
    assert "staff-grid" not in text


def test_navbar_lists_only_the_pages_of_the_role(client):
    logged_in(client, "support")
    layout = client.get("/_dash-layout").get_data(as_text=True)
    for path, roles in EXPECTED_PAGES.items():
        link = f'"href":"{path}"'.replace("/", "\\u002f")
        assert (link in layout) == ("support" in roles), path
    assert "Sam Support" in layout and "Support" in layout


def test_unknown_page_is_404_inside_the_shell(client):
    logged_in(client, "supervisor")
    r = client.get("/no-such-page")
    assert r.status_code == 404
    assert "_dash-renderer" in r.get_data(as_text=True) or "dash" in r.get_data(as_text=True)


def test_root_sends_each_role_to_its_first_page(client):
    logged_in(client, "support")
    r = client.get("/")
    assert r.status_code == 302 and r.headers["Location"] == "/live"


# ---------------------------------------------------------------- login


def test_login_then_allowed_callback_works(client, web_app):
    """Proves the CSRF exemption of Dash's callback route: a real callback runs."""
    logged_in(client, "supervisor")
    key = key_for(web_app, "members-grid")
    r = client.post(UPDATE, json=callback_body(web_app, key, {
        "members-grid.getRowsRequest": {"startRow": 0, "endRow": 100},
        "members-query.value": "anna", "members-field.value": "auto"}))
    assert r.status_code == 200, r.get_data(as_text=True)[:300]
    data = r.get_json()["response"]
    rows = data["members-grid"]["getRowsResponse"]["rowData"]
    assert [row["name"] for row in rows] == ["Anna Petrova"]
    assert rows[0]["balance"] == "4,500"


def test_login_redirects_to_next_only_when_allowed_and_local(client):
    r = login(client, USER["support"], next_path="/members")
    assert r.headers["Location"] == "/members"
    logout(client)
    r = login(client, USER["support"], next_path="//evil.example/x")
    assert r.headers["Location"] == "/live"
    logout(client)
    r = login(client, USER["support"], next_path="/staff")
    assert r.headers["Location"] == "/live"


def test_wrong_password_is_generic_and_unknown_user_alike(client):
    wrong = login(client, USER["support"], "not-the-password")
    unknown = login(client, "nobody-here", "not-the-password")
    for r in (wrong, unknown):
        assert r.status_code == 200
        assert WRONG_CREDENTIALS in r.get_data(as_text=True)
    assert client.get("/live").status_code == 302


def test_twenty_wrong_passwords_get_throttled(client, frozen_limits):
    statuses = [login(client, THROTTLE_USER, f"guess-{i}").status_code for i in range(20)]
    assert statuses == [200] * 5 + [429] * 15, statuses
    # once throttled, even the right password is refused for this account
    assert login(client, THROTTLE_USER).status_code == 429
    assert client.get("/live").status_code == 302


def test_throttle_per_address_across_accounts(web_app, frozen_limits):
    c = web_app.server.test_client()
    statuses = [login(c, f"user{i}", "x-wrong-password").status_code for i in range(40)]
    assert statuses == [200] * 30 + [429] * 10, statuses
    # other addresses are not concerned
    other = client_at(web_app, "10.9.8.7")
    assert login(other, USER["support"]).status_code == 302
    frozen_limits.reset()


def test_login_requires_csrf_token(client):
    client.get("/login")
    r = client.post("/login", data={"username": USER["supervisor"], "password": "x"})
    assert r.status_code == 400
    r = client.post("/login", data={"username": USER["supervisor"],
                                    "password": "correct-horse-42", "csrf_token": "forged"})
    assert r.status_code == 400
    assert client.get("/overview").status_code == 302


def test_disabled_account_refused(client):
    r = login(client, DISABLED_USER)
    assert r.status_code == 200
    assert WRONG_CREDENTIALS in r.get_data(as_text=True)
    assert client.get("/live").status_code == 302


def test_account_disabled_mid_session_is_logged_out(client, web_app, web_seed):
    url, ids = web_seed
    assert login(client, VICTIM_USER).status_code == 302
    assert client.get("/live").status_code == 200
    web_app.server.extensions[DB_EXTENSION].write_tx(
        lambda s: users.set_active(s, ids[VICTIM_USER], False, actor="test")
    )
    try:
        assert client.get("/live").status_code == 302
        key = key_for(web_app, "live-updated")
        assert client.post(UPDATE, json=callback_body(web_app, key)).status_code == 401
    finally:
        web_app.server.extensions[DB_EXTENSION].write_tx(
            lambda s: users.set_active(s, ids[VICTIM_USER], True, actor="test")
        )


def test_logout_ends_the_session(client, web_app):
    logged_in(client, "executive")
    assert client.get("/overview").status_code == 200
    layout = client.get("/_dash-layout").get_data(as_text=True)
    props = re.search(r'\{[^{}]*"name":"csrf_token"[^{}]*\}', layout)
    assert props, "the navbar's logout form carries no CSRF token"
    token = json.loads(props.group(0))["value"]
    assert client.post("/logout").status_code == 400  # a forged logout form is refused
    r = client.post("/logout", data={"csrf_token": token})
    assert r.status_code == 302 and r.headers["Location"] == "/login"
    assert client.get("/overview").status_code == 302
    key = key_for(web_app, "live-updated")
    assert client.post(UPDATE, json=callback_body(web_app, key)).status_code == 401


def test_session_cookie_flags(client):
    r = login(client, USER["executive"])
    cookie = r.headers.get("Set-Cookie", "")
    assert "loyalty_session=" in cookie
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert "Secure" not in cookie  # development over plain HTTP


def test_production_session_cookie_is_secure():
    cfg = load_config({"LOYALTY_ENV": "production", "SECRET_KEY": "p" * 40})
    settings = session_settings(cfg)
    assert settings["SESSION_COOKIE_SECURE"] is True
    assert settings["SESSION_COOKIE_HTTPONLY"] is True
    assert settings["SESSION_COOKIE_SAMESITE"] == "Lax"


def test_production_without_secret_key_refuses_to_start(monkeypatch):
    monkeypatch.delenv("SECRET_KEY", raising=False)
    with pytest.raises(ConfigError, match="SECRET_KEY"):
        create_app({"LOYALTY_ENV": "production", "DATABASE_URL": "sqlite://"})


def test_session_expires_after_inactivity(client, web_app):
    logged_in(client, "support")
    assert client.get("/live").status_code == 200
    with client.session_transaction() as sess:
        sess["seen"] = time.time() - 31 * 60
    r = client.get("/live")
    assert r.status_code == 302 and "expired=1" in r.headers["Location"]
    assert "inactivity" in client.get(r.headers["Location"]).get_data(as_text=True)


def test_timer_callbacks_do_not_keep_a_session_alive(client, web_app):
    logged_in(client, "support")
    then = time.time() - 20 * 60
    with client.session_transaction() as sess:
        sess["seen"] = then
    key = key_for(web_app, "shell-db-banner")
    body = callback_body(web_app, key, {"shell-db-interval.n_intervals": 3})
    assert client.post(UPDATE, json=body).status_code == 200
    with client.session_transaction() as sess:
        assert sess["seen"] == then
    # a user action does
    key = key_for(web_app, "members-grid")
    assert client.post(UPDATE, json=callback_body(web_app, key)).status_code == 200
    with client.session_transaction() as sess:
        assert sess["seen"] > then


# ---------------------------------------------------------------- callbacks


def test_decorator_refuses_even_without_the_guard(web_app, web_seed):
    """Second line: calling a supervisor callback as support raises 403."""
    _url, ids = web_seed
    entry = web_app.callback_map[key_for(web_app, "staff-grid")]
    decorated = entry["callback"].__wrapped__  # Dash's wrapper -> ours
    with web_app.server.test_request_context("/"):
        login_user(StaffSession(ids["sam"], "sam", "Sam Support", "support"))
        with pytest.raises(Forbidden):
            decorated(0)
        login_user(StaffSession(ids["sue"], "sue", "Sue Pervisor", "supervisor"))
        rows, options, *_grants = decorated(0)
        assert {r["username"] for r in rows} >= {"sue", "sam", "ed"}
        assert flask.has_request_context()


def test_refused_write_is_audited(client, web_app, web_seed):
    url, _ids = web_seed
    before = len(audit_rows(url, "access.refused"))
    logged_in(client, "executive")
    key = key_for(web_app, "staff-create-result")
    body = callback_body(web_app, key, {"staff-create.n_clicks": 1,
                                        "staff-new-username.value": "mallory",
                                        "staff-new-role.value": "supervisor",
                                        "staff-new-password.value": "long-enough-1"})
    assert client.post(UPDATE, json=body).status_code == 403
    rows = audit_rows(url, "access.refused")
    assert len(rows) == before + 1 and rows[-1][0] == USER["executive"]


def test_staff_create_validates_next_to_the_field_and_audits(client, web_app, web_seed):
    url, _ids = web_seed
    logged_in(client, "supervisor")
    key = key_for(web_app, "staff-create-result")

    def create(username: str, password: str) -> dict[str, Any]:
        body = callback_body(web_app, key, {
            "staff-create.n_clicks": 1, "staff-new-username.value": username,
            "staff-new-full-name.value": "New Person", "staff-new-role.value": "support",
            "staff-new-password.value": password, "staff-refresh.data": 0,
        })
        r = client.post(UPDATE, json=body)
        assert r.status_code == 200, r.get_data(as_text=True)[:300]
        return r.get_json()["response"]

    bad = create("newbie", "short")
    assert "at least 8" in bad["staff-new-password-feedback"]["children"]
    assert bad["staff-new-username-feedback"]["children"] == ""
    good = create("newbie", "long-enough-1")
    assert "created" in json.dumps(good["staff-create-result"])
    created = [r for r in audit_rows(url, "staff.create") if '"newbie"' in (r[1] or "")]
    assert len(created) == 1 and created[0][0] == USER["supervisor"]
    dup = create("newbie", "long-enough-1")
    assert "already taken" in dup["staff-new-username-feedback"]["children"]


def test_support_sees_only_own_adjustments(client, web_app):
    key = key_for(web_app, "adjreview-grid")
    body = callback_body(web_app, key, {"adjreview-status.value": None})
    logged_in(client, "supervisor")
    assert "Late delivery" in client.post(UPDATE, json=body).get_data(as_text=True)
    logout(client)
    logged_in(client, "support")  # sam requested it
    assert "Late delivery" in client.post(UPDATE, json=body).get_data(as_text=True)
    logout(client)
    assert login(client, VICTIM_USER).status_code == 302  # another support user
    text = client.post(UPDATE, json=body).get_data(as_text=True)
    assert "Late delivery" not in text and "No adjustment requests" in text


def test_audit_export_is_csv_and_is_audited(client, web_app, web_seed):
    url, _ids = web_seed
    logged_in(client, "supervisor")
    key = key_for(web_app, "audit-download")
    body = callback_body(web_app, key, {"audit-export.n_clicks": 1},
                         changed=["audit-export.n_clicks"])
    r = client.post(UPDATE, json=body)
    assert r.status_code == 200, r.get_data(as_text=True)[:300]
    data = r.get_json()["response"]["audit-download"]["data"]
    assert data["filename"].endswith(".csv")
    assert data["content"].splitlines()[0].startswith("id,at,actor,action")
    assert "staff.create" in data["content"]
    assert audit_rows(url, "audit.export")


def test_audit_date_range_error_shown_next_to_the_field(client, web_app):
    logged_in(client, "supervisor")
    key = key_for(web_app, "audit-grid")
    body = callback_body(web_app, key, {"audit-dates.start_date": "2025-02-01",
                                        "audit-dates.end_date": "2025-01-01"})
    out = client.post(UPDATE, json=body).get_json()["response"]
    assert "after the end date" in out["audit-dates-feedback"]["children"]


def test_database_outage_banner_opens_and_closes(client, web_app):
    logged_in(client, "support")
    key = key_for(web_app, "shell-db-banner")
    body = callback_body(web_app, key, {"shell-db-interval.n_intervals": 1})
    ext = web_app.server.extensions
    real = ext[DB_EXTENSION]
    assert client.post(UPDATE, json=body).get_json()["response"] == {
        "shell-db-banner": {"is_open": False}
    }
    # nothing listens on port 1: connections are refused at once
    down = Database("postgresql+psycopg://nobody@127.0.0.1:1/none",
                    connect_args={"connect_timeout": 2})
    ext[DB_EXTENSION] = down
    try:
        r = client.post(UPDATE, json=body)
        assert r.get_json()["response"] == {"shell-db-banner": {"is_open": True}}
        # the shell still renders (no traceback); data callbacks just do not update
        assert client.get("/live").status_code == 200
        live = client.post(UPDATE, json=callback_body(web_app, key_for(web_app, "live-updated")))
        assert live.status_code == 204
        assert client.get("/healthz").status_code == 503
    finally:
        ext[DB_EXTENSION] = real
        down.dispose()
    assert client.post(UPDATE, json=body).get_json()["response"] == {
        "shell-db-banner": {"is_open": False}
    }


@pytest.mark.parametrize("name", ["LOGIN_LIMIT_ACCOUNT", "LOGIN_LIMIT_ADDRESS",
                                  "MEMBER_SEARCH_LIMIT"])
def test_an_unreadable_limit_setting_stops_start_up_naming_it(name):
    with pytest.raises(ConfigError, match=f"{name} must be limits such as"):
        load_config({name: "lots of tries", "SECRET_KEY": "s" * 40})
    assert load_config({name: "7/minute", "SECRET_KEY": "s" * 40})
