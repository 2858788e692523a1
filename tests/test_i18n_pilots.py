"""The pilots page's callbacks answer a supervisor or an executive who chose
Russian in Russian: the list, the pickers, the results (verdict, interval,
charts, tables, progress), the create form's messages and power estimate,
the upload check, the lifecycle actions and the services' refusals."""

from __future__ import annotations

import base64
import datetime as dt
import json
import uuid
from typing import Any

import pytest
from sqlalchemy import select

from db.models import Pilot, RuleSet, StaffUser
from db.session import Database
from pages.pilots import Pilots as ids
from tests.support.i18n_scan import english_in
from tests.support.web import (
    UPDATE,
    _poll,
    call,
    callback_body,
    job_token,
    key_of,
    response,
)

PAGE = "callbacks.pilots"


def _json(out: Any) -> str:
    return json.dumps(out, ensure_ascii=False, default=lambda o: o.to_plotly_json())


def _no_english(out: Any, words: set[str]) -> None:
    assert english_in(json.loads(_json(out)), words) == {}


def _db(url: str) -> Database:
    return Database(url)


def _draft_rule_set(url: str) -> int:
    d = _db(url)
    try:
        with d.read() as s:
            return s.scalar(select(RuleSet.id).where(RuleSet.status == "draft"))
    finally:
        d.dispose()


def _user_id(url: str, username: str) -> int:
    d = _db(url)
    try:
        with d.read() as s:
            return s.scalar(select(StaffUser.id).where(StaffUser.username == username))
    finally:
        d.dispose()


def test_list_and_pickers_in_russian(web_app, russian_clients, data_words):
    c = russian_clients["supervisor"]
    out = response(call(c, web_app, PAGE, "pilots_list", {f"{ids.STATUS}.value": None,
                                                          f"{ids.REFRESH}.data": 0}))
    _no_english(out, data_words)
    grid = out[ids.LIST]["children"]["props"]
    headers = [col["headerName"] for col in grid["columnDefs"]]
    assert headers[:4] == ["Пилот", "Статус", "Проверяемые правила", "Основная метрика"]
    row = next(r for r in grid["rowData"] if r["name"] == "Gold for regulars")
    assert row["status"] in ("идёт", "идёт, плановое окончание прошло", "завершён")
    assert row["metric"] == "Расходы на участника"

    empty = response(call(c, web_app, PAGE, "pilots_list", {f"{ids.STATUS}.value": "cancelled",
                                                            f"{ids.REFRESH}.data": 0}))
    if "rowData" not in _json(empty):
        _no_english(empty, data_words)
        assert "Нет пилотов со статусом «отменено»." in _json(empty)

    picks = response(call(c, web_app, PAGE, "choices", {f"{ids.REFRESH}.data": 0}))
    labels = [o["label"] for o in picks[ids.PICK]["options"]]
    assert any(label.startswith("№1 Gold for regulars (") for label in labels), labels
    _no_english(picks[ids.PICK], data_words)
    _no_english(picks[ids.RULE_SET], data_words)
    assert all("(черновик)" in o["label"] or "(на согласовании)" in o["label"]
               for o in picks[ids.RULE_SET]["options"])


def test_results_of_a_running_pilot_in_russian(web_app, russian_clients, data_words):
    c = russian_clients["executive"]
    token = response(call(c, web_app, PAGE, "choices", {f"{ids.REFRESH}.data": 0}))[
        ids.ACTOR]["data"]
    key = key_of(web_app, ids.RESULTS)
    b = callback_body(web_app, key, {f"{ids.PICK}.value": 1, f"{ids.REFRESH}.data": 0,
                                     f"{ids.ACTOR}.data": token})
    r = c.post(UPDATE, json=b)
    assert r.status_code == 200, r.get_data(as_text=True)[:300]
    out = _poll(c, b, r.get_json())
    _no_english(out, data_words)
    text = _json(out)
    assert "Вывод: " in text
    assert "Расходы на участника: Слишком мало данных для вывода" in text
    assert "Прирост по метрикам" in text and "95-процентный доверительный интервал" in text
    assert "Расходы на участника (основная)" in text and "Тест Уэлча" in text and "Бутстрап" in text
    assert "Дополнительные баллы, начисленные пилотной группе" in text
    assert "Расходы на участника в день (₽, среднее за 7 дней)" in text
    assert '"name": "Пилотная группа"' in text and "старт пилота" in text
    assert '"tickformat": "%d.%m"' in text  # no English month names on the date axis
    assert out[ids.START]["children"] == "Запросить запуск"
    # the export's headers in Russian too (the values keep their codes)
    export = out[ids.RESULTS_CSV]["data"]["csv"]
    assert "ID пилота,пилот,метрика,метод,прирост" in export
    assert "spend_per_member,welch" in export and "показатель,значение" in export


