"""Adjustments: approval queue and decisions (supervisors), history and CSV
export (supervisors: all requests; support: their own, filtered here on the
server whatever the form says)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import dash_bootstrap_components as dbc
from dash import Input, Output, State, callback, ctx, html, no_update

from dashboard import format as fmt
from dashboard.access import roles_of
from dashboard.auth import require_roles
from dashboard.callback_inputs import as_id, as_text
from dashboard.context import current_actor, get_db
from dashboard.forms import once
from dashboard.i18n import N_, _, error_text, ngettext, translate
from dashboard.shell import ROLE_LABELS, alert, empty_state, grid
from db import adjustments, audit, members, users
from db.actor import Actor
from db.adjustments import AdjustmentFilters
from db.errors import LoyaltyError, ValidationError
from pages import adjustments_request as request_page
from pages import adjustments_review as page
from pages.adjustments_review import ids

ROLES = roles_of(page.__name__)
DECIDE = roles_of(page.__name__, "decide_roles")
MAX_SHOWN = 1000
MAX_EXPORT = 100_000


def _alert(text: str, color: str) -> dbc.Alert:
    return alert(text, color, id="adjreview-decision-alert")


# ------------------------------------------------------------------ queue


@callback(
    Output(ids.QUEUE, "rowData"),
    Output(ids.QUEUE_COUNT, "children"),
    Input(ids.VERSION, "data"),
    Input(ids.QUEUE_REFRESH, "n_intervals"),
)
@require_roles(*DECIDE)
def queue(_v: int | None, _n: int | None) -> tuple[list[dict[str, Any]], str]:
    with get_db().read() as s:
        items = adjustments.list_adjustments(s, AdjustmentFilters(status="pending"),
                                             limit=MAX_SHOWN)
    items.sort(key=lambda a: (a.requested_at, a.id))  # oldest waits longest: first
    if not items:
        return [], _("Nothing is waiting: every request has been decided.")
    return page.queue_rows(items), ngettext(
        "%(num)s request waiting, oldest first. Select one to decide; you cannot decide your "
        "own.",
        "%(num)s requests waiting, oldest first. Select one to decide; you cannot decide your "
        "own.", len(items))


@callback(
    Output(ids.SELECTED, "data"),
    Output(ids.DETAIL, "children"),
    Output(ids.APPROVE, "disabled"),
    Output(ids.REJECT, "disabled"),
    Input(ids.QUEUE, "selectedRows"),
    prevent_initial_call=True,
)
@require_roles(*DECIDE)
def detail(selected: list[dict[str, Any]] | None) -> tuple[Any, Any, bool, bool]:
    if not selected:
        return None, html.Div(_("Select a request."), className="text-muted small"), True, True
    actor = current_actor()
    try:
        rid = int(selected[0]["id"])
        with get_db().read() as s:
            a = adjustments.get_adjustment(s, rid)
            history = members.ledger_page(s, a.member_id, limit=10).rows
    except (LoyaltyError, KeyError, TypeError, ValueError) as exc:
        return None, _alert(_("Cannot show this request: %(why)s", why=error_text(exc)),
                            "warning"), True, True
    own = a.requested_by_id == actor.id
    closed = a.status != "pending"
    return rid, page.request_detail(a, history, me=actor.id or 0), own or closed, own or closed


def _decided(text: str, color: str, version: int | None) -> tuple[Any, int, bool, bool]:
    # after a decision the buttons stay disabled until another row is selected
    return _alert(text, color), (version or 0) + 1, True, True


@callback(
    Output(ids.DECISION, "children"),
    Output(ids.VERSION, "data"),
    Output(ids.APPROVE, "disabled", allow_duplicate=True),
    Output(ids.REJECT, "disabled", allow_duplicate=True),
    Input(ids.APPROVE, "n_clicks"),
    State(ids.SELECTED, "data"),
    State(ids.VERSION, "data"),
    State(ids.TOKEN, "data"),
    prevent_initial_call=True,
    running=[(Output(ids.APPROVE, "disabled"), True, True),
             (Output(ids.REJECT, "disabled"), True, True)],
)
@require_roles(*DECIDE, writes=True)
def approve(n: int | None, request_id: int | None, version: int | None, token: Any = None
            ) -> tuple[Any, ...]:
    request_id = as_id(request_id)
    if not n or request_id is None:
        return no_update, no_update, no_update, no_update
    actor = current_actor()

    def work(s: Any) -> dict[str, Any]:
        info = adjustments.approve_adjustment(s, actor, request_id)
        return {"id": info.id, "points": info.points, "final": info.status == "approved"}

    try:
        done, _again = once("adjreview.approve", token, {"id": request_id}, work)
    except LoyaltyError as exc:
        # the loser of a race, a changed balance, one's own request: nothing written
        return _decided(_("Not approved: %(why)s", why=error_text(exc)), "danger", version)
    return _decided(_approved(done), "success", version)


def _approved(done: Any) -> str:
    """What an approval did, in the user's language (a replayed answer too)."""
    if not isinstance(done, dict):  # an answer kept before answers were data
        return str(done)
    if done.get("final"):
        return _("Request #%(id)s approved: %(points)s points written to the member's ledger "
                 "(one entry).", id=done["id"], points=fmt.signed_points(done["points"]))
    return _("Request #%(id)s: first approval recorded. A second supervisor must approve it "
             "before anything is written.", id=done["id"])


