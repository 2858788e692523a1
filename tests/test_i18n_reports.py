"""The overview, live metrics and audit log as a user who chose Russian:
what their callbacks send back (KPI grids, charts, tiles, audit entries,
refusals, the CSV export) has no English left, and says it in Russian."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from typing import Any

import pytest
from sqlalchemy import select

from db.models import StaffUser
from db.session import Database
from pages.audit import Audit as audit_ids
from pages.live import KEYS
from pages.live import Live as live_ids
from pages.overview import Overview as ov_ids
from tests.support.i18n_scan import english_in
from tests.support.web import (
    UPDATE,
    _overview_token,
    _poll,
    callback_body,
    job_token,
    key_for,
    key_of,
)

NBSP = "\u00a0"


def plain(text: str) -> str:
    return text.replace(NBSP, " ").replace("\u202f", " ")


def rows_text(rows: list[dict[str, Any]], fields: tuple[str, ...]) -> list[str]:
    """The cells a user reads in a grid's rows (the scanner skips rowData)."""
    return [str(r[f]) for r in rows for f in fields if r.get(f)]


# ---------------------------------------------------------------- overview


@pytest.fixture(scope="module")
def overview_ru(web_app, russian_clients) -> dict[str, Any]:
    """The overview job's answer for twelve months, as the Russian executive."""
    client = russian_clients["executive"]
    token = _overview_token(client, web_app)
    b = callback_body(web_app, key_of(web_app, ov_ids.SUMMARY), {
        f"{ov_ids.MONTHS}.value": 12, f"{ov_ids.SEGMENT}.value": "large_family",
        f"{ov_ids.ACTOR}.data": token})
    r = client.post(UPDATE, json=b)
    assert r.status_code == 200, r.get_data(as_text=True)[:300]
    return _poll(client, b, r.get_json())


def test_overview_job_answers_in_russian(overview_ru, data_words):
    assert english_in(overview_ru, data_words) == {}
    kpis = overview_ru[ov_ids.KPI_GRID]["rowData"]
    monthly = overview_ru[ov_ids.MONTHLY_GRID]["rowData"]
    cells = rows_text(kpis, ("metric", "current_text", "previous_text", "change", "definition"))
    cells += rows_text(monthly, ("coverage", "revenue_m_text", "points_cost_text"))
    assert english_in(cells, data_words) == {}
    metrics = {r["metric"] for r in kpis}
    assert {"Выручка, участники", "Средний чек, гости",
            "Обязательства по баллам на конец периода, в деньгах"} <= metrics
    assert all(r["definition"] for r in kpis)
    summary = json.dumps(overview_ru[ov_ids.SUMMARY], ensure_ascii=False)
    assert "участники сегмента «многодетные» (гости — все)" in summary
    assert "Частота покупок, повторные покупки и доля участников" in summary
    titles = {k: overview_ru[k]["figure"]["layout"]["title"]["text"]
              for k in (ov_ids.ORDERS_FIG, ov_ids.LTV_FIG, ov_ids.RETENTION_FIG)}
    assert titles[ov_ids.ORDERS_FIG] == "Оплаченные заказы по месяцам"
    assert titles[ov_ids.LTV_FIG].startswith("LTV на участника по месяцам")
    assert titles[ov_ids.RETENTION_FIG] == "Удержание когорт: % участников с оплаченным заказом"
    orders = overview_ru[ov_ids.ORDERS_FIG]["figure"]
    assert [t["name"] for t in orders["data"]] == ["участники", "гости"]
    # the partial current month is marked in Russian
    notes = [a["text"] for a in orders["layout"]["annotations"]]
    assert notes and all(n.startswith("неполный:<br>") for n in notes)
    # numbers in Russian conventions: a decimal comma, no English thousands comma
    rates = [r["current_text"] for r in kpis if r["unit"] == "rate" and r["current"] is not None]
    assert rates and all("," in x and "." not in x for x in rates)


def _token(web_app, url: str, username: str, role: str) -> str:
    d = Database(url)
    try:
        with d.read() as s:
            uid = s.scalar(select(StaffUser.id).where(StaffUser.username == username))
    finally:
        d.dispose()
    return job_token(web_app, uid, username, role)


def test_overview_job_progress_and_refusal_in_russian(web_app, web_seed,
                                                      russian_users):
    from callbacks.overview import overview_job

    steps: list[Any] = []
    overview_job(steps.append, 3, "", _token(web_app, web_seed[0],
                                             russian_users["executive"], "executive"))
    labels = [label for _pct, label in steps]
    assert labels[0] == "1 % обновление сводных таблиц" and labels[-1] == "100 % готово"
    assert english_in(labels) == {}

    token = _token(web_app, web_seed[0], russian_users["support"], "support")
    out = overview_job(lambda _p: None, 3, "", token)
    text = json.dumps(out[0].to_plotly_json(), default=lambda o: o.to_plotly_json(),
                      ensure_ascii=False)
    assert "вашей учётной записи это недоступно" in text


