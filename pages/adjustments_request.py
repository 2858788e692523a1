"""Adjustments, request side: file a balance correction, follow your requests.

Support staff request; supervisors use the same form for the large ones only
a supervisor may request (program_settings.adjustment_supervisor_request_points).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

import dash_bootstrap_components as dbc
from dash import dcc, html

from dashboard import format as fmt
from dashboard.access import register_page
from dashboard.forms import token_store
from dashboard.i18n import N_, _, ngettext, translate
from dashboard.shell import grid, page_header
from db.adjustments import MAX_TICKET, AdjustmentRow
from db.members import ENTRY_KIND_LABELS, LedgerRow
from db.models import ADJUSTMENT_STATUSES
from db.text import MAX_COMMENT

register_page(
    __name__, path="/adjustments/request", name=N_("New adjustment"),
    title=N_("Request an adjustment"), order=60, roles=("support", "supervisor"),
)


# ---------------------------------------------------------------- ids


class AdjRequest:
    MEMBER = "adjreq-member"
    MEMBER_INFO = "adjreq-member-info"
    MEMBER_FEEDBACK = "adjreq-member-feedback"
    POINTS = "adjreq-points"
    POINTS_FEEDBACK = "adjreq-points-feedback"
    REASON = "adjreq-reason"
    REASON_FEEDBACK = "adjreq-reason-feedback"
    COMMENT = "adjreq-comment"
    COMMENT_FEEDBACK = "adjreq-comment-feedback"
    TICKET = "adjreq-ticket"
    TICKET_FEEDBACK = "adjreq-ticket-feedback"
    ENTRY = "adjreq-entry"
    ENTRY_FEEDBACK = "adjreq-entry-feedback"
    SUBMIT = "adjreq-submit"
    RESULT = "adjreq-result"
    LIMITS = "adjreq-limits"
    VERSION = "adjreq-version"  # store: bumped when a request is filed
    TOKEN = "adjreq-token"  # store: this form instance's submission token
    LAST_TOKEN = "adjreq-last-token"  # store: the token of the request filed last
    CANCEL_VERSION = "adjreq-cancel-version"
    STATUS = "adjreq-status"
    GRID = "adjreq-grid"
    TABLE = "adjreq-table"
    SUMMARY = "adjreq-summary"
    CANCEL = "adjreq-cancel"
    CANCEL_RESULT = "adjreq-cancel-result"


ids = AdjRequest


# ---------------------------------------------------------------- builders
# (pure: engine data in, components and figures out; no queries)

# the reason codes and statuses as users read them (translate() them to show)
REASON_LABELS = {
    "goodwill": N_("Goodwill"),
    "missing_accrual": N_("Missing accrual"),
    "wrong_accrual": N_("Wrong accrual"),
    "fraud_reversal": N_("Fraud reversal"),
    "transfer_dispute": N_("Transfer dispute"),
    "other": N_("Other"),
}
STATUS_LABELS = {"pending": N_("pending"), "approved": N_("approved"),
                 "rejected": N_("rejected"), "cancelled": N_("cancelled")}


def reason_label(code: str) -> str:
    return translate(REASON_LABELS.get(code, code))


def status_label(status: str) -> str:
    return translate(STATUS_LABELS.get(status, status))


def kind_label(kind: str) -> str:
    """A ledger entry's kind as users read it."""
    return translate(ENTRY_KIND_LABELS.get(kind, kind))


# the memos the engine writes on its own entries (stored in English), shown in
# the user's language; any other memo (an API client's) is shown as it is
MEMOS = (
    (re.compile(r"adjustment #(?P<id>\d+) \((?P<reason>\w+)\)"),
     N_("adjustment #%(id)s (%(reason)s)")),
    (re.compile(r"member (?P<src>\d+) -> member (?P<dst>\d+)"),
     N_("member %(src)s -> member %(dst)s")),
    (re.compile(r"referral of member (?P<id>\d+)"), N_("referral of member %(id)s")),
    (re.compile(r"refund: (?P<kind>\w+)"), N_("refund: %(kind)s")),
    (re.compile(r"voucher"), N_("voucher")),
)
EXPIRED = re.compile(r"expired after (?P<n>\d+) days")


def memo_text(memo: str) -> str:
    """A ledger entry's memo as users read it."""
    if (m := EXPIRED.fullmatch(memo or "")) is not None:
        n = int(m["n"])
        return ngettext("expired after %(num)s day", "expired after %(num)s days", n)
    for pattern, text in MEMOS:
        if (m := pattern.fullmatch(memo or "")) is not None:
            params = m.groupdict()
            if "reason" in params:
                params["reason"] = reason_label(params["reason"])
            if "kind" in params:
                params["kind"] = kind_label(params["kind"])
            return translate(N_(text, **params))
    return memo


