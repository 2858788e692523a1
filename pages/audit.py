"""Audit log (supervisor): who did what, when, before and after."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable, Iterable
from typing import Any

import dash
import dash_bootstrap_components as dbc
import pandas as pd
from dash import dcc, html

from dashboard import format as fmt
from dashboard.access import register_page
from dashboard.i18n import N_, SOURCE_LANGUAGE, _, current_language, ngettext, translate
from dashboard.shell import dropdown_props, grid, page_header
from db import exports
from db.audit import ACTION_LABELS, FIELD_LABELS, NO, OBJECT_LABELS, VALUE_LABELS, YES
from db.readviews import (
    AuditRow,
)
from db.rule_review import SIMULATE_ACTION

register_page(
    __name__, path="/audit", name=N_("Audit log"), title=N_("Audit log"), order=80,
    roles=("supervisor",),
)


# ---------------------------------------------------------------- ids


class Audit:
    ACTOR = "audit-actor"
    ACTION = "audit-action"
    DATES = "audit-dates"
    DATES_FEEDBACK = "audit-dates-feedback"
    GRID = "audit-grid"
    COUNT = "audit-count"
    EXPORT = "audit-export"
    DOWNLOAD = "audit-download"


ids = Audit


# ---------------------------------------------------------------- builders
# (pure: engine data in, components and figures out; no queries)

def _field(key: str) -> str:
    """A recorded field's name as the page shows it (unknown ones as they are)."""
    return translate(FIELD_LABELS.get(key, key))


_ISO_MOMENT = re.compile(r"\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?")


def _moment(text: str) -> str:
    """A recorded date or time ("2099-02-01 00:00:00") as the user's
    language writes it; any other text as it is."""
    if not _ISO_MOMENT.fullmatch(text):
        return text
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        return text
    return fmt.when(moment if len(text) > 10 else moment.date())


def _audit_value(value: Any, key: str = "") -> str:
    """A recorded value, readable: codes (statuses, roles, reasons) and
    yes/no by their labels, nested objects as "field: value" pairs."""
    if value is None or value == "":
        return "—"
    if isinstance(value, bool):
        return translate(YES if value else NO)
    if isinstance(value, str):
        codes = VALUE_LABELS.get(key)
        if codes and value in codes:
            return translate(codes[value])
        return _moment(value) if current_language() != SOURCE_LANGUAGE else value
    if isinstance(value, dict):
        return ", ".join(f"{_field(k)}: {_audit_value(v, k)}" for k, v in value.items())
    if isinstance(value, list):
        if any(isinstance(v, dict) for v in value):
            return "; ".join(f"({_audit_value(v, key)})" for v in value)
        return ", ".join(_audit_value(v, key) for v in value)
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def audit_changes(before: str | None, after: str | None) -> str:
    """The fields an audit entry changed, one "field: old → new" per line, in
    the user's language. Values that are not JSON objects are shown as they are."""

    def parse(text: str | None) -> Any:
        if not text:
            return {}
        try:
            return json.loads(text)
        except ValueError:
            return text

    old, new = parse(before), parse(after)
    if not (isinstance(old, dict) and isinstance(new, dict)):
        return f"{_audit_value(old or None)} → {_audit_value(new or None)}"
    lines = []
    for key in [*old, *(k for k in new if k not in old)]:
        if old.get(key) != new.get(key) or key not in old or key not in new:
            name = _field(key)
            if key in old and key in new:
                lines.append(f"{name}: {_audit_value(old[key], key)} → "
                             f"{_audit_value(new[key], key)}")
            elif key in new:
                lines.append(f"{name}: {_audit_value(new[key], key)}")
            else:
                lines.append(_("%(field)s: %(old)s → removed", field=name,
                               old=_audit_value(old[key], key)))
    return "\n".join(lines) or "—"


def _count(text: str) -> int:
    return int(text.replace(",", ""))


def _simulated(m: re.Match[str]) -> str:
    return (ngettext("%(num)s day", "%(num)s days", _count(m[1])) + ", "
            + ngettext("%(num)s member", "%(num)s members", _count(m[2])))


