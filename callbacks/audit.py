"""Audit log callbacks: filter options, the filtered table, the CSV export."""

from __future__ import annotations

import datetime as dt
from typing import Any

from dash import Input, Output, State, callback, ctx, no_update

from dashboard import format as fmt
from dashboard.access import roles_of
from dashboard.auth import require_roles
from dashboard.context import current_actor, get_db
from dashboard.i18n import _, current_language, ngettext
from db import audit, readviews
from pages import audit as page
from pages.audit import ids

ROLES = roles_of(page.__name__)

MAX_SHOWN = 2000
MAX_EXPORT = 100_000


def _date(value: str | None) -> dt.date | None:
    return dt.date.fromisoformat(value[:10]) if value else None


def _filters(start: str | None, end: str | None) -> tuple[dt.date | None, dt.date | None, str]:
    """Parse the date range; the message is shown next to the field."""
    try:
        d_from, d_to = _date(start), _date(end)
    except ValueError:
        return None, None, _("Dates must look like %(example)s.", example="2025-01-31")
    if d_from and d_to and d_from > d_to:
        return None, None, _("The start date is after the end date.")
    return d_from, d_to, ""


@callback(
    Output(ids.ACTOR, "options"),
    Output(ids.ACTION, "options"),
    Input(ids.COUNT, "id"),
)
@require_roles(*ROLES)
def filter_options(_id: str) -> tuple[list[str], list[dict[str, str]]]:
    """The users and actions in the log; actions by their names in the user's language."""
    with get_db().read() as s:
        actors, actions = readviews.audit_filter_options(s)
    return actors, page.action_options(actions)


@callback(
    Output(ids.GRID, "rowData"),
    Output(ids.COUNT, "children"),
    Output(ids.DATES_FEEDBACK, "children"),
    Input(ids.ACTOR, "value"),
    Input(ids.ACTION, "value"),
    Input(ids.DATES, "start_date"),
    Input(ids.DATES, "end_date"),
)
@require_roles(*ROLES)
def audit_table(
    actor: str | None, action: str | None, start: str | None, end: str | None
) -> tuple[Any, str, str]:
    d_from, d_to, error = _filters(start, end)
    if error:
        return no_update, "", error
    with get_db().read() as s:
        rows = readviews.search_audit(s, actor=actor, action=action, date_from=d_from,
                                      date_to=d_to, limit=MAX_SHOWN)
    if not rows:
        return [], _("No audit entries match these filters."), ""
    if len(rows) == MAX_SHOWN:
        count = _("%(count)s entries (the newest %(count)s — the CSV export has them all).",
                  count=fmt.points(MAX_SHOWN))
    else:
        count = ngettext("%(num)s entry.", "%(num)s entries.", len(rows))
    return page.audit_rows(rows), count, ""


@callback(
    Output(ids.DOWNLOAD, "data"),
    Output(ids.DATES_FEEDBACK, "children", allow_duplicate=True),
    Input(ids.EXPORT, "n_clicks"),
    State(ids.ACTOR, "value"),
    State(ids.ACTION, "value"),
    State(ids.DATES, "start_date"),
    State(ids.DATES, "end_date"),
    prevent_initial_call=True,
)
@require_roles(*ROLES, writes=True)
def export_csv(
    n: int | None, actor: str | None, action: str | None, start: str | None, end: str | None
) -> tuple[Any, str]:
    if not n or ctx.triggered_id != ids.EXPORT:
        return no_update, no_update
    d_from, d_to, error = _filters(start, end)
    if error:
        return no_update, error
    who = current_actor()
    filters = {"actor": actor, "action": action, "from": start, "to": end}

    def run(s: Any) -> list[readviews.AuditRow]:
        rows = readviews.search_audit(s, actor=actor, action=action, date_from=d_from,
                                      date_to=d_to, limit=MAX_EXPORT)
        # exporting the audit log is itself audited (it leaves the system)
        audit.record(s, who.name, "audit.export", actor_id=who.id, object_type="audit_log",
                     after={"filters": filters, "rows": len(rows)})
        return rows

    rows = get_db().write_tx(run)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S")
    # the headers in the user's language (the engine is told it: it knows no request)
    return {"content": page.audit_csv(rows, language=current_language()),
            "filename": f"audit-{stamp}.csv", "type": "text/csv"}, ""
