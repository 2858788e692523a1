"""The members, adjustment request and approvals callbacks answer a user who
chose Russian in Russian: search summaries and refusals, the profile and its
tabs, the ledger's count and kinds, the request form's messages next to the
fields and its confirmation, the queue, the decision panel, approvals,
rejections and four-eyes refusals, the history and its empty state. Grid cell
values (not covered by the scanner) are checked here too."""

from __future__ import annotations

import re
from typing import Any

import pytest
from sqlalchemy import select

from db import adjustments as adj
from db import clock, ledger, users
from db.actor import Actor
from db.models import AdjustmentRequest, StaffUser
from db.session import Database
from tests.support.i18n_scan import data_words as program_words
from tests.support.i18n_scan import english_in, english_words
from tests.support.web import call, login, response
from tests.support.web import submit_adjustment as submit

PASSWORD = "russian-adjust-pass-1"
MEMBERS = "callbacks.members"
REQUEST = "callbacks.adjustments_request"
REVIEW = "callbacks.adjustments_review"


@pytest.fixture(scope="module")
def ru(web_seed):
    """Russian-speaking staff (support, two supervisors) and a member with 1,000 points."""
    url, _ids = web_seed
    d = Database(url)
    people = {}
    with d.begin() as s:
        for key, username, role in (("support", "ruadjsupport", "support"),
                                    ("supervisor", "ruadjsuper", "supervisor"),
                                    ("supervisor2", "ruadjsuper2", "supervisor")):
            u = s.scalar(select(StaffUser).where(StaffUser.username == username))
            uid = u.id if u is not None else users.create_user(
                s, username, PASSWORD, role, full_name="Пётр Петров").id
            users.set_language(s, uid, "ru", actor=username)
            people[key] = Actor(username, uid, role)
        m = ledger.create_member(s, "C9000001", clock.utcnow(), name="Ольга Орлова",
                                 email="olga@example.com", phone="+79995554433")
    r = adj.request_adjustment(d, people["support"], m, 1000, "goodwill", "начальный баланс")
    adj.approve_adjustment(d, people["supervisor"], r.id)
    yield {"db": d, "member": m, **people}
    with d.read() as s:
        pending = s.execute(select(AdjustmentRequest.id, AdjustmentRequest.requested_by_id)
                            .where(AdjustmentRequest.status == "pending")).all()
    for rid, by in pending:
        adj.cancel_adjustment(d, Actor("requester", by, "support"), rid)
    d.dispose()


@pytest.fixture
def data_words(web_seed, ru) -> set[str]:
    """Names and what staff typed, which the pages show as they are (read for
    each test: tests of other modules add their own on the same database)."""
    return program_words(web_seed[0])


def as_user(web_app, actor: Actor):
    """A fresh test client signed in as ``actor``."""
    client = web_app.server.test_client()
    r = login(client, actor.name, PASSWORD)
    assert r.status_code == 302, r.status_code
    return client


def russian(out: Any, data_words: set[str]) -> None:
    found = english_in(out, data_words)
    assert found == {}, found


def cells(rows: list[dict[str, Any]], *fields: str) -> list[str]:
    return [str(r[f]) for r in rows for f in fields]


def no_english_cells(rows: list[dict[str, Any]], data_words: set[str], *fields: str) -> None:
    bad = {c: english_words(c, data_words) for c in cells(rows, *fields)}
    assert not {c: w for c, w in bad.items() if w}, bad


# ------------------------------------------------------------------ members


