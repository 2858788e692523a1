"""Live metrics: participation, redemption, referrals and transfers, refreshed
every few seconds from the incremental rollups (db/rollups.py)."""

from __future__ import annotations

import dash
import dash_bootstrap_components as dbc
from dash import dcc, html

from dashboard import live_views as views
from dashboard.ids import Live as ids
from dashboard.shell import grid, page_header

dash.register_page(
    __name__, path="/live", name="Live metrics", title="Live metrics", order=20,
    roles=("supervisor", "executive", "support"),
)

REFRESH_MS = 5_000


def layout(**_: object) -> html.Div:
    return html.Div(
        [
            page_header(
                "Live metrics",
                "Participation, redemption, referrals and transfers, refreshed every 5 seconds "
                "from rollups kept up to date with each new order and ledger entry. Hover a "
                "title for its definition.",
            ),
            dbc.Row(
                [
                    dbc.Col(
                        [
                            dbc.Label("Window", html_for=ids.DAYS),
                            dcc.Dropdown(
                                id=ids.DAYS, clearable=False, value=7,
                                options=[{"label": "Today" if n == 1 else f"Last {n} days",
                                          "value": n} for n in (1, 7, 30, 90)],
                            ),
                        ],
                        md=3,
                    ),
                    dbc.Col(html.Div(id=ids.UPDATED, className="text-muted small pt-4"), md=9),
                ],
                className="mb-3",
            ),
            views.tiles(),
            dbc.Row(
                [
                    dbc.Col(dcc.Graph(
                        id=ids.POINTS_FIG, config=views.IMAGE,
                        figure=views.empty_figure("Points per day (net of refunds)",
                                                  views.POINT_SERIES)), lg=6),
                    dbc.Col(dcc.Graph(
                        id=ids.SIGNUPS_FIG, config=views.IMAGE,
                        figure=views.empty_figure("Sign-ups per day",
                                                  ["all new members", "through a referral"])),
                        lg=6),
                ],
                className="mt-3",
            ),
            dbc.Row(
                [
                    dbc.Col([html.H2("Top referrers (all time)", className="h6"),
                             grid(ids.REFERRERS, views.REFERRER_COLUMNS, height="300px")],
                            lg=6),
                    dbc.Col([html.H2("Top transfer receivers (window) — fraud signal",
                                     className="h6", id="live-receivers-title"),
                             dbc.Tooltip(views.DEFINITIONS["top_receivers"],
                                         target="live-receivers-title"),
                             grid(ids.RECEIVERS, views.RECEIVER_COLUMNS, height="300px")],
                            lg=6),
                ],
                className="mt-3",
            ),
            dcc.Store(id=ids.LAST),
            dcc.Interval(id=ids.INTERVAL, interval=REFRESH_MS),
        ]
    )
