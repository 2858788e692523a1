"""Tier rules: edit a draft, simulate it on the membership, approve and
publish it with an effective time, read the history and roll back."""

from __future__ import annotations

import datetime as dt

import dash
import dash_ag_grid as dag
import dash_bootstrap_components as dbc
from dash import dcc, html
from flask import has_request_context
from flask_login import current_user

from dashboard.forms import token_store
from dashboard.ids import Rules as ids
from dashboard.rules_views import HISTORY_COLUMNS, PENDING_COLUMNS, tier_columns
from dashboard.shell import CSV_EXPORT_PARAMS, grid, page_header
from db.rules import MAX_WINDOW_DAYS
from db.settings_changes import MAX_EXPIRY_DAYS
from db.text import MAX_COMMENT, MAX_REASON

dash.register_page(
    __name__, path="/rules", name="Tier rules", title="Tier rules", order=30,
    roles=("supervisor", "executive"),
)

WRITE_ROLES = ("supervisor",)


def _can_write() -> bool:
    """Only hides controls; every write callback checks the role on the server."""
    return (has_request_context() and current_user.is_authenticated
            and current_user.role in WRITE_ROLES)


def _hidden(when: bool) -> dict[str, str]:
    return {"display": "none"} if when else {}


def _editor(write: bool) -> dbc.Row:
    tiers = dag.AgGrid(
        id=ids.GRID,
        columnDefs=tier_columns(False, ""),
        rowData=[],
        defaultColDef={"resizable": True, "minWidth": 100},
        columnSize="responsiveSizeToFit",
        dashGridOptions={
            "rowDragManaged": True, "animateRows": False, "singleClickEdit": True,
            "stopEditingWhenCellsLoseFocus": True, "tooltipShowDelay": 0,
            "rowSelection": {"mode": "singleRow", "enableClickSelection": True,
                             "checkboxes": False},
            "domLayout": "autoHeight",
        },
        getRowId="params.data.rid",
        csvExportParams=CSV_EXPORT_PARAMS,
        style={"width": "100%"},
    )
    settings = [
        dbc.Label("Version name", html_for=ids.NAME),
        dbc.Input(id=ids.NAME, maxLength=200, disabled=True),
        dbc.FormFeedback(id=ids.NAME_FB, type="invalid"),
        dbc.Label("1 point is worth", html_for=ids.POINT_VALUE, className="mt-2"),
        dbc.Input(id=ids.POINT_VALUE, type="text", inputMode="decimal", disabled=True),
        dbc.FormFeedback(id=ids.POINT_VALUE_FB, type="invalid"),
        dbc.Label("Qualifying spend for tiers", className="mt-2"),
        dbc.RadioItems(id=ids.WINDOW_MODE, options=[
            {"label": "lifetime", "value": "lifetime"},
            {"label": "rolling window (days)", "value": "rolling"}], value="lifetime",
            inline=True),
        dbc.Input(id=ids.WINDOW_DAYS, type="text", inputMode="numeric",
                  placeholder=f"days (1 to {MAX_WINDOW_DAYS:,})", disabled=True),
        dbc.FormFeedback(id=ids.WINDOW_FB, type="invalid"),
        dbc.Label(f"Note (up to {MAX_COMMENT:,} characters)", html_for=ids.NOTE,
                  className="mt-2"),
        dbc.Textarea(id=ids.NOTE, rows=2, maxLength=MAX_COMMENT, disabled=True),
    ]
    expiry = dbc.Card(dbc.CardBody([
        html.H6("Points expiry (program setting)", className="mb-1"),
        html.Div("Applies to every version: unused points expire this many days after they "
                 "were earned.", className="small text-muted mb-2"),
        dbc.InputGroup([
            dbc.Input(id=ids.EXPIRY, type="text", inputMode="numeric", disabled=not write,
                      placeholder=f"1 to {MAX_EXPIRY_DAYS:,}"),
            dbc.InputGroupText("days"),
        ]),
        html.Div(f"A whole number of days from 1 to {MAX_EXPIRY_DAYS:,} (ten years).",
                 className="form-text"),
        dbc.Checkbox(id=ids.EXPIRY_NEVER, label="points never expire", disabled=not write),
        # shown whatever the input's place in the group (a FormFeedback would need a sibling)
        html.Div(id=ids.EXPIRY_FB, className="field-error"),
        html.Div(dbc.Button("Propose change", id=ids.EXPIRY_SAVE, size="sm",
                            color="secondary", className="mt-2"), style=_hidden(not write)),
        html.Div("A change applies when a second supervisor approves it, after seeing how "
                 "many points it would expire.", className="small text-muted mt-1",
                 style=_hidden(not write)),
        html.Div(id=ids.EXPIRY_RESULT, className="small mt-2"),
        dcc.Store(id=ids.EXPIRY_CHANGED, data=0),
        html.Div(id=ids.EXPIRY_PENDING, className="small mt-2"),
        html.Div([
            dbc.Input(id=ids.EXPIRY_REASON, size="sm", maxLength=MAX_REASON,
                      placeholder=f"Reason (needed to refuse; up to {MAX_REASON} characters)",
                      className="mb-1"),
            dbc.Button("Approve change", id=ids.EXPIRY_APPROVE, size="sm", color="success",
                       className="me-2"),
            dbc.Button("Refuse", id=ids.EXPIRY_REJECT, size="sm", color="danger",
                       outline=True),
            html.Div(id=ids.EXPIRY_DECISION, className="small mt-2"),
        ], id=ids.EXPIRY_DECIDE_BOX, style={"display": "none"}),
    ]), className="mt-3")
    return dbc.Row([
        dbc.Col([
            html.Div(id=ids.VERSION_INFO, className="mb-2"),
            tiers,
            html.Div([
                dbc.Button("Add tier", id=ids.ADD_TIER, size="sm", color="secondary",
                           className="me-2", disabled=True),
                dbc.Button("Remove selected tier", id=ids.REMOVE_TIER, size="sm",
                           color="secondary", outline=True, disabled=True),
                html.Span(" Drag a tier by its name to reorder; click a cell to edit. "
                          "Thresholds in money, rates in percent (up to 2 decimals).",
                          className="small text-muted ms-2"),
            ], className="mt-2", style=_hidden(not write)),
            html.Div(id=ids.EDIT_RESULT, className="mt-2"),
            html.Div([
                dbc.Button("Save draft", id=ids.SAVE, color="primary", className="me-2",
                           disabled=True),
                dbc.Button("Save and submit for approval", id=ids.SUBMIT, color="success",
                           disabled=True),
            ], className="mt-2", style=_hidden(not write)),
        ], lg=8),
        dbc.Col([*settings, expiry], lg=4),
    ])


