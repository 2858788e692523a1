"""Audit log (supervisor): who did what, when, before and after."""

from __future__ import annotations

import dash
import dash_bootstrap_components as dbc
from dash import dcc, html

from dashboard.ids import Audit as ids
from dashboard.shell import grid, page_header

dash.register_page(
    __name__, path="/audit", name="Audit log", title="Audit log", order=80,
    roles=("supervisor",),
)

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