def test_overview_builders_in_russian(web_app):
    from pages import overview as ov

    with web_app.server.test_request_context("/", headers={"Accept-Language": "ru"}):
        assert plain(ov.change(15_869, 1_000)) == "+1 486,9 %"
        assert plain(ov.show(12.5, "rate", "RUB")) == "1 250,00 %"
        assert ov.no_comparison(dt.datetime(2025, 9, 29)) == \
            "нет сравнения: данные начинаются 29 сентября 2025"
        month = {"month": "2026-12", "partial": True, "days": 2, "month_days": 31,
                 "covered_from": "2026-12-01", "covered_to": "2026-12-02"}
        assert ov.coverage(month) == "неполный: 1–2 дек., 2 из 31 дня"
        assert ov.coverage({**month, "partial": False}) == "все 31"
        layout = ov.layout()
    tree = json.loads(json.dumps(layout, default=lambda o: o.to_plotly_json()))
    assert english_in(tree) == {}
    # the grids' own texts (filter menu, no rows) too, which the scan does not read
    text = json.dumps(tree, ensure_ascii=False)
    assert '"contains": "Содержит"' in text and '"noRowsToShow": "Пока нет строк"' in text
    assert '"no_options_found": "Ничего не найдено"' in text


# ---------------------------------------------------------------- live


def test_live_refresh_answers_in_russian(web_app, russian_clients, data_words):
    client = russian_clients["support"]
    key = key_of(web_app, live_ids.UPDATED)
    r = client.post(UPDATE, json=callback_body(web_app, key, {
        f"{live_ids.INTERVAL}.n_intervals": 1, f"{live_ids.DAYS}.value": 90}))
    assert r.status_code == 200, r.get_data(as_text=True)[:300]
    resp = r.get_json()["response"]
    assert english_in(resp, data_words) == {}
    updated = resp[live_ids.UPDATED]["children"]["props"]
    assert updated["children"].startswith("обновлено в ") and updated["children"].endswith(
        " UTC")
    assert "учтено" in updated["title"]
    tiles = {k: resp[live_ids.value(k)]["children"] for k in KEYS}
    # a rate: "12,3 % (45 / 366)" or the reason it has none
    assert all(("%" in tiles[k] and "." not in tiles[k]) or "пока не на что делить" in tiles[k]
               for k in ("participation_rate", "redemption_rate", "referral_share"))
    assert "₽" in tiles["liability_minor"] or "," in tiles["liability_minor"]


def test_live_chart_marks_in_russian(web_app):
    from pages import live as views

    days = [f"2026-11-{d:02d}" for d in range(1, 11)]
    pairs = [(days, [3_000] * 10), (days, [1_500] * 10), (days, [0] * 9 + [34_833])]
    with web_app.server.test_request_context("/", headers={"Accept-Language": "ru"}):
        notes = views.outlier_layout(pairs, views.POINT_SERIES)["annotations"]
        assert [plain(n["text"]) for n in notes] == ["сгорело: 34 833 ↑ (обрезано)"]
        assert plain(views.rate({"value": 0.1234, "numerator": 1234, "denominator": 10000})) \
            == "12,3 % (1 234 / 10 000)"
        # Plotly would name the months in English: numeric dates instead
        assert views.empty_figure("t", [])["layout"]["xaxis"]["tickformat"] == "%d.%m"
        # and its own texts (the mode bar's) and month names come with the graph
        from dashboard import charts

        config = charts.config()
        assert config["locale"] == "ru"
        ru = config["locales"]["ru"]
        assert ru["dictionary"]["Download plot as a PNG"] == "Скачать график в PNG"
        assert ru["format"]["months"][0] == "январь" and ru["format"]["shortDays"][0] == "вс"
    assert "tickformat" not in views.empty_figure("t", [])["layout"]["xaxis"]
    from dashboard import charts

    assert charts.config() is charts.CONFIG  # English: Plotly's own


# ---------------------------------------------------------------- audit


