"""Members: search (server-side, paged), profile, ledger with running balance."""

from __future__ import annotations

import dash
import dash_ag_grid as dag
import dash_bootstrap_components as dbc
from dash import dcc, html

from dashboard.ids import Members as ids
from dashboard.members_views import FIELD_LABELS, LEDGER_COLUMNS, SEARCH_COLUMNS
from dashboard.shell import CSV_EXPORT_PARAMS, page_header, readable
from db.models import ENTRY_KINDS

dash.register_page(
    __name__, path="/members", name="Members", title="Members", order=50,
    roles=("supervisor", "support"),
)

PAGE_ROWS = 100


def infinite_grid(component_id: str, columns: list[dict], height: str, empty: str
                  ) -> dag.AgGrid:
    """A grid that asks the server for one block of rows at a time (see
    assets/pagedGrid.js); ``empty`` is shown in it when there are none."""
    return dag.AgGrid(
        id=component_id,
        columnDefs=readable(columns),
        rowModelType="infinite",
        getRowId="params.data.id",
        defaultColDef={"sortable": False, "filter": False, "resizable": True, "minWidth": 90},
        columnSize="responsiveSizeToFit",
        dashGridOptions={
            "cacheBlockSize": PAGE_ROWS, "maxBlocksInCache": 20, "infiniteInitialRowCount": 1,
            "rowSelection": {"mode": "singleRow", "enableClickSelection": True,
                             "checkboxes": False},
            "animateRows": False,
            "localeText": {"noRowsToShow": empty},
        },
        csvExportParams=CSV_EXPORT_PARAMS,
        style={"height": height, "width": "100%"},
    )


def _member_id(value: object) -> int | None:
    text = str(value or "").strip()
    return int(text) if text.isdigit() and len(text) <= 18 else None


def layout(id: str | None = None, q: str | None = None, **_: object) -> html.Div:  # noqa: A002
    """``/members?id=123`` opens that member's profile; ``?q=`` pre-fills the search."""
    return html.Div(
        [
            page_header("Members", "Find a member by name, email, phone, member id or "
                        "customer id (names, emails and phones match from the start)."),
            dbc.Row(
                [
                    dbc.Col(
                        [
                            dcc.Input(
                                id=ids.QUERY, type="search", debounce=0.4,
                                value=(q or "")[:100], className="form-control",
                                placeholder="e.g. Anna P, anna@, +7900, 10234, C0001234",
                            ),
                            html.Div(id=ids.QUERY_FEEDBACK, className="field-error"),
                        ],
                        md=6,
                    ),
                    dbc.Col(
                        dbc.Select(
                            id=ids.FIELD, value="auto",
                            options=[{"label": f"Search: {v}", "value": k}
                                     for k, v in FIELD_LABELS.items()],
                        ),
                        md=3,
                    ),
                ],
                className="mb-2",
            ),
            html.Div(id=ids.COUNT, className="text-muted small mb-2"),
            infinite_grid(ids.GRID, SEARCH_COLUMNS, "320px", "No member matches this search."),
            dcc.Store(id=ids.SEARCH_REFRESH),
            dcc.Store(id=ids.MEMBER, data=_member_id(id)),
            dcc.Store(id=ids.LEDGER_REFRESH),
            dbc.Row(
                [
                    dbc.Col(html.Div(id=ids.PROFILE), lg=4, className="mt-3"),
                    dbc.Col(
                        html.Div(
                            [
                                dbc.Row(
                                    [
                                        dbc.Col(html.H2("Ledger (newest first)",
                                                        className="h6 mt-2"), md=6),
                                        dbc.Col(
                                            dbc.Select(
                                                id=ids.LEDGER_KIND, value="all",
                                                options=[{"label": "All kinds", "value": "all"}]
                                                + [{"label": k, "value": k}
                                                   for k in ENTRY_KINDS],
                                            ),
                                            md=6,
                                        ),
                                    ],
                                    className="mb-1",
                                ),
                                html.Div(id=ids.LEDGER_COUNT, className="text-muted small"),
                                infinite_grid(ids.LEDGER_GRID, LEDGER_COLUMNS, "360px",
                                              "No ledger lines to show."),
                            ],
                            id=ids.LEDGER,
                        ),
                        lg=8, className="mt-3",
                    ),
                ]
            ),
            dbc.Tabs(
                [
                    dbc.Tab(html.Div(id=ids.ORDERS, className="pt-2"), label="Orders"),
                    dbc.Tab(html.Div(id=ids.REFERRALS, className="pt-2"), label="Referrals"),
                    dbc.Tab(html.Div(id=ids.TRANSFERS, className="pt-2"), label="Transfers"),
                    dbc.Tab(html.Div(id=ids.ADJUSTMENTS, className="pt-2"),
                            label="Adjustments"),
                ],
                className="mt-3",
            ),
        ]
    )
