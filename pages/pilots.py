"""Pilots: rule changes tried on a group of members against a random control group."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable
from typing import Any

import dash_bootstrap_components as dbc
import pandas as pd
from dash import dcc, html
from flask_login import current_user

from dashboard import charts
from dashboard import format as fmt
from dashboard.access import register_page, roles_of
from dashboard.forms import token_store
from dashboard.i18n import N_
from dashboard.shell import empty_state, page_header
from db.models import PILOT_METRICS, PILOT_STATUSES, SEGMENTS
from db.pilots import (
    METRIC_LABELS,
    METRIC_UNITS,
    SEGMENT_LABELS,
    MetricResult,
    PilotInfo,
    PilotResults,
    PowerPreview,
    min_effect_text,
)
from db.readviews import (
    PilotView,
)

register_page(
    __name__, path="/pilots", name=N_("Pilots"), title=N_("Pilots"), order=40,
    roles=("supervisor", "executive"), write_roles=("supervisor",),
)


# ---------------------------------------------------------------- ids


class Pilots:
    TABS = "pilots-tabs"
    REFRESH = "pilots-refresh"  # store: bumped after every change
    TOKEN = "pilots-token"  # store: this page's form submission token
    # list and results
    STATUS = "pilots-status"
    LIST = "pilots-list"
    PICK = "pilots-pick"
    RESULTS = "pilots-results"
    ACTION_MSG = "pilots-action-msg"
    START = "pilots-start"  # "Request start", or "Approve start" once requested
    SEND_BACK = "pilots-send-back"  # refuse a requested start, with a reason
    SEND_BACK_REASON = "pilots-send-back-reason"
    CANCEL = "pilots-cancel"
    END = "pilots-end"
    OVERDUE = "pilots-overdue"  # alert: a running pilot past its planned end
    OVERDUE_TEXT = "pilots-overdue-text"
    END_NOW = "pilots-end-now"  # the alert's end button (supervisors)
    ROLLOUT = "pilots-rollout"
    EXPORT = "pilots-export"
    DOWNLOAD = "pilots-download"
    # the results job (a background callback)
    ACTOR = "pilots-actor"  # store: the signed identity the job re-checks
    RESULTS_PROGRESS = "pilots-results-progress"
    RESULTS_CANCEL = "pilots-results-cancel"
    RESULTS_CSV = "pilots-results-csv"  # store: the export of the results on screen
    # the create form
    NAME = "pilots-new-name"
    RULE_SET = "pilots-new-rule-set"
    SOURCE = "pilots-new-source"
    FILTER_BOX = "pilots-new-filter-box"
    FILE_BOX = "pilots-new-file-box"
    SEGMENTS = "pilots-new-segments"
    TIERS = "pilots-new-tiers"
    JOINED_FROM = "pilots-new-joined-from"
    JOINED_TO = "pilots-new-joined-to"
    ACTIVE_DAYS = "pilots-new-active-days"
    UPLOAD = "pilots-new-upload"
    UPLOAD_INFO = "pilots-new-upload-info"
    SHARE = "pilots-new-share"
    SEED = "pilots-new-seed"
    START_AT = "pilots-new-start-at"
    END_AT = "pilots-new-end-at"
    METRIC = "pilots-new-metric"
    MIN_EFFECT = "pilots-new-min-effect"
    PREVIEW = "pilots-new-preview"
    PREVIEW_OUT = "pilots-new-preview-out"
    CREATE = "pilots-new-create"
    CREATE_MSG = "pilots-new-create-msg"

    # one message next to each field of the form; keys are the services' field names
    FEEDBACK = {
        "name": "pilots-new-name-feedback",
        "rule_set_id": "pilots-new-rule-set-feedback",
        "population": "pilots-new-population-feedback",
        "member_file": "pilots-new-upload-feedback",
        "pilot_share": "pilots-new-share-feedback",
        "seed": "pilots-new-seed-feedback",
        "start_at": "pilots-new-start-feedback",
        "planned_end_at": "pilots-new-end-feedback",
        "primary_metric": "pilots-new-metric-feedback",
        "min_effect": "pilots-new-min-effect-feedback",
    }


ids = Pilots


# ---------------------------------------------------------------- builders
# (pure: engine data in, components and figures out; no queries)

VERDICT_COLOR = {"lift": "success", "lift_below_minimum": "info", "harm": "danger",
                 "no_effect": "secondary", "too_little_data": "warning", "srm": "danger"}
METHOD_LABEL = {"welch": "Welch (DiD)", "bootstrap": "Bootstrap (DiD)",
                "cuped": "CUPED (pre-period adjusted)"}
GROUP_COLOR = {"pilot": "#d9480f", "control": "#1c7ed6"}
GROUP_LABEL = {"pilot": "Pilot group", "control": "Control group"}


def value(metric: str, x: float, currency: str, *, signed: bool = False) -> str:
    """A metric value (or lift) in its unit: money, orders, or percent of members."""
    if x is None or not math.isfinite(x):
        return "–"
    sign = "+" if signed else ""
    unit = METRIC_UNITS[metric]
    if unit == "money":
        return f"{x:{sign},.2f} {currency}"
    if unit == "orders":
        return f"{x:{sign},.3f}"
    return f"{x * 100:{sign}.1f} pp" if signed else f"{x * 100:.1f} %"


def p_value(p: float) -> str:
    if p is None or not math.isfinite(p):
        return "–"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def metric_rows(r: PilotResults) -> list[dict[str, Any]]:
    """One row per metric and method (the table and the tests read these)."""
    rows = []
    for m in r.metrics:
        for e in m.estimates():
            rows.append({
                "metric": METRIC_LABELS[m.metric] + (" (primary)" if m.metric ==
                                                     r.pilot.primary_metric else ""),
                "method": METHOD_LABEL[e.method],
                "lift": value(m.metric, e.lift, r.currency, signed=True),
                "ci": f"{value(m.metric, e.ci_low, r.currency, signed=True)} to "
                      f"{value(m.metric, e.ci_high, r.currency, signed=True)}",
                "p": p_value(e.p_value),
                "n": f"{e.n_pilot:,} / {e.n_control:,}",
                "significant": bool(e.significant),
            })
    return rows


def _means_line(m: MetricResult, currency: str) -> str:
    return (f"pilot {value(m.metric, m.pilot_pre, currency)} → "
            f"{value(m.metric, m.pilot_during, currency)}; control "
            f"{value(m.metric, m.control_pre, currency)} → "
            f"{value(m.metric, m.control_during, currency)}")


def metric_table(r: PilotResults) -> dbc.Table:
    head = html.Thead(html.Tr([html.Th(h) for h in (
        "Metric", "Method", "Lift (DiD)", "95% confidence interval", "p-value",
        "Members (pilot / control)")]))
    body = []
    rows = metric_rows(r)
    for i, row in enumerate(rows):
        m = r.metrics[i // 3]
        first = i % 3 == 0
        cells = [
            html.Td([html.Strong(row["metric"]), html.Div(_means_line(m, r.currency),
                                                          className="small text-muted")],
                    rowSpan=3) if first else None,
            html.Td(row["method"]),
            html.Td(row["lift"], className="text-end"),
            html.Td(row["ci"], className="text-end"),
            html.Td(row["p"], className="text-end"),
            html.Td(row["n"], className="text-end"),
        ]
        body.append(html.Tr([c for c in cells if c is not None],
                            className="table-success" if row["significant"] else ""))
    return dbc.Table([head, html.Tbody(body)], bordered=False, size="sm", hover=True,
                     className="pilots-metric-table", id="pilots-metric-table")


def verdict_alert(r: PilotResults) -> dbc.Alert:
    return dbc.Alert([html.Strong("Verdict: "), r.verdict], color=VERDICT_COLOR.get(
        r.verdict_code, "secondary"), id="pilots-verdict", className="mb-2")


def srm_alert(r: PilotResults) -> dbc.Alert:
    s = r.srm
    if s.mismatch:
        return dbc.Alert(
            f"Sample ratio mismatch: {s.observed_share:.1%} of the members are in the pilot "
            f"group but {s.expected_share:.1%} was drawn (chi-square p = {s.p_value:.2g}). "
            "Something moved members between groups; the comparison is not trustworthy.",
            color="danger", id="pilots-srm", className="mb-2")
    return html.Div(
        f"Group sizes match the drawn share: {s.observed_share:.1%} pilot vs "
        f"{s.expected_share:.1%} drawn (sample-ratio check p = {s.p_value:.2g}).",
        className="small text-muted mb-2", id="pilots-srm")


def _tile(label: str, text: str, note: str = "") -> dbc.Col:
    return dbc.Col(dbc.Card(dbc.CardBody([
        html.Div(label, className="small text-muted"), html.Div(text, className="h5 mb-0"),
        html.Div(note, className="small text-muted") if note else None,
    ])), md=3, className="mb-2")


def cost_tiles(r: PilotResults) -> dbc.Row:
    c, cur = r.cost, r.currency
    per_point = c.revenue_per_point_minor
    return dbc.Row([
        _tile("Extra points issued to the pilot group", fmt.signed_points(c.extra_points),
              f"{fmt.points(c.points_actual)} under the pilot rules vs "
              f"{fmt.points(c.points_published)} under the published ones"),
        _tile("Cost of the extra points", fmt.money(c.extra_cost_minor, cur),
              f"on {c.pilot_orders:,} pilot orders"),
        _tile("Incremental revenue (spend lift × pilot members)",
              fmt.money(c.incremental_revenue_minor, cur),
              f"95% CI {fmt.money(c.incremental_revenue_low_minor, cur)} to "
              f"{fmt.money(c.incremental_revenue_high_minor, cur)}"),
        _tile("Incremental revenue per extra point",
              "–" if per_point is None else fmt.money(round(per_point), cur),
              "no extra points were issued" if per_point is None else
              "revenue the pilot added for each point it cost"),
    ], id="pilots-cost")


def daily_figure(r: PilotResults, what: str = "spend") -> dict[str, Any]:
    """Both groups per member per day (7-day average), pre and during, start marked."""
    d = r.daily
    title = {"spend": f"Spend per member per day ({r.currency}, 7-day average)",
             "orders": "Orders per 100 members per day (7-day average)"}[what]
    traces = []
    for grp in ("pilot", "control"):
        g = d[d["group"] == grp].sort_values("date")
        if g.empty:
            continue
        members = g["members"].clip(lower=1)
        y = (g["spend_minor"] / 100 / members) if what == "spend" else (
            g["orders"] * 100 / members)
        y = y.rolling(7, min_periods=1).mean().round(3)
        traces.append({
            "type": "scatter", "mode": "lines", "name": GROUP_LABEL[grp],
            "x": [t.strftime("%Y-%m-%d") for t in g["date"]], "y": y.tolist(),
            "line": {"color": GROUP_COLOR[grp], "width": 2},
            "hovertemplate": "%{x}: %{y:,.2f}<extra>" + GROUP_LABEL[grp] + "</extra>",
        })
    start = pd.Timestamp(r.start).strftime("%Y-%m-%d")
    return {
        "data": traces,
        "layout": charts.layout(
            title, height=340,
            xaxis=charts.axis("Date", type="date"),
            yaxis=charts.value_axis(f"{r.currency} per member" if what == "spend"
                                    else "orders per 100 members"),
            shapes=[{"type": "line", "xref": "x", "yref": "paper", "x0": start, "x1": start,
                     "y0": 0, "y1": 1, "line": {"dash": "dot", "color": "#495057"}}],
            # inside the plot, right of the line: the title row above stays clear
            annotations=[{"x": start, "y": 1, "xref": "x", "yref": "paper",
                          "text": "pilot starts", "showarrow": False, "yanchor": "top",
                          "xanchor": "left", "xshift": 3, "font": {"size": 11},
                          "bgcolor": "rgba(255,255,255,0.8)"}],
        ),
    }


def status_text(p: PilotInfo, now: dt.datetime | None = None) -> str:
    if p.past_planned_end(now):
        return f"running, past its planned end on {fmt.when(p.planned_end_at)}"
    return p.status


def overdue_text(p: PilotInfo, can_end: bool) -> str:
    """The prompt for a running pilot whose planned end has passed."""
    head = f"Past its planned end on {fmt.when(p.planned_end_at)} — "
    why = (" Its pilot group still earns under the pilot's rules; the results below stop at "
           "the planned end.")
    if can_end:
        return head + "end it: every member goes back to the published rules." + why
    return head + "a supervisor ends it." + why


def pilot_facts(p: PilotInfo, currency: str = "") -> html.Div:
    pop = p.population or {}
    if pop.get("source") == "file":
        who = f"uploaded list of {pop.get('members', 0):,} members"
        if pop.get("note"):
            who += f" ({pop['note']})"
    else:
        from db.pilots import parse_population

        try:
            who = parse_population({k: v for k, v in pop.items() if k in (
                "segments", "tiers", "joined_from", "joined_to", "active_within_days")}
            ).describe()
        except Exception:  # noqa: BLE001 - an old or odd description is shown as is
            who = str(pop)
    facts = [
        f"Status: {status_text(p)}",
        f"rule set #{p.rule_set_id} '{p.rule_set_name}' ({p.rule_set_status})",
        f"population: {who}",
        f"pilot share {fmt.rate_bp(p.share_bp)}, seed {p.seed}",
        f"{p.n_pilot:,} pilot / {p.n_control:,} control members",
        f"from {fmt.when(p.start_at)} to {fmt.when(p.planned_end_at)}"
        + (f", ended {fmt.when(p.ended_at)}" if p.ended_at else ""),
        f"primary metric: {METRIC_LABELS[p.primary_metric].lower()}, minimum effect "
        f"{min_effect_text(p.primary_metric, p.min_effect, currency)}",
        f"created by {p.created_by}"
        + (f", start requested by {p.start_requested_by}" if p.start_requested_by else "")
        + (f", approved by {p.started_by}" if p.started_by else ""),
    ]
    return html.Div(" · ".join(facts), className="small text-muted mb-2", id="pilots-facts")


def draft_alert(p: PilotInfo) -> dbc.Alert:
    """What a draft waits for: a start request, then a second supervisor."""
    if p.start_requested_by is None:
        return dbc.Alert(
            f"This pilot is a draft (created by {p.created_by}): nothing has changed for its "
            "members yet. Check the power estimate, then request its start; another "
            "supervisor approves it.", color="info", id="pilots-draft-state")
    return dbc.Alert(
        f"Start requested by {p.start_requested_by} on {fmt.when(p.start_requested_at)}. "
        "A supervisor who did not write the pilot's rules, create the pilot or request its "
        "start approves it (or sends it back with a reason); until then nothing changes for "
        "its members.", color="warning", id="pilots-draft-state")


def results_view(r: PilotResults) -> html.Div:
    period = (f"Pre period {fmt.when(r.pre_start)} – {fmt.when(r.start)}, pilot period "
              f"{fmt.when(r.start)} – {fmt.when(r.end)} ({r.days:.0f} days each).")
    return html.Div([
        pilot_facts(r.pilot, r.currency),
        verdict_alert(r),
        srm_alert(r),
        html.Div(period, className="small mb-2"),
        html.H2("Lift by metric", className="h6 mt-3"),
        html.Div("Difference in differences: (pilot during − pilot before) − (control during "
                 "− control before), per member. Average check counts members who ordered in "
                 "both periods. Green rows: the 95% interval excludes zero.",
                 className="small text-muted mb-1"),
        metric_table(r),
        html.H2("Cost", className="h6 mt-3"),
        cost_tiles(r),
        html.H2("The two groups over time", className="h6 mt-3"),
        dbc.Row([
            dbc.Col(dcc.Graph(id="pilots-spend-figure", figure=daily_figure(r, "spend"),
                              config=charts.CONFIG), md=6),
            dbc.Col(dcc.Graph(id="pilots-orders-figure", figure=daily_figure(r, "orders"),
                              config=charts.CONFIG), md=6),
        ]),
    ])


def power_card(p: PowerPreview, currency: str, *, title: str = "Power estimate") -> dbc.Card:
    unit = value(p.metric, p.min_effect, currency) if METRIC_UNITS[p.metric] != (
        "share of members") else f"{p.min_effect * 100:g} pp"
    strata = ", ".join(f"{k}: {a:,}/{b:,}" for k, (a, b) in sorted(p.strata.items()))
    color = "success" if p.enough else "warning"
    return dbc.Card([
        dbc.CardHeader(title),
        dbc.CardBody([
            dbc.Alert(p.sentence(), color=color if p.power is not None else "secondary",
                      className="mb-2", id="pilots-power-sentence"),
            html.Ul([
                html.Li(f"Groups: {p.n_pilot:,} pilot + {p.n_control:,} control"
                        + (f" ({p.left_out:,} left out: inactive or in another pilot)"
                           if p.left_out else "")),
                html.Li(f"By tier (pilot/control): {strata or '–'}"),
                html.Li(f"Pre-period data: {fmt.when(p.pre_start)} – {fmt.when(p.pre_end)} "
                        "(as long as the planned pilot)"),
                html.Li(f"{METRIC_LABELS[p.metric]}: mean {value(p.metric, p.mean, currency)}, "
                        f"sd {value(p.metric, p.sd, currency)}; sd of the change between two "
                        f"such periods {value(p.metric, p.sd_change, currency)}"),
                html.Li(f"Minimum effect worth detecting: {unit}; members needed in total: "
                        + (f"{p.required_total:,}" if p.required_total else "–")
                        + "; power: " + (f"{p.power:.0%}" if p.power is not None else "–")),
            ], className="small mb-0"),
        ]),
    ], className="mb-3", id="pilots-power")


def pilot_options(choices: list[tuple[int, str, str]]) -> list[dict[str, Any]]:
    return [{"label": f"#{i} {name} ({status})", "value": i} for i, name, status in choices]


# ---------------------------------------------------------------- builders
# (pure: engine data in, components and figures out; no queries)

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


# ---------------------------------------------------------------- layout


def _feedback(field: str) -> html.Div:
    return html.Div(id=ids.FEEDBACK[field], className="invalid-feedback d-block")


def _field(label: str, control, field: str | None = None, hint: str = "", md: int = 4
           ) -> dbc.Col:
    return dbc.Col([
        dbc.Label(label, html_for=getattr(control, "id", None)),
        control,
        html.Div(hint, className="form-text") if hint else None,
        _feedback(field) if field else None,
    ], md=md, className="mb-3")


def _create_form() -> html.Div:
    tomorrow = (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).date()
    return html.Div([
        html.P("A pilot applies a draft rule set to a random part of a population; the rest "
               "of that population is the control group and keeps the published rules. "
               "The groups are drawn per tier, reproducibly from the seed.",
               className="text-muted small"),
        dbc.Row([
            _field("Name", dbc.Input(id=ids.NAME, maxLength=200), "name", md=5),
            _field("Rule set to try (draft or pending)", dcc.Dropdown(id=ids.RULE_SET),
                   "rule_set_id", md=7),
        ]),
        dbc.Label("Population"),
        dbc.RadioItems(id=ids.SOURCE, value="filter", inline=True, className="mb-2", options=[
            {"label": "Members matching a filter", "value": "filter"},
            {"label": "An uploaded list of members (CSV)", "value": "file"},
        ]),
        html.Div(id=ids.FILTER_BOX, children=dbc.Row([
            _field("Segments", dcc.Dropdown(id=ids.SEGMENTS, multi=True, placeholder="Any",
                                            options=[{"label": SEGMENT_LABELS.get(x, x), "value": x}
                                                     for x in SEGMENTS]),
                   md=3),
            _field("Tiers", dcc.Dropdown(id=ids.TIERS, multi=True, placeholder="Any"), md=3),
            _field("Joined from", dbc.Input(id=ids.JOINED_FROM, placeholder="YYYY-MM-DD"), md=2),
            _field("Joined to", dbc.Input(id=ids.JOINED_TO, placeholder="YYYY-MM-DD"), md=2),
            _field("Ordered within (days)", dbc.Input(id=ids.ACTIVE_DAYS, type="text",
                                                      inputMode="numeric",
                                                      placeholder="any (1 to 3,660)"), md=2),
        ])),
        html.Div(id=ids.FILE_BOX, style={"display": "none"}, children=[
            dcc.Upload(id=ids.UPLOAD, multiple=False, accept=".csv,.txt,text/csv,text/plain",
                       className="pilots-upload border rounded p-3 mb-1 text-center",
                       children=html.Div(["Drop a CSV here or ", html.A("choose a file")])),
            html.Div("One column: member_id (numbers) or customer_id (the shop's ids); the "
                     "header line is optional. A file with any bad line is refused.",
                     className="form-text"),
            html.Div(id=ids.UPLOAD_INFO, className="small mb-1"),
            _feedback("member_file"),
        ]),
        _feedback("population"),
        dbc.Row([
            _field("Pilot share (%)", dbc.Input(id=ids.SHARE, value="50"), "pilot_share",
                   "of the population in the pilot group", md=2),
            _field("Random seed", dbc.Input(id=ids.SEED, type="text", inputMode="numeric",
                                            value="20250601"),
                   "seed", "the same seed draws the same groups", md=2),
            _field("Start (UTC)", dbc.Input(id=ids.START_AT, value=f"{tomorrow} 00:00"),
                   "start_at", "YYYY-MM-DD HH:MM", md=2),
            _field("Planned end (UTC)", dbc.Input(
                id=ids.END_AT, value=f"{tomorrow + dt.timedelta(days=30)} 00:00"),
                "planned_end_at", "YYYY-MM-DD HH:MM", md=2),
            _field("Primary metric", dcc.Dropdown(
                id=ids.METRIC, value="spend_per_member", clearable=False,
                options=[{"label": METRIC_LABELS[m], "value": m} for m in PILOT_METRICS]),
                "primary_metric", md=2),
            _field("Minimum effect", dbc.Input(id=ids.MIN_EFFECT, value="100"), "min_effect",
                   "in the metric's unit (money, orders, or a share: 0.02)", md=2),
        ]),
        dbc.Button("Estimate power", id=ids.PREVIEW, color="secondary", className="me-2"),
        dbc.Button("Create pilot (draft)", id=ids.CREATE, color="primary"),
        html.Div(id=ids.CREATE_MSG, className="mt-2"),
        dcc.Loading(html.Div(id=ids.PREVIEW_OUT, className="mt-3")),
    ])


def layout(**_: object) -> html.Div:
    writer = getattr(current_user, "role", None) in roles_of(__name__, "write_roles")
    hide = "" if writer else "d-none"
    return html.Div(
        [
            page_header(
                "Pilots",
                "A draft rule set applied to a pilot group, a random control group keeping "
                "the current rules; the lift is measured against the control group.",
            ),
            dcc.Store(id=ids.REFRESH, data=0),
            token_store(ids.TOKEN),
            dcc.Store(id=ids.ACTOR),
            dcc.Store(id=ids.RESULTS_CSV),
            dbc.Tabs(id=ids.TABS, active_tab="results", children=[
                dbc.Tab(label="Pilots and results", tab_id="results", children=html.Div([
                    dbc.Row(dbc.Col([
                        dbc.Label("Status", html_for=ids.STATUS),
                        dcc.Dropdown(
                            id=ids.STATUS, placeholder="All statuses",
                            options=[{"label": s, "value": s} for s in PILOT_STATUSES],
                        ),
                    ], md=3), className="mb-3"),
                    html.Div(id=ids.LIST),
                    html.Hr(),
                    dbc.Row([
                        dbc.Col([dbc.Label("Pilot", html_for=ids.PICK),
                                 dcc.Dropdown(id=ids.PICK, placeholder="Choose a pilot")], md=6),
                        dbc.Col([
                            dbc.Button("Request start", id=ids.START, color="primary",
                                       className=f"text-nowrap {hide}", disabled=True),
                            dbc.Button("Send back", id=ids.SEND_BACK, color="warning",
                                       outline=True, className=f"text-nowrap {hide}",
                                       disabled=True),
                            dbc.Button("Cancel draft", id=ids.CANCEL, color="secondary",
                                       outline=True, className=f"text-nowrap {hide}",
                                       disabled=True),
                            dbc.Button("End pilot", id=ids.END, color="danger", outline=True,
                                       className=f"text-nowrap {hide}", disabled=True),
                            dbc.Button("Roll out as a new draft", id=ids.ROLLOUT,
                                       color="success", className=f"text-nowrap {hide}",
                                       disabled=True),
                            dbc.Button("Export CSV", id=ids.EXPORT, color="secondary",
                                       outline=True, disabled=True),
                            dcc.Download(id=ids.DOWNLOAD),
                        ], md=6, className="d-flex flex-wrap gap-2 align-items-end "
                                         "justify-content-end"),
                    ], className="mb-2"),
                    dbc.Row(dbc.Col(dbc.Input(
                        id=ids.SEND_BACK_REASON, maxlength=500,
                        placeholder="Why the start is sent back (needed to send it back)",
                    ), md={"size": 6, "offset": 6}), className=f"mb-2 {hide}"),
                    html.Div(id=ids.ACTION_MSG),
                    dbc.Alert(id=ids.OVERDUE, is_open=False, color="warning",
                              className="d-flex flex-wrap align-items-center gap-2", children=[
                                  html.Span(id=ids.OVERDUE_TEXT),
                                  dbc.Button("End pilot now", id=ids.END_NOW, color="danger",
                                             size="sm", className=f"text-nowrap {hide}"),
                              ]),
                    dbc.Row([
                        dbc.Col(dbc.Progress(id=ids.RESULTS_PROGRESS, value=0, label="",
                                             striped=True, animated=True,
                                             style={"visibility": "hidden", "height": "1.4rem"}),
                                md=10, className="d-flex flex-column justify-content-center"),
                        dbc.Col(dbc.Button("Stop computing", id=ids.RESULTS_CANCEL,
                                           color="secondary", outline=True, size="sm",
                                           disabled=True), md=2, className="text-end"),
                    ], className="mb-2 align-items-center"),
                    html.Div(id=ids.RESULTS, children=empty_state(
                        "Choose a pilot to see its results.",
                        "Running and ended pilots show the lift against their control group; "
                        "a draft shows what its groups can detect.")),
                ], className="pt-3")),
                dbc.Tab(label="New pilot" if writer else "New pilot (supervisors)",
                        tab_id="new", disabled=not writer,
                        children=html.Div(_create_form(), className="pt-3")),
            ]),
        ]
    )