def test_progress_and_refusal_of_the_results_job_in_russian(web_app, web_seed, russian_users,
                                                            data_words):
    from callbacks.pilots import results_job

    url, _seeded = web_seed
    name = russian_users["executive"]
    token = job_token(web_app, _user_id(url, name), name, "executive")
    steps: list[Any] = []
    out = results_job(steps.append, 1, token)
    _no_english(out, data_words)
    labels = [label for _pct, label in steps]
    assert labels[0] == "2 % чтение пилота"
    assert any("тест Уэлча, бутстрап" in label for label in labels), labels
    assert english_in(labels, data_words) == {}
    # no pilot chosen: the empty state
    empty = _json(results_job(steps.append, None, token))
    assert "Выберите пилот, чтобы увидеть его результаты." in empty


def _upload(member_ids: list[Any]) -> str:
    body = "member_id\n" + "".join(f"{m}\n" for m in member_ids)
    return "data:text/csv;base64," + base64.b64encode(body.encode()).decode()


def _form(values: dict[str, Any]) -> dict[str, Any]:
    base = {
        f"{ids.NAME}.value": "Пилот по-русски", f"{ids.RULE_SET}.value": None,
        f"{ids.SOURCE}.value": "filter", f"{ids.SHARE}.value": "50", f"{ids.SEED}.value": "3",
        f"{ids.START_AT}.value": "2099-01-01 00:00", f"{ids.END_AT}.value": "2099-02-01",
        f"{ids.METRIC}.value": "spend_per_member", f"{ids.MIN_EFFECT}.value": "100",
        f"{ids.REFRESH}.data": 0,
    }
    base.update(values)
    return base


def test_form_messages_and_refusals_in_russian(web_app, russian_clients, data_words):
    c = russian_clients["supervisor"]
    bad = _form({f"{ids.CREATE}.n_clicks": 1, f"{ids.NAME}.value": "",
                 f"{ids.SHARE}.value": "1000", f"{ids.SEED}.value": "9" * 30,
                 f"{ids.START_AT}.value": "завтра"})
    out = response(call(c, web_app, PAGE, "create", bad))
    _no_english(out, data_words)
    assert out[ids.FEEDBACK["name"]]["children"] == "обязательное поле"
    assert out[ids.FEEDBACK["rule_set_id"]]["children"] == "выберите черновик правил для проверки"
    assert out[ids.FEEDBACK["start_at"]]["children"] == (
        "укажите в формате 2025-01-31 или 2025-01-31 09:00")
    assert out[ids.FEEDBACK["pilot_share"]]["children"] == (
        "слишком большое значение: не более 99 % (от 1 до 99 %)")
    assert out[ids.FEEDBACK["seed"]]["children"] == "слишком большое значение: не более " + (
        "\u00a0".join(("9", "223", "372", "036", "854", "775", "807")))
    assert "Ничего не создано: см. сообщения у 5 полей." in _json(out[ids.CREATE_MSG])

    preview = response(call(c, web_app, PAGE, "preview", _form({
        f"{ids.PREVIEW}.n_clicks": 1, f"{ids.ACTIVE_DAYS}.value": "0",
        f"{ids.MIN_EFFECT}.value": "-1"})))
    _no_english(preview, data_words)
    assert preview[ids.FEEDBACK["population"]]["children"] == "от 1 до 3 660 дней"
    assert preview[ids.FEEDBACK["min_effect"]]["children"] == "должно быть положительным числом"

    # the estimate itself: the power card
    est = response(call(c, web_app, PAGE, "preview", _form({f"{ids.PREVIEW}.n_clicks": 1})))
    _no_english(est, data_words)
    card = _json(est[ids.PREVIEW_OUT])
    assert "Оценка мощности" in card and "Данные предпериода:" in card
    assert "Минимальный эффект, который нужно обнаружить: 100,00\u00a0₽" in card


def test_upload_check_in_russian(web_app, russian_clients, data_words):
    c = russian_clients["supervisor"]
    contents = _upload([1, "abc", 99999, 1])
    out = response(call(c, web_app, PAGE, "check_upload", {
        f"{ids.UPLOAD}.contents": contents, f"{ids.UPLOAD}.filename": "bad.csv"}))
    _no_english(out, data_words | {"abc"})  # the file's own bad value
    text = _json(out)
    assert "bad.csv: 3 ошибочные строки; пока файл не исправлен, ничего не будет создано." in text
    for expected in ("строка 3: «abc»: не число (ожидается номер участника)",
                     "строка 4: «99999»: неизвестный участник",
                     "строка 5: «1»: повтор строки 2"):
        assert expected in text, expected


@pytest.fixture
def fresh_members(web_seed) -> list[int]:
    from tests.support.factories import member

    url, _ids = web_seed
    d = _db(url)
    try:
        with d.begin() as s:
            return [member(s, f"RU-PILOT-{uuid.uuid4().hex[:12]}") for _i in range(6)]
    finally:
        d.dispose()