def test_audit_log_answers_in_russian(web_app, russian_clients, data_words):
    client = russian_clients["supervisor"]
    r = client.post(UPDATE, json=callback_body(web_app, key_for(web_app, audit_ids.GRID), {}))
    assert r.status_code == 200, r.get_data(as_text=True)[:300]
    resp = r.get_json()["response"]
    assert english_in(resp, data_words) == {}
    rows = resp[audit_ids.GRID]["rowData"]
    assert rows
    assert english_in(rows_text(rows, ("action", "object", "changes")), data_words) == {}
    actions = {row["action"] for row in rows}
    assert {"Создана учётная запись сотрудника", "Изменён язык"} <= actions
    changes = "\n".join(row["changes"] for row in rows)
    assert "язык: — → Русский" in changes  # a user's first choice of language
    # the accounts created (the grid shows the newest 2,000 entries of any action)
    created = client.post(UPDATE, json=callback_body(
        web_app, key_for(web_app, audit_ids.GRID), {f"{audit_ids.ACTION}.value": "staff.create"}
    )).get_json()["response"][audit_ids.GRID]["rowData"]
    changes = "\n".join(row["changes"] for row in created)
    assert "роль: супервайзер" in changes and "активен: да" in changes
    count = resp[audit_ids.COUNT]["children"]
    assert count.endswith(("запись.", "записи.", "записей."))

    options = client.post(UPDATE, json=callback_body(
        web_app, key_for(web_app, audit_ids.ACTION), {f"{audit_ids.COUNT}.id": audit_ids.COUNT}))
    actions = options.get_json()["response"][audit_ids.ACTION]["options"]
    assert {"label": "Создана учётная запись сотрудника", "value": "staff.create"} in actions
    assert english_in([o["label"] for o in actions], data_words) == {}

    bad = client.post(UPDATE, json=callback_body(web_app, key_for(web_app, audit_ids.GRID), {
        f"{audit_ids.DATES}.start_date": "2025-02-01",
        f"{audit_ids.DATES}.end_date": "2025-01-01"})).get_json()["response"]
    assert bad[audit_ids.DATES_FEEDBACK]["children"] == "Дата начала позже даты окончания."


def test_audit_export_has_russian_headers(web_app, russian_clients):
    client = russian_clients["supervisor"]
    body = callback_body(web_app, key_for(web_app, audit_ids.DOWNLOAD),
                         {f"{audit_ids.EXPORT}.n_clicks": 1},
                         changed=[f"{audit_ids.EXPORT}.n_clicks"])
    r = client.post(UPDATE, json=body)
    assert r.status_code == 200, r.get_data(as_text=True)[:300]
    data = r.get_json()["response"][audit_ids.DOWNLOAD]["data"]
    lines = data["content"].splitlines()
    assert lines[0] == ("№,Когда (UTC),Кто,Код действия,Тип объекта,Объект,До,После,"
                        "Подробности,Действие")
    rows = list(csv.DictReader(io.StringIO(data["content"])))
    created = [r for r in rows if r["Код действия"] == "staff.create"]
    assert created and created[0]["Действие"] == "Создана учётная запись сотрудника"


def test_audit_changes_read_in_russian(web_app):
    from pages import audit as views

    with web_app.server.test_request_context("/", headers={"Accept-Language": "ru"}):
        assert views.audit_changes('{"status": "pending"}', '{"status": "published"}') == \
            "статус: на согласовании → опубликована"
        assert views.audit_changes('{"active": true}', '{"active": false}') == \
            "активен: да → нет"
        assert views.audit_changes('{"role": "support"}', "{}") == \
            "роль: поддержка → удалено"
        assert views.audit_changes(None, '{"planned_end_at": "2099-02-01 00:00:00", '
                                         '"metric": "spend_per_member", '
                                         '"population": {"source": "file", "left_out": 0}}') == \
            "плановая дата окончания: 01.02.2099 00:00\n" \
            "метрика: расходы на участника\n" \
            "выборка: источник: файл участников, не вошли: 0"
        assert views.simulation_changes(
            '{"as_of": "2026-12-03T17:05:00", "in_force_id": 1, "in_force_name": "Launch", '
            '"moved_up": 1300, "moved_down": 5, "liability_change_minor": 351300, '
            '"data": {"members_active": 29}, "content": "3a82"}') == \
            "действующая версия: №1 Launch\nучастников поднимутся: 1\u00a0300\n" \
            "участников опустятся: 5\nизменение обязательств по баллам: 3\u00a0513,00"
        assert views.action_label("rules.publish") == "Версия правил опубликована"
        assert views.action_label("something.new") == "something.new"  # unknown: as stored
        assert views.audit_detail("30 days, 1 members") == "30 дней, 1 участник"
        assert views.audit_detail("role support may not run overview.overview") == \
            "у роли «поддержка» нет права на это действие"
        assert views.object_label("callback", "rules.copy_version") == \
            "действие на странице «Правила»"
        assert views.object_label("callback", "copy_version") == "действие на странице"
        assert plain(views.audit_detail(
            "1,200 members (30 referred), 5,000 orders (700 guest), 12,000 ledger entries in "
            "2.5 s: 2,000 orders/s, 4,800 entries/s, 480 members/s")).startswith(
            "1 200 участников (30 по приглашению), 5 000 заказов (700 гостевых)")
        assert views.audit_detail("Wrong tier threshold") == "Wrong tier threshold"  # typed
    # English keeps its wording
    assert views.audit_detail("30 days, 1 members") == "30 days, 1 member"
    assert views.audit_changes('{"status": "pending"}', '{"status": "published"}') == \
        "status: pending → published"
