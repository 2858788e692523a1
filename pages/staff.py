"""Staff accounts (supervisor): create, disable/enable, change role."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import dash_bootstrap_components as dbc
from dash import dcc, html

from dashboard import format as fmt
from dashboard.access import register_page
from dashboard.forms import token_store
from dashboard.i18n import N_
from dashboard.shell import grid, page_header
from db.api_keys import KeyInfo
from db.models import API_SCOPES, ROLES
from db.staff_grants import Grant
from db.text import MAX_REASON
from db.users import MAX_FULL_NAME, UserInfo

register_page(
    __name__, path="/staff", name=N_("Staff"), title=N_("Staff accounts"), order=90,
    roles=("supervisor",),
)


# ---------------------------------------------------------------- ids


class Staff:
    GRID = "staff-grid"
    REFRESH = "staff-refresh"
    TOKEN = "staff-token"  # store: this page's form submission token
    NEW_USERNAME = "staff-new-username"
    NEW_FULL_NAME = "staff-new-full-name"
    NEW_ROLE = "staff-new-role"
    NEW_PASSWORD = "staff-new-password"
    NEW_FULL_NAME_FEEDBACK = "staff-new-full-name-feedback"
    NEW_USERNAME_FEEDBACK = "staff-new-username-feedback"
    NEW_ROLE_FEEDBACK = "staff-new-role-feedback"
    NEW_PASSWORD_FEEDBACK = "staff-new-password-feedback"
    CREATE = "staff-create"
    CREATE_RESULT = "staff-create-result"
    PICK_USER = "staff-pick-user"
    PICK_ROLE = "staff-pick-role"
    PICK_FEEDBACK = "staff-pick-feedback"
    SET_ROLE = "staff-set-role"
    DISABLE = "staff-disable"
    ENABLE = "staff-enable"
    CHANGE_RESULT = "staff-change-result"
    # supervisor grants waiting for a second supervisor
    GRANTS = "staff-grants"
    GRANT_PICK = "staff-grant-pick"
    GRANT_REASON = "staff-grant-reason"
    GRANT_APPROVE = "staff-grant-approve"
    GRANT_REJECT = "staff-grant-reject"
    GRANT_RESULT = "staff-grant-result"
    # keys of the shop's HTTP API
    KEYS = "staff-api-keys"
    KEY_NAME = "staff-api-key-name"
    KEY_SCOPES = "staff-api-key-scopes"
    KEY_CREATE = "staff-api-key-create"
    KEY_CREATED = "staff-api-key-created"
    KEY_PICK = "staff-api-key-pick"
    KEY_REVOKE = "staff-api-key-revoke"
    KEY_REVOKED = "staff-api-key-revoked"


ids = Staff


# ---------------------------------------------------------------- builders
# (pure: engine data in, components and figures out; no queries)

def staff_rows(users: Iterable[UserInfo]) -> list[dict[str, Any]]:
    return [
        {"id": u.id, "username": u.username, "full_name": u.full_name, "role": u.role,
         "active": "yes" if u.active else "no", "created_at": fmt.when(u.created_at),
         "last_login_at": fmt.when(u.last_login_at)}
        for u in users
    ]


def staff_options(users: Iterable[UserInfo]) -> list[dict[str, Any]]:
    return [
        {"label": f"{u.username} ({u.role}{'' if u.active else ', disabled'})", "value": u.id}
        for u in users
    ]


def grants_table(grants: Iterable[Grant]) -> Any:
    grants = list(grants)
    if not grants:
        return html.P("Nothing is waiting.", className="text-muted small mb-2",
                      id="staff-grants-empty")
    return dbc.Table(
        [html.Thead(html.Tr([html.Th(h) for h in ("#", "Account", "Asked", "By", "When")])),
         html.Tbody([html.Tr([
             html.Td(g.id), html.Td(g.username),
             html.Td("new supervisor account" if g.kind == "create" else "promotion to supervisor"),
             html.Td(g.requested_by), html.Td(fmt.when(g.requested_at))]) for g in grants])],
        size="sm", className="mb-2", id="staff-grants-table",
    )


def grant_options(grants: Iterable[Grant]) -> list[dict[str, Any]]:
    return [{"label": f"#{g.id} {g.username}: "
                      f"{'new supervisor' if g.kind == 'create' else 'promotion'} "
                      f"(asked by {g.requested_by})", "value": g.id} for g in grants]


def api_keys_table(keys: Iterable[KeyInfo]) -> Any:
    keys = list(keys)
    if not keys:
        return html.P("No API key yet: the shop's systems cannot call the API.",
                      className="text-muted small mb-2", id="staff-api-keys-empty")
    return dbc.Table(
        [html.Thead(html.Tr([html.Th(h) for h in
                             ("Name", "Key starts", "Scopes", "Created by", "Created", "State")])),
         html.Tbody([html.Tr([
             html.Td(k.name), html.Td(html.Code(f"lk_{k.prefix}_")), html.Td(", ".join(k.scopes)),
             html.Td(k.created_by), html.Td(fmt.when(k.created_at)),
             html.Td("active" if k.active else f"revoked {fmt.when(k.revoked_at)}")])
             for k in keys])],
        size="sm", className="mb-2", id="staff-api-keys-table",
    )


def api_key_options(keys: Iterable[KeyInfo]) -> list[dict[str, Any]]:
    return [{"label": f"{k.name} (lk_{k.prefix}_…)", "value": k.id} for k in keys if k.active]


# ---------------------------------------------------------------- layout


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
