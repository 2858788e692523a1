"""The staff page's callbacks answer a supervisor who chose Russian in
Russian: the accounts grid and lists, the new-account form's refusals (the
password rules included), role changes, the supervisor grants (four-eyes)
and the API keys. Names (usernames, full names, key names) are data."""

from __future__ import annotations

import json
import re

import pytest
from sqlalchemy import select

from dashboard import access
from db import staff_grants, users
from db.actor import Actor
from db.models import StaffUser
from db.session import Database
from pages.staff import Staff as ids
from tests.support.i18n_scan import english_in, english_words
from tests.support.web import UPDATE, call, callback_body, login, response

PASSWORD = "russian-staff-pass-1"
FIRST, SECOND = "ruboss", "ruboss2"  # two supervisors who chose Russian
M = "callbacks.staff"


@pytest.fixture(scope="module")
def russians(web_app, web_seed) -> dict[str, int]:
    url, _ids = web_seed
    d = Database(url)
    out = {}
    try:
        with d.begin() as s:
            for name in (FIRST, SECOND):
                u = s.scalar(select(StaffUser).where(StaffUser.username == name))
                uid = u.id if u is not None else users.create_user(
                    s, name, PASSWORD, "supervisor", full_name="Ольга Смирнова").id
                users.set_language(s, uid, "ru", actor=name)
                out[name] = uid
    finally:
        d.dispose()
    return out


@pytest.fixture()
def boss(web_app, russians):
    c = web_app.server.test_client()
    assert login(c, FIRST, PASSWORD).status_code == 302
    return c


@pytest.fixture()
def data_words(web_seed, russians) -> set[str]:
    url, _ids = web_seed
    d = Database(url)
    words: set[str] = {"ruhelper", "runewboss", "ruperson"}  # made by the tests
    try:
        with d.read() as s:
            for u in s.scalars(select(StaffUser)):
                # whole names, and their letter runs ("s1a2b": "s", "a", "b")
                text = f"{u.username} {u.full_name or ''}"
                words.update(re.findall(r"\w+", text) + re.findall(r"[A-Za-z]+", text))
            from db.models import ApiKey
            for k in s.scalars(select(ApiKey)):
                words.update(re.findall(r"\w+", k.name))
    finally:
        d.dispose()
    return words


def _create(client, app, username, password, role="support", full_name="Пётр Петров"):
    return response(call(client, app, M, "create", {
        f"{ids.CREATE}.n_clicks": 1, f"{ids.NEW_USERNAME}.value": username,
        f"{ids.NEW_FULL_NAME}.value": full_name, f"{ids.NEW_ROLE}.value": role,
        f"{ids.NEW_PASSWORD}.value": password, f"{ids.REFRESH}.data": 0}))


def page_as(client, web_app, path: str):
    """The page at ``path`` as Dash's router builds it for ``client``'s user."""
    key = next(k for k in web_app.callback_map if access.ROUTER_OUTPUT_MARK in k)
    r = client.post(UPDATE, json=callback_body(web_app, key, {
        "_pages_location.pathname": path, "_pages_location.search": ""}))
    return response(r)


def _alert_text(out, component_id) -> str:
    """The text of the alert a callback put into ``component_id``."""
    children = out[component_id]["children"]
    return " ".join(_strings(children))


def _strings(tree):
    if isinstance(tree, str):
        yield tree
    elif isinstance(tree, list):
        for x in tree:
            yield from _strings(x)
    elif isinstance(tree, dict):
        yield from _strings(tree.get("props", {}).get("children"))


def test_the_accounts_grid_and_lists_are_in_russian(web_app, boss, data_words, russians):
    out = response(call(boss, web_app, M, "staff_list", {f"{ids.REFRESH}.data": 0}))
    assert english_in(out, data_words) == {}
    rows = {r["username"]: r for r in out[ids.GRID]["rowData"]}
    assert rows["sam"]["role"] == "поддержка" and rows["sam"]["active"] == "да"
    assert rows["ed"]["role"] == "руководитель" and rows["dora"]["active"] == "нет"
    assert rows[FIRST]["role"] == "супервайзер"
    labels = {o["value"]: o["label"] for o in out[ids.PICK_USER]["options"]}
    assert labels[rows["dora"]["id"]] == "dora (поддержка, отключена)"
    assert labels[rows["sam"]["id"]] == "sam (поддержка)"


