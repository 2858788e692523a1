"""Members callbacks: paged search, the selected member's profile and ledger.

Both grids use AG Grid's infinite row model: the browser asks for one block
(``getRowsRequest``: startRow/endRow), the callback answers with those rows
only. A new search term, member or ledger filter reloads the grid in the
browser (assets/pagedGrid.js), which makes it ask again from row 0.
"""

from __future__ import annotations

from typing import Any

from dash import (
    ClientsideFunction,
    Input,
    Output,
    State,
    callback,
    clientside_callback,
    html,
    no_update,
)

from dashboard import format as fmt
from dashboard.access import roles_of
from dashboard.auth import require_roles
from dashboard.context import current_actor, get_config, get_db, get_limits
from dashboard.i18n import N_, _, error_text, ngettext
from dashboard.shell import empty_state
from db import members
from db.errors import NotFound, ValidationError
from db.ratelimit import parse_rates
from pages import members as members_page
from pages.members import ids

ROLES = roles_of(members_page.__name__)
TOO_MANY_SEARCHES = N_("Too many searches: wait a minute and search again.")
# A new search term, field, member or ledger filter reloads the grid from its
# first block through assets/pagedGrid.js, which also hands each answer to the
# block that asked (dash-ag-grid's own hand-over loses the answer after an
# empty one).
for _grid, _refresh, _inputs in (
    (ids.GRID, ids.SEARCH_REFRESH, (Input(ids.QUERY, "value"), Input(ids.FIELD, "value"))),
    (ids.LEDGER_GRID, ids.LEDGER_REFRESH,
     (Input(ids.MEMBER, "data"), Input(ids.LEDGER_KIND, "value"))),
):
    clientside_callback(ClientsideFunction("pagedGrid", "reload"), Output(_refresh, "data"),
                        *_inputs, State(_grid, "id"), prevent_initial_call=True)
    clientside_callback(ClientsideFunction("pagedGrid", "answer"),
                        Output(_refresh, "data", allow_duplicate=True),
                        Input(_grid, "getRowsResponse"), State(_grid, "id"),
                        prevent_initial_call=True)


def _search_refusal(user_id: int) -> str | None:
    """None when the user may search now (the search is counted), else why not.

    Every block the grid asks for is a query, so each counts; masked contacts
    can then not be spelt out by a flood of searches. While the shared store
    is busy (a SQLite import holds the write lock) this process counts."""
    claims = {f"member-search:{user_id}": parse_rates(get_config().member_search_limit)}
    ticket = get_limits().acquire(claims, local_when_busy=True)
    return None if ticket is not None else _(TOO_MANY_SEARCHES)


def _block(request: dict[str, Any] | None) -> tuple[int, int]:
    """(offset, limit) of the block the grid asks for, clamped."""
    request = request or {}
    try:
        start = max(0, int(request.get("startRow") or 0))
        end = int(request.get("endRow") or start + 100)
    except (TypeError, ValueError):
        return 0, 100
    return start, max(1, min(end - start, members.MAX_PAGE))


@callback(
    Output(ids.GRID, "getRowsResponse"),
    Output(ids.COUNT, "children"),
    Output(ids.QUERY_FEEDBACK, "children"),
    Input(ids.GRID, "getRowsRequest"),
    State(ids.QUERY, "value"),
    State(ids.FIELD, "value"),
)
@require_roles(*ROLES)
def search(request: dict[str, Any] | None, query: str | None, field: str | None
           ) -> tuple[dict[str, Any], Any, str]:
    if request is None:
        return no_update, no_update, no_update
    actor = current_actor()
    if refusal := _search_refusal(actor.id):
        return {"rowData": [], "rowCount": 0}, "", refusal
    start, limit = _block(request)
    reveal = members.pii_visible(actor.role)
    try:
        with get_db().read() as s:
            page = members.search_members(s, query or "", field or "auto", offset=start,
                                          limit=limit, reveal=reveal)
    except ValidationError as exc:
        return {"rowData": [], "rowCount": 0}, "", error_text(exc)
    summary = members_page.search_summary(page, start) if start == 0 else no_update
    return members_page.search_response(page, start), summary, ""


