"""Staff accounts (supervisor): create, disable/enable, change role."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import dash_bootstrap_components as dbc
from dash import dcc, html

from dashboard import format as fmt
from dashboard.access import register_page
from dashboard.forms import token_store
from dashboard.i18n import N_, _, translate
from dashboard.shell import dropdown_props, grid, page_header
from db.api_keys import KeyInfo
from db.models import API_SCOPES, ROLES
from db.staff_grants import Grant
from db.text import MAX_REASON
from db.users import MAX_FULL_NAME, MIN_PASSWORD, UserInfo

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

# roles as the staff page names them in its sentences and lists (stored values never change)
ROLE_NAMES = {"supervisor": N_("supervisor"), "executive": N_("executive"),
              "support": N_("support")}
# the API's scopes: short names (the keys table, messages) and what each allows (the form)
SCOPE_NAMES = {"orders": N_("orders"), "redeem": N_("redeem"), "transfer": N_("transfer"),
               "read": N_("read")}
SCOPE_LABELS = {
    "orders": N_("orders (enrol members, post orders)"),
    "redeem": N_("redeem points"),
    "transfer": N_("transfer points"),
    "read": N_("read balances and tiers"),
}


def role_name(role: str) -> str:
    """A role in the user's language (an unknown value as it is)."""
    return translate(ROLE_NAMES.get(role, role))


def scope_names(scopes: Iterable[str]) -> str:
    return ", ".join(translate(SCOPE_NAMES.get(x, x)) for x in scopes)


def staff_rows(users: Iterable[UserInfo]) -> list[dict[str, Any]]:
    return [
        {"id": u.id, "username": u.username, "full_name": u.full_name,
         "role": role_name(u.role), "active": _("yes") if u.active else _("no"),
         "created_at": fmt.when(u.created_at), "last_login_at": fmt.when(u.last_login_at)}
        for u in users
    ]


def staff_options(users: Iterable[UserInfo]) -> list[dict[str, Any]]:
    return [
        {"label": (_("%(username)s (%(role)s)", username=u.username, role=role_name(u.role))
                   if u.active else
                   _("%(username)s (%(role)s, disabled)", username=u.username,
                     role=role_name(u.role))),
         "value": u.id}
        for u in users
    ]


def grants_table(grants: Iterable[Grant]) -> Any:
    grants = list(grants)
    if not grants:
        return html.P(_("Nothing is waiting."), className="text-muted small mb-2",
                      id="staff-grants-empty")
    heads = ("#", _("Account"), _("Asked"), _("By"), _("When"))
    return dbc.Table(
        [html.Thead(html.Tr([html.Th(h) for h in heads])),
         html.Tbody([html.Tr([
             html.Td(g.id), html.Td(g.username),
             html.Td(_("new supervisor account") if g.kind == "create"
                     else _("promotion to supervisor")),
             html.Td(g.requested_by), html.Td(fmt.when(g.requested_at))]) for g in grants])],
        size="sm", className="mb-2", id="staff-grants-table",
    )


def grant_options(grants: Iterable[Grant]) -> list[dict[str, Any]]:
    return [{"label": (_("#%(id)s %(username)s: new supervisor (asked by %(by)s)",
                         id=g.id, username=g.username, by=g.requested_by)
                       if g.kind == "create" else
                       _("#%(id)s %(username)s: promotion (asked by %(by)s)",
                         id=g.id, username=g.username, by=g.requested_by)),
             "value": g.id} for g in grants]


def api_keys_table(keys: Iterable[KeyInfo]) -> Any:
    keys = list(keys)
    if not keys:
        return html.P(_("No API key yet: the shop's systems cannot call the API."),
                      className="text-muted small mb-2", id="staff-api-keys-empty")
    heads = (_("Key name"), _("Key starts"), _("Scopes"), _("Created by"), _("Created"),
             _("State"))
    return dbc.Table(
        [html.Thead(html.Tr([html.Th(h) for h in heads])),
         html.Tbody([html.Tr([
             html.Td(k.name), html.Td(html.Code(f"lk_{k.prefix}_")),
             html.Td(scope_names(k.scopes)),
             html.Td(k.created_by), html.Td(fmt.when(k.created_at)),
             html.Td(_("active") if k.active
                     else _("revoked %(when)s", when=fmt.when(k.revoked_at)))])
             for k in keys])],
        size="sm", className="mb-2", id="staff-api-keys-table",
    )


def api_key_options(keys: Iterable[KeyInfo]) -> list[dict[str, Any]]:
    return [{"label": f"{k.name} (lk_{k.prefix}_…)", "value": k.id} for k in keys if k.active]


# ---------------------------------------------------------------- layout


STAFF_COLUMNS = [
    {"field": "username", "headerName": N_("Username")},
    {"field": "full_name", "headerName": N_("Full name")},
    {"field": "role", "headerName": N_("Role")},
    {"field": "active", "headerName": N_("Active")},
    {"field": "created_at", "headerName": N_("Created")},
    {"field": "last_login_at", "headerName": N_("Last login")},
]


def staff_columns() -> list[dict[str, Any]]:
    """The grid's columns, headers in the user's language."""
    return [{**c, "headerName": translate(c["headerName"])} for c in STAFF_COLUMNS]