def test_password_refusals_are_in_russian(web_app, boss, data_words):
    short = _create(boss, web_app, "ruperson", "short")
    assert english_in(short, data_words) == {}
    assert short[ids.NEW_PASSWORD_FEEDBACK]["children"] == \
        "пароль должен содержать не менее 8 символов"
    assert _alert_text(short, ids.CREATE_RESULT) == "Не создано: исправьте отмеченное поле."

    common = _create(boss, web_app, "ruperson", "password1")
    assert english_in(common, data_words) == {}
    assert common[ids.NEW_PASSWORD_FEEDBACK]["children"].startswith(
        "пароль входит в число самых распространённых")

    own = _create(boss, web_app, "ruperson", "ruperson-2026!")
    assert own[ids.NEW_PASSWORD_FEEDBACK]["children"] == \
        "пароль не должен содержать имя пользователя"

    many = _create(boss, web_app, "ru person", "short", role="")
    assert english_in(many, data_words) == {}
    assert _alert_text(many, ids.CREATE_RESULT) == "Не создано: исправьте 3 отмеченных поля."
    assert many[ids.NEW_ROLE_FEEDBACK]["children"] == "выберите роль из списка"
    assert many[ids.NEW_USERNAME_FEEDBACK]["children"].startswith("от 2 до 64")


def test_creating_and_changing_accounts_answers_in_russian(web_app, web_seed, boss,
                                                           data_words, russians):
    made = _create(boss, web_app, "ruhelper", "Quartz-Lantern-77")
    assert english_in(made, data_words) == {}
    assert _alert_text(made, ids.CREATE_RESULT) == \
        "Учётная запись ruhelper (поддержка) создана."
    again = _create(boss, web_app, "ruhelper", "Quartz-Lantern-77")
    assert again[ids.NEW_USERNAME_FEEDBACK]["children"] == "имя «ruhelper» уже занято"

    d = Database(web_seed[0])
    try:
        with d.read() as s:
            helper = users.get_user_by_name(s, "ruhelper").id
    finally:
        d.dispose()

    def change(button, user_id, role=None):
        out = response(call(boss, web_app, M, "change", {
            f"{button}.n_clicks": 1, f"{ids.PICK_USER}.value": user_id,
            f"{ids.PICK_ROLE}.value": role, f"{ids.REFRESH}.data": 0},
            changed=[f"{button}.n_clicks"]))
        assert english_in(out, data_words) == {}
        return out

    assert change(ids.DISABLE, None)[ids.PICK_FEEDBACK]["children"] == \
        "Сначала выберите учётную запись."
    assert change(ids.SET_ROLE, helper)[ids.PICK_FEEDBACK]["children"] == \
        "Выберите новую роль."
    out = change(ids.SET_ROLE, helper, "executive")
    assert _alert_text(out, ids.CHANGE_RESULT) == "Роль ruhelper изменена: руководитель."
    out = change(ids.DISABLE, helper)
    assert _alert_text(out, ids.CHANGE_RESULT) == "Учётная запись ruhelper отключена."
    out = change(ids.ENABLE, helper)
    assert _alert_text(out, ids.CHANGE_RESULT) == "Учётная запись ruhelper включена."
    out = change(ids.DISABLE, russians[FIRST])
    assert out[ids.PICK_FEEDBACK]["children"] == "нельзя отключить собственную учётную запись"
    out = change(ids.SET_ROLE, helper, "supervisor")
    assert _alert_text(out, ids.CHANGE_RESULT) == (
        "ruhelper станет супервайзером после согласования вторым супервайзером.")
    out = change(ids.SET_ROLE, helper, "supervisor")
    assert out[ids.PICK_FEEDBACK]["children"] == (
        "запрос на права супервайзера для этой учётной записи уже ожидает согласования")
    # the promotion is left refused: the account keeps its role
    d = Database(web_seed[0])
    try:
        with d.read() as s:
            (grant,) = [g for g in staff_grants.pending(s) if g.username == "ruhelper"]
        d.write_tx(lambda s: staff_grants.reject(
            s, Actor(SECOND, russians[SECOND], "supervisor"), grant.id, "тест"))
        d.write_tx(lambda s: users.set_active(s, helper, False, actor="test"))
    finally:
        d.dispose()