def _seeded(m: re.Match[str]) -> str:
    n = [x if i == 5 else fmt.points(_count(x)) for i, x in enumerate(m.groups())]
    return _("%(members)s members (%(referred)s referred), %(orders)s orders (%(guest)s guest), "
             "%(entries)s ledger entries in %(seconds)s s: %(ops)s orders/s, %(eps)s entries/s, "
             "%(mps)s members/s", members=n[0], referred=n[1], orders=n[2], guest=n[3],
             entries=n[4], seconds=fmt.decimal(float(m[6]), 1), ops=n[6], eps=n[7], mps=n[8])


# the details the services write in English (db/rule_review.py, db/demo/program.py,
# dashboard/auth.py, dashboard/api.py), read back in the user's language; any
# other detail (a reason or note typed by staff) is shown as written
DETAILS: list[tuple[re.Pattern[str], Callable[[re.Match[str]], str]]] = [
    (re.compile(r"role (\w+) may not run (.+)"),
     lambda m: _("role %(role)s may not do this",
                 role=translate(VALUE_LABELS["role"].get(m[1], m[1])))),
    (re.compile(r"([\d,]+) days, ([\d,]+) members"), _simulated),
    (re.compile(r"key (.+); Idempotency-Key (.*)"),
     lambda m: _("key %(key)s; Idempotency-Key %(idem)s", key=m[1], idem=m[2])),
    (re.compile(r"key (.+); status (\d+)"),
     lambda m: _("key %(key)s; status %(status)s", key=m[1], status=m[2])),
    (re.compile(r"([\d,]+) members \(([\d,]+) referred\), ([\d,]+) orders \(([\d,]+) guest\), "
                r"([\d,]+) ledger entries in ([\d.]+) s: ([\d,]+) orders/s, ([\d,]+) entries/s, "
                r"([\d,]+) members/s"), _seeded),
]


def audit_detail(detail: str) -> str:
    """An entry's detail in the user's language when a service wrote it."""
    for pattern, say in DETAILS:
        m = pattern.fullmatch(detail or "")
        if m:
            return say(m)
    return detail


def action_label(action: str) -> str:
    """An audit action by its name in the user's language (an unknown code as it is)."""
    return translate(ACTION_LABELS.get(action, action))


def simulation_changes(after: str | None) -> str:
    """A recorded simulation by what it found (the rest of its record is the
    fingerprint the rules page compares with the data of today)."""
    try:
        rec = json.loads(after or "{}")
    except ValueError:
        return after or "—"
    if not isinstance(rec, dict) or "moved_up" not in rec:
        return audit_changes(None, after)
    return "\n".join([
        _("in force: #%(id)s %(name)s", id=rec.get("in_force_id"), name=rec.get("in_force_name")),
        _("members moving up: %(n)s", n=fmt.points(int(rec["moved_up"]))),
        _("members moving down: %(n)s", n=fmt.points(int(rec.get("moved_down", 0)))),
        _("change of the points liability: %(money)s",
          money=fmt.money(int(rec.get("liability_change_minor", 0)))),
    ])


def object_label(object_type: str, object_id: str | None) -> str:
    """What an entry is about: "staff account 5"; a refused page action by
    its page ("action on the page “Tier rules”"), its code kept for the export."""
    if object_type == "callback":
        page = next((p for p in dash.page_registry.values()
                     if p["module"] == f"pages.{(object_id or '').split('.', 1)[0]}"), None)
        if page is not None:
            return _("action on the page “%(page)s”", page=translate(page["name"]))
        return translate(OBJECT_LABELS["callback"])
    return f"{translate(OBJECT_LABELS.get(object_type, object_type))} {object_id or ''}".strip()


def audit_rows(rows: Iterable[AuditRow]) -> list[dict[str, Any]]:
    return [
        {"at": fmt.when(r.at), "actor": r.actor, "action": action_label(r.action),
         "object": object_label(r.object_type, r.object_id),
         "changes": (simulation_changes(r.after) if r.action == SIMULATE_ACTION
                     else audit_changes(r.before, r.after)),
         "detail": audit_detail(r.detail)}
        for r in rows
    ]


# the export's columns: in English their field names (what scripts read), in
# another language these labels
CSV_COLUMNS = {
    "id": N_("No."), "at": N_("When (UTC)"), "actor": N_("Who"), "action": N_("Action code"),
    "object_type": N_("Object type"), "object_id": N_("Object"), "before": N_("Before"),
    "after": N_("After"), "detail": N_("Detail"), "action_name": N_("Action"),
}