@callback(
    Output(ids.DECISION, "children", allow_duplicate=True),
    Output(ids.VERSION, "data", allow_duplicate=True),
    Output(ids.APPROVE, "disabled", allow_duplicate=True),
    Output(ids.REJECT, "disabled", allow_duplicate=True),
    Output(ids.REJECT_FEEDBACK, "children"),
    Input(ids.REJECT, "n_clicks"),
    State(ids.SELECTED, "data"),
    State(ids.REJECT_REASON, "value"),
    State(ids.VERSION, "data"),
    State(ids.TOKEN, "data"),
    prevent_initial_call=True,
    running=[(Output(ids.APPROVE, "disabled"), True, True),
             (Output(ids.REJECT, "disabled"), True, True)],
)
@require_roles(*DECIDE, writes=True)
def reject(n: int | None, request_id: int | None, reason: str | None, version: int | None,
           token: Any = None) -> tuple[Any, ...]:
    request_id = as_id(request_id)
    if not n or request_id is None:
        return (no_update,) * 5
    actor = current_actor()
    try:
        rid, _again = once("adjreview.reject", token, {"id": request_id, "reason": reason},
                           lambda s: adjustments.reject_adjustment(
                               s, actor, request_id, as_text(reason)).id)
    except ValidationError as exc:
        # a missing reason: say so next to the field and leave the buttons usable
        return no_update, no_update, False, False, error_text(exc)
    except LoyaltyError as exc:
        return (*_decided(_("Not rejected: %(why)s", why=error_text(exc)), "danger", version), "")
    return (*_decided(_("Request #%(id)s rejected. Nothing was written to the ledger.", id=rid),
                      "secondary", version), "")


# ------------------------------------------------------------------ history


def _date(value: str | None) -> dt.date | None:
    return dt.date.fromisoformat(value[:10]) if value else None


def _filters(actor: Actor, status: str | None, requester: int | None, approver: int | None,
             reason: str | None, start: str | None, end: str | None) -> AdjustmentFilters:
    """The form's filters; support is pinned to their own requests here."""
    try:
        d_from, d_to = _date(start), _date(end)
    except ValueError:
        raise ValidationError("dates", N_("dates must look like %(example)s",
                                          example="2025-01-31")) from None
    own = actor.id if actor.role not in DECIDE else None
    f = AdjustmentFilters(
        status=status or None,
        requested_by_id=own if own is not None else (int(requester) if requester else None),
        approver_id=int(approver) if approver else None,
        reason_code=reason or None, date_from=d_from, date_to=d_to,
    )
    f.validate()
    return f


