"""Languages: the catalogs are complete, the request's language is the
user's choice (or the browser's before sign-in), the switch stores it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po

from benchmarks.dash_requests import UPDATE, keys_writing, request_body
from benchmarks.small_program import PASSWORD
from dashboard.i18n import catalog_paths, compile_catalog
from db import users
from db.models import AuditLog
from tests.support.web import csrf_token_from, login

ROOT = Path(__file__).resolve().parent.parent
KEYWORDS = {"_": None, "N_": None, "gettext": None, "ngettext": (1, 2),
            "lazy_gettext": None}


def source_messages() -> dict[str, list[str]]:
    """Every msgid marked in the app's source (as ``pybabel extract -F babel.cfg``
    finds them), with where each is."""
    with (ROOT / "babel.cfg").open() as f:
        method_map, options_map = parse_mapping_cfg(f)
    found: dict[str, list[str]] = {}
    for filename, lineno, message, _comments, _context in extract_from_dir(
        str(ROOT), method_map, options_map, keywords=KEYWORDS,
    ):
        ids = message if isinstance(message, tuple) else (message,)
        for msgid in ids:
            if msgid:
                found.setdefault(msgid, []).append(f"{filename}:{lineno}")
    return found


@pytest.fixture(scope="module")
def messages() -> dict[str, list[str]]:
    return source_messages()


def test_the_source_marks_the_shell_messages(messages):
    """The extraction sees every kind of marking: _() in Python, N_() in db
    and constants, gettext calls in the Jinja templates."""
    for msgid in ("Log out", "Wrong username or password.", "Sign in", "Username",
                  "Overview", "404 — Page not found"):
        assert msgid in messages, msgid


@pytest.mark.parametrize("lang", sorted(catalog_paths()))
def test_every_message_has_a_translation(lang, messages):
    """A message marked in the source without a translation (missing, empty
    or fuzzy) fails here, named with where it is used. Fix:
    pybabel extract/update (docs/ARCHITECTURE.md), then translate."""
    path = catalog_paths()[lang]
    with path.open("rb") as f:
        catalog = read_po(f)
    problems = []
    for msgid, where in sorted(messages.items()):
        entry = catalog.get(msgid)
        if entry is None:
            # the plural forms are entries of their singular
            entry = next((m for m in catalog if isinstance(m.id, tuple) and msgid in m.id), None)
        strings = entry.string if entry is not None else None
        strings = strings if isinstance(strings, tuple) else (strings,)
        if entry is None:
            problems.append(f"missing: {msgid!r} ({where[0]})")
        elif entry.fuzzy:
            problems.append(f"fuzzy: {msgid!r} ({where[0]})")
        elif not all(s and s.strip() for s in strings):
            problems.append(f"not translated: {msgid!r} ({where[0]})")
    assert not problems, f"{path.relative_to(ROOT)}:\n  " + "\n  ".join(problems)


@pytest.mark.parametrize("lang", sorted(catalog_paths()))
def test_translations_keep_the_placeholders(lang):
    """A translation has the same %(name)s placeholders as its msgid (a
    missing one would raise, or drop a number, at display time)."""
    with catalog_paths()[lang].open("rb") as f:
        catalog = read_po(f)
    bad = []
    for m in catalog:
        if not m.id or not m.string:
            continue
        ids = m.id if isinstance(m.id, tuple) else (m.id,)
        strings = m.string if isinstance(m.string, tuple) else (m.string,)
        want = set(re.findall(r"%\((\w+)\)s", ids[0]))
        for s in strings:
            if set(re.findall(r"%\((\w+)\)s", s)) - want - {"num"}:
                bad.append(m.id)
            elif not isinstance(m.id, tuple) and set(re.findall(r"%\((\w+)\)s", s)) != want:
                bad.append(m.id)
    assert not bad, bad


def test_the_catalog_compiles_and_translates():
    t = compile_catalog(catalog_paths()["ru"])
    assert t.ugettext("Log out") == "Выйти"
    assert t.ugettext("no such message") == "no such message"


# ------------------------------------------------------------------ the web app


def test_sign_in_page_follows_the_browser_language(client):
    ru = client.get("/login", headers={"Accept-Language": "ru-RU,ru;q=0.9,en;q=0.5"})
    text = ru.get_data(as_text=True)
    assert '<html lang="ru">' in text
    assert "Имя пользователя" in text and "Пароль" in text
    en = client.get("/login", headers={"Accept-Language": "de-DE,en;q=0.5"})
    text = en.get_data(as_text=True)
    assert '<html lang="en">' in text and "Username" in text
    # no language of ours asked for: the configured default (en)
    assert '<html lang="en">' in client.get(
        "/login", headers={"Accept-Language": "fr"}).get_data(as_text=True)


def test_wrong_password_message_in_russian(client, frozen_limits):
    page = client.get("/login", headers={"Accept-Language": "ru"})
    r = client.post("/login", headers={"Accept-Language": "ru"}, data={
        "username": "nobody-here", "password": "wrong-password-1",
        "csrf_token": csrf_token_from(page.get_data(as_text=True)), "next": "/",
    })
    assert "Неверное имя пользователя или пароль." in r.get_data(as_text=True)


def test_expired_session_notice_in_russian(client):
    r = client.get("/login?expired=1", headers={"Accept-Language": "ru"})
    assert "Сеанс завершён из-за бездействия" in r.get_data(as_text=True)


@pytest.fixture
def polyglot(web_app):
    """A support user of its own (its language changes in these tests)."""
    from dashboard.context import get_db

    with web_app.server.app_context():
        d = get_db()
        with d.begin() as s:
            info = users.get_user_by_name(s, "polyglot")
            if info is None:
                info = users.create_user(s, "polyglot", PASSWORD, "support",
                                         full_name="Poly Glot")
            else:
                s.get(users.StaffUser, info.id).language = None
    yield info
    with web_app.server.app_context():  # the other tests' web app stays in English
        with get_db().begin() as s:
            s.get(users.StaffUser, info.id).language = None


def _layout_text(client) -> str:
    """The shell's layout as text (the JSON decoded: Cyrillic is escaped in it)."""
    return json.dumps(client.get("/_dash-layout").get_json(), ensure_ascii=False)