def test_member_search_in_russian(web_app, ru, data_words):
    client = as_user(web_app, ru["support"])
    values = {"members-grid.getRowsRequest": {"startRow": 0, "endRow": 100},
              "members-query.value": "ольга", "members-field.value": "auto"}
    out = response(call(client, web_app, MEMBERS, "search", values))
    russian(out, data_words)
    assert out["members-count"]["children"] == (
        "Участники: имя начинается с «ольга» (или такой ID клиента). "
        "Нажмите на строку, чтобы открыть профиль.")
    rows = out["members-grid"]["getRowsResponse"]["rowData"]
    assert [r["status"] for r in rows] == ["активен"]
    out = response(call(client, web_app, MEMBERS, "search",
                        values | {"members-query.value": "Щщщщ"}))
    russian(out, data_words)
    assert out["members-count"]["children"].startswith("Участники не найдены: нет ни одного")
    bad = response(call(client, web_app, MEMBERS, "search",
                        values | {"members-query.value": "+79", "members-field.value": "phone"}))
    russian(bad, data_words)
    assert bad["members-query-feedback"]["children"] == "введите не менее 3 цифр номера телефона"
    newest = response(call(client, web_app, MEMBERS, "search",
                           values | {"members-query.value": ""}))
    russian(newest, data_words)


def test_profile_tabs_and_ledger_in_russian(web_app, ru, data_words):
    d, m = ru["db"], ru["member"]
    other = None
    with d.begin() as s:
        other = ledger.create_member(s, "C9000002", clock.utcnow(), name="Иван Иванов")
    ledger.transfer(d, m, other, 10, key="ru-adj-transfer")
    pending = adj.request_adjustment(d, ru["support"], m, 7, "missing_accrual", "заказ 77")
    client = as_user(web_app, ru["support"])
    out = response(call(client, web_app, MEMBERS, "profile", {"members-selected.data": m}))
    russian(out, data_words)
    card = str(out["members-profile"]["children"])
    assert "990 баллов" in card and "Запрос корректировки" in card and "Баланс" in card
    assert "Сегмент" in card and "активен" in card
    assert "отправлено" in str(out["members-transfers"]["children"])
    tab = str(out["members-adjustments"]["children"])
    assert "Пропущенное начисление" in tab and "на согласовании" in tab
    assert out["members-orders"]["children"]["props"]["children"] == "Заказов пока нет."
    led = response(call(client, web_app, MEMBERS, "ledger",
                        {"members-ledger-grid.getRowsRequest": {"startRow": 0, "endRow": 100},
                         "members-selected.data": m, "members-ledger-kind.value": "all"}))
    russian(led, data_words)
    assert led["members-ledger-count"]["children"] == (
        "2 операции; в столбце баланса — баланс после каждой операции.")
    rows = led["members-ledger-grid"]["getRowsResponse"]["rowData"]
    assert {r["kind"] for r in rows} == {"корректировка", "перевод"}
    led = response(call(client, web_app, MEMBERS, "ledger",
                        {"members-ledger-grid.getRowsRequest": {"startRow": 0, "endRow": 100},
                         "members-selected.data": m, "members-ledger-kind.value": "expiry"}))
    assert led["members-ledger-count"]["children"] == "Операций вида «сгорание» пока нет."
    none = response(call(client, web_app, MEMBERS, "profile", {"members-selected.data": None}))
    russian(none, data_words)
    missing = response(call(client, web_app, MEMBERS, "profile",
                            {"members-selected.data": 10**9}))
    russian(missing, data_words)
    assert f"Участника {10**9} не существует." in str(missing["members-profile"]["children"])
    adj.cancel_adjustment(d, ru["support"], pending.id)


# ------------------------------------------------------------------ the request form


def feedback(out: dict[str, Any]) -> dict[str, str]:
    return {k.split("-", 1)[1].removesuffix("-feedback"): v["children"]
            for k, v in out.items() if k.endswith("-feedback") and v["children"]}


def result(out: dict[str, Any]) -> str:
    return out["adjreq-result"]["children"]["props"]["children"]


