"""Pure builders: service data in, table rows / figures / components out.

No database and no request here, so each builder is unit-testable with
plain data.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Sequence
from typing import Any

import dash_bootstrap_components as dbc
import pandas as pd
from dash import html

from dashboard import charts
from dashboard import format as fmt
from db import exports
from db.api_keys import KeyInfo
from db.pilots import SEGMENT_LABELS
from db.readviews import (
    AdjustmentView,
    AuditRow,
    LedgerLine,
    LiveCounts,
    MemberView,
    PilotView,
    RuleSetView,
)
from db.staff_grants import Grant
from db.users import UserInfo


def member_rows(members: Iterable[MemberView]) -> list[dict[str, Any]]:
    return [
        {
            "id": m.id, "external_id": m.external_id, "name": m.name, "email": m.email,
            "phone": m.phone, "tier": m.tier, "status": m.status,
            "balance": fmt.points(m.balance), "joined_at": fmt.when(m.joined_at),
        }
        for m in members
    ]


def member_profile(m: MemberView) -> dbc.Card:
    items = [
        ("Customer id", m.external_id), ("Email", m.email or "—"), ("Phone", m.phone or "—"),
        ("Joined", fmt.when(m.joined_at)), ("Segment", SEGMENT_LABELS.get(m.segment, m.segment)),
        ("Tier", m.tier or "—"),
        ("Status", m.status), ("Referred by", m.referrer_external_id or "—"),
    ]
    return dbc.Card(
        dbc.CardBody(
            [
                html.H2(m.name or m.external_id, className="h5"),
                html.Div(
                    [html.Span("Balance ", className="text-muted"),
                     html.Strong(f"{fmt.points(m.balance)} points", id="members-balance")],
                    className="mb-2",
                ),
                html.Dl(
                    [c for k, v in items for c in (html.Dt(k, className="col-5"),
                                                   html.Dd(v, className="col-7"))],
                    className="row mb-0 small",
                ),
            ]
        )
    )


def ledger_rows(lines: Iterable[LedgerLine]) -> list[dict[str, Any]]:
    return [
        {"at": fmt.when(e.effective_at), "kind": e.kind, "points": fmt.signed_points(e.points),
         "memo": e.memo}
        for e in lines
    ]


def rule_set_card(rs: RuleSetView, in_force: bool) -> dbc.Card:
    badge_color = {"published": "success", "draft": "secondary", "pending": "warning",
                   "rejected": "danger"}.get(rs.status, "secondary")
    header = [
        html.Strong(f"#{rs.id} {rs.name}", className="me-2"),
        dbc.Badge(rs.status, color=badge_color, className="me-2"),
        dbc.Badge("in force", color="primary") if in_force else None,
    ]
    facts = [
        f"effective {fmt.when(rs.effective_at)}" if rs.effective_at else "not published",
        f"created {fmt.when(rs.created_at)}" + (f" by {rs.created_by}" if rs.created_by else ""),
        f"approved by {rs.approved_by}" if rs.approved_by else "",
        f"1 point = {fmt.money(rs.point_value_minor)}",
        f"tier window {rs.tier_window_days} days" if rs.tier_window_days else "lifetime spend",
    ]
    if rs.tiers:
        table = dbc.Table(
            [
                html.Thead(html.Tr([html.Th("Tier"), html.Th("From spend"),
                                    html.Th("Accrual"), html.Th("Referral")])),
                html.Tbody([
                    html.Tr([html.Td(t.name), html.Td(fmt.money(t.threshold_minor)),
                             html.Td(fmt.rate_bp(t.accrual_rate_bp)),
                             html.Td(fmt.rate_bp(t.referral_rate_bp))])
                    for t in rs.tiers
                ]),
            ],
            size="sm", bordered=False, striped=True, className="mb-0",
        )
    else:
        table = html.Div("This version has no tiers yet.", className="text-muted")
    return dbc.Card(
        [dbc.CardHeader(header),
         dbc.CardBody([html.Div(" · ".join(f for f in facts if f),
                                className="text-muted small mb-2"), table])],
        className="mb-3",
    )


def pilot_rows(pilots: Iterable[PilotView], now: dt.datetime | None = None
               ) -> list[dict[str, Any]]:
    now = now or dt.datetime.now(dt.UTC).replace(tzinfo=None)
    return [
        {
            "name": p.name,
            "status": "running, past planned end" if p.status == "running"
            and now >= p.planned_end_at else p.status, "rule_set": p.rule_set,
            "metric": p.primary_metric, "share": fmt.rate_bp(p.pilot_share_bp),
            "start": fmt.when(p.start_at), "planned_end": fmt.when(p.planned_end_at),
            "ended": fmt.when(p.ended_at), "pilot_members": p.pilot_members,
            "control_members": p.control_members,
        }
        for p in pilots
    ]


PILOT_COLUMNS = [
    {"field": "name", "headerName": "Pilot"},
    {"field": "status", "headerName": "Status"},
    {"field": "rule_set", "headerName": "Rule set tried"},
    {"field": "metric", "headerName": "Primary metric"},
    {"field": "share", "headerName": "Pilot share"},
    {"field": "start", "headerName": "Start"},
    {"field": "planned_end", "headerName": "Planned end"},
    {"field": "ended", "headerName": "Ended"},
    {"field": "pilot_members", "headerName": "Pilot group", **charts.NUMBER_COLUMN},
    {"field": "control_members", "headerName": "Control group", **charts.NUMBER_COLUMN},
]

ADJUSTMENT_COLUMNS = [
    {"field": "id", "headerName": "#", "maxWidth": 80},
    {"field": "requested_at", "headerName": "Requested"},
    {"field": "requested_by", "headerName": "By"},
    {"field": "member", "headerName": "Member"},
    {"field": "points", "headerName": "Points", "type": "rightAligned"},
    {"field": "reason", "headerName": "Reason"},
    {"field": "ticket", "headerName": "Ticket"},
    {"field": "status", "headerName": "Status"},
    {"field": "decided", "headerName": "Decided"},
    {"field": "comment", "headerName": "Comment"},
]

LEDGER_COLUMNS = [
    {"field": "at", "headerName": "When"},
    {"field": "kind", "headerName": "Kind"},
    {"field": "points", "headerName": "Points", "type": "rightAligned"},
    {"field": "memo", "headerName": "Memo"},
]


def adjustment_rows(items: Iterable[AdjustmentView]) -> list[dict[str, Any]]:
    return [
        {
            "id": a.id, "requested_at": fmt.when(a.requested_at), "requested_by": a.requested_by,
            "member": f"{a.member_external_id} {a.member_name}".strip(),
            "points": fmt.signed_points(a.points), "reason": a.reason_code,
            "ticket": a.ticket_ref, "status": a.status,
            "decided": (f"{a.decided_by} {fmt.when(a.decided_at)}".strip()
                        if a.decided_at else ""),
            "comment": a.comment,
        }
        for a in items
    ]


def adjustment_summary(items: Sequence[AdjustmentView]) -> str:
    counts: dict[str, int] = {}
    for a in items:
        counts[a.status] = counts.get(a.status, 0) + 1
    parts = [f"{n} {status}" for status, n in sorted(counts.items())]
    return f"{len(items)} request(s): " + ", ".join(parts) if items else ""


def tile(label: str, value: str, note: str = "", tile_id: str | None = None) -> dbc.Col:
    body = [html.Div(value, className="value"), html.Div(label, className="label")]
    if note:
        body.append(html.Div(note, className="small text-muted"))
    return dbc.Col(
        dbc.Card(dbc.CardBody(body), className="kpi-tile h-100",
                 **({"id": tile_id} if tile_id else {})),
        md=3, sm=6, className="mb-3",
    )


def live_tiles(c: LiveCounts) -> list[Any]:
    """Raw counts grouped as participation, redemption, referral."""
    d = f"last {c.days} day(s)"
    groups = [
        ("Participation", [
            tile("members", fmt.points(c.members), f"{fmt.points(c.members_active_status)} active"
                 " status", "live-members"),
            tile("joined", fmt.points(c.members_joined), d),
            tile("customers who ordered", fmt.points(c.customers_ordered), d),
            tile("of them members", fmt.points(c.members_ordered), d),
            tile("paid orders", fmt.points(c.orders_paid), d, "live-orders"),
            tile("paid orders by members", fmt.points(c.member_orders_paid), d),
        ]),
        ("Redemption", [
            tile("points issued", fmt.points(c.points_issued), f"accrual + referral, {d}",
                 "live-issued"),
            tile("points redeemed", fmt.points(c.points_redeemed), d),
            tile("points outstanding", fmt.points(c.outstanding_points), "all member balances"),
        ]),
        ("Referral", [
            tile("members who joined by referral", fmt.points(c.referred_members), "all time"),
            tile("of them with a paid order", fmt.points(c.referred_members_ordered), "all time"),
        ]),
    ]
    out: list[Any] = []
    for title, tiles in groups:
        out.append(html.H2(title, className="h6 text-uppercase text-muted mt-2"))
        out.append(dbc.Row(tiles))
    return out


def sales_figures(df: pd.DataFrame, currency: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Orders and revenue per month, members vs guests (grouped bars).

    Plain figure dicts: building ``go.Figure`` objects validates every
    property and cost more than the query behind them.
    """
    months = sorted(df["month"].unique().tolist()) if not df.empty else []

    def series(buyer: str, col: str, divisor: int = 1) -> list[int]:
        part = df[df["buyer"] == buyer].set_index("month")[col]
        return [int(part.get(m, 0)) // divisor for m in months]

    def figure(title: str, col: str, divisor: int = 1) -> dict[str, Any]:
        return {
            "data": [
                {"type": "bar", "name": f"{buyer}s", "x": months,
                 "y": series(buyer, col, divisor), "marker": {"color": colour}}
                for buyer, colour in (("member", "#0d6efd"), ("guest", "#adb5bd"))
            ],
            "layout": charts.layout(title, height=360, barmode="group",
                                    xaxis=charts.axis(type="category")),
        }

    # revenue axis in whole currency units; exact minor units stay in the data
    return figure("Paid orders", "orders"), figure(f"Paid revenue ({currency})",
                                                   "revenue_minor", 100)


def sales_summary(df: pd.DataFrame, currency: str) -> dbc.Row:
    def total(buyer: str, col: str) -> int:
        return int(df.loc[df["buyer"] == buyer, col].sum())

    m_orders, g_orders = total("member", "orders"), total("guest", "orders")
    m_rev, g_rev = total("member", "revenue_minor"), total("guest", "revenue_minor")
    return dbc.Row(
        [
            tile("paid orders by members", fmt.points(m_orders)),
            tile("paid orders by guests", fmt.points(g_orders)),
            tile("revenue from members", fmt.money(m_rev, currency)),
            tile("revenue from guests", fmt.money(g_rev, currency)),
        ]
    )


def staff_rows(users: Iterable[UserInfo]) -> list[dict[str, Any]]:
    return [
        {"id": u.id, "username": u.username, "full_name": u.full_name, "role": u.role,
         "active": "yes" if u.active else "no", "created_at": fmt.when(u.created_at),
         "last_login_at": fmt.when(u.last_login_at)}
        for u in users
    ]


def staff_options(users: Iterable[UserInfo]) -> list[dict[str, Any]]:
    return [
        {"label": f"{u.username} ({u.role}{'' if u.active else ', disabled'})", "value": u.id}
        for u in users
    ]


def grants_table(grants: Iterable[Grant]) -> Any:
    grants = list(grants)
    if not grants:
        return html.P("Nothing is waiting.", className="text-muted small mb-2",
                      id="staff-grants-empty")
    return dbc.Table(
        [html.Thead(html.Tr([html.Th(h) for h in ("#", "Account", "Asked", "By", "When")])),
         html.Tbody([html.Tr([
             html.Td(g.id), html.Td(g.username),
             html.Td("new supervisor account" if g.kind == "create" else "promotion to supervisor"),
             html.Td(g.requested_by), html.Td(fmt.when(g.requested_at))]) for g in grants])],
        size="sm", className="mb-2", id="staff-grants-table",
    )


def grant_options(grants: Iterable[Grant]) -> list[dict[str, Any]]:
    return [{"label": f"#{g.id} {g.username}: "
                      f"{'new supervisor' if g.kind == 'create' else 'promotion'} "
                      f"(asked by {g.requested_by})", "value": g.id} for g in grants]


def api_keys_table(keys: Iterable[KeyInfo]) -> Any:
    keys = list(keys)
    if not keys:
        return html.P("No API key yet: the shop's systems cannot call the API.",
                      className="text-muted small mb-2", id="staff-api-keys-empty")
    return dbc.Table(
        [html.Thead(html.Tr([html.Th(h) for h in
                             ("Name", "Key starts", "Scopes", "Created by", "Created", "State")])),
         html.Tbody([html.Tr([
             html.Td(k.name), html.Td(html.Code(f"lk_{k.prefix}_")), html.Td(", ".join(k.scopes)),
             html.Td(k.created_by), html.Td(fmt.when(k.created_at)),
             html.Td("active" if k.active else f"revoked {fmt.when(k.revoked_at)}")])
             for k in keys])],
        size="sm", className="mb-2", id="staff-api-keys-table",
    )


def api_key_options(keys: Iterable[KeyInfo]) -> list[dict[str, Any]]:
    return [{"label": f"{k.name} (lk_{k.prefix}_…)", "value": k.id} for k in keys if k.active]


def _audit_value(value: Any) -> str:
    if value is None or value == "":
        return "—"
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def audit_changes(before: str | None, after: str | None) -> str:
    """The fields an audit entry changed, one "field: old → new" per line.
    Values that are not JSON objects are shown as they are."""

    def parse(text: str | None) -> Any:
        if not text:
            return {}
        try:
            return json.loads(text)
        except ValueError:
            return text

    old, new = parse(before), parse(after)
    if not (isinstance(old, dict) and isinstance(new, dict)):
        return f"{_audit_value(old or None)} → {_audit_value(new or None)}"
    lines = []
    for key in [*old, *(k for k in new if k not in old)]:
        if old.get(key) != new.get(key) or key not in old or key not in new:
            if key in old and key in new:
                lines.append(f"{key}: {_audit_value(old[key])} → {_audit_value(new[key])}")
            elif key in new:
                lines.append(f"{key}: {_audit_value(new[key])}")
            else:
                lines.append(f"{key}: {_audit_value(old[key])} → removed")
    return "\n".join(lines) or "—"


def audit_rows(rows: Iterable[AuditRow]) -> list[dict[str, Any]]:
    return [
        {"at": fmt.when(r.at), "actor": r.actor, "action": r.action,
         "object": f"{r.object_type} {r.object_id}".strip(),
         "changes": audit_changes(r.before, r.after), "detail": r.detail}
        for r in rows
    ]


def audit_csv(rows: Iterable[AuditRow]) -> str:
    """The export: full timestamps and raw JSON, one row per audit entry."""
    df = pd.DataFrame(
        [
            {"id": r.id, "at": r.at.isoformat(sep=" "), "actor": r.actor,
             "action": r.action, "object_type": r.object_type,
             "object_id": r.object_id, "before": r.before,
             "after": r.after, "detail": r.detail}
            for r in rows
        ],
        columns=["id", "at", "actor", "action", "object_type", "object_id", "before", "after",
                 "detail"],
    )
    return exports.frame_to_csv(df)