def _switch(client, web_app, language: str):
    key = keys_writing(web_app.callback_map, "shell-language-saved")[0]
    body = request_body(key, web_app.callback_map[key], {"shell-language.value": language})
    return client.post(UPDATE, json=body)


def test_the_switch_stores_the_language_and_the_pages_follow(client, web_app, polyglot):
    from dashboard.context import get_db

    login(client, "polyglot")
    page = client.get("/members", headers={"Accept-Language": "ru"})
    # signed in, the user's choice (none yet: the default), not the browser's
    assert '<html lang="en">' in page.get_data(as_text=True)
    r = _switch(client, web_app, "ru")
    assert r.status_code == 200, r.get_data(as_text=True)
    page = client.get("/members")
    assert '<html lang="ru">' in page.get_data(as_text=True)
    layout = _layout_text(client)
    assert "Выйти" in layout and "Участники" in layout  # the navbar, the page names
    with web_app.server.app_context():
        with get_db().read() as s:
            assert users.get_user(s, polyglot.id).language == "ru"
            actors = [a.actor for a in s.query(AuditLog).filter_by(
                action="staff.language", object_id=str(polyglot.id))]
    assert actors and actors[-1] == "polyglot"
    # a language the app does not have changes nothing
    assert _switch(client, web_app, "de").status_code in (200, 204)
    _switch(client, web_app, "en")
    assert '<html lang="en">' in client.get("/members").get_data(as_text=True)


def test_the_switch_needs_a_signed_in_user(client, web_app):
    assert _switch(client, web_app, "ru").status_code == 401


def test_language_is_kept_across_sign_in(client, web_app, polyglot):
    from dashboard.context import get_db

    with web_app.server.app_context():
        get_db().write_tx(lambda s: users.set_language(s, polyglot.id, "ru", actor="test"))
    login(client, "polyglot")
    assert '<html lang="ru">' in client.get("/members").get_data(as_text=True)
    assert "Выйти" in _layout_text(client)


def test_set_language_refuses_unknown_languages(db):
    from db.errors import ValidationError

    with db.begin() as s:
        u = users.create_user(s, "lang-user", PASSWORD, "support")
        with pytest.raises(ValidationError):
            users.set_language(s, u.id, "xx", actor="test")
        assert users.set_language(s, u.id, "ru", actor="test").language == "ru"
        version = users.get_user(s, u.id).session_version
    # choosing a language does not end the user's sessions
    with db.read() as s:
        assert users.get_user(s, u.id).session_version == version


def test_default_language_from_config():
    from dashboard.config import ConfigError, load_config

    assert load_config({"DEFAULT_LANGUAGE": "ru"}).default_language == "ru"
    assert load_config({}).default_language == "en"
    with pytest.raises(ConfigError, match="DEFAULT_LANGUAGE"):
        load_config({"DEFAULT_LANGUAGE": "de"})


def test_service_messages_show_in_the_user_language(web_app):
    """db marks (N_), the web layer translates: a Message keeps its msgid
    and parameters, and reads as English everywhere else."""
    from dashboard.i18n import translate
    from db.errors import too_large
    from db.numbers import NumberError, canonical

    message = too_large("5")
    assert message == "too large: at most 5"
    with web_app.server.test_request_context("/", headers={"Accept-Language": "ru"}):
        assert translate(message) == "слишком большое значение: не более 5"
        with pytest.raises(NumberError) as exc:
            canonical("25 00", lang="ru")
        assert translate(exc.value.message).startswith("«25 00»: цифры сгруппированы неверно")
        assert translate("a text no catalog has") == "a text no catalog has"
    with web_app.server.test_request_context("/", headers={"Accept-Language": "en"}):
        assert translate(message) == "too large: at most 5"


def test_a_background_job_speaks_its_user_language(web_app, polyglot):
    """Jobs have no request: job_actor puts the job in its user's language."""
    from dashboard import jobs
    from dashboard.context import get_db
    from dashboard.i18n import _, current_language
    from tests.support.web import job_token

    with web_app.server.app_context():
        get_db().write_tx(lambda s: users.set_language(s, polyglot.id, "ru", actor="test"))
    token = job_token(web_app, polyglot.id, "polyglot", "support")
    with web_app.server.app_context():
        assert current_language() == "en"  # no request, no job user: English
        with jobs.job_context():
            jobs.job_actor(token, ["support"])
            assert current_language() == "ru"
            assert _("Log out") == "Выйти"
        assert _("Log out") == "Log out"
