"""Adjustments, request side: file a balance correction, follow your requests.

Support staff request; supervisors use the same form for the large ones only
a supervisor may request (program_settings.adjustment_supervisor_request_points).
"""

from __future__ import annotations

import dash
import dash_bootstrap_components as dbc
from dash import dcc, html

from dashboard.forms import token_store
from dashboard.ids import AdjRequest as ids
from dashboard.members_views import REASON_LABELS
from dashboard.shell import grid, page_header
from db.adjustments import MAX_TICKET
from db.models import ADJUSTMENT_STATUSES
from db.text import MAX_COMMENT

dash.register_page(
    __name__, path="/adjustments/request", name="Request adjustment",
    title="Request an adjustment", order=60, roles=("support", "supervisor"),
)

MY_COLUMNS = [
    {"field": "id", "headerName": "#", "maxWidth": 80},
    {"field": "requested_at", "headerName": "Requested (UTC)", "maxWidth": 160},
    {"field": "member", "headerName": "Member"},
    {"field": "points", "headerName": "Points", "type": "rightAligned", "maxWidth": 110},
    {"field": "reason", "headerName": "Reason", "maxWidth": 150},
    {"field": "ticket", "headerName": "Ticket", "maxWidth": 110},
    {"field": "status", "headerName": "Status", "maxWidth": 110},
    {"field": "decided", "headerName": "Decision"},
    {"field": "comment", "headerName": "Comment"},
]


def _field(label: str, control: object, feedback_id: str, hint: str = "") -> dbc.Row:
    return dbc.Row(
        [
            dbc.Label(label, width=3, className="fw-semibold"),
            dbc.Col([control,
                     html.Div(hint, className="form-text") if hint else None,
                     html.Div(id=feedback_id, className="field-error")], width=9),
        ],
        className="mb-2",
    )


def layout(member: str | None = None, **_: object) -> html.Div:
    """``?member=<id>`` pre-fills the member (the profile's "Request" link)."""
    form = dbc.Card(
        dbc.CardBody(
            [
                html.H2("New request", className="h5 mb-3"),
                _field("Member", dbc.Input(id=ids.MEMBER, value=(member or "")[:64],
                                           placeholder="Member id or customer id",
                                           debounce=True),
                       ids.MEMBER_FEEDBACK),
                html.Div(id=ids.MEMBER_INFO, className="mb-2 small"),
                _field("Points", dbc.Input(id=ids.POINTS, placeholder="e.g. 500 or -200",
                                           inputMode="numeric"),
                       ids.POINTS_FEEDBACK, "+ adds points, - removes them. Whole points."),
                _field("Reason", dbc.Select(
                    id=ids.REASON, value="",
                    options=[{"label": "Choose a reason code", "value": ""}]
                    + [{"label": v, "value": k} for k, v in REASON_LABELS.items()]),
                    ids.REASON_FEEDBACK),
                _field("Comment", dbc.Textarea(id=ids.COMMENT, rows=3, maxLength=MAX_COMMENT,
                                               placeholder="Why is the balance wrong?"),
                       ids.COMMENT_FEEDBACK,
                       f"Required: the supervisor decides from it. Up to {MAX_COMMENT:,} "
                       "characters."),
                _field("Ticket", dbc.Input(id=ids.TICKET, placeholder="e.g. SUP-1234",
                                           maxLength=MAX_TICKET),
                       ids.TICKET_FEEDBACK, f"Optional, up to {MAX_TICKET} characters."),
                _field("Corrects entry", dcc.Dropdown(
                    id=ids.ENTRY, placeholder="Optional: the ledger line this corrects"),
                    ids.ENTRY_FEEDBACK),
                html.Div(id=ids.LIMITS, className="small text-muted mb-2"),
                dbc.Button("Submit for approval", id=ids.SUBMIT, color="primary"),
                html.Div(id=ids.RESULT, className="mt-3"),
            ]
        ),
        className="mb-4",
    )
    mine = html.Div(
        [
            html.H2("My requests", className="h5"),
            dbc.Row(
                [
                    dbc.Col(dcc.Dropdown(
                        id=ids.STATUS, placeholder="All statuses",
                        options=[{"label": s, "value": s} for s in ADJUSTMENT_STATUSES]), md=4),
                    dbc.Col(dbc.Button("Cancel the selected pending request", id=ids.CANCEL,
                                       color="outline-danger", size="sm"), md="auto"),
                ],
                className="mb-2",
            ),
            html.Div(id=ids.CANCEL_RESULT),
            html.Div(id=ids.SUMMARY, className="mb-2 small text-muted"),
            html.Div(grid(ids.TABLE, MY_COLUMNS, height="360px", selectable=True),
                     id=ids.GRID),
        ]
    )
    return html.Div(
        [
            page_header("Request an adjustment",
                        "A balance correction waits for a supervisor other than you; "
                        "approval writes exactly one ledger entry."),
            dbc.Row([dbc.Col(form, lg=6), dbc.Col(mine, lg=6)]),
            dcc.Store(id=ids.VERSION, data=0),
            dcc.Store(id=ids.CANCEL_VERSION, data=0),
            token_store(ids.TOKEN),
            dcc.Store(id=ids.LAST_TOKEN),
        ]
    )
