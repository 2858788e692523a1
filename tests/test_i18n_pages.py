"""Every page, as the server sends it to a user who chose Russian, has no
English left in it: titles, labels, placeholders, options, grid headers,
chart titles and empty states (the page's texts come from the catalogs).
Data (member, tier and staff names) is what it is and is not checked."""

from __future__ import annotations

import pytest

from dashboard import access
from tests.support.i18n_scan import data_words as program_words
from tests.support.i18n_scan import english_in, russian_staff
from tests.support.web import UPDATE, callback_body, login

PASSWORD = "russian-pages-pass-1"


@pytest.fixture(scope="module")
def russian_users(web_app, web_seed) -> dict[str, str]:
    """A user of each role who chose Russian."""
    return russian_staff(web_seed[0], PASSWORD)


@pytest.fixture(scope="module")
def data_words(web_seed) -> set[str]:
    """Words of the program's own data (names), which pages show as they are."""
    return program_words(web_seed[0])


def page_as(client, web_app, path: str):
    key = next(k for k in web_app.callback_map if access.ROUTER_OUTPUT_MARK in k)
    body = callback_body(web_app, key, {"_pages_location.pathname": path,
                                        "_pages_location.search": ""})
    r = client.post(UPDATE, json=body)
    assert r.status_code == 200, r.get_data(as_text=True)[:300]
    return r.get_json()["response"]


PAGES = ("/overview", "/live", "/rules", "/pilots", "/members", "/adjustments/request",
         "/adjustments", "/audit", "/staff", "/404")


@pytest.fixture(scope="module")
def russian_clients(web_app, russian_users) -> dict[str, object]:
    """A test client signed in as the Russian user of each role."""
    clients = {}
    for role, username in russian_users.items():
        clients[role] = web_app.server.test_client()
        r = login(clients[role], username, PASSWORD)
        assert r.status_code == 302, r.status_code
    return clients


def test_every_page_is_checked(web_app):
    assert sorted(PAGES) == sorted(p["path"] for p in access.registered_pages())


@pytest.mark.parametrize("path", PAGES)
def test_page_in_russian_has_no_english(web_app, russian_clients, data_words, path):
    page = next(p for p in access.registered_pages() if p["path"] == path)
    roles = sorted(access.page_roles(page))
    role = "supervisor" if "supervisor" in roles or not roles else roles[0]
    content = page_as(russian_clients[role], web_app, path)
    problems = [f"{text!r} ({', '.join(words)})"
                for text, words in english_in(content, data_words).items()]
    assert not problems, f"English on {path} in Russian:\n  " + "\n  ".join(problems)


def test_the_shell_in_russian_has_no_english(web_app, client, russian_users, data_words):
    login(client, russian_users["supervisor"], PASSWORD)
    layout = client.get("/_dash-layout").get_json()
    found = english_in(layout, data_words)
    assert not found, found
