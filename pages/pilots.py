"""Pilots: rule changes tried on a group of members against a random control group."""

from __future__ import annotations

import datetime as dt

import dash
import dash_bootstrap_components as dbc
from dash import dcc, html
from flask_login import current_user

from dashboard.forms import token_store
from dashboard.ids import Pilots as ids
from dashboard.shell import empty_state, page_header
from db.models import PILOT_METRICS, PILOT_STATUSES, SEGMENTS
from db.pilots import METRIC_LABELS, SEGMENT_LABELS

dash.register_page(
    __name__, path="/pilots", name="Pilots", title="Pilots", order=40,
    roles=("supervisor", "executive"),
)


def _feedback(field: str) -> html.Div:
    return html.Div(id=ids.FEEDBACK[field], className="invalid-feedback d-block")


def _field(label: str, control, field: str | None = None, hint: str = "", md: int = 4
           ) -> dbc.Col:
    return dbc.Col([
        dbc.Label(label, html_for=getattr(control, "id", None)),
        control,
        html.Div(hint, className="form-text") if hint else None,
        _feedback(field) if field else None,
    ], md=md, className="mb-3")


def _create_form() -> html.Div:
    tomorrow = (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).date()
    return html.Div([
        html.P("A pilot applies a draft rule set to a random part of a population; the rest "
               "of that population is the control group and keeps the published rules. "
               "The groups are drawn per tier, reproducibly from the seed.",
               className="text-muted small"),
        dbc.Row([
            _field("Name", dbc.Input(id=ids.NAME, maxLength=200), "name", md=5),
            _field("Rule set to try (draft or pending)", dcc.Dropdown(id=ids.RULE_SET),
                   "rule_set_id", md=7),
        ]),
        dbc.Label("Population"),
        dbc.RadioItems(id=ids.SOURCE, value="filter", inline=True, className="mb-2", options=[
            {"label": "Members matching a filter", "value": "filter"},
            {"label": "An uploaded list of members (CSV)", "value": "file"},
        ]),
        html.Div(id=ids.FILTER_BOX, children=dbc.Row([
            _field("Segments", dcc.Dropdown(id=ids.SEGMENTS, multi=True, placeholder="Any",
                                            options=[{"label": SEGMENT_LABELS.get(x, x), "value": x}
                                                     for x in SEGMENTS]),
                   md=3),
            _field("Tiers", dcc.Dropdown(id=ids.TIERS, multi=True, placeholder="Any"), md=3),
            _field("Joined from", dbc.Input(id=ids.JOINED_FROM, placeholder="YYYY-MM-DD"), md=2),
            _field("Joined to", dbc.Input(id=ids.JOINED_TO, placeholder="YYYY-MM-DD"), md=2),
            _field("Ordered within (days)", dbc.Input(id=ids.ACTIVE_DAYS, type="text",
                                                      inputMode="numeric",
                                                      placeholder="any (1 to 3,660)"), md=2),
        ])),
        html.Div(id=ids.FILE_BOX, style={"display": "none"}, children=[
            dcc.Upload(id=ids.UPLOAD, multiple=False, accept=".csv,.txt,text/csv,text/plain",
                       className="pilots-upload border rounded p-3 mb-1 text-center",
                       children=html.Div(["Drop a CSV here or ", html.A("choose a file")])),
            html.Div("One column: member_id (numbers) or customer_id (the shop's ids); the "
                     "header line is optional. A file with any bad line is refused.",
                     className="form-text"),
            html.Div(id=ids.UPLOAD_INFO, className="small mb-1"),
            _feedback("member_file"),
        ]),
        _feedback("population"),
        dbc.Row([
            _field("Pilot share (%)", dbc.Input(id=ids.SHARE, value="50"), "pilot_share",
                   "of the population in the pilot group", md=2),
            _field("Random seed", dbc.Input(id=ids.SEED, type="text", inputMode="numeric",
                                            value="20250601"),
                   "seed", "the same seed draws the same groups", md=2),
            _field("Start (UTC)", dbc.Input(id=ids.START_AT, value=f"{tomorrow} 00:00"),
                   "start_at", "YYYY-MM-DD HH:MM", md=2),
            _field("Planned end (UTC)", dbc.Input(
                id=ids.END_AT, value=f"{tomorrow + dt.timedelta(days=30)} 00:00"),
                "planned_end_at", "YYYY-MM-DD HH:MM", md=2),
            _field("Primary metric", dcc.Dropdown(
                id=ids.METRIC, value="spend_per_member", clearable=False,
                options=[{"label": METRIC_LABELS[m], "value": m} for m in PILOT_METRICS]),
                "primary_metric", md=2),
            _field("Minimum effect", dbc.Input(id=ids.MIN_EFFECT, value="100"), "min_effect",
                   "in the metric's unit (money, orders, or a share: 0.02)", md=2),
        ]),
        dbc.Button("Estimate power", id=ids.PREVIEW, color="secondary", className="me-2"),
        dbc.Button("Create pilot (draft)", id=ids.CREATE, color="primary"),
        html.Div(id=ids.CREATE_MSG, className="mt-2"),
        dcc.Loading(html.Div(id=ids.PREVIEW_OUT, className="mt-3")),
    ])


