"""Tier rules: edit a draft, simulate it on the membership, approve and
publish it with an effective time, read the history and roll back."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

import dash_ag_grid as dag
import dash_bootstrap_components as dbc
import pandas as pd
from babel.numbers import get_currency_symbol
from dash import dcc, html
from flask import has_request_context
from flask_login import current_user

from dashboard import charts
from dashboard import format as fmt
from dashboard.access import register_page, roles_of
from dashboard.forms import token_store
from dashboard.i18n import (
    N_,
    _,
    current_language,
    error_text,
    locale_of,
    ngettext,
    translate,
)
from dashboard.shell import CSV_EXPORT_PARAMS, grid, grid_locale_text, page_header
from db import rules as engine
from db.i18n import Message
from db.rule_history import Version
from db.rule_review import RecordedSimulation
from db.rules import MAX_WINDOW_DAYS, Problem, RulesDiff
from db.settings_changes import MAX_EXPIRY_DAYS, Proposal
from db.simulation import SimulationResult, tier_changes
from db.text import MAX_COMMENT, MAX_REASON

register_page(
    __name__, path="/rules", name=N_("Rules"), title=N_("Tier rules"), order=30,
    roles=("supervisor", "executive"), write_roles=("supervisor",),
)


# ---------------------------------------------------------------- ids


class Rules:
    # page-wide
    ACTOR = "rules-actor"  # signed identity for the background simulation
    SAVED = "rules-saved"  # {"select": id} after a save / submit
    DECIDED = "rules-decided"  # after approve / reject / tier pass
    COPIED = "rules-copied"  # after a new draft / rollback
    TOKEN = "rules-token"  # store: this page's form submission token
    IN_FORCE_ID = "rules-in-force-id"
    VERSION = "rules-version"
    VERSION_INFO = "rules-version-info"
    NEW_DRAFT = "rules-new-draft"
    OWN_DRAFT = "rules-own-draft"  # opens the user's newest draft
    OWN_DRAFT_ID = "rules-own-draft-id"
    COPY_RESULT = "rules-copy-result"
    TABS = "rules-tabs"
    # editor
    NAME = "rules-name"
    NAME_FB = "rules-name-feedback"
    NOTE = "rules-note"
    GRID = "rules-grid"
    ADD_TIER = "rules-add-tier"
    REMOVE_TIER = "rules-remove-tier"
    POINT_VALUE = "rules-point-value"
    POINT_VALUE_FB = "rules-point-value-feedback"
    WINDOW_MODE = "rules-window-mode"
    WINDOW_DAYS = "rules-window-days"
    WINDOW_FB = "rules-window-feedback"
    PROBLEMS = "rules-problems"  # store: {field: message}
    SAVE = "rules-save"
    SUBMIT = "rules-submit"
    EDIT_RESULT = "rules-edit-result"
    EXPIRY = "rules-expiry-days"
    EXPIRY_NEVER = "rules-expiry-never"
    EXPIRY_FB = "rules-expiry-feedback"
    EXPIRY_SAVE = "rules-expiry-save"
    EXPIRY_RESULT = "rules-expiry-result"
    # a proposed expiry change waiting for a second supervisor
    EXPIRY_CHANGED = "rules-expiry-changed"  # store: bumped after a proposal or decision
    EXPIRY_PENDING = "rules-expiry-pending"
    EXPIRY_DECIDE_BOX = "rules-expiry-decide-box"
    EXPIRY_REASON = "rules-expiry-reason"
    EXPIRY_APPROVE = "rules-expiry-approve"
    EXPIRY_REJECT = "rules-expiry-reject"
    EXPIRY_DECISION = "rules-expiry-decision"
    # simulation
    SIM_DAYS = "rules-sim-days"
    SIM_RUN = "rules-sim-run"
    SIM_CANCEL = "rules-sim-cancel"
    SIM_PROGRESS = "rules-sim-progress"
    SIM_RESULT = "rules-sim-result"
    # approval
    IN_FORCE = "rules-in-force"
    PENDING_GRID = "rules-pending-grid"
    REVIEW = "rules-review"  # the selected submitted version: diff and simulation
    EFFECTIVE_AT = "rules-effective-at"
    EFFECTIVE_FB = "rules-effective-feedback"
    DECISION_NOTE = "rules-decision-note"
    DECISION_NOTE_FB = "rules-decision-note-feedback"
    APPROVE = "rules-approve"
    REJECT = "rules-reject"
    DECIDE_RESULT = "rules-decide-result"
    REEVALUATE = "rules-reevaluate"
    REEVALUATE_RESULT = "rules-reevaluate-result"
    REEVALUATE_RUNNING = "rules-reevaluate-running"
    # history
    HISTORY_GRID = "rules-history-grid"
    DIFF_A = "rules-diff-a"
    DIFF_B = "rules-diff-b"
    DIFF = "rules-diff"
    ROLLBACK = "rules-rollback"


ids = Rules


# ---------------------------------------------------------------- builders
# (pure: engine data in, components and figures out; no queries)

MAX_SIM_DAYS = 3660  # the longest simulation, in days of orders
EDIT_FIELDS = ("name", "threshold", "accrual_rate", "referral_rate")
FIELD_LABELS = {
    "name": N_("Tier"), "threshold": N_("From spend"), "accrual_rate": N_("Accrual %"),
    "referral_rate": N_("Referral %"), "tiers": N_("Tiers"), "point_value": N_("Point value"),
    "tier_window_days": N_("Tier window"), "effective_at": N_("Effective from"),
    "note": N_("Note"),
}
# rule-set fields with an input of their own (the message shows next to it)
INPUT_FIELDS = ("name", "point_value", "tier_window_days")
SETTING_LABELS = {"name": N_("Version name"), "point_value_minor": N_("Point value"),
                  "tier_window_days": N_("Tier window")}
# a version's state (db.rule_history.STATES) and stored status, as the user reads it
STATE_LABELS = {
    "draft": N_("draft"), "pending": N_("pending"), "published": N_("published"),
    "scheduled": N_("scheduled"), "in force": N_("in force"), "superseded": N_("superseded"),
    "rejected": N_("rejected"),
}
# statuses the services name in their refusals: a pilot's (the refusal to edit
# a rule set a pilot uses), a settings change's, a version's
STATUS_WORDS = {"running": N_("running"), "ended": N_("ended"), "approved": N_("approved"),
                **STATE_LABELS}
# how a tier changes between two versions (db.rules.TierChange.kind)
CHANGE_LABELS = {"added": N_("added"), "removed": N_("removed"), "changed": N_("changed"),
                 "same": N_("same")}
# the members' segments (db.models.SEGMENTS) in the simulation's table
SEGMENT_LABELS = {
    "regular": N_("Regular"), "student": N_("Students"), "pensioner": N_("Pensioners"),
    "large_family": N_("Large families"), "corporate": N_("Corporate"),
    "(new segment)": N_("(new segment)"),
}


def state_text(state: str) -> str:
    """A version's state or status in the user's language."""
    return translate(STATE_LABELS.get(state, state))


def field_label(field: str) -> str:
    return translate(FIELD_LABELS.get(field, field))


_EN_NUMBER = re.compile(r"-?\d{1,3}(?:,\d{3})+(?:\.\d+)?|-?\d+\.\d+")


def _local_param(value: Any) -> Any:
    if isinstance(value, Message):
        return _local_numbers(value)
    if isinstance(value, str) and value in STATUS_WORDS:
        return STATUS_WORDS[value]
    if isinstance(value, str) and _EN_NUMBER.fullmatch(value):
        return value.replace(",", "\u00a0").replace(".", ",")
    return value


def _local_numbers(message: Message) -> Message:
    return Message(message.msgid, {k: _local_param(v) for k, v in message.params.items()})


def tr(text: Any) -> Any:
    """:func:`translate`, with the numbers a service wrote into its message
    ("1,500.00") in the user's format."""
    if isinstance(text, Message) and current_language() != "en":
        text = _local_numbers(text)
    return translate(text)


