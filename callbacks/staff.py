"""Staff accounts callbacks; every change goes through db.users (audited)."""

from __future__ import annotations

from typing import Any

import dash_bootstrap_components as dbc
from dash import Input, Output, State, callback, ctx, no_update

from dashboard import views
from dashboard.auth import require_roles
from dashboard.context import current_actor, get_db
from dashboard.ids import Staff as ids
from db import users
from db.errors import LoyaltyError, ValidationError


@callback(
    Output(ids.GRID, "rowData"),
    Output(ids.PICK_USER, "options"),
    Input(ids.REFRESH, "data"),
)
@require_roles("supervisor")
def staff_list(_version: int | None) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    with get_db().read() as s:
        found = users.list_users(s)
    return views.staff_rows(found), views.staff_options(found)


@callback(
    Output(ids.NEW_USERNAME_FEEDBACK, "children"),
    Output(ids.NEW_ROLE_FEEDBACK, "children"),
    Output(ids.NEW_PASSWORD_FEEDBACK, "children"),
    Output(ids.CREATE_RESULT, "children"),
    Output(ids.REFRESH, "data", allow_duplicate=True),
    Output(ids.NEW_PASSWORD, "value"),
    Input(ids.CREATE, "n_clicks"),
    State(ids.NEW_USERNAME, "value"),
    State(ids.NEW_FULL_NAME, "value"),
    State(ids.NEW_ROLE, "value"),
    State(ids.NEW_PASSWORD, "value"),
    State(ids.REFRESH, "data"),
    prevent_initial_call=True,
)
@require_roles("supervisor", writes=True)
def create(
    n: int | None, username: str | None, full_name: str | None, role: str | None,
    password: str | None, version: int | None,
) -> tuple[Any, ...]:
    if not n:
        return (no_update,) * 6
    actor = current_actor()
    errors = {"username": "", "role": "", "password": ""}
    try:
        info = get_db().write_tx(
            lambda s: users.create_user(
                s, (username or "").strip(), password or "", role or "",
                full_name=(full_name or "").strip(), actor=actor.name, actor_id=actor.id,
            )
        )
    except ValidationError as exc:
        errors[exc.field if exc.field in errors else "username"] = exc.message
        return errors["username"], errors["role"], errors["password"], None, no_update, no_update
    done = dbc.Alert(f"Account {info.username} ({info.role}) created.", color="success",
                     className="py-2 mb-0")
    return "", "", "", done, (version or 0) + 1, ""


@callback(
    Output(ids.PICK_FEEDBACK, "children"),
    Output(ids.CHANGE_RESULT, "children"),
    Output(ids.REFRESH, "data", allow_duplicate=True),
    Input(ids.SET_ROLE, "n_clicks"),
    Input(ids.DISABLE, "n_clicks"),
    Input(ids.ENABLE, "n_clicks"),
    State(ids.PICK_USER, "value"),
    State(ids.PICK_ROLE, "value"),
    State(ids.REFRESH, "data"),
    prevent_initial_call=True,
)
@require_roles("supervisor", writes=True)
def change(
    _set: int | None, _disable: int | None, _enable: int | None, user_id: int | None,
    role: str | None, version: int | None,
) -> tuple[Any, Any, Any]:
    button = ctx.triggered_id
    if button not in (ids.SET_ROLE, ids.DISABLE, ids.ENABLE):
        return no_update, no_update, no_update
    if not user_id:
        return "Choose an account first.", None, no_update
    actor = current_actor()
    try:
        if button == ids.SET_ROLE:
            if not role:
                return "Choose the new role.", None, no_update
            info = get_db().write_tx(
                lambda s: users.set_role(s, int(user_id), role, actor=actor.name,
                                         actor_id=actor.id)
            )
            message = f"{info.username} is now {info.role}."
        else:
            active = button == ids.ENABLE
            info = get_db().write_tx(
                lambda s: users.set_active(s, int(user_id), active, actor=actor.name,
                                           actor_id=actor.id)
            )
            message = f"{info.username} is {'enabled' if active else 'disabled'}."
    except ValidationError as exc:
        return exc.message, None, no_update
    except LoyaltyError as exc:
        return str(exc), None, no_update
    return "", dbc.Alert(message, color="success", className="py-2 mb-0"), (version or 0) + 1