def layout(**_: object) -> html.Div:
    writer = getattr(current_user, "role", None) == "supervisor"
    hide = "" if writer else "d-none"
    return html.Div(
        [
            page_header(
                "Pilots",
                "A draft rule set applied to a pilot group, a random control group keeping "
                "the current rules; the lift is measured against the control group.",
            ),
            dcc.Store(id=ids.REFRESH, data=0),
            token_store(ids.TOKEN),
            dcc.Store(id=ids.ACTOR),
            dcc.Store(id=ids.RESULTS_CSV),
            dbc.Tabs(id=ids.TABS, active_tab="results", children=[
                dbc.Tab(label="Pilots and results", tab_id="results", children=html.Div([
                    dbc.Row(dbc.Col([
                        dbc.Label("Status", html_for=ids.STATUS),
                        dcc.Dropdown(
                            id=ids.STATUS, placeholder="All statuses",
                            options=[{"label": s, "value": s} for s in PILOT_STATUSES],
                        ),
                    ], md=3), className="mb-3"),
                    html.Div(id=ids.LIST),
                    html.Hr(),
                    dbc.Row([
                        dbc.Col([dbc.Label("Pilot", html_for=ids.PICK),
                                 dcc.Dropdown(id=ids.PICK, placeholder="Choose a pilot")], md=6),
                        dbc.Col([
                            dbc.Button("Request start", id=ids.START, color="primary",
                                       className=f"text-nowrap {hide}", disabled=True),
                            dbc.Button("Send back", id=ids.SEND_BACK, color="warning",
                                       outline=True, className=f"text-nowrap {hide}",
                                       disabled=True),
                            dbc.Button("Cancel draft", id=ids.CANCEL, color="secondary",
                                       outline=True, className=f"text-nowrap {hide}",
                                       disabled=True),
                            dbc.Button("End pilot", id=ids.END, color="danger", outline=True,
                                       className=f"text-nowrap {hide}", disabled=True),
                            dbc.Button("Roll out as a new draft", id=ids.ROLLOUT,
                                       color="success", className=f"text-nowrap {hide}",
                                       disabled=True),
                            dbc.Button("Export CSV", id=ids.EXPORT, color="secondary",
                                       outline=True, disabled=True),
                            dcc.Download(id=ids.DOWNLOAD),
                        ], md=6, className="d-flex flex-wrap gap-2 align-items-end "
                                         "justify-content-end"),
                    ], className="mb-2"),
                    dbc.Row(dbc.Col(dbc.Input(
                        id=ids.SEND_BACK_REASON, maxlength=500,
                        placeholder="Why the start is sent back (needed to send it back)",
                    ), md={"size": 6, "offset": 6}), className=f"mb-2 {hide}"),
                    html.Div(id=ids.ACTION_MSG),
                    dbc.Alert(id=ids.OVERDUE, is_open=False, color="warning",
                              className="d-flex flex-wrap align-items-center gap-2", children=[
                                  html.Span(id=ids.OVERDUE_TEXT),
                                  dbc.Button("End pilot now", id=ids.END_NOW, color="danger",
                                             size="sm", className=f"text-nowrap {hide}"),
                              ]),
                    dbc.Row([
                        dbc.Col(dbc.Progress(id=ids.RESULTS_PROGRESS, value=0, label="",
                                             striped=True, animated=True,
                                             style={"visibility": "hidden", "height": "1.4rem"}),
                                md=10, className="d-flex flex-column justify-content-center"),
                        dbc.Col(dbc.Button("Stop computing", id=ids.RESULTS_CANCEL,
                                           color="secondary", outline=True, size="sm",
                                           disabled=True), md=2, className="text-end"),
                    ], className="mb-2 align-items-center"),
                    html.Div(id=ids.RESULTS, children=empty_state(
                        "Choose a pilot to see its results.",
                        "Running and ended pilots show the lift against their control group; "
                        "a draft shows what its groups can detect.")),
                ], className="pt-3")),
                dbc.Tab(label="New pilot" if writer else "New pilot (supervisors)",
                        tab_id="new", disabled=not writer,
                        children=html.Div(_create_form(), className="pt-3")),
            ]),
        ]
    )
