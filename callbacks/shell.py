"""Shell callbacks: the database outage banner."""

from __future__ import annotations

from dash import Input, Output, callback

from dashboard.auth import require_roles
from dashboard.context import get_db
from dashboard.shell import Shell as ids
from db import readviews
from db.models import ROLES


@callback(Output(ids.DB_BANNER, "is_open"), Input(ids.DB_INTERVAL, "n_intervals"))
@require_roles(*ROLES)
def db_banner(_n: int | None) -> bool:
    """Open the banner while the database does not answer."""
    return not readviews.ping(get_db())
