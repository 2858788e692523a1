"""Adjustments: the approval queue (supervisors) and the history with export.

Support staff open this page to read their own requests only (the server
filters); the queue and its decision buttons are not even rendered for
them, and the decision callbacks refuse them anyway.
"""

from __future__ import annotations

import dash
import dash_bootstrap_components as dbc
from dash import dcc, html
from flask import has_request_context
from flask_login import current_user

from dashboard.forms import token_store
from dashboard.ids import AdjReview as ids
from dashboard.members_views import QUEUE_COLUMNS, REASON_LABELS
from dashboard.shell import grid, page_header
from db.models import ADJUSTMENT_STATUSES
from db.text import MAX_REASON

dash.register_page(
    __name__, path="/adjustments", name="Approvals", title="Adjustment approvals", order=70,
    roles=("supervisor", "support"),
)


def _role() -> str | None:
    if has_request_context() and current_user.is_authenticated:
        return current_user.role
    return None


def queue_section() -> html.Div:
    return html.Div(
        [
            html.H2("Waiting for a decision", className="h5"),
            html.Div(id=ids.QUEUE_COUNT, className="small text-muted mb-2"),
            dbc.Row(
                [
                    dbc.Col(grid(ids.QUEUE, QUEUE_COLUMNS, height="320px", selectable=True),
                            lg=7),
                    dbc.Col(
                        dbc.Card(
                            dbc.CardBody(
                                [
                                    html.Div(id=ids.DETAIL, children=html.Div(
                                        "Select a request to see the member's balance and "
                                        "recent history.", className="text-muted small")),
                                    html.Hr(),
                                    dbc.Button("Approve", id=ids.APPROVE, color="success",
                                               className="me-2", disabled=True),
                                    html.Div(
                                        [
                                            dbc.Input(id=ids.REJECT_REASON,
                                                      placeholder="Why is it rejected? (up "
                                                      f"to {MAX_REASON} characters)",
                                                      maxLength=MAX_REASON,
                                                      className="mt-2"),
                                            html.Div(id=ids.REJECT_FEEDBACK,
                                                     className="field-error"),
                                        ]
                                    ),
                                    dbc.Button("Reject", id=ids.REJECT, color="danger",
                                               outline=True, className="mt-2", disabled=True),
                                    html.Div(id=ids.DECISION, className="mt-3"),
                                ]
                            )
                        ),
                        lg=5,
                    ),
                ]
            ),
            dcc.Store(id=ids.SELECTED),
            token_store(ids.TOKEN),
            dcc.Interval(id=ids.QUEUE_REFRESH, interval=30_000),
            html.Hr(className="my-4"),
        ]
    )


def layout(**_: object) -> html.Div:
    supervisor = _role() == "supervisor"
    subtitle = ("Approve or reject manual point adjustments; every request and decision below."
                if supervisor else
                "Your adjustment requests and what the supervisors decided. Supervisors "
                "approve or reject them.")
    filters = dbc.Row(
        [
            dbc.Col([dbc.Label("Status", html_for=ids.STATUS),
                     dcc.Dropdown(id=ids.STATUS, placeholder="All statuses",
                                  options=[{"label": s, "value": s}
                                           for s in ADJUSTMENT_STATUSES])], md=2),
            dbc.Col([dbc.Label("Requested by", html_for=ids.REQUESTER),
                     dcc.Dropdown(id=ids.REQUESTER, placeholder="Anyone",
                                  disabled=not supervisor)], md=2),
            dbc.Col([dbc.Label("Approver", html_for=ids.APPROVER),
                     dcc.Dropdown(id=ids.APPROVER, placeholder="Anyone")], md=2),
            dbc.Col([dbc.Label("Reason", html_for=ids.REASON),
                     dcc.Dropdown(id=ids.REASON, placeholder="Any reason",
                                  options=[{"label": v, "value": k}
                                           for k, v in REASON_LABELS.items()])], md=2),
            dbc.Col([dbc.Label("Requested (UTC)", html_for=ids.DATES),
                     html.Div(dcc.DatePickerRange(id=ids.DATES, clearable=True,
                                                  display_format="YYYY-MM-DD")),
                     html.Div(id=ids.DATES_FEEDBACK, className="field-error")], md=3),
            dbc.Col([html.Div("\u00a0", className="form-label"),
                     dbc.Button("Export CSV", id=ids.EXPORT, color="secondary",
                                className="w-100")], md=1),
        ],
        className="mb-2",
    )
    return html.Div(
        [
            page_header("Adjustment approvals", subtitle),
            queue_section() if supervisor else None,
            html.H2("History", className="h5"),
            filters,
            html.Div(id=ids.SUMMARY, className="mb-2 small text-muted"),
            html.Div(id=ids.GRID),
            dcc.Download(id=ids.DOWNLOAD),
            dcc.Store(id=ids.VERSION, data=0),
        ]
    )