def _simulation() -> html.Div:
    return html.Div([
        html.P("What the selected version would have done over the last N days of real "
               "orders, and where it puts every member today, against the version in force.",
               className="text-muted small"),
        dbc.Row([
            dbc.Col([
                dbc.Label("Days of orders", html_for=ids.SIM_DAYS),
                dbc.Input(id=ids.SIM_DAYS, type="text", inputMode="numeric", value="90",
                          placeholder="1 to 3,660"),
            ], md=2),
            dbc.Col([
                dbc.Button("Run simulation", id=ids.SIM_RUN, color="primary", className="me-2"),
                dbc.Button("Cancel", id=ids.SIM_CANCEL, color="secondary", outline=True,
                           disabled=True),
            ], md=4, className="d-flex align-items-end"),
            dbc.Col(dbc.Progress(id=ids.SIM_PROGRESS, value=0, label="", striped=True,
                                 animated=True, style={"visibility": "hidden",
                                                       "height": "1.4rem"}),
                    md=6, className="d-flex align-items-end"),
        ], className="mb-3"),
        dcc.Loading(html.Div(id=ids.SIM_RESULT), type="default", delay_show=10_000),
    ])


def _approval(write: bool) -> html.Div:
    soon = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).replace(
        minute=0, second=0, microsecond=0, tzinfo=None)
    decide = dbc.Card(dbc.CardBody([
        html.H6("Decide on the selected submitted version"),
        html.Div("Another supervisor than its author must decide (four-eyes).",
                 className="small text-muted mb-2"),
        dbc.Row([
            dbc.Col([
                dbc.Label("Effective from (UTC)", html_for=ids.EFFECTIVE_AT),
                dbc.Input(id=ids.EFFECTIVE_AT, type="datetime-local",
                          value=soon.strftime("%Y-%m-%dT%H:%M")),
                dbc.FormFeedback(id=ids.EFFECTIVE_FB, type="invalid"),
            ], md=4),
            dbc.Col([
                dbc.Label(f"Note (the reason, when rejecting; up to {MAX_REASON} characters)",
                          html_for=ids.DECISION_NOTE),
                dbc.Input(id=ids.DECISION_NOTE, maxLength=MAX_REASON),
                dbc.FormFeedback(id=ids.DECISION_NOTE_FB, type="invalid"),
            ], md=5),
            dbc.Col([
                dbc.Button("Approve", id=ids.APPROVE, color="success", className="me-2"),
                dbc.Button("Reject", id=ids.REJECT, color="danger", outline=True),
            ], md=3, className="d-flex align-items-end"),
        ]),
        html.Div(id=ids.DECIDE_RESULT, className="mt-2"),
    ]), className="mt-3", style=_hidden(not write))
    return html.Div([
        html.H6("In force and scheduled"),
        html.Div(id=ids.IN_FORCE),
        html.Div([
            dbc.Button("Re-evaluate tiers now", id=ids.REEVALUATE, size="sm",
                       color="secondary", className="mt-2"),
            html.Span(" Brings every member's displayed tier up to date under the version "
                      "in force (accrual always uses the tier at payment time).",
                      className="small text-muted"),
            html.Div(id=ids.REEVALUATE_RUNNING, className="small text-primary mt-2"),
            html.Div(id=ids.REEVALUATE_RESULT, className="mt-2"),
        ], style=_hidden(not write)),
        html.H6("Submitted versions waiting for a decision", className="mt-4"),
        grid(ids.PENDING_GRID, PENDING_COLUMNS, height="220px", selectable=True),
        html.Div(id=ids.REVIEW, className="mt-3"),
        decide,
    ])


