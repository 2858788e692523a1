"""Pure builders for the members and adjustments pages: service data in,
grid rows / components / CSV out. No database and no request here."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import dash_bootstrap_components as dbc
import pandas as pd
from dash import dcc, html

from dashboard import format as fmt
from db import exports
from db.adjustments import AdjustmentRow
from db.members import (
    LedgerRow,
    MemberAdjustment,
    MemberHit,
    OrderRow,
    Profile,
    ReferralRow,
    SearchPage,
    TransferRow,
)
from db.pilots import SEGMENT_LABELS

REASON_LABELS = {
    "goodwill": "Goodwill",
    "missing_accrual": "Missing accrual",
    "wrong_accrual": "Wrong accrual",
    "fraud_reversal": "Fraud reversal",
    "transfer_dispute": "Transfer dispute",
    "other": "Other",
}
FIELD_LABELS = {
    "auto": "Anything", "member_id": "Member id", "external_id": "Customer id",
    "email": "Email", "phone": "Phone", "name": "Name",
}
STATUS_COLORS = {"pending": "warning", "approved": "success", "rejected": "danger",
                 "cancelled": "secondary"}

SEARCH_COLUMNS = [
    {"field": "id", "headerName": "Member id", "maxWidth": 120},
    {"field": "external_id", "headerName": "Customer id", "maxWidth": 150},
    {"field": "name", "headerName": "Name"},
    {"field": "email", "headerName": "Email"},
    {"field": "phone", "headerName": "Phone", "maxWidth": 170},
    {"field": "tier", "headerName": "Tier", "maxWidth": 120},
    {"field": "status", "headerName": "Status", "maxWidth": 110},
    {"field": "balance", "headerName": "Balance (points)", "type": "rightAligned",
     "maxWidth": 160},
]
LEDGER_COLUMNS = [
    {"field": "id", "headerName": "Entry", "maxWidth": 100},
    {"field": "at", "headerName": "When (UTC)", "maxWidth": 160},
    {"field": "kind", "headerName": "Kind", "maxWidth": 140},
    {"field": "points", "headerName": "Points", "type": "rightAligned", "maxWidth": 120},
    {"field": "balance_after", "headerName": "Balance after", "type": "rightAligned",
     "maxWidth": 140},
    {"field": "memo", "headerName": "Memo"},
]
ADJUSTMENT_COLUMNS = [
    {"field": "id", "headerName": "#", "maxWidth": 80},
    {"field": "requested_at", "headerName": "Requested (UTC)", "maxWidth": 160},
    {"field": "requested_by", "headerName": "By", "maxWidth": 120},
    {"field": "member", "headerName": "Member"},
    {"field": "points", "headerName": "Points", "type": "rightAligned", "maxWidth": 110},
    {"field": "reason", "headerName": "Reason", "maxWidth": 150},
    {"field": "ticket", "headerName": "Ticket", "maxWidth": 110},
    {"field": "status", "headerName": "Status", "maxWidth": 110},
    {"field": "decided", "headerName": "Decided"},
    {"field": "comment", "headerName": "Comment"},
]
QUEUE_COLUMNS = [  # wide enough to read; the grid scrolls sideways rather than truncate
    {"field": "id", "headerName": "#", "minWidth": 70, "maxWidth": 80},
    {"field": "requested_at", "headerName": "Requested (UTC)", "minWidth": 150,
     "maxWidth": 160},
    {"field": "requested_by", "headerName": "By", "minWidth": 100, "maxWidth": 110},
    {"field": "member", "headerName": "Member", "minWidth": 190},
    {"field": "points", "headerName": "Points", "type": "rightAligned", "minWidth": 100,
     "maxWidth": 110},
    {"field": "balance", "headerName": "Balance now", "type": "rightAligned",
     "minWidth": 125, "maxWidth": 130},
    {"field": "after", "headerName": "After approval", "type": "rightAligned",
     "minWidth": 135, "maxWidth": 140},
    {"field": "approvals", "headerName": "Approvals", "minWidth": 110, "maxWidth": 120},
    {"field": "reason", "headerName": "Reason", "minWidth": 140, "maxWidth": 150},
]


# ------------------------------------------------------------------ members


def search_rows(hits: Iterable[MemberHit]) -> list[dict[str, Any]]:
    return [
        {"id": h.id, "external_id": h.external_id, "name": h.name, "email": h.email,
         "phone": h.phone, "tier": h.tier, "status": h.status,
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
        return "Newest members first. Type a name, email, phone, member id or customer id."
    what = {
        "number": f"member id or customer id “{page.term}”, or a phone starting with it",
        "email": f"email starting with “{page.term}”",
        "name": f"name starting with “{page.term}” (or customer id)",
        "phone": f"phone starting with “{page.term}”",
        "external_id": f"customer id starting with “{page.term}”",
        "member_id": f"member id {page.term}",
    }.get(page.field, page.term)
    if not page.rows and start == 0:
        return f"No member matches: none with {what}. Check the spelling or search another field."
    return f"Members with {what}. Click a row for the profile."


def _dl(items: Sequence[tuple[str, Any]]) -> html.Dl:
    return html.Dl(
        [c for k, v in items for c in (html.Dt(k, className="col-5"),
                                       html.Dd(v, className="col-7"))],
        className="row mb-0 small",
    )


def tier_block(p: Profile) -> Any:
    prog = p.progress
    if prog is None:
        return html.Div("No rule version is in force: no tier yet.", className="text-muted small")
    spend = fmt.money(prog.qualifying_spend_minor, p.currency)
    window = f"last {prog.window_days} days" if prog.window_days else "lifetime"
    source = f"rules “{prog.rule_set_name}”" + (" (pilot group)" if prog.pilot else "")
    if prog.next_tier is None:
        label = "top tier"
        note = f"Qualifying spend {spend} ({window}, {source})."
    else:
        label = f"{prog.percent} % of the way to {prog.next_tier}"
        note = (f"Qualifying spend {spend} ({window}, {source}); "
                f"{fmt.money(prog.remaining_minor, p.currency)} more reaches "
                f"{prog.next_tier} at {fmt.money(prog.next_threshold_minor or 0, p.currency)}.")
    return html.Div(
        [
            html.Div([html.Span("Tier ", className="text-muted"),
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
        ("Member id", str(p.id)), ("Customer id", p.external_id), ("Email", p.email or "—"),
        ("Phone", p.phone or "—"), ("Joined", fmt.when(p.joined_at)),
        ("Segment", SEGMENT_LABELS.get(p.segment, p.segment)),
        ("Status", p.status), ("Referred by", referrer),
    ]
    actions = [dcc.Link("Link to this profile", href=f"/members?id={p.id}",
                        className="btn btn-sm btn-outline-secondary me-2")]
    if can_request:
        actions.append(dcc.Link("Request an adjustment", href=f"/adjustments/request?member={p.id}",
                                className="btn btn-sm btn-primary", id="members-request-link"))
    return dbc.Card(
        dbc.CardBody(
            [
                html.H2(p.name or p.external_id, className="h5"),
                html.Div(
                    [html.Span("Balance ", className="text-muted"),
                     html.Strong(f"{fmt.points(p.balance)} points", id="members-balance"),
                     html.Span(f" = {fmt.money(p.balance * 100, p.currency)} at 1 point = 1 "
                               f"{p.currency}" if p.currency else "",
                               className="small text-muted")],
                    className="mb-2",
                ),
                tier_block(p),
                _dl(items),
                html.Div(actions, className="mt-2"),
            ]
        ),
        id="members-profile-card",
    )


def ledger_rows(rows: Iterable[LedgerRow]) -> list[dict[str, Any]]:
    return [
        {"id": r.id, "at": fmt.when(r.effective_at), "kind": r.kind,
         "points": fmt.signed_points(r.points), "balance_after": fmt.points(r.balance_after),
         "memo": r.memo}
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
    note = f"Latest {len(orders)} of {total:,} orders." if total > len(orders) else ""
    return small_table(
        ["Order", "Paid (UTC)", "Amount paid", "Refunded", "Points redeemed", "Points earned",
         "Tier", "Status"],
        [(o.order_ref, fmt.when(o.paid_at), fmt.money(o.paid_minor, currency),
          fmt.money(o.money_back_minor, currency) if o.money_back_minor else "—",
          fmt.points(o.points_redeemed), fmt.points(o.points_earned), o.tier or "—",
          "part refunded" if o.status == "paid" and o.refunded_minor else o.status)
         for o in orders],
        "No orders yet.", note,
    )


def referrals_table(refs: Sequence[ReferralRow], total: int) -> Any:
    note = f"Latest {len(refs)} of {total:,} referred members." if total > len(refs) else ""
    return small_table(
        ["Member", "Joined (UTC)", "Bonus earned (points)"],
        [(dcc.Link(f"{r.external_id} {r.name}".strip(), href=f"/members?id={r.member_id}"),
          fmt.when(r.joined_at), fmt.points(r.bonus_points)) for r in refs],
        "This member has not referred anyone.", note,
    )


def transfers_table(transfers: Sequence[TransferRow]) -> Any:
    return small_table(
        ["When (UTC)", "Direction", "Other member", "Points"],
        [(fmt.when(t.at), "received from" if t.direction == "in" else "sent to",
          dcc.Link(f"{t.other_external_id} {t.other_name}".strip(),
                   href=f"/members?id={t.other_id}"),
          fmt.signed_points(t.points)) for t in transfers],
        "No transfers in or out.",
    )


def member_adjustments_table(items: Sequence[MemberAdjustment]) -> Any:
    return small_table(
        ["#", "Requested (UTC)", "Points", "Reason", "Status", "By", "Decided by", "Comment"],
        [(a.id, fmt.when(a.requested_at), fmt.signed_points(a.points),
          REASON_LABELS.get(a.reason_code, a.reason_code),
          dbc.Badge(a.status, color=STATUS_COLORS.get(a.status, "secondary")),
          a.requested_by, a.decided_by or "—", a.comment) for a in items],
        "No adjustment requests for this member.",
    )


# ------------------------------------------------------------------ adjustments


def _member_label(a: AdjustmentRow) -> str:
    return f"{a.member_external_id} {a.member_name}".strip()


def _decided(a: AdjustmentRow) -> str:
    parts = []
    if a.first_approver:
        parts.append(f"1st: {a.first_approver} {fmt.when(a.first_approved_at)}")
    if a.decided_by:
        parts.append(f"{a.decided_by} {fmt.when(a.decided_at)}")
    elif a.status == "cancelled":
        parts.append(f"cancelled {fmt.when(a.decided_at)}")
    if a.decision_reason:
        parts.append(f"“{a.decision_reason}”")
    return " · ".join(parts)


def adjustment_rows(items: Iterable[AdjustmentRow]) -> list[dict[str, Any]]:
    return [
        {"id": a.id, "requested_at": fmt.when(a.requested_at), "requested_by": a.requested_by,
         "member": _member_label(a), "points": fmt.signed_points(a.points),
         "reason": REASON_LABELS.get(a.reason_code, a.reason_code), "ticket": a.ticket_ref,
         "status": a.status, "decided": _decided(a), "comment": a.comment}
        for a in items
    ]


def queue_rows(items: Iterable[AdjustmentRow]) -> list[dict[str, Any]]:
    return [
        {"id": a.id, "requested_at": fmt.when(a.requested_at), "requested_by": a.requested_by,
         "member": _member_label(a), "points": fmt.signed_points(a.points),
         "balance": fmt.points(a.member_balance),
         "after": fmt.points(a.member_balance + a.points),
         "approvals": (f"{1 if a.first_approver else 0} of {a.approvals_required}"),
         "reason": REASON_LABELS.get(a.reason_code, a.reason_code)}
        for a in items
    ]


def adjustment_summary(items: Sequence[AdjustmentRow], capped: bool = False) -> str:
    counts: dict[str, int] = {}
    for a in items:
        counts[a.status] = counts.get(a.status, 0) + 1
    parts = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    more = " (the newest shown; the CSV export has them all)" if capped else ""
    return f"{len(items)} request(s): {parts}{more}" if items else ""


def request_detail(a: AdjustmentRow, history: Sequence[LedgerRow], *, me: int) -> Any:
    """The decision panel's content: the request, the member now, recent lines."""
    after = a.member_balance + a.points
    warnings = []
    if after < 0:
        warnings.append(dbc.Alert(
            f"The balance is {fmt.points(a.member_balance)} now: approving would take it to "
            f"{fmt.signed_points(after)}, so the approval will be refused.",
            color="danger", className="py-2 small"))
    if a.requested_by_id == me:
        warnings.append(dbc.Alert("You requested this: another supervisor must decide it.",
                                  color="warning", className="py-2 small"))
    if a.approvals_required == 2:
        warnings.append(html.Div(
            "Needs two approvals from two different supervisors"
            + (f"; first approval by {a.first_approver}." if a.first_approver else "."),
            className="small text-muted mb-1"))
    facts = [
        ("Request", f"#{a.id}"), ("Member", dcc.Link(_member_label(a),
                                                    href=f"/members?id={a.member_id}")),
        ("Points", fmt.signed_points(a.points)),
        ("Balance now", fmt.points(a.member_balance)),
        ("After approval", fmt.points(after) if after >= 0 else fmt.signed_points(after)),
        ("Reason", REASON_LABELS.get(a.reason_code, a.reason_code)),
        ("Ticket", a.ticket_ref or "—"), ("Comment", a.comment),
        ("Corrects entry", f"#{a.corrects_entry_id}" if a.corrects_entry_id else "—"),
        ("Requested", f"{a.requested_by} {fmt.when(a.requested_at)}"),
    ]
    return html.Div(
        [
            *warnings,
            _dl(facts),
            html.H3("Recent ledger lines", className="h6 mt-3"),
            small_table(["When (UTC)", "Kind", "Points", "Balance after"],
                        [(fmt.when(r.effective_at), r.kind, fmt.signed_points(r.points),
                          fmt.points(r.balance_after)) for r in history],
                        "No ledger lines yet."),
        ],
        id="adjreview-detail-body",
    )