def test_request_form_in_russian(web_app, ru, data_words):
    client = as_user(web_app, ru["support"])
    m = str(ru["member"])
    info = response(call(client, web_app, REQUEST, "member_info", {"adjreq-member.value": m}))
    russian(info, data_words)
    assert "согласуют два супервайзера" in info["adjreq-limits"]["children"]
    assert "баллов" in str(info["adjreq-member-info"]["children"])
    unknown = response(call(client, web_app, REQUEST, "member_info",
                            {"adjreq-member.value": "nobody"}))
    russian(unknown, data_words | {"nobody"})
    good = {"member": m, "points": "+25", "reason": "goodwill", "comment": "посылка опоздала",
            "ticket": "T-1"}
    cases = [
        ({"member": "nobody"}, "member", "нет участника с ID участника или ID клиента «nobody»"),
        ({"member": ""}, "member", "введите ID участника или ID клиента"),
        ({"points": "abc"}, "points",
         "нужно целое число баллов, например 500, чтобы начислить, или -200, чтобы списать"),
        ({"points": ""}, "points", "введите баллы: например, 500 или -200"),
        ({"points": "0"}, "points",
         "должно быть целым ненулевым числом («+» начисляет, «-» списывает)"),
        ({"reason": ""}, "reason", "выберите причину из списка"),
        ({"comment": " "}, "comment", "обязательно: укажите, почему баланс неверен"),
        ({"ticket": "X" * 65}, "ticket", "слишком длинно: не более 64 символов"),
        ({"entry": 10**9}, "entry",
         f"записи {10**9} нет в журнале операций этого участника"),
    ]
    for change, field, message in cases:
        out = submit(client, web_app, **(good | change))
        russian(out, data_words | {"nobody"})
        assert feedback(out) == {field: message}, (change, feedback(out))
        assert result(out) == "Заявка не подана: исправьте 1 отмеченное поле.", change
    out = submit(client, web_app, **(good | {"points": "-2000"}))
    russian(out, data_words)
    assert feedback(out)["points"] == ("у участника баллов: 990; списание 2\xa0000 сделает "
                                       "баланс отрицательным")
    out = submit(client, web_app, **(good | {"comment": "я" * 1001}))
    assert feedback(out) == {"comment": "слишком длинно: не более 1\xa0000 символов (сейчас "
                                        "1\xa0001)"}
    out = submit(client, web_app, **(good | {"points": "", "comment": "", "reason": ""}))
    assert result(out) == "Заявка не подана: исправьте 3 отмеченных поля."
    out = submit(client, web_app, **(good | {"points": "60000"}))
    russian(out, data_words)
    assert result(out) == ("Заявка не подана: корректировки больше 50\xa0000 баллов может "
                           "запрашивать только супервайзер")
    out = submit(client, web_app, **good)
    russian(out, data_words)
    assert feedback(out) == {}
    assert re.fullmatch(r"Заявка №\d+ подана \(баллы: \+25\) и ждёт одного согласования от "
                        r"другого супервайзера \(не вас\)\.", result(out)), result(out)
    mine = response(call(client, web_app, REQUEST, "my_requests",
                         {"adjreq-status.value": None, "adjreq-version.data": 1}))
    russian(mine, data_words)
    rows = mine["adjreq-table"]["rowData"]
    assert {r["status"] for r in rows} >= {"на согласовании", "согласовано"}
    assert {r["reason"] for r in rows} >= {"Жест доброй воли", "Пропущенное начисление"}
    no_english_cells(rows, data_words, "status", "reason", "decided")
    none = response(call(client, web_app, REQUEST, "my_requests",
                         {"adjreq-status.value": "rejected", "adjreq-version.data": 1}))
    assert none["adjreq-summary"]["children"]["props"]["children"] == (
        "У вас нет заявок на корректировку со статусом «отклонено».")
    cancel = {"adjreq-cancel.n_clicks": 1, "adjreq-cancel-version.data": 0}
    out = response(call(client, web_app, REQUEST, "cancel",
                        cancel | {"adjreq-table.selectedRows": []}, ["adjreq-cancel.n_clicks"]))
    russian(out, data_words)
    assert out["adjreq-cancel-result"]["children"]["props"]["children"] == (
        "Сначала выберите одну из своих заявок, ожидающих решения.")
    pending = next(r["id"] for r in rows if r["status"] == "на согласовании")
    out = response(call(client, web_app, REQUEST, "cancel",
                        cancel | {"adjreq-table.selectedRows": [{"id": pending}]},
                        ["adjreq-cancel.n_clicks"]))
    assert out["adjreq-cancel-result"]["children"]["props"]["children"] == (
        f"Заявка №{pending} отозвана.")
    again = response(call(client, web_app, REQUEST, "cancel",
                          cancel | {"adjreq-table.selectedRows": [{"id": pending}]},
                          ["adjreq-cancel.n_clicks"]))
    russian(again, data_words)
    assert again["adjreq-cancel-result"]["children"]["props"]["children"] == (
        f"Не отозвано: заявка {pending} уже отозвана")