@callback(
    Output(ids.MEMBER, "data"),
    Input(ids.GRID, "selectedRows"),
    prevent_initial_call=True,
)
@require_roles(*ROLES)
def select_member(selected: list[dict[str, Any]] | None) -> Any:
    if not selected:
        return no_update
    try:
        return int(selected[0]["id"])
    except (KeyError, TypeError, ValueError):
        return no_update


@callback(
    Output(ids.PROFILE, "children"),
    Output(ids.ORDERS, "children"),
    Output(ids.REFERRALS, "children"),
    Output(ids.TRANSFERS, "children"),
    Output(ids.ADJUSTMENTS, "children"),
    Input(ids.MEMBER, "data"),
)
@require_roles(*ROLES)
def profile(member_id: int | None) -> tuple[Any, ...]:
    if member_id is None:
        hint = html.Div(_("Select a member to see the profile."), className="text-muted small")
        return (empty_state(_("No member selected."),
                            _("Search above and click a row, or open "
                              "/members?id=<member id>.")),
                hint, hint, hint, hint)
    actor = current_actor()
    try:
        with get_db().read() as s:
            p = members.get_profile(s, int(member_id), reveal=members.pii_visible(actor.role))
            orders, n_orders = members.member_orders(s, p.id)
            refs, n_refs = members.member_referrals(s, p.id)
            transfers = members.member_transfers(s, p.id)
            adjustments = members.member_adjustments(s, p.id)
    except (NotFound, TypeError, ValueError):
        gone = html.Div("—", className="text-muted")
        return (empty_state(_("Member %(id)s does not exist.", id=member_id),
                            _("Check the link, or search for the member above.")),
                gone, gone, gone, gone)
    return (members_page.profile_card(p, can_request=True),
            members_page.orders_table(orders, n_orders, p.currency),
            members_page.referrals_table(refs, n_refs), members_page.transfers_table(transfers),
            members_page.member_adjustments_table(adjustments))


@callback(
    Output(ids.LEDGER_GRID, "getRowsResponse"),
    Output(ids.LEDGER_COUNT, "children"),
    Input(ids.LEDGER_GRID, "getRowsRequest"),
    State(ids.MEMBER, "data"),
    State(ids.LEDGER_KIND, "value"),
)
@require_roles(*ROLES)
def ledger(request: dict[str, Any] | None, member_id: int | None, kind: str | None
           ) -> tuple[dict[str, Any], Any]:
    if request is None:
        return no_update, no_update
    if member_id is None:
        return {"rowData": [], "rowCount": 0}, _("Select a member to see the ledger.")
    start, limit = _block(request)
    kind = None if kind in (None, "", "all") else kind
    try:
        with get_db().read() as s:
            page = members.ledger_page(s, int(member_id), kind=kind or None, offset=start,
                                       limit=limit)
    except (NotFound, ValidationError, TypeError, ValueError):
        return {"rowData": [], "rowCount": 0}, _("No ledger for this member.")
    if kind:
        label = members_page.kind_label(kind)
        count = (ngettext("%(count)s line of kind %(kind)s; the balance column is the running "
                          "balance after each line.",
                          "%(count)s lines of kind %(kind)s; the balance column is the running "
                          "balance after each line.", page.total,
                          count=fmt.points(page.total), kind=label)
                 if page.total else _("No ledger lines of kind %(kind)s yet.", kind=label))
    else:
        count = (ngettext("%(count)s line; the balance column is the running balance after "
                          "each line.",
                          "%(count)s lines; the balance column is the running balance after "
                          "each line.", page.total, count=fmt.points(page.total))
                 if page.total else _("No ledger lines yet."))
    return {"rowData": members_page.ledger_rows(page.rows), "rowCount": page.total}, count