def entry_options(rows: Iterable[LedgerRow]) -> list[dict[str, Any]]:
    return [
        {"label": f"#{r.id} {fmt.when(r.effective_at)} {r.kind} {fmt.signed_points(r.points)}"
                  + (f" — {r.memo}" if r.memo else ""),
         "value": r.id}
        for r in rows
    ]


def adjustments_csv(items: Iterable[AdjustmentRow]) -> str:
    """The export: raw values, text cells guarded against formula injection,
    numbers left as numbers (a signed point value is not a formula)."""
    cols = ["id", "requested_at", "requested_by", "member_id", "member_external_id",
            "member_name", "points", "reason_code", "comment", "ticket_ref",
            "corrects_entry_id", "status", "approvals_required", "first_approver",
            "first_approved_at", "decided_by", "decided_at", "decision_reason", "tx_id"]

    def iso(value: Any) -> str:
        return value.isoformat(sep=" ") if value else ""

    df = pd.DataFrame(
        [
            {"id": a.id, "requested_at": iso(a.requested_at),
             "requested_by": a.requested_by, "member_id": a.member_id,
             "member_external_id": a.member_external_id,
             "member_name": a.member_name, "points": a.points,
             "reason_code": a.reason_code, "comment": a.comment,
             "ticket_ref": a.ticket_ref,
             "corrects_entry_id": a.corrects_entry_id if a.corrects_entry_id else "",
             "status": a.status, "approvals_required": a.approvals_required,
             "first_approver": a.first_approver,
             "first_approved_at": iso(a.first_approved_at),
             "decided_by": a.decided_by, "decided_at": iso(a.decided_at),
             "decision_reason": a.decision_reason, "tx_id": a.tx_id or ""}
            for a in items
        ],
        columns=cols,
    )
    return exports.frame_to_csv(df)
