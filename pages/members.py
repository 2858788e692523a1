"""Members: search (server-side, paged), profile, ledger with running balance."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import dash_ag_grid as dag
import dash_bootstrap_components as dbc
from dash import dcc, html

from dashboard import format as fmt
from dashboard.access import register_page
from dashboard.i18n import N_, _, ngettext, translate
from dashboard.shell import CSV_EXPORT_PARAMS, page_header, readable
from db.members import (
    MEMBER_STATUS_LABELS,
    ORDER_STATUS_LABELS,
    SEGMENT_LABELS,
    LedgerRow,
    MemberAdjustment,
    MemberHit,
    OrderRow,
    Profile,
    ReferralRow,
    SearchPage,
    TransferRow,
)
from db.models import ENTRY_KINDS
from pages.adjustments_request import (
    STATUS_COLORS,
    grid_locale,
    headers,
    kind_label,
    memo_text,
    reason_label,
    status_label,
)

register_page(
    __name__, path="/members", name=N_("Members"), title=N_("Members"), order=50,
    roles=("supervisor", "support"),
)


# ---------------------------------------------------------------- ids


class Members:
    QUERY = "members-query"
    FIELD = "members-field"
    QUERY_FEEDBACK = "members-query-feedback"
    GRID = "members-grid"
    COUNT = "members-count"
    SEARCH_REFRESH = "members-search-refresh"  # clientside: purge the grid cache
    MEMBER = "members-selected"  # store: the member shown below the search
    PROFILE = "members-profile"
    LEDGER = "members-ledger"
    LEDGER_KIND = "members-ledger-kind"
    LEDGER_GRID = "members-ledger-grid"
    LEDGER_COUNT = "members-ledger-count"
    LEDGER_REFRESH = "members-ledger-refresh"
    ORDERS = "members-orders"
    REFERRALS = "members-referrals"
    TRANSFERS = "members-transfers"
    ADJUSTMENTS = "members-adjustments"
    BALANCE = "members-balance"


ids = Members


# ---------------------------------------------------------------- builders
# (pure: engine data in, components and figures out; no queries)

FIELD_LABELS = {
    "auto": N_("Search: anything"), "member_id": N_("Search: member id"),
    "external_id": N_("Search: customer id"), "email": N_("Search: email"),
    "phone": N_("Search: phone"), "name": N_("Search: name"),
}


SEARCH_COLUMNS = [
    {"field": "id", "headerName": N_("Member id"), "maxWidth": 120},
    {"field": "external_id", "headerName": N_("Customer id"), "maxWidth": 150},
    {"field": "name", "headerName": N_("Name")},
    {"field": "email", "headerName": N_("Email")},
    {"field": "phone", "headerName": N_("Phone"), "maxWidth": 170},
    {"field": "tier", "headerName": N_("Tier"), "maxWidth": 120},
    {"field": "status", "headerName": N_("Status"), "maxWidth": 110},
    {"field": "balance", "headerName": N_("Balance (points)"), "type": "rightAligned",
     "maxWidth": 160},
]


LEDGER_COLUMNS = [
    {"field": "id", "headerName": N_("Entry"), "maxWidth": 100},
    {"field": "at", "headerName": N_("When (UTC)"), "maxWidth": 160},
    {"field": "kind", "headerName": N_("Kind"), "maxWidth": 140},
    {"field": "points", "headerName": N_("Points"), "type": "rightAligned", "maxWidth": 120},
    {"field": "balance_after", "headerName": N_("Balance after"), "type": "rightAligned",
     "maxWidth": 140},
    {"field": "memo", "headerName": N_("Memo")},
]


def member_status(status: str) -> str:
    return translate(MEMBER_STATUS_LABELS.get(status, status))


def order_status(status: str) -> str:
    return translate(ORDER_STATUS_LABELS.get(status, status))


def search_rows(hits: Iterable[MemberHit]) -> list[dict[str, Any]]:
    return [
        {"id": h.id, "external_id": h.external_id, "name": h.name, "email": h.email,
         "phone": h.phone, "tier": h.tier, "status": member_status(h.status),
         "balance": fmt.points(h.balance)}
        for h in hits
    ]


def search_response(page: SearchPage, start: int) -> dict[str, Any]:
    """The infinite row model's answer: the rows, and the total once the
    last page is reached (-1 = "more to come", the grid keeps asking)."""
    rows = search_rows(page.rows)
    return {"rowData": rows, "rowCount": -1 if page.more else start + len(rows)}


def search_summary(page: SearchPage, start: int) -> str:
    if page.field == "newest":
        return _("Newest members first. Type a name, email, phone, member id or customer id.")
    what = {
        "number": N_("member id or customer id “%(term)s”, or a phone starting with it"),
        "email": N_("email starting with “%(term)s”"),
        "name": N_("name starting with “%(term)s” (or customer id)"),
        "phone": N_("phone starting with “%(term)s”"),
        "external_id": N_("customer id starting with “%(term)s”"),
        "member_id": N_("member id %(term)s"),
    }.get(page.field)
    what = _(what, term=page.term) if what else page.term  # the msgids above
    if not page.rows and start == 0:
        return _("No member matches: none with %(what)s. Check the spelling or search another "
                 "field.", what=what)
    return _("Members with %(what)s. Click a row for the profile.", what=what)


def facts_list(items: Sequence[tuple[str, Any]]) -> html.Dl:
    return html.Dl(
        [c for k, v in items for c in (html.Dt(k, className="col-5"),
                                       html.Dd(v, className="col-7"))],
        className="row mb-0 small",
    )


def tier_block(p: Profile) -> Any:
    prog = p.progress
    if prog is None:
        return html.Div(_("No rule version is in force: no tier yet."),
                        className="text-muted small")
    spend = fmt.money(prog.qualifying_spend_minor, p.currency)
    window = (ngettext("last %(num)s day", "last %(num)s days", prog.window_days)
              if prog.window_days else _("lifetime"))
    source = (_("rules “%(name)s” (pilot group)", name=prog.rule_set_name) if prog.pilot
              else _("rules “%(name)s”", name=prog.rule_set_name))
    if prog.next_tier is None:
        label = _("top tier")
        note = _("Qualifying spend %(spend)s (%(window)s, %(source)s).", spend=spend,
                 window=window, source=source)
    else:
        label = _("%(percent)s %% of the way to %(tier)s", percent=prog.percent,
                  tier=prog.next_tier)
        note = _("Qualifying spend %(spend)s (%(window)s, %(source)s); %(more)s more reaches "
                 "%(tier)s at %(threshold)s.", spend=spend, window=window, source=source,
                 more=fmt.money(prog.remaining_minor, p.currency), tier=prog.next_tier,
                 threshold=fmt.money(prog.next_threshold_minor or 0, p.currency))
    return html.Div(
        [
            html.Div([html.Span(_("Tier") + " ", className="text-muted"),
                      html.Strong(prog.tier, id="members-tier"),
                      html.Span(f" · {label}", className="small text-muted")]),
            dbc.Progress(value=prog.percent, className="my-1", style={"height": "0.8rem"},
                         id="members-tier-progress"),
            html.Div(note, className="small text-muted"),
        ],
        className="mb-2",
    )


def profile_card(p: Profile, *, can_request: bool) -> dbc.Card:
    referrer = (dcc.Link(f"{p.referrer_external_id} {p.referrer_name}".strip(),
                         href=f"/members?id={p.referrer_id}")
                if p.referrer_id else "—")
    items = [
        (_("Member id"), str(p.id)), (_("Customer id"), p.external_id),
        (_("Email"), p.email or "—"), (_("Phone"), p.phone or "—"),
        (_("Joined"), fmt.when(p.joined_at)),
        (_("Segment"), translate(SEGMENT_LABELS.get(p.segment, p.segment))),
        (_("Status"), member_status(p.status)), (_("Referred by"), referrer),
    ]
    actions = [dcc.Link(_("Link to this profile"), href=f"/members?id={p.id}",
                        className="btn btn-sm btn-outline-secondary me-2")]
    if can_request:
        actions.append(dcc.Link(_("Request an adjustment"),
                                href=f"/adjustments/request?member={p.id}",
                                className="btn btn-sm btn-primary", id="members-request-link"))
    return dbc.Card(
        dbc.CardBody(
            [
                html.H2(p.name or p.external_id, className="h5"),
                html.Div(
                    [html.Span(_("Balance") + " ", className="text-muted"),
                     html.Strong(ngettext("%(count)s point", "%(count)s points", p.balance,
                                          count=fmt.points(p.balance)), id="members-balance"),
                     html.Span(" = " + _("%(money)s at 1 point = %(one)s",
                                         money=fmt.money(p.balance * 100, p.currency),
                                         one=fmt.money(100, p.currency)) if p.currency else "",
                               className="small text-muted")],
                    className="mb-2",
                ),
                tier_block(p),
                facts_list(items),
                html.Div(actions, className="mt-2"),
            ]
        ),
        id="members-profile-card",
    )


def ledger_rows(rows: Iterable[LedgerRow]) -> list[dict[str, Any]]:
    return [
        {"id": r.id, "at": fmt.when(r.effective_at), "kind": kind_label(r.kind),
         "points": fmt.signed_points(r.points), "balance_after": fmt.points(r.balance_after),
         "memo": memo_text(r.memo)}
        for r in rows
    ]


def small_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], empty: str,
                note: str = "") -> Any:
    if not rows:
        return html.Div(empty, className="text-muted small py-2")
    table = dbc.Table(
        [html.Thead(html.Tr([html.Th(h) for h in headers])),
         html.Tbody([html.Tr([html.Td(c) for c in r]) for r in rows])],
        size="sm", striped=True, className="mb-1",
    )
    return html.Div([table, html.Div(note, className="small text-muted") if note else None])


def orders_table(orders: Sequence[OrderRow], total: int, currency: str) -> Any:
    note = (ngettext("Latest %(shown)s of %(count)s order.",
                     "Latest %(shown)s of %(count)s orders.", total,
                     shown=len(orders), count=fmt.points(total))
            if total > len(orders) else "")
    return small_table(
        [_("Order"), _("Paid (UTC)"), _("Amount paid"), _("Refunded"), _("Points redeemed"),
         _("Points earned"), _("Tier"), _("Status")],
        [(o.order_ref, fmt.when(o.paid_at), fmt.money(o.paid_minor, currency),
          fmt.money(o.money_back_minor, currency) if o.money_back_minor else "—",
          fmt.points(o.points_redeemed), fmt.points(o.points_earned), o.tier or "—",
          order_status("part_refunded" if o.status == "paid" and o.refunded_minor
                       else o.status))
         for o in orders],
        _("No orders yet."), note,
    )


def referrals_table(refs: Sequence[ReferralRow], total: int) -> Any:
    note = (ngettext("Latest %(shown)s of %(count)s referred member.",
                     "Latest %(shown)s of %(count)s referred members.", total,
                     shown=len(refs), count=fmt.points(total))
            if total > len(refs) else "")
    return small_table(
        [_("Member"), _("Joined (UTC)"), _("Bonus earned (points)")],
        [(dcc.Link(f"{r.external_id} {r.name}".strip(), href=f"/members?id={r.member_id}"),
          fmt.when(r.joined_at), fmt.points(r.bonus_points)) for r in refs],
        _("This member has not referred anyone."), note,
    )


def transfers_table(transfers: Sequence[TransferRow]) -> Any:
    return small_table(
        [_("When (UTC)"), _("Direction"), _("Other member"), _("Points")],
        [(fmt.when(t.at), _("received from") if t.direction == "in" else _("sent to"),
          dcc.Link(f"{t.other_external_id} {t.other_name}".strip(),
                   href=f"/members?id={t.other_id}"),
          fmt.signed_points(t.points)) for t in transfers],
        _("No transfers in or out."),
    )


def member_adjustments_table(items: Sequence[MemberAdjustment]) -> Any:
    return small_table(
        ["#", _("Requested (UTC)"), _("Points"), _("Reason"), _("Status"), _("By"),
         _("Decided by"), _("Comment")],
        [(a.id, fmt.when(a.requested_at), fmt.signed_points(a.points),
          reason_label(a.reason_code),
          dbc.Badge(status_label(a.status), color=STATUS_COLORS.get(a.status, "secondary")),
          a.requested_by, a.decided_by or "—", a.comment) for a in items],
        _("No adjustment requests for this member."),
    )


# ---------------------------------------------------------------- layout


PAGE_ROWS = 100


def infinite_grid(component_id: str, columns: list[dict], height: str, empty: str
                  ) -> dag.AgGrid:
    """A grid that asks the server for one block of rows at a time (see
    assets/pagedGrid.js); ``empty`` is shown in it when there are none."""
    return dag.AgGrid(
        id=component_id,
        columnDefs=readable(headers(columns)),
        rowModelType="infinite",
        getRowId="params.data.id",
        defaultColDef={"sortable": False, "filter": False, "resizable": True, "minWidth": 90},
        columnSize="responsiveSizeToFit",
        dashGridOptions={
            "cacheBlockSize": PAGE_ROWS, "maxBlocksInCache": 20, "infiniteInitialRowCount": 1,
            "rowSelection": {"mode": "singleRow", "enableClickSelection": True,
                             "checkboxes": False},
            "animateRows": False,
            "localeText": grid_locale(empty),
        },
        csvExportParams=CSV_EXPORT_PARAMS,
        style={"height": height, "width": "100%"},
    )


def _member_id(value: object) -> int | None:
    text = str(value or "").strip()
    return int(text) if text.isdigit() and len(text) <= 18 else None


def layout(id: str | None = None, q: str | None = None,  # noqa: A002
           **_kwargs: object) -> html.Div:
    """``/members?id=123`` opens that member's profile; ``?q=`` pre-fills the search."""
    return html.Div(
        [
            page_header(_("Members"), _("Find a member by name, email, phone, member id or "
                                        "customer id (names, emails and phones match from the "
                                        "start).")),
            dbc.Row(
                [
                    dbc.Col(
                        [
                            dcc.Input(
                                id=ids.QUERY, type="search", debounce=0.4,
                                value=(q or "")[:100], className="form-control",
                                placeholder=_("e.g. Anna P, anna@, +7900, 10234, C0001234"),
                            ),
                            html.Div(id=ids.QUERY_FEEDBACK, className="field-error"),
                        ],
                        md=6,
                    ),
                    dbc.Col(
                        dbc.Select(
                            id=ids.FIELD, value="auto",
                            options=[{"label": translate(v), "value": k}
                                     for k, v in FIELD_LABELS.items()],
                        ),
                        md=3,
                    ),
                ],
                className="mb-2",
            ),
            html.Div(id=ids.COUNT, className="text-muted small mb-2"),
            infinite_grid(ids.GRID, SEARCH_COLUMNS, "320px",
                          _("No member matches this search.")),
            dcc.Store(id=ids.SEARCH_REFRESH),
            dcc.Store(id=ids.MEMBER, data=_member_id(id)),
            dcc.Store(id=ids.LEDGER_REFRESH),
            dbc.Row(
                [
                    dbc.Col(html.Div(id=ids.PROFILE), lg=4, className="mt-3"),
                    dbc.Col(
                        html.Div(
                            [
                                dbc.Row(
                                    [
                                        dbc.Col(html.H2(_("Ledger (newest first)"),
                                                        className="h6 mt-2"), md=6),
                                        dbc.Col(
                                            dbc.Select(
                                                id=ids.LEDGER_KIND, value="all",
                                                options=[{"label": _("All kinds"),
                                                          "value": "all"}]
                                                + [{"label": kind_label(k), "value": k}
                                                   for k in ENTRY_KINDS],
                                            ),
                                            md=6,
                                        ),
                                    ],
                                    className="mb-1",
                                ),
                                html.Div(id=ids.LEDGER_COUNT, className="text-muted small"),
                                infinite_grid(ids.LEDGER_GRID, LEDGER_COLUMNS, "360px",
                                              _("No ledger lines to show.")),
                            ],
                            id=ids.LEDGER,
                        ),
                        lg=8, className="mt-3",
                    ),
                ]
            ),
            dbc.Tabs(
                [
                    dbc.Tab(html.Div(id=ids.ORDERS, className="pt-2"), label=_("Orders")),
                    dbc.Tab(html.Div(id=ids.REFERRALS, className="pt-2"), label=_("Referrals")),
                    dbc.Tab(html.Div(id=ids.TRANSFERS, className="pt-2"), label=_("Transfers")),
                    dbc.Tab(html.Div(id=ids.ADJUSTMENTS, className="pt-2"),
                            label=_("Adjustments")),
                ],
                className="mt-3",
            ),
        ]
    )