def test_a_supervisor_grant_is_decided_in_russian(web_app, web_seed, boss, data_words,
                                                  russians):
    made = _create(boss, web_app, "runewboss", "Quartz-Lantern-77", role="supervisor")
    assert english_in(made, data_words) == {}
    assert _alert_text(made, ids.CREATE_RESULT) == (
        "Учётная запись runewboss (супервайзер) создана отключённой: она станет активной "
        "после согласования вторым супервайзером.")
    listed = response(call(boss, web_app, M, "staff_list", {f"{ids.REFRESH}.data": 0}))
    assert english_in(listed, data_words) == {}
    grant = next(o for o in listed[ids.GRANT_PICK]["options"] if "runewboss" in o["label"])
    assert grant["label"] == f"#{grant['value']} runewboss: новый супервайзер (запросил {FIRST})"
    table = json.dumps(listed[ids.GRANTS], ensure_ascii=False)
    assert "новая учётная запись супервайзера" in table and "Кто запросил" in table

    def decide(client, button, grant_id, reason=None):
        out = response(call(client, web_app, M, "decide_grant", {
            f"{button}.n_clicks": 1, f"{ids.GRANT_PICK}.value": grant_id,
            f"{ids.GRANT_REASON}.value": reason, f"{ids.REFRESH}.data": 0},
            changed=[f"{button}.n_clicks"]))
        assert english_in(out, data_words) == {}
        return _alert_text(out, ids.GRANT_RESULT)

    assert decide(boss, ids.GRANT_APPROVE, None) == \
        "Сначала выберите запрос, ожидающий согласования."
    assert decide(boss, ids.GRANT_APPROVE, grant["value"]) == (
        "принцип четырёх глаз: супервайзер, запросивший права, не может сам их согласовать")
    assert decide(boss, ids.GRANT_REJECT, grant["value"]) == "укажите причину отказа"
    second = web_app.server.test_client()
    assert login(second, SECOND, PASSWORD).status_code == 302
    assert decide(second, ids.GRANT_APPROVE, grant["value"]) == \
        "Согласовано: runewboss — активный супервайзер."
    assert decide(second, ids.GRANT_APPROVE, grant["value"]) == \
        f"запрос на права супервайзера {grant['value']} уже согласован"
    d = Database(web_seed[0])
    try:
        with d.begin() as s:
            users.set_active(s, users.get_user_by_name(s, "runewboss").id, False, actor="test")
    finally:
        d.dispose()