@callback(
    Output(ids.REQUESTER, "options"),
    Output(ids.APPROVER, "options"),
    Input(ids.SUMMARY, "id"),
)
@require_roles(*ROLES)
def staff_options(_id: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    with get_db().read() as s:
        staff = users.list_users(s)
    requesters = [{"label": f"{u.username} ({translate(ROLE_LABELS.get(u.role, u.role))})",
                   "value": u.id} for u in staff
                  if u.role in ("support", "supervisor")]
    approvers = [{"label": u.username, "value": u.id} for u in staff if u.role == "supervisor"]
    return requesters, approvers


@callback(
    Output(ids.GRID, "children"),
    Output(ids.SUMMARY, "children"),
    Output(ids.DATES_FEEDBACK, "children"),
    Input(ids.STATUS, "value"),
    Input(ids.REQUESTER, "value"),
    Input(ids.APPROVER, "value"),
    Input(ids.REASON, "value"),
    Input(ids.DATES, "start_date"),
    Input(ids.DATES, "end_date"),
    Input(ids.VERSION, "data"),
)
@require_roles(*ROLES)
def history(status: str | None, requester: int | None, approver: int | None,
            reason: str | None, start: str | None, end: str | None, _v: int | None
            ) -> tuple[Any, str, str]:
    actor = current_actor()
    try:
        f = _filters(actor, status, requester, approver, reason, start, end)
        with get_db().read() as s:
            items = adjustments.list_adjustments(s, f, limit=MAX_SHOWN)
    except ValidationError as exc:
        return no_update, "", error_text(exc)
    if not items:
        return empty_state(
            _("No adjustment requests match these filters."),
            _("Support staff request balance corrections; they wait for a supervisor other "
              "than the requester."),
        ), "", ""
    return (request_page.grid_texts(
                grid(ids.TABLE, request_page.headers(request_page.ADJUSTMENT_COLUMNS),
                     request_page.adjustment_rows(items), height="420px"),
                _("No requests to show.")),
            request_page.adjustment_summary(items, capped=len(items) == MAX_SHOWN), "")


@callback(
    Output(ids.DOWNLOAD, "data"),
    Output(ids.DATES_FEEDBACK, "children", allow_duplicate=True),
    Input(ids.EXPORT, "n_clicks"),
    State(ids.STATUS, "value"),
    State(ids.REQUESTER, "value"),
    State(ids.APPROVER, "value"),
    State(ids.REASON, "value"),
    State(ids.DATES, "start_date"),
    State(ids.DATES, "end_date"),
    prevent_initial_call=True,
)
@require_roles(*ROLES, writes=True)
def export_csv(n: int | None, status: str | None, requester: int | None,
               approver: int | None, reason: str | None, start: str | None, end: str | None
               ) -> tuple[Any, str]:
    if not n or ctx.triggered_id != ids.EXPORT:
        return no_update, no_update
    actor = current_actor()
    try:
        f = _filters(actor, status, requester, approver, reason, start, end)
    except ValidationError as exc:
        return no_update, error_text(exc)

    def run(s: Any) -> list[adjustments.AdjustmentRow]:
        rows = adjustments.list_adjustments(s, f, limit=MAX_EXPORT)
        # the export leaves the system: audited with its filters
        audit.record(s, actor.name, "adjustment.export", actor_id=actor.id,
                     object_type="adjustment",
                     after={"filters": {"status": f.status, "requested_by_id": f.requested_by_id,
                                        "approver_id": f.approver_id, "reason_code": f.reason_code,
                                        "from": start, "to": end}, "rows": len(rows)})
        return rows

    rows = get_db().write_tx(run)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S")
    return {"content": page.adjustments_csv(rows), "filename": f"adjustments-{stamp}.csv",
            "type": "text/csv"}, ""
