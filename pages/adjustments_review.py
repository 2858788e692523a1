"""Adjustments: the approval queue (supervisors) and the history with export.

Support staff open this page to read their own requests only (the server
filters); the queue and its decision buttons are not even rendered for
them, and the decision callbacks refuse them anyway.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import dash_bootstrap_components as dbc
import pandas as pd
from dash import dcc, html
from flask import has_request_context
from flask_login import current_user

from dashboard import format as fmt
from dashboard.access import register_page, roles_of
from dashboard.forms import token_store
from dashboard.i18n import N_, SOURCE_LANGUAGE, _, current_language, translate
from dashboard.shell import grid, page_header
from db import exports
from db.adjustments import AdjustmentRow
from db.members import LedgerRow
from db.models import ADJUSTMENT_STATUSES
from db.text import MAX_REASON
from pages.adjustments_request import (
    REASON_LABELS,
    grid_texts,
    headers,
    kind_label,
    member_label,
    reason_label,
    status_label,
)
from pages.members import facts_list, small_table

register_page(
    __name__, path="/adjustments", name=N_("Approvals"), title=N_("Adjustment approvals"), order=70,
    roles=("supervisor", "support"), decide_roles=("supervisor",),
)


# ---------------------------------------------------------------- ids


class AdjReview:
    # approval queue (supervisors)
    QUEUE = "adjreview-queue"
    QUEUE_COUNT = "adjreview-queue-count"
    QUEUE_REFRESH = "adjreview-queue-refresh"
    SELECTED = "adjreview-selected"  # store: the request id the panel shows
    DETAIL = "adjreview-detail"
    APPROVE = "adjreview-approve"
    REJECT = "adjreview-reject"
    REJECT_REASON = "adjreview-reject-reason"
    REJECT_FEEDBACK = "adjreview-reject-feedback"
    DECISION = "adjreview-decision"
    VERSION = "adjreview-version"  # store: bumped after a decision
    TOKEN = "adjreview-token"  # store: the decision form's submission token
    # history (everyone on the page; support sees only their own)
    STATUS = "adjreview-status"
    REQUESTER = "adjreview-requester"
    APPROVER = "adjreview-approver"
    REASON = "adjreview-reason"
    DATES = "adjreview-dates"
    DATES_FEEDBACK = "adjreview-dates-feedback"
    EXPORT = "adjreview-export"
    DOWNLOAD = "adjreview-download"
    GRID = "adjreview-grid"
    TABLE = "adjreview-table"
    SUMMARY = "adjreview-summary"


ids = AdjReview


# ---------------------------------------------------------------- builders
# (pure: engine data in, components and figures out; no queries)

QUEUE_COLUMNS = [  # wide enough to read; the grid scrolls sideways rather than truncate
    {"field": "id", "headerName": "#", "minWidth": 70, "maxWidth": 80},
    {"field": "requested_at", "headerName": N_("Requested (UTC)"), "minWidth": 150,
     "maxWidth": 160},
    {"field": "requested_by", "headerName": N_("By"), "minWidth": 100, "maxWidth": 110},
    {"field": "member", "headerName": N_("Member"), "minWidth": 190},
    {"field": "points", "headerName": N_("Points"), "type": "rightAligned", "minWidth": 100,
     "maxWidth": 110},
    {"field": "balance", "headerName": N_("Balance now"), "type": "rightAligned",
     "minWidth": 125, "maxWidth": 130},
    {"field": "after", "headerName": N_("After approval"), "type": "rightAligned",
     "minWidth": 150, "maxWidth": 160},
    {"field": "approvals", "headerName": N_("Approvals"), "minWidth": 140, "maxWidth": 150},
    {"field": "reason", "headerName": N_("Reason"), "minWidth": 140, "maxWidth": 150},
]


def queue_rows(items: Iterable[AdjustmentRow]) -> list[dict[str, Any]]:
    return [
        {"id": a.id, "requested_at": fmt.when(a.requested_at), "requested_by": a.requested_by,
         "member": member_label(a), "points": fmt.signed_points(a.points),
         "balance": fmt.points(a.member_balance),
         "after": fmt.points(a.member_balance + a.points),
         "approvals": _("%(done)s of %(needed)s", done=1 if a.first_approver else 0,
                        needed=a.approvals_required),
         "reason": reason_label(a.reason_code)}
        for a in items
    ]


def request_detail(a: AdjustmentRow, history: Sequence[LedgerRow], *, me: int) -> Any:
    """The decision panel's content: the request, the member now, recent lines."""
    after = a.member_balance + a.points
    warnings = []
    if after < 0:
        warnings.append(dbc.Alert(
            _("The balance is %(balance)s now: approving would take it to %(after)s, so the "
              "approval will be refused.", balance=fmt.points(a.member_balance),
              after=fmt.signed_points(after)),
            color="danger", className="py-2 small"))
    if a.requested_by_id == me:
        warnings.append(dbc.Alert(_("You requested this: another supervisor must decide it."),
                                  color="warning", className="py-2 small"))
    if a.approvals_required == 2:
        warnings.append(html.Div(
            _("Needs two approvals from two different supervisors; first approval by "
              "%(who)s.", who=a.first_approver) if a.first_approver
            else _("Needs two approvals from two different supervisors."),
            className="small text-muted mb-1"))
    facts = [
        (_("Request"), f"#{a.id}"), (_("Member"), dcc.Link(member_label(a),
                                                          href=f"/members?id={a.member_id}")),
        (_("Points"), fmt.signed_points(a.points)),
        (_("Balance now"), fmt.points(a.member_balance)),
        (_("After approval"), fmt.points(after) if after >= 0 else fmt.signed_points(after)),
        (_("Reason"), reason_label(a.reason_code)),
        (_("Ticket"), a.ticket_ref or "—"), (_("Comment"), a.comment),
        (_("Corrects entry"), f"#{a.corrects_entry_id}" if a.corrects_entry_id else "—"),
        (_("Requested"), f"{a.requested_by} {fmt.when(a.requested_at)}"),
    ]
    return html.Div(
        [
            *warnings,
            facts_list(facts),
            html.H3(_("Recent ledger lines"), className="h6 mt-3"),
            small_table([_("When (UTC)"), _("Kind"), _("Points"), _("Balance after")],
                        [(fmt.when(r.effective_at), kind_label(r.kind),
                          fmt.signed_points(r.points), fmt.points(r.balance_after))
                         for r in history],
                        _("No ledger lines yet.")),
        ],
        id="adjreview-detail-body",
    )


