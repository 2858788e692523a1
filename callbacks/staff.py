"""Staff accounts callbacks; every change goes through db.users (audited)."""

from __future__ import annotations

from typing import Any

from dash import Input, Output, State, callback, ctx, html, no_update

from dashboard.access import roles_of
from dashboard.auth import require_roles
from dashboard.callback_inputs import as_id, as_text
from dashboard.context import current_actor, get_db
from dashboard.forms import busy, once
from dashboard.i18n import _, error_text, ngettext, translate
from dashboard.shell import alert
from db import api_keys, staff_grants, users
from db.errors import FormErrors, LoyaltyError, ValidationError
from pages import staff as page
from pages.staff import ids

ROLES = roles_of(page.__name__)


@callback(
    Output(ids.GRID, "rowData"),
    Output(ids.PICK_USER, "options"),
    Output(ids.GRANTS, "children"),
    Output(ids.GRANT_PICK, "options"),
    Output(ids.GRANT_PICK, "value"),
    Input(ids.REFRESH, "data"),
)
@require_roles(*ROLES)
def staff_list(_version: int | None) -> tuple[Any, ...]:
    with get_db().read() as s:
        found = users.list_users(s)
        waiting = staff_grants.pending(s)
    return (page.staff_rows(found), page.staff_options(found), page.grants_table(waiting),
            page.grant_options(waiting), None)


@callback(
    Output(ids.NEW_FULL_NAME_FEEDBACK, "children"),
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
    State(ids.TOKEN, "data"),
    prevent_initial_call=True,
    running=busy(ids.CREATE),
)
@require_roles(*ROLES, writes=True)
def create(
    n: int | None, username: str | None, full_name: str | None, role: str | None,
    password: str | None, version: int | None, token: Any = None,
) -> tuple[Any, ...]:
    if not n:
        return (no_update,) * 7
    actor = current_actor()
    errors = {"full_name": "", "username": "", "role": "", "password": ""}
    name, full = as_text(username).strip(), as_text(full_name).strip()
    password, role = as_text(password), as_text(role)

    def work(s: Any) -> str:
        if role == staff_grants.PRIVILEGED:
            info = staff_grants.create_supervisor(s, actor, name, password or "",
                                                  full_name=full)
        else:
            info = users.create_user(s, name, password or "", role or "", full_name=full,
                                     actor=actor.name, actor_id=actor.id)
        if not info.active:
            return _("Account %(username)s (%(role)s) created disabled: it becomes active "
                     "when a second supervisor approves it.", username=info.username,
                     role=page.role_name(info.role))
        return _("Account %(username)s (%(role)s) created.", username=info.username,
                 role=page.role_name(info.role))

    try:
        # the password is emptied after a success: a repeat is the same account
        text, _again = once("staff.create", token, {"username": name, "full_name": full,
                                                    "role": role}, work)
    except ValidationError as exc:
        # every bad field at once, each next to its field
        problems = exc.problems if isinstance(exc, FormErrors) else {exc.field: exc.message}
        for field, message in problems.items():
            errors[field if field in errors else "username"] = translate(message)
        return (*errors.values(), alert(
            _("Not created: fix the field marked.") if len(problems) == 1 else
            ngettext("Not created: fix the %(num)s field marked.",
                     "Not created: fix the %(num)s fields marked.", len(problems)),
            "warning"),
            no_update, no_update)
    except LoyaltyError as exc:
        return "", "", "", "", alert(exc), no_update, no_update
    done = alert(text, "success")
    return "", "", "", "", done, (version or 0) + 1, ""


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
    State(ids.TOKEN, "data"),
    prevent_initial_call=True,
    running=busy(ids.SET_ROLE, ids.DISABLE, ids.ENABLE),
)
@require_roles(*ROLES, writes=True)
def change(
    _set: int | None, _disable: int | None, _enable: int | None, user_id: int | None,
    role: str | None, version: int | None, token: Any = None,
) -> tuple[Any, Any, Any]:
    button = ctx.triggered_id
    if button not in (ids.SET_ROLE, ids.DISABLE, ids.ENABLE):
        return no_update, no_update, no_update
    if not user_id:
        return _("Choose an account first."), None, no_update
    actor = current_actor()
    try:
        if button == ids.SET_ROLE:
            if not role:
                return _("Choose the new role."), None, no_update
            def change_role(s):
                current = users.get_user(s, int(user_id))
                if role == staff_grants.PRIVILEGED and current and current.role != role:
                    staff_grants.request_promotion(s, actor, int(user_id))
                    return _("%(username)s becomes a supervisor when a second supervisor "
                             "approves it.", username=current.username)
                info = users.set_role(s, int(user_id), role, actor=actor.name,
                                      actor_id=actor.id)
                return _("%(username)s is now %(role)s.", username=info.username,
                         role=page.role_name(info.role))

            message, _again = once("staff.role", token, {"user": user_id, "role": role},
                                   change_role)
        else:
            active = button == ids.ENABLE

            def set_active(s: Any) -> str:
                info = users.set_active(s, int(user_id), active, actor=actor.name,
                                        actor_id=actor.id)
                return (_("%(username)s is enabled.", username=info.username) if active
                        else _("%(username)s is disabled.", username=info.username))

            message, _again = once("staff.enable" if active else "staff.disable", token,
                                   {"user": user_id}, set_active)
    except LoyaltyError as exc:
        return error_text(exc), None, no_update
    return "", alert(message, "success"), (version or 0) + 1


