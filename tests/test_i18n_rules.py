"""The tier rules page's callbacks answer a supervisor who chose Russian in
Russian: the editor, its refusals, the diff, the review, the decision, the
rollback, the expiry proposal, the simulation and the tier pass (their
outputs are not in the page's layout, which tests/test_i18n_pages.py checks)."""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

import pytest
from sqlalchemy import select

from db import program, rule_review, rules, users
from db.actor import Actor
from db.models import Member, ProgramSettings, RuleSet, SettingsChange, StaffUser, Tier
from db.session import Database
from tests.support.factories import DEFAULT_TIERS, simulated
from tests.support.i18n_scan import english_in
from tests.support.web import UPDATE, callback_body, job_token, login
from tests.support.web import rules_key as key_of

PASSWORD = "russian-rules-pass-1"
NBSP = "\u00a0"


@pytest.fixture(scope="module")
def web_db(web_seed):
    url, _ids = web_seed
    d = Database(url)
    yield d
    d.dispose()


@pytest.fixture(scope="module")
def russians(web_db) -> dict[str, int]:
    """Two supervisors and an executive who chose Russian: {username: id}."""
    out = {}
    with web_db.begin() as s:
        for username, role in (("rurulesa", "supervisor"), ("rurulesb", "supervisor"),
                               ("rurulesexec", "executive")):
            u = s.scalar(select(StaffUser).where(StaffUser.username == username))
            if u is None:
                u = users.create_user(s, username, PASSWORD, role, full_name="Иван Петров")
            users.set_language(s, u.id, "ru", actor=username)
            out[username] = u.id
    return out


def signed_in(web_app, username: str):
    client = web_app.server.test_client()
    assert login(client, username, PASSWORD).status_code == 302
    return client


def english(web_db, tree: Any) -> dict[str, list[str]]:
    """English left in ``tree``, the program's own names (data) aside."""
    words: set[str] = set()
    with web_db.read() as s:
        for text in [*s.scalars(select(Member.name)), *s.scalars(select(RuleSet.name)),
                     *s.scalars(select(Tier.name))]:
            words.update(re.findall(r"[\w'’]+", text or ""))  # "Sue's" as the scanner reads it
        for u in s.scalars(select(StaffUser)):
            words.update(re.findall(r"\w+", f"{u.username} {u.full_name or ''}"))
    return english_in(tree, words)


def post(client, web_app, fn_name: str, values: dict[str, Any], changed: str) -> dict:
    b = callback_body(web_app, key_of(web_app, fn_name), values, [changed])
    for o in b["outputs"] if isinstance(b["outputs"], list) else [b["outputs"]]:
        o["property"] = o["property"].split("@", 1)[0]
    r = client.post(UPDATE, json=b)
    assert r.status_code == 200, (r.status_code, r.get_data(as_text=True)[:500])
    return r.get_json()["response"]


def text_of(tree: Any) -> str:
    return json.dumps(tree, ensure_ascii=False)


def draft_of(web_db, user_id: int, name: str, *, submit: bool = False) -> int:
    def tx(s):
        u = users.get_user(s, user_id)
        actor = Actor(u.username, u.id, u.role)
        rid = rules.create_draft(s, actor, name, DEFAULT_TIERS, note="повышаем ставки")
        if submit:
            simulated(s, actor, rid)
            rule_review.submit(s, actor, rid)
        return rid

    return web_db.write_tx(tx)


def in_force_id(web_db) -> int:
    with web_db.read() as s:
        return rules.rules_in_force(s).rule_set_id


# ---------------------------------------------------------------- reads


def test_versions_and_a_version_read_in_russian(web_app, web_db, russians):
    client = signed_in(web_app, "rurulesa")
    data = post(client, web_app, "load_versions", {}, "rules-saved.data")
    assert english(web_db, data) == {}
    labels = [o["label"] for o in data["rules-version"]["options"]]
    assert sum(x.endswith("— действует") for x in labels) == 1

    live = in_force_id(web_db)
    data = post(client, web_app, "show_version", {"rules-version.value": live},
                "rules-version.value")
    assert english(web_db, data) == {}
    info = text_of(data["rules-version-info"])
    assert ("Статус этой версии — «действует»: после отправки версия не редактируется."
            in info)
    assert [o["label"] for o in data["rules-window-mode"]["options"]] == [
        "за всё время", "скользящее окно (дней)"]
    headers = [c["headerName"] for c in data["rules-grid"]["columnDefs"]]
    assert headers[0] == "Уровень" and headers[2] == "Начисление, %"