def audit_csv(rows: Iterable[AuditRow], *, language: str = SOURCE_LANGUAGE) -> str:
    """The export: full timestamps and raw JSON, one row per audit entry, with
    the action's name last; the headers in ``language`` (the reader's)."""
    df = pd.DataFrame(
        [
            {"id": r.id, "at": r.at.isoformat(sep=" "), "actor": r.actor,
             "action": r.action, "object_type": r.object_type,
             "object_id": r.object_id, "before": r.before,
             "after": r.after, "detail": r.detail, "action_name": action_label(r.action)}
            for r in rows
        ],
        columns=list(CSV_COLUMNS),
    )
    return exports.frame_to_csv(
        df, labels=CSV_COLUMNS, translate=None if language == SOURCE_LANGUAGE else translate)


# ---------------------------------------------------------------- layout


AUDIT_COLUMNS = [
    {"field": "at", "headerName": N_("When (UTC)"), "maxWidth": 170},
    {"field": "actor", "headerName": N_("Who"), "maxWidth": 140},
    {"field": "action", "headerName": N_("Action"), "maxWidth": 220, "wrapText": True,
     "autoHeight": True, "cellStyle": {"lineHeight": "1.4"}},
    {"field": "object", "headerName": N_("Object"), "maxWidth": 190, "wrapText": True,
     "autoHeight": True, "cellStyle": {"lineHeight": "1.4"}},
    # what changed, one "field: old → new" per line (the CSV export keeps the raw
    # before and after)
    {"field": "changes", "headerName": N_("Changes"), "minWidth": 260, "wrapText": True,
     "autoHeight": True, "cellStyle": {"whiteSpace": "pre-line", "lineHeight": "1.4"}},
    {"field": "detail", "headerName": N_("Detail"), "wrapText": True, "autoHeight": True,
     "cellStyle": {"lineHeight": "1.4"}},
]


def _grid(cid: str, defs: list[dict[str, Any]], height: str) -> Any:
    """A grid of the page, its headers and its no-rows text in the user's language."""
    return grid(cid, defs, height=height, empty=_("No rows yet"))


def action_options(actions: Iterable[str]) -> list[dict[str, str]]:
    """The action filter's choices: each code by its name, sorted by that name."""
    return sorted(({"label": action_label(a), "value": a} for a in actions),
                  key=lambda o: o["label"].lower())


def _date_formats() -> dict[str, Any]:
    """The date picker's formats: its calendar names months and weekdays in
    English only, so another language gets numeric dates and Monday first."""
    if current_language() == SOURCE_LANGUAGE:
        return {"display_format": "YYYY-MM-DD"}
    return {"display_format": "DD.MM.YYYY", "month_format": "MM.YYYY", "first_day_of_week": 1}


def layout(**_kwargs: object) -> html.Div:
    return html.Div(
        [
            page_header(_("Audit log"),
                        _("Every change, newest first (at most %(most)s rows shown).",
                          most=fmt.points(2000))),
            dbc.Row(
                [
                    dbc.Col(
                        [dbc.Label(_("User"), html_for=ids.ACTOR),
                         dcc.Dropdown(id=ids.ACTOR, placeholder=_("Anyone"),
                                      **dropdown_props())],
                        md=3,
                    ),
                    dbc.Col(
                        [dbc.Label(_("Action"), html_for=ids.ACTION),
                         dcc.Dropdown(id=ids.ACTION, placeholder=_("Any action"),
                                      **dropdown_props())],
                        md=3,
                    ),
                    dbc.Col(
                        [
                            dbc.Label(_("Dates (UTC)"), html_for=ids.DATES),
                            html.Div(dcc.DatePickerRange(
                                id=ids.DATES, clearable=True,
                                start_date_placeholder_text=_("Start date"),
                                end_date_placeholder_text=_("End date"), **_date_formats())),
                            html.Div(id=ids.DATES_FEEDBACK, className="field-error"),
                        ],
                        md=4,
                    ),
                    dbc.Col(
                        [
                            html.Div(className="form-label", children="\u00a0"),
                            dbc.Button(_("Export CSV"), id=ids.EXPORT, color="secondary",
                                       className="w-100"),
                        ],
                        md=2,
                    ),
                ],
                className="mb-2",
            ),
            html.Div(id=ids.COUNT, className="text-muted small mb-2"),
            _grid(ids.GRID, AUDIT_COLUMNS, "520px"),
            dcc.Download(id=ids.DOWNLOAD),
        ]
    )