def test_create_start_and_cancel_in_russian(web_app, web_seed, russian_clients, data_words,
                                            fresh_members):
    url, _ids = web_seed
    c = russian_clients["supervisor"]
    contents = _upload(fresh_members)
    ok = response(call(c, web_app, PAGE, "check_upload", {
        f"{ids.UPLOAD}.contents": contents, f"{ids.UPLOAD}.filename": "ru.csv"}))
    assert "ru.csv: прочитано 6 участников." in _json(ok)

    made = response(call(c, web_app, PAGE, "create", _form({
        f"{ids.CREATE}.n_clicks": 1, f"{ids.SOURCE}.value": "file",
        f"{ids.UPLOAD}.contents": contents, f"{ids.UPLOAD}.filename": "ru.csv",
        f"{ids.RULE_SET}.value": _draft_rule_set(url)})))
    _no_english(made, data_words)
    pilot_id = made[ids.PICK]["value"]
    msg = _json(made[ids.CREATE_MSG])
    assert (f"Пилот №{pilot_id} создан как черновик: 3 участников в пилотной и 3 в контрольной "
            "группе.") in msg
    assert "Оценка мощности сохранённых групп" in _json(made[ids.PREVIEW_OUT])

    def act(button: str) -> Any:
        out = response(call(c, web_app, PAGE, "act", {
            f"{button}.n_clicks": 1, f"{ids.PICK}.value": pilot_id, f"{ids.REFRESH}.data": 0,
            f"{ids.SEND_BACK_REASON}.value": None}, changed=[f"{button}.n_clicks"]))
        _no_english(out, data_words)
        return _json(out[ids.ACTION_MSG])

    try:
        assert "Запуск запрошен. Его согласует другой супервайзер" in act(ids.START)
        assert ("принцип двух ключей: запуск должен согласовать супервайзер, который не писал "
                "правила пилота") in act(ids.START)
        assert "укажите, почему запуск возвращается" in act(ids.SEND_BACK)
        assert ("Черновик пилота отменён; его участники могут войти в другой пилот."
                in act(ids.CANCEL))
        assert (f"пилот {pilot_id} в статусе «отменено»; отменить можно только черновик"
                in act(ids.CANCEL))
    finally:
        d = _db(url)
        try:
            with d.begin() as s:
                s.query(Pilot).filter(Pilot.id == pilot_id).update({"status": "cancelled"})
        finally:
            d.dispose()


def test_the_draft_results_show_its_power_in_russian(web_app, web_seed, russian_users,
                                                     data_words, fresh_members):
    from callbacks.pilots import results_job
    from db import pilots as service
    from db.actor import Actor

    url, seeded = web_seed
    d = _db(url)
    try:
        with d.begin() as s:
            made = service.create_pilot(
                s, Actor("sue", seeded["sue"], "supervisor"), "Черновик для оценки",
                _draft_rule_set(url), member_ids=fresh_members, pilot_share=50, seed=1,
                start_at=dt.datetime(2099, 1, 1),
                planned_end_at=dt.datetime(2099, 2, 1), min_effect="100")
        name = russian_users["supervisor"]
        token = job_token(web_app, _user_id(url, name), name, "supervisor")
        out = results_job(lambda _step: None, made.pilot_id, token)
        _no_english(out, data_words)
        text = _json(out)
        assert "Этот пилот — черновик (создал sue)" in text
        assert "Оценка мощности до запуска" in text
        assert "Статус: черновик" in text
        assert "аудитория: загруженный список: 6 участников" in text
        assert "основная метрика: расходы на участника, минимальный эффект 100,00\u00a0₽" in text
    finally:
        with d.begin() as s:
            s.query(Pilot).filter(Pilot.name == "Черновик для оценки").update(
                {"status": "cancelled"})
        d.dispose()


def test_population_and_values_read_in_russian(web_app):
    import flask_babel

    from pages import pilots as page

    with web_app.server.test_request_context("/"), flask_babel.force_locale("ru"):
        assert page.population_text({
            "source": "filter", "segments": ["student", "large_family"], "tiers": ["Gold"],
            "joined_from": "2025-01-31", "joined_to": None, "active_within_days": 30,
        }) == ("сегменты: студенты, многодетные семьи; уровни: Gold; регистрация с 31.01.2025 "
               "по …; с заказами за последние 30 дн.")
        assert page.population_text({"source": "filter"}) == "все активные участники"
        assert page.value("active_rate", 0.021, "RUB", signed=True) == "+2,1 п. п."
        assert page.value("spend_per_member", 1234.5, "RUB") == "1\u00a0234,50\u00a0₽"
        assert page.value("orders_per_member", 0.125, "RUB", unit=True) == "0,125 заказа"
        assert page.p_value(0.0004) == "< 0,001"
    with web_app.server.test_request_context("/"), flask_babel.force_locale("en"):
        assert page.population_text({
            "source": "filter", "segments": ["student"], "active_within_days": 30,
        }) == "segments students; ordered in the last 30 days"
        assert page.value("spend_per_member", 1234.5, "RUB", signed=True) == "+1,234.50 RUB"