def test_an_executive_reads_why_nothing_is_editable(web_app, web_db, russians):
    client = signed_in(web_app, "rurulesexec")
    data = post(client, web_app, "show_version", {"rules-version.value": in_force_id(web_db)},
                "rules-version.value")
    assert english(web_db, data) == {}
    assert ("Только просмотр: руководители видят правила, изменяют их супервайзеры."
            in text_of(data["rules-version-info"]))


def test_a_draft_of_another_supervisor_says_whose_it_is(web_app, web_db, russians):
    rid = draft_of(web_db, russians["rurulesa"], "Чужой черновик")
    client = signed_in(web_app, "rurulesb")
    data = post(client, web_app, "show_version", {"rules-version.value": rid},
                "rules-version.value")
    assert english(web_db, data) == {}
    assert ("Этот черновик принадлежит пользователю rurulesa: редактировать его может "
            "только автор." in text_of(data["rules-version-info"]))


def test_diff_in_russian(web_app, web_db, russians):
    rid = draft_of(web_db, russians["rurulesa"], "Для сравнения")
    client = signed_in(web_app, "rurulesexec")
    data = post(client, web_app, "show_diff",
                {"rules-diff-a.value": in_force_id(web_db), "rules-diff-b.value": rid},
                "rules-diff-b.value")
    assert english(web_db, data) == {}
    out = text_of(data)
    assert "Порог трат #" in out and "(черновик)" in out
    data = post(client, web_app, "show_diff", {"rules-diff-a.value": rid,
                                               "rules-diff-b.value": None},
                "rules-diff-b.value")
    assert text_of(data["rules-diff"]).count("Выберите две версии для сравнения.") == 1


# ---------------------------------------------------------------- the editor


def test_refused_save_names_every_problem_in_russian(web_app, web_db, russians):
    rid = draft_of(web_db, russians["rurulesa"], "Правка")
    client = signed_in(web_app, "rurulesa")
    rows = [{"name": "Bronze", "threshold": "0", "accrual_rate": "1", "referral_rate": "0,5",
             "rid": "a"},
            {"name": "Silver", "threshold": "0", "accrual_rate": "300", "referral_rate": "1",
             "rid": "b"}]
    values = {"rules-version.value": rid, "rules-grid.virtualRowData": rows,
              "rules-name.value": "", "rules-note.value": "", "rules-point-value.value": "0",
              "rules-window-mode.value": "rolling", "rules-window-days.value": "пять"}
    data = post(client, web_app, "save_draft", values, "rules-save.n_clicks")
    assert english(web_db, data) == {}
    grid = data["rules-grid"]["rowData"]
    assert grid[1]["_err_threshold"] == "должен быть больше порога предыдущего уровня (0,00)"
    assert grid[1]["_err_accrual_rate"] == "слишком большое значение: не более 100 %"
    assert "; Порог трат: должен быть больше порога" in grid[1]["problems"]
    assert data["rules-problems"]["data"] == {
        "name": "обязательное поле", "point_value": "должно быть больше 0",
        "tier_window_days": f"пять — не целое число дней: введите число от 1 до 3{NBSP}660"}
    listed = text_of(data["rules-edit-result"])
    assert "Не сохранено: сначала исправьте ошибки." in listed
    assert "Уровень 2, Порог трат: должен быть больше порога предыдущего уровня (0,00)" in listed

    # saved, not submitted: the new content has not been simulated
    rows[1].update(threshold="2500", accrual_rate="3,5")
    values.update({"rules-name.value": "Правка 2", "rules-point-value.value": "0,50",
                   "rules-window-days.value": "365"})
    data = post(client, web_app, "save_draft", values, "rules-submit.n_clicks")
    assert english(web_db, data) == {}
    assert (f"Черновик сохранён, но не отправлен. #{rid} не отправлена: сначала запустите её "
            "симуляцию (вкладка «Симуляция»)." in text_of(data["rules-edit-result"]))

    # a plain save of the same content
    data = post(client, web_app, "save_draft", values, "rules-save.n_clicks")
    assert "Черновик сохранён." in text_of(data["rules-edit-result"])


def test_simulation_then_submit_in_russian(web_app, web_db, russians):
    rid = draft_of(web_db, russians["rurulesa"], "С симуляцией")
    web_db.write_tx(lambda s: simulated(s, Actor("rurulesa", russians["rurulesa"],
                                                 "supervisor"), rid))
    client = signed_in(web_app, "rurulesa")
    values = {"rules-version.value": rid, "rules-grid.virtualRowData": rules.tier_rows(
        _rules_of(web_db, rid)), "rules-name.value": "С симуляцией", "rules-note.value": "",
        "rules-point-value.value": "1,00", "rules-window-mode.value": "lifetime"}
    data = post(client, web_app, "save_draft", values, "rules-submit.n_clicks")
    assert english(web_db, data) == {}
    assert ("Сохранено и отправлено: теперь другой супервайзер может согласовать версию "
            "(вкладка «Согласование»)." in text_of(data["rules-edit-result"]))


