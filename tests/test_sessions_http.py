"""Sessions end for good: logout, a disabled account, a new password or role
end every session of the account, including copies of the cookie saved
before; GET /logout signs nobody out and a forged logout form is refused."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
from sqlalchemy.orm import Session

from benchmarks.dash_requests import UPDATE
from benchmarks.small_program import PASSWORD, SECOND_SUPERVISOR, STAFF
from dashboard.context import DB_EXTENSION
from db import staff_grants, users
from db.actor import Actor
from tests.support.web import callback_body, csrf_token_from, key_for, login, logout

COOKIE = "loyalty_session"


@pytest.fixture
def account(web_app) -> users.UserInfo:
    """A fresh support account of its own (the tests change it)."""
    db = web_app.server.extensions[DB_EXTENSION]
    name = f"s{uuid.uuid4().hex[:10]}"
    return db.write_tx(lambda s: users.create_user(s, name, PASSWORD, "support",
                                                   full_name="Session Tester"))


def change(web_app, fn: Callable[[Session], object]) -> None:
    web_app.server.extensions[DB_EXTENSION].write_tx(fn)


def signed_in(web_app, username: str):
    c = web_app.server.test_client()
    assert login(c, username).status_code == 302
    assert c.get("/live").status_code == 200
    return c


def saved_cookie(client) -> str:
    cookie = client.get_cookie(COOKIE)
    assert cookie is not None
    return cookie.value


def replay(web_app, cookie: str):
    """A new browser that presents a copy of an old session cookie."""
    c = web_app.server.test_client()
    c.set_cookie(COOKIE, cookie)
    return c


def refused(web_app, client) -> bool:
    page = client.get("/live")
    callback = client.post(UPDATE, json=callback_body(web_app, key_for(web_app, "live-updated")))
    assert (page.status_code == 302) == (callback.status_code == 401), (page, callback)
    return page.status_code == 302 and page.headers["Location"].startswith("/login")


def test_a_cookie_saved_before_logout_is_refused_after_it(web_app, account):
    c = signed_in(web_app, account.username)
    cookie = saved_cookie(c)
    assert not refused(web_app, replay(web_app, cookie))  # a copy works while signed in
    logout(c)
    assert refused(web_app, c)
    assert refused(web_app, replay(web_app, cookie))


def test_logout_ends_the_other_sessions_of_the_account_only(web_app, account):
    laptop = signed_in(web_app, account.username)
    phone = signed_in(web_app, account.username)
    colleague = signed_in(web_app, STAFF["support"][0])
    logout(laptop)
    assert refused(web_app, phone)
    assert not refused(web_app, colleague)
    again = signed_in(web_app, account.username)  # a new sign-in works
    assert not refused(web_app, again)


def test_a_cookie_is_refused_after_the_account_is_disabled_and_enabled_again(web_app, account):
    c = signed_in(web_app, account.username)
    cookie = saved_cookie(c)
    change(web_app, lambda s: users.set_active(s, account.id, False, actor="test"))
    change(web_app, lambda s: users.set_active(s, account.id, True, actor="test"))
    assert refused(web_app, c)
    assert refused(web_app, replay(web_app, cookie))
    assert not refused(web_app, signed_in(web_app, account.username))


def test_a_new_password_ends_the_sessions(web_app, account):
    c = signed_in(web_app, account.username)
    change(web_app, lambda s: users.set_password(s, account.id, "another-pass-77", actor="test"))
    assert refused(web_app, c)
    fresh = web_app.server.test_client()
    assert login(fresh, account.username, "another-pass-77").status_code == 302
    assert not refused(web_app, fresh)


def test_a_new_role_ends_the_sessions(web_app, account):
    c = signed_in(web_app, account.username)
    cookie = saved_cookie(c)
    change(web_app, lambda s: users.set_role(s, account.id, "executive", actor="test"))
    assert refused(web_app, replay(web_app, cookie))


def test_an_approved_promotion_ends_the_sessions(web_app, web_seed, account):
    _url, ids = web_seed
    c = signed_in(web_app, account.username)
    sue = Actor(STAFF["supervisor"][0], ids[STAFF["supervisor"][0]], "supervisor")
    sid = Actor(SECOND_SUPERVISOR, ids[SECOND_SUPERVISOR], "supervisor")
    holder: list[int] = []
    change(web_app, lambda s: holder.append(staff_grants.request_promotion(s, sue, account.id)))
    assert not refused(web_app, c)  # asking changes nothing yet
    change(web_app, lambda s: staff_grants.approve(s, sid, holder[0]))
    assert refused(web_app, c)


def test_unchanged_role_or_flag_keeps_the_sessions(web_app, account):
    c = signed_in(web_app, account.username)
    change(web_app, lambda s: users.set_role(s, account.id, "support", actor="test"))
    change(web_app, lambda s: users.set_active(s, account.id, True, actor="test"))
    assert not refused(web_app, c)


def test_get_logout_keeps_the_session_and_offers_the_form(web_app, account):
    c = signed_in(web_app, account.username)
    page = c.get("/logout")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'method="post" action="/logout"' in html and csrf_token_from(html)
    assert not refused(web_app, c)


def test_logout_without_csrf_token_is_refused_and_changes_nothing(web_app, account):
    c = signed_in(web_app, account.username)
    cookie = saved_cookie(c)
    assert c.post("/logout").status_code == 400
    assert c.post("/logout", data={"csrf_token": "forged"}).status_code == 400
    assert not refused(web_app, c)
    assert not refused(web_app, replay(web_app, cookie))