# ------------------------------------------------------------------ approvals


def decide(client, app, name: str, request_id: int, reason: str | None = None
           ) -> dict[str, Any]:
    values = {f"adjreview-{name}.n_clicks": 1, "adjreview-selected.data": request_id,
              "adjreview-reject-reason.value": reason, "adjreview-version.data": 0}
    return response(call(client, app, REVIEW, name, values, [f"adjreview-{name}.n_clicks"]))


def decision(out: dict[str, Any]) -> str:
    return out["adjreview-decision"]["children"]["props"]["children"]


def test_queue_detail_and_decisions_in_russian(web_app, ru, data_words):
    d, m = ru["db"], ru["member"]
    theirs = adj.request_adjustment(d, ru["support"], m, 40, "wrong_accrual", "заказ 12")
    own = adj.request_adjustment(d, ru["supervisor"], m, 5, "other", "моя заявка")
    client = as_user(web_app, ru["supervisor"])
    queue = response(call(client, web_app, REVIEW, "queue", {}))
    russian(queue, data_words)
    assert "ждут решения, сначала самые старые" in queue["adjreview-queue-count"]["children"]
    rows = queue["adjreview-queue"]["rowData"]
    no_english_cells(rows, data_words, "reason", "approvals")
    assert {r["approvals"] for r in rows} == {"0 из 1"}
    detail = response(call(client, web_app, REVIEW, "detail",
                           {"adjreview-queue.selectedRows": [{"id": own.id}]},
                           ["adjreview-queue.selectedRows"]))
    russian(detail, data_words)
    body = str(detail["adjreview-detail"]["children"])
    assert "Это ваша заявка: решение должен принять другой супервайзер." in body
    assert "Последние операции" in body and "Баланс сейчас" in body
    # four eyes: one's own request is refused in Russian
    out = decide(client, web_app, "approve", own.id)
    russian(out, data_words)
    assert decision(out) == ("Не согласовано: нельзя согласовать собственную заявку: это должен "
                             "сделать другой супервайзер")
    out = decide(client, web_app, "approve", theirs.id)
    russian(out, data_words)
    assert decision(out) == (f"Заявка №{theirs.id} согласована: в журнал операций участника "
                             "записана одна операция (баллы: +40).")
    out = decide(client, web_app, "approve", theirs.id)
    assert decision(out) == f"Не согласовано: заявка {theirs.id} уже согласована"
    # a rejection needs a reason, asked for next to the field
    out = decide(client, web_app, "reject", own.id, "")
    russian(out, data_words)
    assert out["adjreview-reject-feedback"]["children"] == "укажите, почему заявка отклонена"
    out = decide(client, web_app, "reject", own.id, "дубликат")
    assert decision(out) == ("Не отклонено: нельзя принимать решение по собственной заявке: это "
                             "должен сделать другой супервайзер")
    client = as_user(web_app, ru["supervisor2"])
    out = decide(client, web_app, "reject", own.id, "дубликат")
    russian(out, data_words)
    assert decision(out) == (f"Заявка №{own.id} отклонена. В журнал операций ничего не "
                             "записано.")