def role_options() -> list[dict[str, Any]]:
    return [{"label": role_name(r), "value": r} for r in ROLES]


def api_keys_card() -> dbc.Card:
    return dbc.Card(
        dbc.CardBody(
            [
                html.H2(_("API keys"), className="h5"),
                html.P(
                    _("The shop's till, website and apps call /api/v1 with a key. A new key "
                      "is shown once: copy it into the system that uses it. Revoking stops it "
                      "at once. Every call is written to the audit log under the key's name."),
                    className="small text-muted",
                ),
                html.Div(id=ids.KEYS),
                dbc.Row(
                    [
                        dbc.Col(
                            [
                                _field(_("Key name"), dbc.Input(id=ids.KEY_NAME, maxlength=64,
                                                            placeholder=_("Till 1"))),
                                _field(_("Scopes"), dbc.Checklist(
                                    id=ids.KEY_SCOPES, value=["orders", "read"],
                                    options=[{"label": translate(SCOPE_LABELS[x]), "value": x}
                                             for x in API_SCOPES])),
                                dbc.Button(_("Create key"), id=ids.KEY_CREATE, color="primary"),
                                html.Div(id=ids.KEY_CREATED, className="mt-2"),
                            ],
                            lg=6,
                        ),
                        dbc.Col(
                            [
                                _field(_("Key"), _dropdown(ids.KEY_PICK)),
                                dbc.Button(_("Revoke"), id=ids.KEY_REVOKE, color="danger",
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


def _dropdown(component_id: str, **props: Any) -> dcc.Dropdown:
    """A dropdown whose own texts (search, no options) are in the user's language."""
    return dcc.Dropdown(id=component_id, placeholder=_("Choose…"), **dropdown_props(), **props)


def _field(label: str, control: object, feedback_id: str | None = None) -> html.Div:
    children = [dbc.Label(label), control]
    if feedback_id:
        children.append(html.Div(id=feedback_id, className="field-error"))
    return html.Div(children, className="mb-2")


def layout(**_kwargs: object) -> html.Div:
    return html.Div(
        [
            page_header(_("Staff accounts"), _("Every change here is written to the audit log.")),
            dcc.Store(id=ids.REFRESH, data=0),
            token_store(ids.TOKEN),
            grid(ids.GRID, staff_columns(), height="300px"),
            dbc.Row(
                [
                    dbc.Col(
                        dbc.Card(
                            dbc.CardBody(
                                [
                                    html.H2(_("New account"), className="h5"),
                                    _field(_("Username"), dbc.Input(id=ids.NEW_USERNAME),
                                           ids.NEW_USERNAME_FEEDBACK),
                                    _field(_("Full name (up to %(n)s characters)",
                                             n=MAX_FULL_NAME),
                                           dbc.Input(id=ids.NEW_FULL_NAME,
                                                     maxLength=MAX_FULL_NAME),
                                           ids.NEW_FULL_NAME_FEEDBACK),
                                    _field(_("Role"),
                                           _dropdown(ids.NEW_ROLE, options=role_options()),
                                           ids.NEW_ROLE_FEEDBACK),
                                    _field(_("Initial password"),
                                           dbc.Input(id=ids.NEW_PASSWORD, type="password",
                                                     autocomplete="new-password"),
                                           ids.NEW_PASSWORD_FEEDBACK),
                                    html.P(_("At least %(n)s characters, not a commonly used "
                                             "password, not containing the username.",
                                             n=MIN_PASSWORD),
                                           className="small text-muted",
                                           id="staff-password-rules"),
                                    dbc.Button(_("Create account"), id=ids.CREATE,
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
                                    html.H2(_("Change an account"), className="h5"),
                                    _field(_("Account"), _dropdown(ids.PICK_USER)),
                                    _field(_("Role"),
                                           _dropdown(ids.PICK_ROLE, options=role_options()),
                                           ids.PICK_FEEDBACK),
                                    html.Div(
                                        [
                                            dbc.Button(_("Change role"), id=ids.SET_ROLE,
                                                       color="primary", className="me-2"),
                                            dbc.Button(_("Disable"), id=ids.DISABLE,
                                                       color="danger", outline=True,
                                                       className="me-2"),
                                            dbc.Button(_("Enable"), id=ids.ENABLE,
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
                        html.H2(_("Supervisor accounts waiting for approval"), className="h5"),
                        html.P(
                            _("A new supervisor account stays disabled, and a promotion to "
                              "supervisor does not happen, until a second supervisor approves "
                              "it: neither the one who asked nor the account itself."),
                            className="small text-muted",
                        ),
                        html.Div(id=ids.GRANTS),
                        _field(_("Grant"), _dropdown(ids.GRANT_PICK)),
                        _field(_("Reason (needed to refuse; up to %(n)s characters)",
                                 n=MAX_REASON),
                               dbc.Input(id=ids.GRANT_REASON, maxLength=MAX_REASON)),
                        dbc.Button(_("Approve"), id=ids.GRANT_APPROVE, color="success",
                                   className="me-2"),
                        dbc.Button(_("Refuse"), id=ids.GRANT_REJECT, color="danger",
                                   outline=True),
                        html.Div(id=ids.GRANT_RESULT, className="mt-2"),
                    ]
                ),
                className="mt-3",
            ),
            api_keys_card(),
        ]
    )
