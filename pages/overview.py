"""Overview KPIs (executive): is the program paying for itself?"""

from __future__ import annotations

import dash
import dash_bootstrap_components as dbc
from dash import dcc, html

from dashboard import overview_views as views
from dashboard.ids import Overview as ids
from dashboard.shell import grid, page_header
from db.models import SEGMENTS

dash.register_page(
    __name__, path="/overview", name="Overview", title="Overview", order=10,
    roles=("supervisor", "executive"),
)


def _graph(cid: str) -> dcc.Graph:
    return dcc.Graph(id=cid, config=views.IMAGE)


def layout(**_: object) -> html.Div:
    return html.Div(
        [
            page_header(
                "Overview",
                "The chosen calendar months, the current one up to the end of yesterday, "
                "against the same stretch as many months earlier (today's activity is on the "
                "live page). Hover a KPI for its definition; export the tables as CSV and "
                "each chart as PNG (camera icon).",
            ),
            dbc.Row(
                [
                    dbc.Col([
                        dbc.Label("Period", html_for=ids.MONTHS),
                        dcc.Dropdown(id=ids.MONTHS, clearable=False, value=3, options=[
                            {"label": "This month so far" if n == 1 else f"Last {n} months",
                             "value": n} for n in (1, 3, 6, 12)]),
                    ], md=3),
                    dbc.Col([
                        dbc.Label("Member segment", html_for=ids.SEGMENT),
                        dcc.Dropdown(id=ids.SEGMENT, clearable=False, value="",
                                     options=[{"label": "All members", "value": ""}]
                                     + [{"label": s.replace("_", " "), "value": s}
                                        for s in SEGMENTS]),
                    ], md=3),
                ],
                className="mb-3",
            ),
            dcc.Store(id=ids.LOADED, data=0),
            dcc.Store(id=ids.ACTOR),
            dbc.Row([
                dbc.Col(dbc.Progress(id=ids.PROGRESS, value=0, label="", striped=True,
                                     animated=True,
                                     style={"visibility": "hidden", "height": "1.4rem"}),
                        md=10, className="d-flex flex-column justify-content-center"),
                dbc.Col(dbc.Button("Stop computing", id=ids.CANCEL, color="secondary",
                                   outline=True, size="sm", disabled=True),
                        md=2, className="text-end"),
            ], className="mb-2 align-items-center"),
            html.Div(id=ids.SUMMARY, className="mb-2",
                     children="Computing the figures for the chosen months…"),
            dbc.Row([
                dbc.Col(html.H2("KPIs", className="h6"), width="auto"),
                dbc.Col(dbc.Button("CSV", id=ids.KPI_CSV, size="sm", color="secondary",
                                   outline=True), width="auto"),
            ], className="align-items-center"),
            grid(ids.KPI_GRID, views.KPI_COLUMNS, height="560px"),
            dbc.Row([
                dbc.Col(_graph(ids.ORDERS_FIG), lg=6),
                dbc.Col(_graph(ids.REVENUE_FIG), lg=6),
            ], className="mt-3"),
            dbc.Row([
                dbc.Col(_graph(ids.COST_FIG), lg=6),
                dbc.Col(_graph(ids.TIERS_FIG), lg=6),
            ]),
            dbc.Row([
                dbc.Col(_graph(ids.LTV_FIG), lg=6),
                dbc.Col(_graph(ids.RETENTION_FIG), lg=6),
            ]),
            dbc.Row([
                dbc.Col(html.H2("Per month", className="h6"), width="auto"),
                dbc.Col(dbc.Button("CSV", id=ids.MONTHLY_CSV, size="sm", color="secondary",
                                   outline=True), width="auto"),
            ], className="align-items-center mt-3"),
            grid(ids.MONTHLY_GRID, views.MONTHLY_COLUMNS, height="360px"),
        ]
    )
