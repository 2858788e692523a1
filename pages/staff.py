"""Staff accounts (supervisor): create, disable/enable, change role."""

from __future__ import annotations

import dash
import dash_bootstrap_components as dbc
from dash import dcc, html

from dashboard.forms import token_store
from dashboard.ids import Staff as ids
from dashboard.shell import grid, page_header
from db.models import API_SCOPES, ROLES
from db.text import MAX_REASON
from db.users import MAX_FULL_NAME

dash.register_page(
    __name__, path="/staff", name="Staff", title="Staff accounts", order=90,
    roles=("supervisor",),
)

STAFF_COLUMNS = [
    {"field": "username", "headerName": "Username"},
    {"field": "full_name", "headerName": "Full name"},
    {"field": "role", "headerName": "Role"},
    {"field": "active", "headerName": "Active"},
    {"field": "created_at", "headerName": "Created"},
    {"field": "last_login_at", "headerName": "Last login"},
]
ROLE_OPTIONS = [{"label": r, "value": r} for r in ROLES]
SCOPE_LABELS = {
    "orders": "orders (enrol members, post orders)",
    "redeem": "redeem points",
    "transfer": "transfer points",
    "read": "read balances and tiers",
}


def api_keys_card() -> dbc.Card:
    return dbc.Card(
        dbc.CardBody(
            [
                html.H2("API keys", className="h5"),
                html.P(
                    "The shop's till, website and apps call /api/v1 with a key. A new key "
                    "is shown once: copy it into the system that uses it. Revoking stops it "
                    "at once. Every call is written to the audit log under the key's name.",
                    className="small text-muted",
                ),
                html.Div(id=ids.KEYS),
                dbc.Row(
                    [
                        dbc.Col(
                            [
                                _field("Name", dbc.Input(id=ids.KEY_NAME, maxlength=64,
                                                         placeholder="Till 1")),
                                _field("Scopes", dbc.Checklist(
                                    id=ids.KEY_SCOPES, value=["orders", "read"],
                                    options=[{"label": SCOPE_LABELS[x], "value": x}
                                             for x in API_SCOPES])),
                                dbc.Button("Create key", id=ids.KEY_CREATE, color="primary"),
                                html.Div(id=ids.KEY_CREATED, className="mt-2"),
                            ],
                            lg=6,
                        ),
                        dbc.Col(
                            [
                                _field("Key", dcc.Dropdown(id=ids.KEY_PICK)),
                                dbc.Button("Revoke", id=ids.KEY_REVOKE, color="danger",
                                           outline=True),
                                html.Div(id=ids.KEY_REVOKED, className="mt-2"),
                            ],
                            lg=6,
                        ),
                    ],
                    className="mt-2",
                ),
            ]
        ),
        className="mt-3",
    )


def _field(label: str, control: object, feedback_id: str | None = None) -> html.Div:
    children = [dbc.Label(label), control]
    if feedback_id:
        children.append(html.Div(id=feedback_id, className="field-error"))
    return html.Div(children, className="mb-2")


def layout(**_: object) -> html.Div:
    return html.Div(
        [
            page_header("Staff accounts", "Every change here is written to the audit log."),
            dcc.Store(id=ids.REFRESH, data=0),
            token_store(ids.TOKEN),
            grid(ids.GRID, STAFF_COLUMNS, height="300px"),
            dbc.Row(
                [
                    dbc.Col(
                        dbc.Card(
                            dbc.CardBody(
                                [
                                    html.H2("New account", className="h5"),
                                    _field("Username", dbc.Input(id=ids.NEW_USERNAME),
                                           ids.NEW_USERNAME_FEEDBACK),
                                    _field(f"Full name (up to {MAX_FULL_NAME} characters)",
                                           dbc.Input(id=ids.NEW_FULL_NAME,
                                                     maxLength=MAX_FULL_NAME),
                                           ids.NEW_FULL_NAME_FEEDBACK),
                                    _field("Role", dcc.Dropdown(id=ids.NEW_ROLE,
                                                                options=ROLE_OPTIONS),
                                           ids.NEW_ROLE_FEEDBACK),
                                    _field("Initial password",
                                           dbc.Input(id=ids.NEW_PASSWORD, type="password",
                                                     autocomplete="new-password"),
                                           ids.NEW_PASSWORD_FEEDBACK),
                                    dbc.Button("Create account", id=ids.CREATE,
                                               color="primary"),
                                    html.Div(id=ids.CREATE_RESULT, className="mt-2"),
                                ]
                            )
                        ),
                        lg=6, className="mt-3",
                    ),
                    dbc.Col(
                        dbc.Card(
                            dbc.CardBody(
                                [
                                    html.H2("Change an account", className="h5"),
                                    _field("Account", dcc.Dropdown(id=ids.PICK_USER)),
                                    _field("Role", dcc.Dropdown(id=ids.PICK_ROLE,
                                                                options=ROLE_OPTIONS),
                                           ids.PICK_FEEDBACK),
                                    html.Div(
                                        [
                                            dbc.Button("Change role", id=ids.SET_ROLE,
                                                       color="primary", className="me-2"),
                                            dbc.Button("Disable", id=ids.DISABLE,
                                                       color="danger", outline=True,
                                                       className="me-2"),
                                            dbc.Button("Enable", id=ids.ENABLE,
                                                       color="success", outline=True),
                                        ]
                                    ),
                                    html.Div(id=ids.CHANGE_RESULT, className="mt-2"),
                                ]
                            )
                        ),
                        lg=6, className="mt-3",
                    ),
                ]
            ),
            dbc.Card(
                dbc.CardBody(
                    [
                        html.H2("Supervisor accounts waiting for approval", className="h5"),
                        html.P(
                            "A new supervisor account stays disabled, and a promotion to "
                            "supervisor does not happen, until a second supervisor approves "
                            "it: neither the one who asked nor the account itself.",
                            className="small text-muted",
                        ),
                        html.Div(id=ids.GRANTS),
                        _field("Grant", dcc.Dropdown(id=ids.GRANT_PICK)),
                        _field(f"Reason (needed to refuse; up to {MAX_REASON} characters)",
                               dbc.Input(id=ids.GRANT_REASON, maxLength=MAX_REASON)),
                        dbc.Button("Approve", id=ids.GRANT_APPROVE, color="success",
                                   className="me-2"),
                        dbc.Button("Refuse", id=ids.GRANT_REJECT, color="danger",
                                   outline=True),
                        html.Div(id=ids.GRANT_RESULT, className="mt-2"),
                    ]
                ),
                                className="mt-3",
            ),
            api_keys_card(),
        ]
    )