@callback(
    Output(ids.GRANT_RESULT, "children"),
    Output(ids.REFRESH, "data", allow_duplicate=True),
    Input(ids.GRANT_APPROVE, "n_clicks"),
    Input(ids.GRANT_REJECT, "n_clicks"),
    State(ids.GRANT_PICK, "value"),
    State(ids.GRANT_REASON, "value"),
    State(ids.REFRESH, "data"),
    State(ids.TOKEN, "data"),
    prevent_initial_call=True,
    running=busy(ids.GRANT_APPROVE, ids.GRANT_REJECT),
)
@require_roles(*ROLES, writes=True)
def decide_grant(_ok: int | None, _no: int | None, grant_id: Any, reason: Any,
                 version: int | None, token: Any = None) -> tuple[Any, Any]:
    """The second supervisor's decision on a supervisor grant."""
    if ctx.triggered_id not in (ids.GRANT_APPROVE, ids.GRANT_REJECT):
        return no_update, no_update
    if not isinstance(grant_id, int) or isinstance(grant_id, bool):
        return alert(_("Choose a waiting grant first."), "warning"), no_update
    actor = current_actor()
    approving = ctx.triggered_id == ids.GRANT_APPROVE

    def work(s: Any) -> str:
        if approving:
            info = staff_grants.approve(s, actor, grant_id)
            return _("Approved: %(username)s is an active supervisor.", username=info.username)
        staff_grants.reject(s, actor, grant_id, reason if isinstance(reason, str) else "")
        return _("Refused: the account keeps its role (a new account stays disabled).")

    try:
        text, _again = once("staff.grant.approve" if approving else "staff.grant.refuse",
                            token, {"grant": grant_id, "reason": reason}, work)
    except LoyaltyError as exc:
        return alert(exc), no_update
    return alert(text, "success"), (version or 0) + 1


@callback(
    Output(ids.KEYS, "children"),
    Output(ids.KEY_PICK, "options"),
    Output(ids.KEY_PICK, "value"),
    Input(ids.REFRESH, "data"),
)
@require_roles(*ROLES)
def key_list(_version: int | None) -> tuple[Any, ...]:
    with get_db().read() as s:
        keys = api_keys.list_keys(s)
    return page.api_keys_table(keys), page.api_key_options(keys), None


@callback(
    Output(ids.KEY_CREATED, "children"),
    Output(ids.REFRESH, "data", allow_duplicate=True),
    Input(ids.KEY_CREATE, "n_clicks"),
    State(ids.KEY_NAME, "value"),
    State(ids.KEY_SCOPES, "value"),
    State(ids.REFRESH, "data"),
    State(ids.TOKEN, "data"),
    prevent_initial_call=True,
    running=busy(ids.KEY_CREATE),
)
@require_roles(*ROLES, writes=True)
def create_key(n: int | None, name: Any, scopes: Any, version: int | None,
               form_token: Any = None) -> tuple[Any, ...]:
    """A new API key, shown once. The same form sent again (a double click)
    makes no second key and leaves the one shown on the page."""
    if not n:
        return no_update, no_update
    actor = current_actor()
    made: list[Any] = []

    def work(s: Any) -> int:
        made.append(api_keys.create_key(s, actor, as_text(name), scopes or []))
        return made[0][0].id

    try:
        _kid, again = once("staff.key", form_token, {"name": as_text(name), "scopes": scopes},
                           work)
    except LoyaltyError as exc:
        return alert(exc, "danger"), no_update
    if again:
        return no_update, no_update
    info, token = made[0]
    shown = alert([
        html.Div(_("Key '%(name)s' created (%(scopes)s). Copy it now: it is not shown "
                   "again.", name=info.name, scopes=page.scope_names(info.scopes))),
        html.Code(token, id="staff-api-key-token", className="user-select-all"),
    ], color="success")
    return shown, (version or 0) + 1


@callback(
    Output(ids.KEY_REVOKED, "children"),
    Output(ids.REFRESH, "data", allow_duplicate=True),
    Input(ids.KEY_REVOKE, "n_clicks"),
    State(ids.KEY_PICK, "value"),
    State(ids.REFRESH, "data"),
    State(ids.TOKEN, "data"),
    prevent_initial_call=True,
    running=busy(ids.KEY_REVOKE),
)
@require_roles(*ROLES, writes=True)
def revoke_key(n: int | None, key_id: Any, version: int | None, token: Any = None
               ) -> tuple[Any, Any]:
    if not n:
        return no_update, no_update
    kid = as_id(key_id)
    if kid is None:
        return alert(_("Choose a key first."), "warning"), no_update
    actor = current_actor()
    try:
        name, _again = once("staff.key.revoke", token, {"key": kid},
                            lambda s: api_keys.revoke_key(s, actor, kid).name)
    except LoyaltyError as exc:
        return alert(exc), no_update
    return (alert(_("Key '%(name)s' is revoked: calls with it are refused.", name=name),
                  "success"),
            (version or 0) + 1)
