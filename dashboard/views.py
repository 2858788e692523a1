"""Pure builders: service data in, table rows / figures / components out.

No database and no request here, so each builder is unit-testable with
plain data.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from typing import Any

import dash_bootstrap_components as dbc
import pandas as pd
from dash import html

from dashboard import charts
from dashboard import format as fmt
from db import clock, exports
from db.api_keys import KeyInfo
from db.readviews import AuditRow, PilotView
from db.staff_grants import Grant
from db.users import UserInfo


def pilot_rows(pilots: Iterable[PilotView], now: dt.datetime | None = None
               ) -> list[dict[str, Any]]:
    now = now or clock.utcnow()
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