def refusal(exc: BaseException) -> str:
    """A service's refusal in the user's language (:func:`error_text`, numbers
    in the user's format)."""
    message = getattr(exc, "message", None)
    if message is None and len(exc.args) == 1:
        message = exc.args[0]
    if isinstance(message, Message) and not isinstance(getattr(exc, "problems", None), dict):
        return tr(message)
    return error_text(exc)
STATE_COLOURS = {
    "draft": "secondary", "pending": "warning", "scheduled": "info", "in force": "success",
    "superseded": "light", "rejected": "danger",
}
def new_row_id() -> str:
    return uuid.uuid4().hex[:10]


def editor_rows(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Editor rows with a stable row id (AG Grid's getRowId) and no errors."""
    return [{**{f: r.get(f, "") for f in EDIT_FIELDS}, "rid": r.get("rid") or new_row_id(),
             "problems": ""} for r in rows]


def blank_row() -> dict[str, Any]:
    return {"name": "", "threshold": "", "accrual_rate": "", "referral_rate": "",
            "rid": new_row_id(), "problems": ""}


def clean_rows(rows: Sequence[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """What the service validates: the four fields, in the grid's order."""
    return [{f: r.get(f) for f in EDIT_FIELDS} for r in rows or []]


def rows_with_problems(rows: Sequence[dict[str, Any]], problems: Iterable[Problem]
                       ) -> list[dict[str, Any]]:
    """Rows annotated for the grid: ``_err_<field>`` marks (and tooltips) the
    cell, ``problems`` shows the row's messages in the column beside it."""
    out = [{k: v for k, v in r.items() if not k.startswith("_err_")} for r in rows]
    for r in out:
        r["problems"] = ""
    for p in problems:
        if p.row is None or not 0 <= p.row < len(out):
            continue
        row = out[p.row]
        message = tr(p.message)
        row[f"_err_{p.field}"] = message
        row["problems"] = "; ".join(
            x for x in (row["problems"], f"{field_label(p.field)}: {message}") if x)
    return out


def currency_sign(currency: str) -> str:
    """The currency as the user's language writes it: "RUB" in English, "₽" in Russian."""
    if current_language() == "en":
        return currency
    return get_currency_symbol(currency, locale=locale_of(current_language()))


def tier_columns(editable: bool, currency: str) -> list[dict[str, Any]]:
    def col(field: str, header: str, **extra: Any) -> dict[str, Any]:
        return {
            "field": field, "headerName": header, "editable": editable,
            # the cell's problem as its tooltip
            "tooltipValueGetter": {"function": f"params.data && params.data._err_{field}"},
            "cellClassRules": {"rules-cell-invalid": f"!!params.data._err_{field}"},
            "sortable": False, "filter": False, **extra,
        }

    return [
        col("name", _("Tier"), rowDrag=editable, minWidth=140),
        col("threshold", _("From spend (%(currency)s)", currency=currency_sign(currency))
            if currency
            else _("From spend"), type="rightAligned"),
        col("accrual_rate", _("Accrual %"), type="rightAligned"),
        col("referral_rate", _("Referral %"), type="rightAligned"),
        {"field": "problems", "headerName": _("Problems"), "editable": False, "sortable": False,
         "filter": False, "minWidth": 260, "wrapText": True, "autoHeight": True,
         "cellClass": "text-danger small"},
    ]


def problem_list(problems: Sequence[Problem], fields: Iterable[str] = ()) -> Any:
    """The problems not shown next to their own field (table-level and tier cells)."""
    skip = set(fields)
    items = [_("Tier %(n)s, %(field)s: %(problem)s", n=p.row + 1, field=field_label(p.field),
                 problem=tr(p.message)) if p.row is not None
             else f"{field_label(p.field)}: {tr(p.message)}"
             for p in problems if p.row is not None or p.field not in skip]
    if not items:
        return None
    return dbc.Alert([html.Strong(_("Not saved: fix these first.")),
                      html.Ul([html.Li(i) for i in items], className="mb-0")],
                     color="danger", className="py-2 small", id="rules-problem-list")


def field_problems(problems: Sequence[Problem]) -> dict[str, str]:
    """Rule-set level messages by field, for the inputs' feedback."""
    out: dict[str, str] = {}
    for p in problems:
        if p.row is None:
            out[p.field] = "; ".join(x for x in (out.get(p.field), tr(p.message)) if x)
    return out


# ---------------------------------------------------------------- versions


def version_label(v: Version, user_id: int | None = None) -> str:
    if v.status == "draft" and v.author_id == user_id:
        return _("#%(id)s %(name)s — %(state)s (your draft)", id=v.id, name=v.name,
                 state=state_text(v.state))
    return _("#%(id)s %(name)s — %(state)s", id=v.id, name=v.name, state=state_text(v.state))


def version_options(versions: Sequence[Version], user_id: int | None = None
                    ) -> list[dict[str, Any]]:
    return [{"label": version_label(v, user_id), "value": v.id} for v in versions]


def own_draft(versions: Sequence[Version], user_id: int | None) -> Version | None:
    """The user's newest draft (versions come newest first)."""
    return next((v for v in versions if v.status == "draft" and v.author_id == user_id),
                None)


def default_selection(versions: Sequence[Version], user_id: int | None) -> int | None:
    """The version in force (what the program applies today), else the user's
    newest draft, else the newest version. The draft stays one click away."""
    live = next((v for v in versions if v.state == "in force"), None)
    for v in (live, own_draft(versions, user_id), next(iter(versions), None)):
        if v is not None:
            return v.id
    return None


def own_draft_button(draft: Version | None) -> tuple[str, dict[str, str]]:
    """(label, style) of the button that opens the user's draft."""
    if draft is None:
        return "", {"display": "none"}
    return _("Open your draft #%(id)s “%(name)s”", id=draft.id, name=draft.name), {}


def state_badge(state: str) -> dbc.Badge:
    colour = STATE_COLOURS.get(state, "secondary")
    return dbc.Badge(state_text(state), color=colour,
                     text_color="dark" if colour == "light" else None, className="ms-2")


def window_text(days: int | None) -> str:
    return ngettext("rolling %(num)s day", "rolling %(num)s days", days) if days \
        else _("lifetime")


def history_rows(versions: Iterable[Version]) -> list[dict[str, Any]]:
    return [
        {"id": v.id, "name": v.name, "state": state_text(v.state), "author": v.author,
         "approver": v.approver, "created": fmt.when(v.created_at),
         "submitted": fmt.when(v.submitted_at), "decided": fmt.when(v.decided_at),
         "effective": fmt.when(v.effective_at), "based_on": f"#{v.based_on_id}"
         if v.based_on_id else "", "tiers": len(v.rules.tiers),
         "note": " / ".join(x for x in (v.note, v.decision_note) if x)}
        for v in versions
    ]


HISTORY_COLUMNS = [
    {"field": "id", "headerName": "#", "maxWidth": 80},
    {"field": "name", "headerName": N_("Version"), "minWidth": 160},
    {"field": "state", "headerName": N_("State")},
    {"field": "author", "headerName": N_("Author")},
    {"field": "approver", "headerName": N_("Approved / rejected by")},
    {"field": "created", "headerName": N_("Created")},
    {"field": "submitted", "headerName": N_("Submitted")},
    {"field": "decided", "headerName": N_("Decided")},
    {"field": "effective", "headerName": N_("Effective from (UTC)"), "minWidth": 185},
    {"field": "based_on", "headerName": N_("Based on"), "minWidth": 110, "maxWidth": 120},
    {"field": "note", "headerName": N_("Note"), "minWidth": 200},
]


def pending_rows(versions: Iterable[Version]) -> list[dict[str, Any]]:
    return [
        {"id": v.id, "name": v.name, "author": v.author, "submitted": fmt.when(v.submitted_at),
         "tiers": len(v.rules.tiers), "note": v.note}
        for v in versions if v.status == "pending"
    ]


PENDING_COLUMNS = [
    {"field": "id", "headerName": "#", "maxWidth": 80},
    {"field": "name", "headerName": N_("Version"), "minWidth": 160},
    {"field": "author", "headerName": N_("Submitted by")},
    {"field": "submitted", "headerName": N_("Submitted (UTC)")},
    {"field": "tiers", "headerName": N_("Tiers"), "maxWidth": 90},
    {"field": "note", "headerName": N_("Note"), "minWidth": 200},
]


def rules_table(rules: engine.Rules, currency: str) -> dbc.Table:
    return dbc.Table(
        [html.Thead(html.Tr([html.Th(_("Tier")), html.Th(_("From spend")), html.Th(_("Accrual")),
                             html.Th(_("Referral"))])),
         html.Tbody([html.Tr([html.Td(t.name), html.Td(fmt.money(t.threshold_minor, currency)),
                              html.Td(fmt.rate_bp(t.accrual_rate_bp)),
                              html.Td(fmt.rate_bp(t.referral_rate_bp))]) for t in rules.tiers])],
        size="sm", striped=True, className="mb-0",
    )


def version_summary(v: Version, currency: str, *, editable: bool, why_read_only: str) -> Any:
    decided = ""
    if v.approver:
        decided = (_("approved by %(name)s", name=v.approver) if v.status == "published"
                   else _("decided by %(name)s", name=v.approver))
    facts = [
        _("created %(when)s by %(name)s", when=fmt.when(v.created_at), name=v.author or "—"),
        _("submitted %(when)s", when=fmt.when(v.submitted_at)) if v.submitted_at else "",
        decided,
        _("effective from %(when)s UTC", when=fmt.when(v.effective_at)) if v.effective_at
        else "",
        _("based on #%(id)s", id=v.based_on_id) if v.based_on_id else "",
    ]
    return html.Div(
        [html.Strong(f"#{v.id} {v.name}"), state_badge(v.state),
         html.Span(" · ".join(f for f in facts if f), className="text-muted small ms-2"),
         html.Div(why_read_only, className="small text-muted mt-1") if not editable else None,
         html.Div(_("Decision note: %(note)s", note=v.decision_note), className="small mt-1")
         if v.decision_note else None],
        id="rules-version-summary",
    )


def in_force_summary(live: Version | None, scheduled: Sequence[Version], currency: str) -> Any:
    if live is None:
        head = dbc.Alert(_("No version is in force yet: orders earn no points until a version "
                           "is approved and takes effect."), color="warning", className="mb-2")
    else:
        head = html.Div([
            html.Div([html.Strong(_("In force: #%(id)s %(name)s", id=live.id, name=live.name)),
                      state_badge(live.state),
                      html.Span(" " + _("since %(when)s UTC · 1 point = %(value)s · tier window "
                                        "%(window)s", when=fmt.when(live.effective_at),
                                        value=fmt.money(live.rules.point_value_minor, currency),
                                        window=window_text(live.rules.tier_window_days)),
                                className="text-muted small")], className="mb-2"),
            rules_table(live.rules, currency),
        ])
    nxt = [html.Li([_("#%(id)s %(name)s takes effect %(when)s UTC", id=v.id, name=v.name,
                      when=fmt.when(v.effective_at)),
                    state_badge(v.state)]) for v in scheduled]
    return html.Div([head, html.Ul(nxt, className="small mt-2 mb-0") if nxt else None])


# ---------------------------------------------------------------- diff


def _tier_cells(t: Any, currency: str) -> list[str]:
    if t is None:
        return ["", "", ""]
    return [fmt.money(t.threshold_minor, currency), fmt.rate_bp(t.accrual_rate_bp),
            fmt.rate_bp(t.referral_rate_bp)]


def _setting_text(field: str, value: Any, currency: str) -> str:
    if field == "point_value_minor":
        return fmt.money(int(value), currency)
    if field == "tier_window_days":
        return window_text(value)
    return str(value)


def diff_view(a: Version, b: Version, d: RulesDiff, currency: str,
              view_id: str = "rules-diff-view") -> Any:
    """Side by side: version a | version b, changed cells highlighted."""
    fields = ("threshold_minor", "accrual_rate_bp", "referral_rate_bp")
    head = html.Thead(html.Tr(
        [html.Th(_("Tier")), html.Th(_("Change"))]
        + [html.Th(f"{h} #{a.id}") for h in (_("From spend"), _("Accrual"), _("Referral"))]
        + [html.Th(f"{h} #{b.id}") for h in (_("From spend"), _("Accrual"), _("Referral"))]
    ))
    body = []
    for ch in d.tiers:
        left, right = _tier_cells(ch.before, currency), _tier_cells(ch.after, currency)
        cls = {"added": "table-success", "removed": "table-danger"}.get(ch.kind, "")
        cells = [html.Td(ch.name), html.Td(translate(CHANGE_LABELS.get(ch.kind, ch.kind)))]
        for side in (left, right):
            for f, text in zip(fields, side, strict=True):
                hot = ch.kind == "changed" and f in ch.fields
                cells.append(html.Td(text, className="table-warning fw-bold" if hot else ""))
        body.append(html.Tr(cells, className=cls + f" rules-diff-{ch.kind}"))
    settings = [
        html.Li([html.Strong(translate(SETTING_LABELS.get(f, f))), ": ",
                 html.Span(_setting_text(f, x, currency), className="text-decoration-line-through"
                           " text-muted"), " → ",
                 html.Span(_setting_text(f, y, currency), className="fw-bold")])
        for f, x, y in d.settings
    ]
    return html.Div([
        html.Div(f"#{a.id} {a.name} ({state_text(a.state)}) → "
                 f"#{b.id} {b.name} ({state_text(b.state)})", className="mb-2 fw-semibold"),
        dbc.Alert(_("The two versions have the same tiers and settings."), color="secondary")
        if not d.changed else None,
        html.Ul(settings, className="mb-2", id="rules-diff-settings") if settings else None,
        dbc.Table([head, html.Tbody(body)], size="sm", bordered=True, className="rules-diff"),
    ], id=view_id)


# ---------------------------------------------------------------- simulation

def _layout(title: str, **extra: Any) -> dict[str, Any]:
    return charts.layout(title, height=360, **extra)


def migration_figure(matrix: pd.DataFrame) -> dict[str, Any]:
    """Members by current tier (rows) and draft tier (columns)."""
    z = matrix.to_numpy().astype(int).tolist()
    changed = tier_changes(matrix)
    return {
        "data": [{
            "type": "heatmap", "z": z, "x": [fmt.chart_text(c) for c in matrix.columns],
            "y": [fmt.chart_text(i) for i in matrix.index],
            "colorscale": [[0, "#f8f9fa"], [1, "#0d6efd"]],
            "text": [[fmt.points(v) for v in row] for row in z], "texttemplate": "%{text}",
            "hovertemplate": _("now %(now)s → draft %(draft)s: %(n)s members",
                               now="%{y}", draft="%{x}", n="%{text}") + "<extra></extra>",
            "colorbar": {"title": {"text": _("members")}},
        }],
        "layout": _layout(_("Members by tier, now → under the draft: %(n)s change tier (off the "
                            "diagonal)", n=fmt.points(changed)), legend="none",
                          xaxis=charts.axis(_("tier under the draft"), type="category"),
                          yaxis=charts.axis(_("tier now"), type="category",
                                            autorange="reversed")),
    }


def points_figure(points: dict[str, dict[str, int]], days: int) -> dict[str, Any]:
    kinds = ["accrual", "referral"]
    names = [_("accrual"), _("referral bonus")]
    series = (("actual", _("issued (ledger)"), "#adb5bd"),
              ("current", _("current rules"), "#0d6efd"), ("draft", _("draft"), "#fd7e14"))
    return {
        "data": [{"type": "bar", "name": label, "x": names,
                  "y": [int(points[k][key]) for k in kinds], "marker": {"color": colour}}
                 for key, label, colour in series],
        "layout": _layout(ngettext("Points issued, last %(num)s day",
                                   "Points issued, last %(num)s days", days), barmode="group",
                          xaxis=charts.axis(type="category"),
                          yaxis=charts.value_axis(_("points"))),
    }


def _date_format() -> dict[str, str]:
    """Dates on a chart's axis as the user writes them (Plotly's own month
    names are English): 02.12 and 02.12.2026 in Russian."""
    if current_language() == "en":
        return {}
    return {"tickformat": "%d.%m", "hoverformat": "%d.%m.%Y"}


def by_day_figure(by_day: pd.DataFrame) -> dict[str, Any]:
    x = [pd.Timestamp(d).strftime("%Y-%m-%d") for d in by_day["date"]] if len(by_day) else []
    return {
        "data": [
            {"type": "scatter", "mode": "lines", "name": _("current rules"), "x": x,
             "y": [int(v) for v in by_day.get("current_points", [])],
             "line": {"color": "#0d6efd"}},
            {"type": "scatter", "mode": "lines", "name": _("draft"), "x": x,
             "y": [int(v) for v in by_day.get("draft_points", [])],
             "line": {"color": "#fd7e14"}},
        ],
        "layout": _layout(_("Points per day (accrual + referral)"),
                          xaxis=charts.axis(type="date", **_date_format()),
                          yaxis=charts.value_axis(_("points"))),
    }


def segment_rows(by_segment: pd.DataFrame) -> list[dict[str, Any]]:
    return [
        {"segment": translate(SEGMENT_LABELS.get(str(r["segment"]), str(r["segment"]))),
         "members": fmt.points(r["members"]),
         "moved_up": fmt.points(r["moved_up"]), "moved_down": fmt.points(r["moved_down"]),
         "points_current": fmt.points(r["points_current"]),
         "points_draft": fmt.points(r["points_draft"]),
         "points_change": fmt.signed_points(r["points_change"])}
        for r in by_segment.to_dict("records")
    ]


def _tile(label: str, value: str, tile_id: str, md: int = 3) -> dbc.Col:
    return dbc.Col(dbc.Card(dbc.CardBody([html.Div(value, className="h4 mb-0", id=tile_id),
                                          html.Div(label, className="text-muted small",
                                                   id=f"{tile_id}-label")])), md=md)


MOVES_NOTE = N_("Accrual rate: the rate each member earns at today under the version in force "
                "and under this one, so a member who stays in a tier whose rate changes counts "
                "there. Tier: the member's tier under this version has another name than now, "
                "the cells off the diagonal of the tier chart.")


def headline(prefix: str, *, rate_up: int, rate_down: int, tier_changed: int,
             points_now: int, points_draft: int, liability_change_minor: int,
             currency: str) -> html.Div:
    """The simulation's headline figures, each saying what it counts."""
    return html.Div([
        dbc.Row([
            _tile(_("members earn a higher accrual rate"), fmt.points(rate_up),
                  f"{prefix}-up", 4),
            _tile(_("members earn a lower accrual rate"), fmt.points(rate_down),
                  f"{prefix}-down", 4),
            _tile(_("members change tier (off the diagonal of the tier chart)"),
                  fmt.points(tier_changed), f"{prefix}-tier-changed", 4),
        ], className="g-2 mb-2"),
        html.Div(translate(MOVES_NOTE), className="small text-muted mb-2",
                 id=f"{prefix}-moves-note"),
        dbc.Row([
            _tile(_("points in the period: %(now)s now → %(draft)s",
                    now=fmt.points(points_now), draft=fmt.points(points_draft)),
                  fmt.signed_points(points_draft - points_now), f"{prefix}-points", 6),
            _tile(_("liability change (draft point value)"),
                  ("+" if liability_change_minor > 0 else "")
                  + fmt.money(liability_change_minor, currency), f"{prefix}-liability", 6),
        ], className="g-2 mb-3"),
    ])


def simulation_view(r: SimulationResult, currency: str) -> html.Div:
    p = r.points
    total_cur = p["accrual"]["current"] + p["referral"]["current"]
    total_new = p["accrual"]["draft"] + p["referral"]["draft"]
    seg_table = dbc.Table(
        [html.Thead(html.Tr([html.Th(h) for h in (
            _("Segment"), _("Members"), _("Higher rate"), _("Lower rate"), _("Points now"),
            _("Points draft"), _("Change"))])),
         html.Tbody([html.Tr([html.Td(v) for v in row.values()])
                     for row in segment_rows(r.by_segment)])],
        size="sm", striped=True, id="rules-sim-segments",
    )
    return html.Div([
        html.Div(
            _("#%(id)s %(name)s against #%(live_id)s %(live)s (in force), on %(members)s members "
              "and %(orders)s paid orders of the last %(days)s days up to %(when)s UTC.",
              id=r.draft.rule_set_id, name=r.draft.name, live_id=r.current.rule_set_id,
              live=r.current.name, members=fmt.points(r.members), orders=fmt.points(r.orders),
              days=r.days, when=fmt.when(r.as_of)),
            className="text-muted small mb-2"),
        headline("rules-sim", rate_up=r.moved_up, rate_down=r.moved_down,
                 tier_changed=r.tier_changed, points_now=total_cur, points_draft=total_new,
                 liability_change_minor=r.liability_change_minor, currency=currency),
        dbc.Row([
            dbc.Col(dcc.Graph(id="rules-sim-matrix", figure=migration_figure(r.matrix),
                              config={**charts.config(), "displayModeBar": False}), md=6),
            dbc.Col(dcc.Graph(id="rules-sim-points-figure",
                              figure=points_figure(p, r.days),
                              config={**charts.config(), "displayModeBar": False}), md=6),
        ]),
        dcc.Graph(id="rules-sim-by-day", figure=by_day_figure(r.by_day),
                  config={**charts.config(), "displayModeBar": False}),
        html.H6(_("By segment"), className="mt-2"),
        seg_table,
    ], id="rules-sim-output")


def empty_diff() -> Any:
    return html.Div(_("Choose two versions to compare."), className="text-muted small")


def days_text(days: int) -> str:
    """"30 days" in the user's language."""
    return ngettext("%(days)s day", "%(days)s days", days, days=fmt.points(days))


def _period(days: int | None) -> str:
    return _("never") if days is None else days_text(days)


def expiry_proposal(p: Proposal, currency: str, *, mine: bool) -> dbc.Alert:
    """A proposed expiry period with what it would expire, for the approver."""
    e = p.effect
    days = p.changes.get("expiry_days")
    lines: list[Any] = [html.Strong(
        _("Proposal #%(id)s by %(name)s (%(when)s): points never expire.", id=p.id,
          name=p.requested_by, when=fmt.when(p.requested_at)) if days is None else
        _("Proposal #%(id)s by %(name)s (%(when)s): points expire after %(period)s.", id=p.id,
          name=p.requested_by, when=fmt.when(p.requested_at), period=_period(days)))]
    if e is not None:
        lines.append(html.Div(
            _("Due to expire by %(until)s if members spend nothing more: %(now_points)s points "
              "of %(now_members)s members under the period in force (%(now_period)s), "
              "%(new_points)s points of %(new_members)s members under the proposal (difference "
              "%(difference)s points). Computed when proposed.",
              until=fmt.when(e.until), now_points=fmt.points(e.current_points),
              now_members=fmt.points(e.current_members), now_period=_period(e.current_days),
              new_points=fmt.points(e.proposed_points),
              new_members=fmt.points(e.proposed_members),
              difference=fmt.signed_points(e.proposed_points - e.current_points)),
            id="rules-expiry-effect"))
    lines.append(html.Div(
        _("You proposed it: another supervisor approves or refuses it.") if mine
        else _("Approve to apply it from now, or refuse with a reason."),
        className="text-muted"))
    return dbc.Alert(lines, color="warning", className="py-2 mb-2")


# ---------------------------------------------------------------- review


def review_hint() -> Any:
    return html.Div(_("Select a submitted version in the table to see what it changes against "
                      "the version in force and the simulation it was submitted with."),
                    className="text-muted small", id="rules-review-hint")


def recorded_simulation_view(rec: RecordedSimulation | None, stale: Sequence[str],
                             currency: str) -> Any:
    """The simulation a submitted version was submitted with, and whether the
    data has changed since."""
    if rec is None:
        return dbc.Alert(_("No simulation is recorded for this version (it was submitted "
                           "while no version was in force)."), color="secondary",
                         className="py-2",
                         id="rules-review-no-simulation")
    p = rec.points
    total_cur = p["accrual"]["current"] + p["referral"]["current"]
    total_new = p["accrual"]["draft"] + p["referral"]["draft"]
    if stale:
        fresh = dbc.Alert(
            [_("Not on the current data: %(reasons)s.",
               reasons="; ".join(tr(x) for x in stale)) + " ",
             _("Choose this version in the Version list and run the simulation again to see "
               "it on today's data.")], color="warning", className="py-2 small mb-2",
            id="rules-review-stale")
    else:
        fresh = dbc.Alert(_("The members and orders have not changed since: this is the "
                            "simulation on the current data."), color="success",
                          className="py-2 small mb-2", id="rules-review-current")
    return html.Div([
        html.Div(
            _("Simulated by %(name)s at %(when)s UTC against #%(live_id)s %(live)s (in force "
              "then): %(members)s members and %(orders)s paid orders of the %(days)s days up to "
              "%(as_of)s UTC.", name=rec.by, when=fmt.when(rec.recorded_at),
              live_id=rec.in_force_id, live=rec.in_force_name, members=fmt.points(rec.members),
              orders=fmt.points(rec.orders), days=rec.days, as_of=fmt.when(rec.as_of)),
            className="text-muted small mb-2"),
        fresh,
        headline("rules-review", rate_up=rec.moved_up, rate_down=rec.moved_down,
                 tier_changed=tier_changes(rec.matrix), points_now=total_cur,
                 points_draft=total_new, liability_change_minor=rec.liability_change_minor,
                 currency=currency),
        dcc.Graph(id="rules-review-matrix", figure=migration_figure(rec.matrix),
                  config={**charts.config(), "displayModeBar": False}),
    ], id="rules-review-simulation")


def review_view(pending: Version, live: Version | None, d: RulesDiff | None,
                rec: RecordedSimulation | None, stale: Sequence[str], currency: str) -> Any:
    """What the approver decides on: the selected submitted version's changes
    against the version in force and its simulation."""
    if live is None or d is None:
        changes: Any = dbc.Alert(_("No version is in force: this one would be the first."),
                                 color="secondary", className="py-2")
    else:
        changes = diff_view(live, pending, d, currency, view_id="rules-review-diff")
    return dbc.Card(dbc.CardBody([
        html.H6(_("#%(id)s %(name)s: submitted by %(author)s %(when)s UTC", id=pending.id,
                  name=pending.name, author=pending.author or "—",
                  when=fmt.when(pending.submitted_at))),
        html.Div(_("Note: %(note)s", note=pending.note), className="small mb-2")
        if pending.note else None,
        html.Div(_("Changes against the version in force"), className="fw-semibold mt-2 mb-1"),
        changes,
        html.Div(_("Simulation"), className="fw-semibold mt-3 mb-1"),
        recorded_simulation_view(rec, stale, currency),
    ]), id="rules-review-card")


# ---------------------------------------------------------------- layout


WRITE_ROLES = roles_of(__name__, "write_roles")


def _can_write() -> bool:
    """Only hides controls; every write callback checks the role on the server."""
    return (has_request_context() and current_user.is_authenticated
            and current_user.role in WRITE_ROLES)


def _hidden(when: bool) -> dict[str, str]:
    return {"display": "none"} if when else {}


def _grid(component_id: str, columns: Sequence[dict[str, Any]], height: str,
          empty: str) -> dag.AgGrid:
    """A selectable grid, its headers and its empty state in the user's language."""
    return grid(component_id, columns, height=height, selectable=True, empty=empty)


def window_modes(*, editable: bool) -> list[dict[str, Any]]:
    """The choices of qualifying spend: lifetime or a rolling window."""
    return [{"label": _("lifetime"), "value": "lifetime", "disabled": not editable},
            {"label": _("rolling window (days)"), "value": "rolling", "disabled": not editable}]


def _editor(write: bool) -> dbc.Row:
    tiers = dag.AgGrid(
        id=ids.GRID,
        columnDefs=tier_columns(False, ""),
        rowData=[],
        defaultColDef={"resizable": True, "minWidth": 100, "wrapHeaderText": True,
                       "autoHeaderHeight": True},
        columnSize="responsiveSizeToFit",
        dashGridOptions={
            "rowDragManaged": True, "animateRows": False, "singleClickEdit": True,
            "stopEditingWhenCellsLoseFocus": True, "tooltipShowDelay": 0,
            "rowSelection": {"mode": "singleRow", "enableClickSelection": True,
                             "checkboxes": False},
            "domLayout": "autoHeight",
            "localeText": {**grid_locale_text(), "noRowsToShow": _("No tiers: add one.")},
        },
        getRowId="params.data.rid",
        csvExportParams=CSV_EXPORT_PARAMS,
        style={"width": "100%"},
    )
    settings = [
        dbc.Label(_("Version name"), html_for=ids.NAME),
        dbc.Input(id=ids.NAME, maxLength=200, disabled=True),
        dbc.FormFeedback(id=ids.NAME_FB, type="invalid"),
        dbc.Label(_("1 point is worth"), html_for=ids.POINT_VALUE, className="mt-2"),
        dbc.Input(id=ids.POINT_VALUE, type="text", inputMode="decimal", disabled=True),
        dbc.FormFeedback(id=ids.POINT_VALUE_FB, type="invalid"),
        dbc.Label(_("Qualifying spend for tiers"), className="mt-2"),
        dbc.RadioItems(id=ids.WINDOW_MODE, options=window_modes(editable=True),
                       value="lifetime", inline=True),
        dbc.Input(id=ids.WINDOW_DAYS, type="text", inputMode="numeric",
                  placeholder=_("days (1 to %(most)s)", most=fmt.points(MAX_WINDOW_DAYS)),
                  disabled=True),
        dbc.FormFeedback(id=ids.WINDOW_FB, type="invalid"),
        dbc.Label(_("Note (up to %(n)s characters)", n=fmt.points(MAX_COMMENT)),
                  html_for=ids.NOTE, className="mt-2"),
        dbc.Textarea(id=ids.NOTE, rows=2, maxLength=MAX_COMMENT, disabled=True),
    ]
    expiry = dbc.Card(dbc.CardBody([
        html.H6(_("Points expiry (program setting)"), className="mb-1"),
        html.Div(_("Applies to every version: unused points expire this many days after they "
                   "were earned."), className="small text-muted mb-2"),
        dbc.InputGroup([
            dbc.Input(id=ids.EXPIRY, type="text", inputMode="numeric", disabled=not write,
                      placeholder=_("1 to %(most)s", most=fmt.points(MAX_EXPIRY_DAYS))),
            dbc.InputGroupText(_("days")),
        ]),
        html.Div(_("A whole number of days from 1 to %(most)s (ten years).",
                   most=fmt.points(MAX_EXPIRY_DAYS)), className="form-text"),
        dbc.Checkbox(id=ids.EXPIRY_NEVER, label=_("points never expire"), disabled=not write),
        # shown whatever the input's place in the group (a FormFeedback would need a sibling)
        html.Div(id=ids.EXPIRY_FB, className="field-error"),
        html.Div(dbc.Button(_("Propose change"), id=ids.EXPIRY_SAVE, size="sm",
                            color="secondary", className="mt-2"), style=_hidden(not write)),
        html.Div(_("A change applies when a second supervisor approves it, after seeing how "
                   "many points it would expire."), className="small text-muted mt-1",
                 style=_hidden(not write)),
        html.Div(id=ids.EXPIRY_RESULT, className="small mt-2"),
        dcc.Store(id=ids.EXPIRY_CHANGED, data=0),
        html.Div(id=ids.EXPIRY_PENDING, className="small mt-2"),
        html.Div([
            dbc.Input(id=ids.EXPIRY_REASON, size="sm", maxLength=MAX_REASON,
                      placeholder=_("Reason (needed to refuse; up to %(n)s characters)",
                                    n=MAX_REASON),
                      className="mb-1"),
            dbc.Button(_("Approve change"), id=ids.EXPIRY_APPROVE, size="sm", color="success",
                       className="me-2"),
            dbc.Button(_("Refuse"), id=ids.EXPIRY_REJECT, size="sm", color="danger",
                       outline=True),
            html.Div(id=ids.EXPIRY_DECISION, className="small mt-2"),
        ], id=ids.EXPIRY_DECIDE_BOX, style={"display": "none"}),
    ]), className="mt-3")
    return dbc.Row([
        dbc.Col([
            html.Div(id=ids.VERSION_INFO, className="mb-2"),
            tiers,
            html.Div([
                dbc.Button(_("Add tier"), id=ids.ADD_TIER, size="sm", color="secondary",
                           className="me-2", disabled=True),
                dbc.Button(_("Remove selected tier"), id=ids.REMOVE_TIER, size="sm",
                           color="secondary", outline=True, disabled=True),
                html.Span(" " + _("Drag a tier by its name to reorder; click a cell to edit. "
                                  "Thresholds in money, rates in percent (up to 2 decimals)."),
                          className="small text-muted ms-2"),
            ], className="mt-2", style=_hidden(not write)),
            html.Div(id=ids.EDIT_RESULT, className="mt-2"),
            html.Div([
                dbc.Button(_("Save draft"), id=ids.SAVE, color="primary", className="me-2",
                           disabled=True),
                dbc.Button(_("Save and submit for approval"), id=ids.SUBMIT, color="success",
                           disabled=True),
            ], className="mt-2", style=_hidden(not write)),
        ], lg=8),
        dbc.Col([*settings, expiry], lg=4),
    ])


def _simulation() -> html.Div:
    return html.Div([
        html.P(_("What the selected version would have done over the last N days of real "
                 "orders, and where it puts every member today, against the version in force."),
               className="text-muted small"),
        dbc.Row([
            dbc.Col([
                dbc.Label(_("Days of orders"), html_for=ids.SIM_DAYS),
                dbc.Input(id=ids.SIM_DAYS, type="text", inputMode="numeric", value="90",
                          placeholder=_("1 to %(most)s", most=fmt.points(MAX_SIM_DAYS))),
            ], md=2),
            dbc.Col([
                dbc.Button(_("Run simulation"), id=ids.SIM_RUN, color="primary",
                           className="me-2"),
                dbc.Button(_("Cancel"), id=ids.SIM_CANCEL, color="secondary", outline=True,
                           disabled=True),
            ], md=4, className="d-flex align-items-end"),
            dbc.Col(dbc.Progress(id=ids.SIM_PROGRESS, value=0, label="", striped=True,
                                 animated=True, style={"visibility": "hidden",
                                                       "height": "1.4rem"}),
                    md=6, className="d-flex align-items-end"),
        ], className="mb-3"),
        dcc.Loading(html.Div(id=ids.SIM_RESULT), type="default", delay_show=10_000),
    ])


def _approval(write: bool) -> html.Div:
    soon = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).replace(
        minute=0, second=0, microsecond=0, tzinfo=None)
    decide = dbc.Card(dbc.CardBody([
        html.H6(_("Decide on the selected submitted version")),
        html.Div(_("Another supervisor than its author must decide (four-eyes)."),
                 className="small text-muted mb-2"),
        dbc.Row([
            dbc.Col([
                dbc.Label(_("Effective from (UTC)"), html_for=ids.EFFECTIVE_AT),
                dbc.Input(id=ids.EFFECTIVE_AT, type="datetime-local",
                          value=soon.strftime("%Y-%m-%dT%H:%M")),
                dbc.FormFeedback(id=ids.EFFECTIVE_FB, type="invalid"),
            ], md=4),
            dbc.Col([
                dbc.Label(_("Note (the reason, when rejecting; up to %(n)s characters)",
                            n=MAX_REASON),
                          html_for=ids.DECISION_NOTE),
                dbc.Input(id=ids.DECISION_NOTE, maxLength=MAX_REASON),
                dbc.FormFeedback(id=ids.DECISION_NOTE_FB, type="invalid"),
            ], md=5),
            dbc.Col([
                dbc.Button(_("Approve"), id=ids.APPROVE, color="success", className="me-2"),
                dbc.Button(_("Reject"), id=ids.REJECT, color="danger", outline=True),
            ], md=3, className="d-flex align-items-end"),
        ]),
        html.Div(id=ids.DECIDE_RESULT, className="mt-2"),
    ]), className="mt-3", style=_hidden(not write))
    return html.Div([
        html.H6(_("In force and scheduled")),
        html.Div(id=ids.IN_FORCE),
        html.Div([
            dbc.Button(_("Re-evaluate tiers now"), id=ids.REEVALUATE, size="sm",
                       color="secondary", className="mt-2"),
            html.Span(" " + _("Brings every member's displayed tier up to date under the "
                              "version in force (accrual always uses the tier at payment "
                              "time)."),
                      className="small text-muted"),
            html.Div(_("Re-evaluating every member's tier..."), id=ids.REEVALUATE_RUNNING,
                     className="small text-primary mt-2", style={"display": "none"}),
            html.Div(id=ids.REEVALUATE_RESULT, className="mt-2"),
        ], style=_hidden(not write)),
        html.H6(_("Submitted versions waiting for a decision"), className="mt-4"),
        _grid(ids.PENDING_GRID, PENDING_COLUMNS, "220px",
              _("No version is waiting for a decision.")),
        html.Div(id=ids.REVIEW, className="mt-3"),
        decide,
    ])


def _history(write: bool) -> html.Div:
    return html.Div([
        _grid(ids.HISTORY_GRID, HISTORY_COLUMNS, "320px", _("No versions yet.")),
        html.Div([
            dbc.Button(_("Roll back: new draft from the selected version"), id=ids.ROLLBACK,
                       size="sm", color="warning", className="mt-2"),
            html.Span(" " + _("The copy goes through the same submit and approval."),
                      className="small text-muted"),
        ], style=_hidden(not write)),
        html.H6(_("Compare two versions"), className="mt-4"),
        dbc.Row([
            dbc.Col([dbc.Label(_("Version A"), html_for=ids.DIFF_A),
                     dcc.Dropdown(id=ids.DIFF_A, clearable=False,
                                  placeholder=_("Choose a version"))], md=5),
            dbc.Col([dbc.Label(_("Version B"), html_for=ids.DIFF_B),
                     dcc.Dropdown(id=ids.DIFF_B, clearable=False,
                                  placeholder=_("Choose a version"))], md=5),
        ], className="mb-2"),
        html.Div(id=ids.DIFF),
    ])


def layout(**_kwargs: object) -> html.Div:
    write = _can_write()
    return html.Div([
        dcc.Store(id=ids.ACTOR),
        dcc.Store(id=ids.SAVED),
        dcc.Store(id=ids.DECIDED),
        dcc.Store(id=ids.COPIED),
        dcc.Store(id=ids.IN_FORCE_ID),
        dcc.Store(id=ids.PROBLEMS),
        dcc.Store(id=ids.OWN_DRAFT_ID),
        token_store(ids.TOKEN),
        page_header(
            _("Tier rules"),
            _("Thresholds on qualifying spend with accrual and referral rates. A change is a "
              "new version: edit a draft, simulate it, submit it; another supervisor approves "
              "it with an effective time.") if write else
            _("Read-only: the versions of the tier rules, their simulation and history."),
        ),
        dbc.Row([
            dbc.Col([dbc.Label(_("Version"), html_for=ids.VERSION),
                     dcc.Dropdown(id=ids.VERSION, clearable=False,
                                  placeholder=_("No versions yet"))], md=6),
            dbc.Col(html.Div([
                dbc.Button(_("New draft from this version"), id=ids.NEW_DRAFT,
                           color="secondary",
                           outline=True, className="me-2"),
                dbc.Button(id=ids.OWN_DRAFT, color="warning", outline=True,
                           style={"display": "none"}),
            ], style=_hidden(not write)), md=6, className="d-flex align-items-end"),
        ], className="mb-2"),
        html.Div(id=ids.COPY_RESULT),
        dbc.Tabs([
            dbc.Tab(_editor(write), label=_("Editor"), tab_id="editor", className="pt-3"),
            dbc.Tab(_simulation(), label=_("Simulation"), tab_id="simulation",
                    className="pt-3"),
            dbc.Tab(_approval(write), label=_("Approval"), tab_id="approval", className="pt-3"),
            dbc.Tab(_history(write), label=_("History"), tab_id="history", className="pt-3"),
        ], id=ids.TABS, active_tab="editor"),
    ])