# the export's column headers in another language than English (whose headers
# stay the raw column names, as the export's readers expect)
CSV_HEADERS = {
    "id": N_("Request no."),
    "requested_at": N_("Requested at (UTC)"),
    "requested_by": N_("Requested by (user)"),
    "member_id": N_("Member id (export)"),
    "member_external_id": N_("Customer id (export)"),
    "member_name": N_("Member name"),
    "points": N_("Points (export)"),
    "reason_code": N_("Reason code"),
    "comment": N_("Requester's comment"),
    "ticket_ref": N_("Ticket reference"),
    "corrects_entry_id": N_("Corrected entry id"),
    "status": N_("Request status"),
    "approvals_required": N_("Approvals required"),
    "first_approver": N_("First approver"),
    "first_approved_at": N_("First approved at (UTC)"),
    "decided_by": N_("Decided by (user)"),
    "decided_at": N_("Decided at (UTC)"),
    "decision_reason": N_("Decision reason"),
    "tx_id": N_("Ledger transaction id"),
}


def adjustments_csv(items: Iterable[AdjustmentRow]) -> str:
    """The export: raw values, text cells guarded against formula injection,
    numbers left as numbers (a signed point value is not a formula)."""
    cols = ["id", "requested_at", "requested_by", "member_id", "member_external_id",
            "member_name", "points", "reason_code", "comment", "ticket_ref",
            "corrects_entry_id", "status", "approvals_required", "first_approver",
            "first_approved_at", "decided_by", "decided_at", "decision_reason", "tx_id"]

    def iso(value: Any) -> str:
        return value.isoformat(sep=" ") if value else ""

    df = pd.DataFrame(
        [
            {"id": a.id, "requested_at": iso(a.requested_at),
             "requested_by": a.requested_by, "member_id": a.member_id,
             "member_external_id": a.member_external_id,
             "member_name": a.member_name, "points": a.points,
             "reason_code": a.reason_code, "comment": a.comment,
             "ticket_ref": a.ticket_ref,
             "corrects_entry_id": a.corrects_entry_id if a.corrects_entry_id else "",
             "status": a.status, "approvals_required": a.approvals_required,
             "first_approver": a.first_approver,
             "first_approved_at": iso(a.first_approved_at),
             "decided_by": a.decided_by, "decided_at": iso(a.decided_at),
             "decision_reason": a.decision_reason, "tx_id": a.tx_id or ""}
            for a in items
        ],
        columns=cols,
    )
    if current_language() != SOURCE_LANGUAGE:  # English keeps the column names as they are
        df.columns = [translate(CSV_HEADERS[c]) for c in cols]
    return exports.frame_to_csv(df)


