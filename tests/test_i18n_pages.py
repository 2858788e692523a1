"""Every page, as the server sends it to a user who chose Russian, has no
English left in it: titles, labels, placeholders, options, grid headers,
chart titles and empty states (the page's texts come from the catalogs).
Data (member, tier and staff names) is what it is and is not checked."""

from __future__ import annotations

import pytest

from dashboard import access
from tests.support.i18n_scan import RUSSIAN_PASSWORD, english_in
from tests.support.web import UPDATE, callback_body, login


def page_as(client, web_app, path: str):
    key = next(k for k in web_app.callback_map if access.ROUTER_OUTPUT_MARK in k)
    body = callback_body(web_app, key, {"_pages_location.pathname": path,
                                        "_pages_location.search": ""})
    r = client.post(UPDATE, json=body)
    assert r.status_code == 200, r.get_data(as_text=True)[:300]
    return r.get_json()["response"]


PAGES = ("/overview", "/live", "/rules", "/pilots", "/members", "/adjustments/request",
         "/adjustments", "/audit", "/staff", "/404")


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
    login(client, russian_users["supervisor"], RUSSIAN_PASSWORD)
    layout = client.get("/_dash-layout").get_json()
    found = english_in(layout, data_words)
    assert not found, found