def test_api_keys_are_managed_in_russian(web_app, web_seed, boss, data_words):
    def create(name, scopes):
        out = response(call(boss, web_app, M, "create_key", {
            f"{ids.KEY_CREATE}.n_clicks": 1, f"{ids.KEY_NAME}.value": name,
            f"{ids.KEY_SCOPES}.value": scopes, f"{ids.REFRESH}.data": 0}))
        return out, _alert_text(out, ids.KEY_CREATED)

    out, text = create("Касса 7", [])
    assert english_in(out, data_words) == {} and text == "выберите хотя бы одну область доступа"
    out, text = create("-", ["read"])
    assert text.startswith("от 1 до 64 букв")
    out, text = create("Касса 7", ["orders", "read"])
    assert text.startswith("Ключ «Касса 7» создан (заказы, чтение). Скопируйте его сейчас")
    listed = response(call(boss, web_app, M, "key_list", {f"{ids.REFRESH}.data": 0}))
    # a key's public prefix (hex digits) is data too
    assert {text: words for text, words in english_in(listed, data_words).items()
            if english_words(re.sub(r"lk_[0-9a-f]+_", " ", text), data_words)} == {}
    table = json.dumps(listed[ids.KEYS], ensure_ascii=False)
    assert "Области доступа" in table and "заказы, чтение" in table and "активен" in table
    kid = next(o["value"] for o in listed[ids.KEY_PICK]["options"]
               if o["label"].startswith("Касса 7"))

    def revoke(key_id):
        out = response(call(boss, web_app, M, "revoke_key", {
            f"{ids.KEY_REVOKE}.n_clicks": 1, f"{ids.KEY_PICK}.value": key_id,
            f"{ids.REFRESH}.data": 0}))
        assert english_in(out, data_words) == {}
        return _alert_text(out, ids.KEY_REVOKED)

    assert revoke(None) == "Сначала выберите ключ."
    assert revoke(kid) == "Ключ «Касса 7» отозван: запросы с ним отклоняются."
    assert revoke(kid) == "API-ключ «Касса 7» уже отозван"
    listed = response(call(boss, web_app, M, "key_list", {f"{ids.REFRESH}.data": 0}))
    assert "отозван " in json.dumps(listed[ids.KEYS], ensure_ascii=False)


def test_grids_speak_russian_to_a_russian_user(web_app, boss):
    """AG Grid's own texts (the no-rows overlay, the filters) come with every
    grid, the dropdowns' own (search, nothing found) with the page's dropdowns."""
    page = json.dumps(page_as(boss, web_app, "/staff"), ensure_ascii=False)
    assert '"noRowsToShow": "Нет строк для показа"' in page
    assert '"contains": "Содержит"' in page
    assert '"no_options_found": "Ничего не найдено"' in page


def test_the_403_and_404_contents_are_in_russian(web_app, web_seed):
    """An executive who chose Russian opens the staff page: the refusal, in Russian."""
    d = Database(web_seed[0])
    try:
        with d.begin() as s:
            u = s.scalar(select(StaffUser).where(StaffUser.username == "ruexec"))
            uid = u.id if u is not None else users.create_user(
                s, "ruexec", PASSWORD, "executive", full_name="Анна Кузнецова").id
            users.set_language(s, uid, "ru", actor="ruexec")
    finally:
        d.dispose()
    c = web_app.server.test_client()
    assert login(c, "ruexec", PASSWORD).status_code == 302
    assert c.get("/staff").status_code == 403
    refused = page_as(c, web_app, "/staff")
    assert english_in(refused, {"ruexec"}) == {}
    text = " ".join(_strings(refused["_pages_content"]["children"]))
    assert "403 — Доступ запрещён" in text
    assert "Ваша роль (Руководитель) не позволяет открыть страницу «Сотрудники»" in text
    missing = page_as(c, web_app, "/404")
    assert english_in(missing, {"ruexec"}) == {}


def test_the_sign_in_page_follows_the_browsers_language(web_app):
    c = web_app.server.test_client()
    page = c.get("/login", headers={"Accept-Language": "ru-RU,ru;q=0.9,en;q=0.5"})
    html = page.get_data(as_text=True)
    assert '<html lang="ru">' in html and "Вход · Бэк-офис программы лояльности" in html
    assert english_words(re.sub(r"<[^>]+>", " ", html)) == []
    wrong = c.post("/login", headers={"Accept-Language": "ru"}, data={
        "username": "nobody", "password": "x" * 10,
        "csrf_token": re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)})
    shown = wrong.get_data(as_text=True)
    assert "Неверное имя пользователя или пароль." in shown
    assert english_words(re.sub(r"<[^>]+>", " ", shown), {"nobody"}) == []


def test_an_english_page_keeps_the_components_own_texts(web_app):
    """In English the grids and dropdowns carry no texts of ours: theirs are English."""
    from tests.support.web import logged_in

    c = logged_in(web_app.server.test_client(), "supervisor")
    page = json.dumps(page_as(c, web_app, "/staff"), ensure_ascii=False)
    assert "localeText" not in page and '"labels"' not in page
    assert "Staff accounts" in page and "Choose…" in page