def _history(write: bool) -> html.Div:
    return html.Div([
        grid(ids.HISTORY_GRID, HISTORY_COLUMNS, height="320px", selectable=True),
        html.Div([
            dbc.Button("Roll back: new draft from the selected version", id=ids.ROLLBACK,
                       size="sm", color="warning", className="mt-2"),
            html.Span(" The copy goes through the same submit and approval.",
                      className="small text-muted"),
        ], style=_hidden(not write)),
        html.H6("Compare two versions", className="mt-4"),
        dbc.Row([
            dbc.Col([dbc.Label("Version A", html_for=ids.DIFF_A),
                     dcc.Dropdown(id=ids.DIFF_A, clearable=False)], md=5),
            dbc.Col([dbc.Label("Version B", html_for=ids.DIFF_B),
                     dcc.Dropdown(id=ids.DIFF_B, clearable=False)], md=5),
        ], className="mb-2"),
        html.Div(id=ids.DIFF),
    ])


def layout(**_: object) -> html.Div:
    write = _can_write()
    return html.Div([
        dcc.Store(id=ids.ACTOR),
        dcc.Store(id=ids.SAVED),
        dcc.Store(id=ids.DECIDED),
        dcc.Store(id=ids.COPIED),
        dcc.Store(id=ids.IN_FORCE_ID),
        dcc.Store(id=ids.PROBLEMS),
        dcc.Store(id=ids.OWN_DRAFT_ID),
        token_store(ids.TOKEN),
        page_header(
            "Tier rules",
            "Thresholds on qualifying spend with accrual and referral rates. A change is a "
            "new version: edit a draft, simulate it, submit it; another supervisor approves "
            "it with an effective time." if write else
            "Read-only: the versions of the tier rules, their simulation and history.",
        ),
        dbc.Row([
            dbc.Col([dbc.Label("Version", html_for=ids.VERSION),
                     dcc.Dropdown(id=ids.VERSION, clearable=False,
                                  placeholder="No versions yet")], md=6),
            dbc.Col(html.Div([
                dbc.Button("New draft from this version", id=ids.NEW_DRAFT, color="secondary",
                           outline=True, className="me-2"),
                dbc.Button(id=ids.OWN_DRAFT, color="warning", outline=True,
                           style={"display": "none"}),
            ], style=_hidden(not write)), md=6, className="d-flex align-items-end"),
        ], className="mb-2"),
        html.Div(id=ids.COPY_RESULT),
        dbc.Tabs([
            dbc.Tab(_editor(write), label="Editor", tab_id="editor", className="pt-3"),
            dbc.Tab(_simulation(), label="Simulation", tab_id="simulation", className="pt-3"),
            dbc.Tab(_approval(write), label="Approval", tab_id="approval", className="pt-3"),
            dbc.Tab(_history(write), label="History", tab_id="history", className="pt-3"),
        ], id=ids.TABS, active_tab="editor"),
    ])