# ---------------------------------------------------------------- layout


def _role() -> str | None:
    if has_request_context() and current_user.is_authenticated:
        return current_user.role
    return None


def queue_section() -> html.Div:
    return html.Div(
        [
            html.H2(_("Waiting for a decision"), className="h5"),
            html.Div(id=ids.QUEUE_COUNT, className="small text-muted mb-2"),
            dbc.Row(
                [
                    dbc.Col(grid_texts(grid(ids.QUEUE, headers(QUEUE_COLUMNS), height="320px",
                                            selectable=True), _("No requests to show.")),
                            lg=7),
                    dbc.Col(
                        dbc.Card(
                            dbc.CardBody(
                                [
                                    html.Div(id=ids.DETAIL, children=html.Div(
                                        _("Select a request to see the member's balance and "
                                          "recent history."), className="text-muted small")),
                                    html.Hr(),
                                    dbc.Button(_("Approve"), id=ids.APPROVE, color="success",
                                               className="me-2", disabled=True),
                                    html.Div(
                                        [
                                            dbc.Input(id=ids.REJECT_REASON,
                                                      placeholder=_(
                                                          "Why is it rejected? (up to %(n)s "
                                                          "characters)", n=MAX_REASON),
                                                      maxLength=MAX_REASON,
                                                      className="mt-2"),
                                            html.Div(id=ids.REJECT_FEEDBACK,
                                                     className="field-error"),
                                        ]
                                    ),
                                    dbc.Button(_("Reject"), id=ids.REJECT, color="danger",
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


def layout(**_kwargs: object) -> html.Div:
    supervisor = _role() in roles_of(__name__, "decide_roles")
    subtitle = (_("Approve or reject manual point adjustments; every request and decision "
                  "below.")
                if supervisor else
                _("Your adjustment requests and what the supervisors decided. Supervisors "
                  "approve or reject them."))
    filters = dbc.Row(
        [
            dbc.Col([dbc.Label(_("Status"), html_for=ids.STATUS),
                     dcc.Dropdown(id=ids.STATUS, placeholder=_("All statuses"),
                                  options=[{"label": status_label(s), "value": s}
                                           for s in ADJUSTMENT_STATUSES])], md=2),
            dbc.Col([dbc.Label(_("Requested by"), html_for=ids.REQUESTER),
                     dcc.Dropdown(id=ids.REQUESTER, placeholder=_("Anyone"),
                                  disabled=not supervisor)], md=2),
            dbc.Col([dbc.Label(_("Approver"), html_for=ids.APPROVER),
                     dcc.Dropdown(id=ids.APPROVER, placeholder=_("Anyone"))], md=2),
            dbc.Col([dbc.Label(_("Reason"), html_for=ids.REASON),
                     dcc.Dropdown(id=ids.REASON, placeholder=_("Any reason"),
                                  options=[{"label": reason_label(k), "value": k}
                                           for k in REASON_LABELS])], md=2),
            dbc.Col([dbc.Label(_("Requested (UTC)"), html_for=ids.DATES),
                     html.Div(dcc.DatePickerRange(
                         id=ids.DATES, clearable=True, display_format="YYYY-MM-DD",
                         start_date_placeholder_text=_("Start date"),
                         end_date_placeholder_text=_("End date"))),
                     html.Div(id=ids.DATES_FEEDBACK, className="field-error")], md=3),
            dbc.Col([html.Div("\u00a0", className="form-label"),
                     dbc.Button(_("Export CSV"), id=ids.EXPORT, color="secondary",
                                className="w-100")], md=1),
        ],
        className="mb-2",
    )
    return html.Div(
        [
            page_header(_("Adjustment approvals"), subtitle),
            queue_section() if supervisor else None,
            html.H2(_("History"), className="h5"),
            filters,
            html.Div(id=ids.SUMMARY, className="mb-2 small text-muted"),
            html.Div(id=ids.GRID),
            dcc.Download(id=ids.DOWNLOAD),
            dcc.Store(id=ids.VERSION, data=0),
        ]
    )