def _find(tree: Any, component_id: str) -> Any:
    """The component of ``tree`` (JSON) with id ``component_id``."""
    if isinstance(tree, dict):
        if tree.get("props", {}).get("id") == component_id:
            return tree
        children = list(tree.values())
    elif isinstance(tree, list):
        children = tree
    else:
        return None
    return next((x for x in (_find(c, component_id) for c in children) if x is not None), None)


def _rules_of(web_db, rid: int):
    with web_db.read() as s:
        return rules.get_rules(s, rid)


# ---------------------------------------------------------------- approval


def test_review_and_decisions_in_russian(web_app, web_db, russians):
    rid = draft_of(web_db, russians["rurulesa"], "На согласование", submit=True)
    author = signed_in(web_app, "rurulesa")
    data = post(author, web_app, "show_review", {"rules-pending-grid.selectedRows": [{"id": rid}]},
                "rules-pending-grid.selectedRows")
    assert english(web_db, data) == {}
    review = text_of(data["rules-review"])
    assert "Изменения относительно действующей версии" in review
    assert "Симуляцию запустил(а) rurulesa" in review
    hint = post(author, web_app, "show_review", {"rules-pending-grid.selectedRows": []},
                "rules-pending-grid.selectedRows")
    assert english(web_db, hint) == {}

    when = (dt.datetime.now(dt.UTC) + dt.timedelta(days=4000 + rid)).strftime("%Y-%m-%dT%H:%M")
    values = {"rules-pending-grid.selectedRows": [{"id": rid}], "rules-effective-at.value": when,
              "rules-decision-note.value": ""}
    data = post(author, web_app, "decide", values, "rules-approve.n_clicks")
    assert english(web_db, data) == {}
    assert ("автор версии правил не может её согласовать: это должен сделать другой "
            "супервайзер" in text_of(data["rules-decide-result"]))

    other = signed_in(web_app, "rurulesb")
    data = post(other, web_app, "decide", {**values, "rules-effective-at.value":
                                           "2020-01-01T00:00"}, "rules-approve.n_clicks")
    assert data["rules-effective-feedback"]["children"] == "не может быть в прошлом"
    data = post(other, web_app, "decide", {**values, "rules-pending-grid.selectedRows": []},
                "rules-approve.n_clicks")
    assert "Сначала выберите отправленную версию в таблице." in text_of(data)
    data = post(other, web_app, "decide", {**values, "rules-decision-note.value": " "},
                "rules-reject.n_clicks")
    assert data["rules-decision-note-feedback"]["children"] == "укажите причину отклонения версии"

    data = post(other, web_app, "decide", values, "rules-approve.n_clicks")
    assert english(web_db, data) == {}
    day = dt.datetime.fromisoformat(when)
    assert (f"#{rid} согласована: вступает в силу {day:%d.%m.%Y %H:%M} UTC; заказы, "
            "оплаченные с этого момента, начисляются по ней."
            in text_of(data["rules-decide-result"]))
    data = post(other, web_app, "load_versions", {}, "rules-decided.data")
    assert english(web_db, data) == {}
    assert any(o["label"] == f"#{rid} На согласование — запланирована"
               for o in data["rules-version"]["options"])


def test_rollback_in_russian(web_app, web_db, russians):
    client = signed_in(web_app, "rurulesb")
    data = post(client, web_app, "copy_version", {"rules-history-grid.selectedRows": []},
                "rules-rollback.n_clicks")
    assert ("Сначала выберите в таблице истории версию, к которой нужно откатиться."
            in text_of(data))
    live = in_force_id(web_db)
    data = post(client, web_app, "copy_version",
                {"rules-history-grid.selectedRows": [{"id": live}]}, "rules-rollback.n_clicks")
    assert english(web_db, data) == {}
    new_id = data["rules-copied"]["data"]["select"]
    assert (f"Черновик отката #{new_id} создан из #{live}: отредактируйте его, запустите "
            "симуляцию и отправьте на согласование." in text_of(data["rules-copy-result"]))
    with web_db.read() as s:
        assert s.get(RuleSet, new_id).name.startswith(f"Откат к #{live} ")
    data = post(client, web_app, "copy_version", {"rules-version.value": 10**9},
                "rules-new-draft.n_clicks")
    assert f"версия правил {10**9} не существует" in text_of(data["rules-copy-result"])