def grid_locale(empty: str) -> dict[str, str]:
    """AG Grid's own texts (``localeText``) in the request's language: the
    no-rows message (``empty``), the loading one, the row selection's
    screen-reader hints, the column filter's menu."""
    return {"noRowsToShow": empty, "loadingOoo": _("Loading…"),
            "ariaRowSelect": _("Press Space to select this row"),
            "ariaRowDeselect": _("Press Space to deselect this row"),
            "ariaRowToggleSelection": _("Press Space to toggle row selection"),
            # the column filter's menu (text columns)
            "filterOoo": _("Filter…"), "contains": _("Contains"),
            "notContains": _("Does not contain"), "equals": _("Equals"),
            "notEqual": _("Does not equal"), "startsWith": _("Starts with"),
            "endsWith": _("Ends with"), "blank": _("Blank"), "notBlank": _("Not blank"),
            "andCondition": _("AND"), "orCondition": _("OR"), "noMatches": _("No matches")}


def grid_texts(g: Any, empty: str) -> Any:
    """Grid ``g`` with AG Grid's own texts in the request's language."""
    g.dashGridOptions = {**(getattr(g, "dashGridOptions", None) or {}),
                         "localeText": grid_locale(empty)}
    return g


def headers(columns: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Grid columns with their headers in the request's language; a header
    longer than its column (Russian ones often are) wraps rather than being cut,
    and shows whole on hover."""
    out = []
    for c in columns:
        name = translate(c["headerName"])
        out.append({**c, "headerName": name, "headerTooltip": name, "wrapHeaderText": True,
                    "autoHeaderHeight": True})
    return out



STATUS_COLORS = {"pending": "warning", "approved": "success", "rejected": "danger",
                 "cancelled": "secondary"}


ADJUSTMENT_COLUMNS = [
    {"field": "id", "headerName": "#", "maxWidth": 80},
    {"field": "requested_at", "headerName": N_("Requested (UTC)"), "maxWidth": 160},
    {"field": "requested_by", "headerName": N_("By"), "maxWidth": 120},
    {"field": "member", "headerName": N_("Member")},
    {"field": "points", "headerName": N_("Points"), "type": "rightAligned", "maxWidth": 110},
    {"field": "reason", "headerName": N_("Reason"), "maxWidth": 150},
    {"field": "ticket", "headerName": N_("Ticket"), "maxWidth": 110},
    {"field": "status", "headerName": N_("Status"), "maxWidth": 110},
    {"field": "decided", "headerName": N_("Decided")},
    {"field": "comment", "headerName": N_("Comment")},
]


def member_label(a: AdjustmentRow) -> str:
    return f"{a.member_external_id} {a.member_name}".strip()


def _decided(a: AdjustmentRow) -> str:
    parts = []
    if a.first_approver:
        parts.append(_("1st: %(who)s %(when)s", who=a.first_approver,
                       when=fmt.when(a.first_approved_at)))
    if a.decided_by:
        parts.append(f"{a.decided_by} {fmt.when(a.decided_at)}")
    elif a.status == "cancelled":
        parts.append(_("cancelled %(when)s", when=fmt.when(a.decided_at)))
    if a.decision_reason:
        parts.append(f"“{a.decision_reason}”")
    return " · ".join(parts)


def adjustment_rows(items: Iterable[AdjustmentRow]) -> list[dict[str, Any]]:
    return [
        {"id": a.id, "requested_at": fmt.when(a.requested_at), "requested_by": a.requested_by,
         "member": member_label(a), "points": fmt.signed_points(a.points),
         "reason": reason_label(a.reason_code), "ticket": a.ticket_ref,
         "status": status_label(a.status), "decided": _decided(a), "comment": a.comment}
        for a in items
    ]


def adjustment_summary(items: Sequence[AdjustmentRow], capped: bool = False) -> str:
    counts: dict[str, int] = {}
    for a in items:
        counts[a.status] = counts.get(a.status, 0) + 1
    if not items:
        return ""
    parts = ", ".join(_("%(n)s %(status)s", n=n, status=status_label(status))
                      for status, n in sorted(counts.items()))
    text = ngettext("%(num)s request: %(parts)s", "%(num)s requests: %(parts)s", len(items),
                    parts=parts)
    return text + (_(" (the newest shown; the CSV export has them all)") if capped else "")


def entry_options(rows: Iterable[LedgerRow]) -> list[dict[str, Any]]:
    return [
        {"label": f"#{r.id} {fmt.when(r.effective_at)} {kind_label(r.kind)} "
                  f"{fmt.signed_points(r.points)}"
                  + (f" — {memo_text(r.memo)}" if r.memo else ""),
         "value": r.id}
        for r in rows
    ]


# ---------------------------------------------------------------- layout


MY_COLUMNS = [
    {"field": "id", "headerName": "#", "maxWidth": 80},
    {"field": "requested_at", "headerName": N_("Requested (UTC)"), "maxWidth": 160},
    {"field": "member", "headerName": N_("Member")},
    {"field": "points", "headerName": N_("Points"), "type": "rightAligned", "maxWidth": 110},
    {"field": "reason", "headerName": N_("Reason"), "maxWidth": 150},
    {"field": "ticket", "headerName": N_("Ticket"), "maxWidth": 110},
    {"field": "status", "headerName": N_("Status"), "maxWidth": 110},
    {"field": "decided", "headerName": N_("Decision")},
    {"field": "comment", "headerName": N_("Comment")},
]


def _field(label: str, control: object, feedback_id: str, hint: str = "") -> dbc.Row:
    return dbc.Row(
        [
            dbc.Label(label, width=3, className="fw-semibold"),
            dbc.Col([control,
                     html.Div(hint, className="form-text") if hint else None,
                     html.Div(id=feedback_id, className="field-error")], width=9),
        ],
        className="mb-2",
    )


def layout(member: str | None = None, **_kwargs: object) -> html.Div:
    """``?member=<id>`` pre-fills the member (the profile's "Request" link)."""
    form = dbc.Card(
        dbc.CardBody(
            [
                html.H2(_("New request"), className="h5 mb-3"),
                _field(_("Member"), dbc.Input(id=ids.MEMBER, value=(member or "")[:64],
                                              placeholder=_("Member id or customer id"),
                                           debounce=True),
                       ids.MEMBER_FEEDBACK),
                html.Div(id=ids.MEMBER_INFO, className="mb-2 small"),
                _field(_("Points"), dbc.Input(id=ids.POINTS, placeholder=_("e.g. 500 or -200"),
                                              inputMode="numeric"),
                       ids.POINTS_FEEDBACK, _("+ adds points, - removes them. Whole points.")),
                _field(_("Reason"), dbc.Select(
                    id=ids.REASON, value="",
                    options=[{"label": _("Choose a reason code"), "value": ""}]
                    + [{"label": translate(v), "value": k} for k, v in REASON_LABELS.items()]),
                    ids.REASON_FEEDBACK),
                _field(_("Comment"), dbc.Textarea(id=ids.COMMENT, rows=3, maxLength=MAX_COMMENT,
                                                  placeholder=_("Why is the balance wrong?")),
                       ids.COMMENT_FEEDBACK,
                       _("Required: the supervisor decides from it. Up to %(n)s characters.",
                         n=fmt.points(MAX_COMMENT))),
                _field(_("Ticket"), dbc.Input(id=ids.TICKET, placeholder=_("e.g. SUP-1234"),
                                              maxLength=MAX_TICKET),
                       ids.TICKET_FEEDBACK, _("Optional, up to %(n)s characters.", n=MAX_TICKET)),
                _field(_("Corrects entry"), dcc.Dropdown(
                    id=ids.ENTRY, placeholder=_("Optional: the ledger line this corrects")),
                    ids.ENTRY_FEEDBACK),
                html.Div(id=ids.LIMITS, className="small text-muted mb-2"),
                dbc.Button(_("Submit for approval"), id=ids.SUBMIT, color="primary"),
                html.Div(id=ids.RESULT, className="mt-3"),
            ]
        ),
        className="mb-4",
    )
    mine = html.Div(
        [
            html.H2(_("My requests"), className="h5"),
            dbc.Row(
                [
                    dbc.Col(dcc.Dropdown(
                        id=ids.STATUS, placeholder=_("All statuses"),
                        options=[{"label": status_label(s), "value": s}
                                 for s in ADJUSTMENT_STATUSES]), md=4),
                    dbc.Col(dbc.Button(_("Cancel the selected pending request"), id=ids.CANCEL,
                                       color="outline-danger", size="sm"), md="auto"),
                ],
                className="mb-2",
            ),
            html.Div(id=ids.CANCEL_RESULT),
            html.Div(id=ids.SUMMARY, className="mb-2 small text-muted"),
            html.Div(grid_texts(grid(ids.TABLE, headers(MY_COLUMNS), height="360px",
                                     selectable=True), _("No requests to show.")),
                     id=ids.GRID),
        ]
    )
    return html.Div(
        [
            page_header(_("Request an adjustment"),
                        _("A balance correction waits for a supervisor other than you; "
                          "approval writes exactly one ledger entry.")),
            dbc.Row([dbc.Col(form, lg=6), dbc.Col(mine, lg=6)]),
            dcc.Store(id=ids.VERSION, data=0),
            dcc.Store(id=ids.CANCEL_VERSION, data=0),
            token_store(ids.TOKEN),
            dcc.Store(id=ids.LAST_TOKEN),
        ]
    )
