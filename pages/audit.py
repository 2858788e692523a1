"""Audit log (supervisor): who did what, when, before and after."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import dash_bootstrap_components as dbc
import pandas as pd
from dash import dcc, html

from dashboard import format as fmt
from dashboard.access import register_page
from dashboard.i18n import N_
from dashboard.shell import grid, page_header
from db import exports
from db.readviews import (
    AuditRow,
)

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

def _audit_value(value: Any) -> str:
    if value is None or value == "":
        return "—"
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def audit_changes(before: str | None, after: str | None) -> str:
    """The fields an audit entry changed, one "field: old → new" per line.
    Values that are not JSON objects are shown as they are."""

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
            if key in old and key in new:
                lines.append(f"{key}: {_audit_value(old[key])} → {_audit_value(new[key])}")
            elif key in new:
                lines.append(f"{key}: {_audit_value(new[key])}")
            else:
                lines.append(f"{key}: {_audit_value(old[key])} → removed")
    return "\n".join(lines) or "—"


def audit_rows(rows: Iterable[AuditRow]) -> list[dict[str, Any]]:
    return [
        {"at": fmt.when(r.at), "actor": r.actor, "action": r.action,
         "object": f"{r.object_type} {r.object_id}".strip(),
         "changes": audit_changes(r.before, r.after), "detail": r.detail}
        for r in rows
    ]


def audit_csv(rows: Iterable[AuditRow]) -> str:
    """The export: full timestamps and raw JSON, one row per audit entry."""
    df = pd.DataFrame(
        [
            {"id": r.id, "at": r.at.isoformat(sep=" "), "actor": r.actor,
             "action": r.action, "object_type": r.object_type,
             "object_id": r.object_id, "before": r.before,
             "after": r.after, "detail": r.detail}
            for r in rows
        ],
        columns=["id", "at", "actor", "action", "object_type", "object_id", "before", "after",
                 "detail"],
    )
    return exports.frame_to_csv(df)


# ---------------------------------------------------------------- layout


AUDIT_COLUMNS = [
    {"field": "at", "headerName": "When (UTC)", "maxWidth": 170},
    {"field": "actor", "headerName": "Who", "maxWidth": 140},
    {"field": "action", "headerName": "Action", "maxWidth": 170},
    {"field": "object", "headerName": "Object", "maxWidth": 170},
    # what changed, one "field: old → new" per line (the CSV export keeps the raw
    # before and after)
    {"field": "changes", "headerName": "Changes", "minWidth": 260, "wrapText": True,
     "autoHeight": True, "cellStyle": {"whiteSpace": "pre-line", "lineHeight": "1.4"}},
    {"field": "detail", "headerName": "Detail", "wrapText": True, "autoHeight": True,
     "cellStyle": {"lineHeight": "1.4"}},
]


def layout(**_: object) -> html.Div:
    return html.Div(
        [
            page_header("Audit log", "Every change, newest first (at most 2,000 rows shown)."),
            dbc.Row(
                [
                    dbc.Col(
                        [dbc.Label("User", html_for=ids.ACTOR),
                         dcc.Dropdown(id=ids.ACTOR, placeholder="Anyone")],
                        md=3,
                    ),
                    dbc.Col(
                        [dbc.Label("Action", html_for=ids.ACTION),
                         dcc.Dropdown(id=ids.ACTION, placeholder="Any action")],
                        md=3,
                    ),
                    dbc.Col(
                        [
                            dbc.Label("Dates (UTC)", html_for=ids.DATES),
                            html.Div(dcc.DatePickerRange(id=ids.DATES, clearable=True,
                                                         display_format="YYYY-MM-DD")),
                            html.Div(id=ids.DATES_FEEDBACK, className="field-error"),
                        ],
                        md=4,
                    ),
                    dbc.Col(
                        [
                            html.Div(className="form-label", children="\u00a0"),
                            dbc.Button("Export CSV", id=ids.EXPORT, color="secondary",
                                       className="w-100"),
                        ],
                        md=2,
                    ),
                ],
                className="mb-2",
            ),
            html.Div(id=ids.COUNT, className="text-muted small mb-2"),
            grid(ids.GRID, AUDIT_COLUMNS, height="520px"),
            dcc.Download(id=ids.DOWNLOAD),
        ]
    )