# ---------------------------------------------------------------- expiry


def test_expiry_proposal_and_refusal_in_russian(web_app, web_db, russians):
    with web_db.read() as s:
        before = program.program_info(s).expiry_days
    a = signed_in(web_app, "rurulesa")
    data = post(a, web_app, "propose_expiry", {"rules-expiry-days.value": "0",
                                               "rules-expiry-never.value": False},
                "rules-expiry-save.n_clicks")
    assert data["rules-expiry-feedback"]["children"] == f"не менее 1 дня (не более 3{NBSP}660)"
    days = 700 if before != 700 else 701
    data = post(a, web_app, "propose_expiry", {"rules-expiry-days.value": str(days),
                                               "rules-expiry-never.value": False},
                "rules-expiry-save.n_clicks")
    assert english(web_db, data) == {}
    assert ("Предложено: баллы сгорают через 700 дней. Согласует другой супервайзер."
            in text_of(data) or "Предложено: баллы сгорают через 701 день." in text_of(data))
    try:
        shown = post(a, web_app, "show_expiry_proposal", {"rules-expiry-changed.data": 1},
                     "rules-expiry-changed.data")
        assert english(web_db, shown) == {}
        assert ("Вы предложили это изменение: согласовать или отклонить его должен другой "
                "супервайзер." in text_of(shown))
        data = post(a, web_app, "decide_expiry", {"rules-expiry-reason.value": ""},
                    "rules-expiry-approve.n_clicks")
        assert ("принцип четырёх глаз: супервайзер, предложивший изменение настроек, не может "
                "его согласовать" in text_of(data))
        b = signed_in(web_app, "rurulesb")
        data = post(b, web_app, "decide_expiry", {"rules-expiry-reason.value": ""},
                    "rules-expiry-reject.n_clicks")
        assert "укажите причину отклонения изменения" in text_of(data)
        data = post(b, web_app, "decide_expiry", {"rules-expiry-reason.value": "рано"},
                    "rules-expiry-reject.n_clicks")
        assert english(web_db, data) == {}
        assert "Отклонено: срок действия баллов не изменился." in text_of(data)
    finally:
        with web_db.begin() as s:  # nothing left waiting for the other tests
            for c in s.scalars(select(SettingsChange).where(SettingsChange.status == "pending")):
                c.status = "rejected"
            assert s.get(ProgramSettings, 1).expiry_days == before


# ---------------------------------------------------------------- background jobs


def test_simulation_job_answers_in_its_users_language(web_app, web_db, russians):
    from callbacks.rules import simulation_job

    rid = draft_of(web_db, russians["rurulesa"], "Симуляция")
    token = job_token(web_app, russians["rurulesexec"], "rurulesexec", "executive")
    steps: list[Any] = []
    out = json.loads(json.dumps(simulation_job(steps.append, rid, 30, token),
                                default=lambda o: o.to_plotly_json()))
    refused = json.loads(json.dumps(simulation_job(steps.append, rid, "0", token),
                                    default=lambda o: o.to_plotly_json()))
    assert english(web_db, out) == {}
    text = text_of(out)
    assert "участников получат более высокую ставку начисления" in text
    assert "Участники по уровням, сейчас → по черновику" in text
    assert "Начислено баллов за последние 30 дней" in text
    assert steps[-1] == (100, "100 % готово")
    by_day = _find(out, "rules-sim-by-day")["props"]["figure"]
    assert by_day["layout"]["xaxis"]["tickformat"] == "%d.%m"  # no English month names
    assert [tr["name"] for tr in by_day["data"]] == ["текущие правила", "черновик"]
    assert english(web_db, refused) == {}
    assert "Период заказов, дней: не менее 1 дня (не более 3" in text_of(refused)


def test_tier_pass_answers_in_its_users_language(web_app, web_db, russians):
    from callbacks.rules import reevaluate_job

    token = job_token(web_app, russians["rurulesa"], "rurulesa", "supervisor")
    live = in_force_id(web_db)
    done = json.loads(json.dumps(reevaluate_job(live, token),
                                 default=lambda o: o.to_plotly_json()))
    none = json.loads(json.dumps(reevaluate_job(None, token),
                                 default=lambda o: o.to_plotly_json()))
    assert english(web_db, done) == {} and english(web_db, none) == {}
    assert f"Уровни пересчитаны по #{live}: уровень изменился у" in text_of(done)
    assert ("Действующей версии нет: уровни пересчитывать не по чему."
            in text_of(none))