def test_two_approvals_and_a_refused_balance_in_russian(web_app, ru, data_words):
    d, m = ru["db"], ru["member"]
    big = adj.request_adjustment(d, ru["supervisor2"], m, 20_000, "goodwill", "крупная")
    drain = adj.request_adjustment(d, ru["support"], m, -900, "fraud_reversal", "возвратный")
    ledger.redeem(d, m, 200, key="ru-adj-spent")
    client = as_user(web_app, ru["supervisor"])
    detail = response(call(client, web_app, REVIEW, "detail",
                           {"adjreview-queue.selectedRows": [{"id": drain.id}]},
                           ["adjreview-queue.selectedRows"]))
    russian(detail, data_words)
    assert "поэтому согласование будет отклонено" in str(detail["adjreview-detail"]["children"])
    out = decide(client, web_app, "approve", drain.id)
    russian(out, data_words)
    assert decision(out).startswith(f"Не согласовано: нельзя согласовать заявку {drain.id}: ")
    assert "Ничего не записано; отклоните её или попросите подать новую." in decision(out)
    out = decide(client, web_app, "approve", big.id)
    russian(out, data_words)
    assert decision(out) == (f"Заявка №{big.id}: первое согласование учтено. Прежде чем что-то "
                             "будет записано, её должен согласовать второй супервайзер.")
    out = decide(client, web_app, "reject", big.id, "нет")
    assert decision(out) == ("Не отклонено: вы уже дали первое согласование по этой заявке: "
                             "решение должен принять другой супервайзер")
    for r in (big, drain):
        adj.reject_adjustment(d, ru["supervisor2"] if r is drain else
                              Actor("sue", _sue(d), "supervisor"), r.id, "тест")


def _sue(d: Database) -> int:
    with d.read() as s:
        return s.scalar(select(StaffUser.id).where(StaffUser.username == "sue"))


def test_history_in_russian(web_app, ru, data_words):
    client = as_user(web_app, ru["supervisor"])
    out = response(call(client, web_app, REVIEW, "history", {}))
    russian(out, data_words)
    grid = out["adjreview-grid"]["children"]["props"]
    assert [c["headerName"] for c in grid["columnDefs"]][:4] == [
        "#", "Подана (UTC)", "Кто запросил", "Участник"]
    no_english_cells(grid["rowData"], data_words, "status", "reason", "decided")
    assert grid["dashGridOptions"]["localeText"]["noRowsToShow"] == "Нет заявок для показа."
    assert out["adjreview-summary"]["children"].split(":")[0].endswith(("заявка", "заявки",
                                                                        "заявок"))
    empty = response(call(client, web_app, REVIEW, "history",
                          {"adjreview-status.value": "cancelled",
                           "adjreview-reason.value": "transfer_dispute"}))
    russian(empty, data_words)
    assert "Нет заявок на корректировку по этим фильтрам." in str(empty["adjreview-grid"])
    bad = response(call(client, web_app, REVIEW, "history",
                        {"adjreview-dates.start_date": "2026-02-01",
                         "adjreview-dates.end_date": "2026-01-01"}))
    assert bad["adjreview-dates-feedback"]["children"] == "дата начала позже даты окончания"
    staff = response(call(client, web_app, REVIEW, "staff_options", {}))
    labels = [o["label"] for o in staff["adjreview-requester"]["options"]]
    assert "ruadjsupport (Поддержка)" in labels and "ruadjsuper (Супервайзер)" in labels


def test_export_headers_in_russian(web_app, ru):
    client = as_user(web_app, ru["supervisor"])
    out = response(call(client, web_app, REVIEW, "export_csv",
                        {"adjreview-export.n_clicks": 1, "adjreview-status.value": "approved"},
                        ["adjreview-export.n_clicks"]))
    header = out["adjreview-download"]["data"]["content"].splitlines()[0]
    assert header.startswith("№ заявки,Подана (UTC),Автор заявки,ID участника,ID клиента,")
    assert not english_words(header), header
