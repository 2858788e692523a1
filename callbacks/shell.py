"""Shell callbacks: the database outage banner, the language switch."""

from __future__ import annotations

import logging

from dash import Input, Output, callback, clientside_callback
from dash.exceptions import PreventUpdate

from dashboard.auth import require_roles
from dashboard.context import current_actor, get_db
from dashboard.shell import Shell as ids
from db import readviews
from db import users as users_service
from db.errors import LoyaltyError
from db.models import LANGUAGES, ROLES

log = logging.getLogger("callbacks.shell")


@callback(Output(ids.DB_BANNER, "is_open"), Input(ids.DB_INTERVAL, "n_intervals"))
@require_roles(*ROLES)
def db_banner(_n: int | None) -> bool:
    """Open the banner while the database does not answer."""
    return not readviews.ping(get_db())


@callback(
    Output(ids.LANGUAGE_SAVED, "data"),
    Input(ids.LANGUAGE, "value"),
    prevent_initial_call=True,
)
@require_roles(*ROLES, writes=True)
def choose_language(language: str | None) -> str:
    """Store the user's language (audited); the page then reloads in it."""
    if language not in LANGUAGES:
        raise PreventUpdate
    actor = current_actor()
    try:
        get_db().write_tx(lambda s: users_service.set_language(
            s, actor.id, language, actor=actor.name, actor_id=actor.id))
    except LoyaltyError as exc:
        log.warning("language of %s not stored: %s", actor.name, exc)
        raise PreventUpdate from exc
    return language


# a stored choice reloads the page, now built in the new language
clientside_callback(
    """function(saved) {
        if (saved) { window.location.reload(); }
        return window.dash_clientside.no_update;
    }""",
    Output(ids.LANGUAGE, "disabled"),
    Input(ids.LANGUAGE_SAVED, "data"),
    prevent_initial_call=True,
)
