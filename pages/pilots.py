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
from dashboard.i18n import N_, _, current_language, ngettext, translate
from dashboard.shell import empty_state, page_header
from db.i18n import Message
from db.models import PILOT_METRICS, PILOT_STATUSES, SEGMENTS
from db.pilots import (
    METRIC_LABELS,
    METRIC_UNITS,
    SEGMENT_LABELS,
    MetricResult,
    PilotInfo,
    PilotResults,
    PowerPreview,
)
from db.pilots.parsing import METRIC_NAMES, NO_TIER, CsvProblem, Figure, MemberFileError
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
METHOD_LABEL = {"welch": N_("Welch (DiD)"), "bootstrap": N_("Bootstrap (DiD)"),
                "cuped": N_("CUPED (pre-period adjusted)")}
GROUP_COLOR = {"pilot": "#d9480f", "control": "#1c7ed6"}
GROUP_LABEL = {"pilot": N_("Pilot group"), "control": N_("Control group")}
# a pilot's status (stored values never change; shown translated)
STATUS_LABELS = {"draft": N_("draft"), "running": N_("running"), "ended": N_("ended"),
                 "cancelled": N_("cancelled")}
# the status of the rule set a pilot tries
RULE_STATUS_LABELS = {"draft": N_("draft"), "pending": N_("pending"),
                      "published": N_("published"), "rejected": N_("rejected")}


def status_label(status: str) -> str:
    return translate(STATUS_LABELS.get(status, status))


def rule_status_label(status: str) -> str:
    return translate(RULE_STATUS_LABELS.get(status, status))


def _ru() -> bool:
    return current_language() == "ru"


def _currency(currency: str) -> str:
    """The currency as shown next to an amount: its sign in Russian (₽)."""
    return fmt.CURRENCY_SIGNS.get(currency, currency) if _ru() else currency


def value(metric: str, x: float | None, currency: str, *, signed: bool = False,
          unit: bool = False, effect: bool = False) -> str:
    """A metric value (or lift) in its unit, in the user's language: money,
    orders (with ``unit``: "0.125 orders"), or percent of members (points
    for a lift or, with ``effect``, a minimum effect)."""
    if x is None or not math.isfinite(x):
        return "–"
    sign = "+" if signed else ""
    kind = METRIC_UNITS[metric]
    if kind == "money":
        gap = "\u00a0" if _ru() else " "
        return f"{fmt.number(x, sign + ',.2f')}{gap}{_currency(currency)}".strip()
    if kind == "orders":
        text = fmt.number(x, sign + ",.3f")
        return _("%(n)s orders", n=text) if unit else text
    if signed or effect:
        return _("%(n)s pp", n=fmt.number(x * 100, sign + ",.1f"))
    return fmt.number(x * 100, ",.1f") + ("\u00a0%" if _ru() else " %")


def say(text: Any) -> Any:
    """A service's message in the user's language, its numbers (:class:`Figure`)
    formatted for that language."""
    if isinstance(text, Figure):
        if text.metric is None:
            return fmt.number(text.value, text.spec)
        return value(text.metric, text.value, text.currency, signed=text.signed, unit=True,
                     effect=text.effect)
    if isinstance(text, Message):
        return _(text.msgid, **{k: say(v) for k, v in text.params.items()})
    if isinstance(text, int) and not isinstance(text, bool):
        return fmt.points(text)
    if isinstance(text, dt.date):
        return fmt.when(text)
    return translate(text)


def min_effect_shown(metric: str, min_effect: Any, currency: str) -> str:
    try:
        x = float(min_effect)
    except (TypeError, ValueError):
        x = 0.0
    if not x or not math.isfinite(x):
        return _("not set")
    return value(metric, x, currency, unit=True, effect=True)


def file_problem(p: CsvProblem) -> str:
    """One bad line of an uploaded member list."""
    return _("line %(line)s: '%(value)s': %(reason)s", line=p.line, value=p.shown,
             reason=say(p.reason))


def file_problems(exc: MemberFileError) -> str:
    """An uploaded member list's bad lines (the first five), for the message
    next to the upload."""
    more = _(" (and %(n)s more)", n=fmt.points(exc.total - len(exc.problems))) if (
        exc.total > len(exc.problems)) else ""
    return ngettext("%(count)s bad line%(more)s: %(lines)s",
                    "%(count)s bad lines%(more)s: %(lines)s",
                    exc.total, count=fmt.points(exc.total), more=more,
                    lines="; ".join(file_problem(p) for p in exc.problems[:5]))


def p_value(p: float) -> str:
    if p is None or not math.isfinite(p):
        return "–"
    return "< " + fmt.number(0.001, ".3f") if p < 0.001 else fmt.number(p, ".3f")


def metric_rows(r: PilotResults) -> list[dict[str, Any]]:
    """One row per metric and method (the table and the tests read these)."""
    rows = []
    for m in r.metrics:
        label = translate(METRIC_LABELS[m.metric])
        for e in m.estimates():
            rows.append({
                "metric": _("%(metric)s (primary)", metric=label)
                if m.metric == r.pilot.primary_metric else label,
                "method": translate(METHOD_LABEL[e.method]),
                "lift": value(m.metric, e.lift, r.currency, signed=True),
                "ci": _("%(low)s to %(high)s",
                        low=value(m.metric, e.ci_low, r.currency, signed=True),
                        high=value(m.metric, e.ci_high, r.currency, signed=True)),
                "p": p_value(e.p_value),
                "n": f"{fmt.points(e.n_pilot)} / {fmt.points(e.n_control)}",
                "significant": bool(e.significant),
            })
    return rows


def _means_line(m: MetricResult, currency: str) -> str:
    return _("pilot %(pilot_pre)s → %(pilot_during)s; control %(control_pre)s → "
             "%(control_during)s",
             pilot_pre=value(m.metric, m.pilot_pre, currency),
             pilot_during=value(m.metric, m.pilot_during, currency),
             control_pre=value(m.metric, m.control_pre, currency),
             control_during=value(m.metric, m.control_during, currency))


def metric_table(r: PilotResults) -> dbc.Table:
    head = html.Thead(html.Tr([html.Th(h) for h in (
        _("Metric"), _("Method"), _("Lift (DiD)"), _("95% confidence interval"), _("p-value"),
        _("Members (pilot / control)"))]))
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
    return dbc.Alert([html.Strong(_("Verdict: ")), say(r.verdict)], color=VERDICT_COLOR.get(
        r.verdict_code, "secondary"), id="pilots-verdict", className="mb-2")


def srm_alert(r: PilotResults) -> dbc.Alert:
    s = r.srm
    shares = {"observed": fmt.number(s.observed_share, ".1%"),
              "expected": fmt.number(s.expected_share, ".1%"), "p": fmt.number(s.p_value, ".2g")}
    if s.mismatch:
        return dbc.Alert(
            _("Sample ratio mismatch: %(observed)s of the members are in the pilot group but "
              "%(expected)s was drawn (chi-square p = %(p)s). Something moved members between "
              "groups; the comparison is not trustworthy.", **shares),
            color="danger", id="pilots-srm", className="mb-2")
    return html.Div(
        _("Group sizes match the drawn share: %(observed)s pilot vs %(expected)s drawn "
          "(sample-ratio check p = %(p)s).", **shares),
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
        _tile(_("Extra points issued to the pilot group"), fmt.signed_points(c.extra_points),
              _("%(actual)s under the pilot rules vs %(published)s under the published ones",
                actual=fmt.points(c.points_actual), published=fmt.points(c.points_published))),
        _tile(_("Cost of the extra points"), fmt.money(c.extra_cost_minor, cur),
              ngettext("on %(count)s pilot order", "on %(count)s pilot orders", c.pilot_orders,
                       count=fmt.points(c.pilot_orders))),
        _tile(_("Incremental revenue (spend lift × pilot members)"),
              fmt.money(c.incremental_revenue_minor, cur),
              _("95%% CI %(low)s to %(high)s",
                low=fmt.money(c.incremental_revenue_low_minor, cur),
                high=fmt.money(c.incremental_revenue_high_minor, cur))),
        _tile(_("Incremental revenue per extra point"),
              "–" if per_point is None else fmt.money(round(per_point), cur),
              _("no extra points were issued") if per_point is None else
              _("revenue the pilot added for each point it cost")),
    ], id="pilots-cost")


def daily_figure(r: PilotResults, what: str = "spend") -> dict[str, Any]:
    """Both groups per member per day (7-day average), pre and during, start marked."""
    d = r.daily
    currency = fmt.chart_text(_currency(r.currency))
    title = (_("Spend per member per day (%(currency)s, 7-day average)", currency=currency)
             if what == "spend" else _("Orders per 100 members per day (7-day average)"))
    # Plotly names months in English: Russian dates are shown in digits
    day, ticks = ("%{x|%d.%m.%Y}", {"tickformat": "%d.%m"}) if _ru() else ("%{x}", {})
    traces = []
    for grp in ("pilot", "control"):
        g = d[d["group"] == grp].sort_values("date")
        if g.empty:
            continue
        members = g["members"].clip(lower=1)
        y = (g["spend_minor"] / 100 / members) if what == "spend" else (
            g["orders"] * 100 / members)
        y = y.rolling(7, min_periods=1).mean().round(3)
        name = translate(GROUP_LABEL[grp])
        traces.append({
            "type": "scatter", "mode": "lines", "name": name,
            "x": [t.strftime("%Y-%m-%d") for t in g["date"]], "y": y.tolist(),
            "line": {"color": GROUP_COLOR[grp], "width": 2},
            "hovertemplate": day + ": %{y:,.2f}<extra>" + name + "</extra>",
        })
    start = pd.Timestamp(r.start).strftime("%Y-%m-%d")
    return {
        "data": traces,
        "layout": charts.layout(
            title, height=340,
            xaxis=charts.axis(_("Date"), type="date", **ticks),
            yaxis=charts.value_axis(_("%(currency)s per member", currency=currency)
                                    if what == "spend" else _("orders per 100 members")),
            shapes=[{"type": "line", "xref": "x", "yref": "paper", "x0": start, "x1": start,
                     "y0": 0, "y1": 1, "line": {"dash": "dot", "color": "#495057"}}],
            # inside the plot, right of the line: the title row above stays clear
            annotations=[{"x": start, "y": 1, "xref": "x", "yref": "paper",
                          "text": _("pilot starts"), "showarrow": False, "yanchor": "top",
                          "xanchor": "left", "xshift": 3, "font": {"size": 11},
                          "bgcolor": "rgba(255,255,255,0.8)"}],
        ),
    }


def status_text(p: PilotInfo, now: dt.datetime | None = None) -> str:
    if p.past_planned_end(now):
        return _("running, past its planned end on %(date)s", date=fmt.when(p.planned_end_at))
    return status_label(p.status)


def overdue_text(p: PilotInfo, can_end: bool) -> str:
    """The prompt for a running pilot whose planned end has passed."""
    if can_end:
        return _("Past its planned end on %(date)s — end it: every member goes back to the "
                 "published rules. Its pilot group still earns under the pilot's rules; the "
                 "results below stop at the planned end.", date=fmt.when(p.planned_end_at))
    return _("Past its planned end on %(date)s — a supervisor ends it. Its pilot group still "
             "earns under the pilot's rules; the results below stop at the planned end.",
             date=fmt.when(p.planned_end_at))


def population_text(pop: dict[str, Any]) -> str:
    """Who a pilot draws from (its stored description), in the user's language."""
    if pop.get("source") == "file":
        n = int(pop.get("members") or 0)
        who = ngettext("uploaded list of %(count)s member", "uploaded list of %(count)s members", n,
                       count=fmt.points(n))
        return f"{who} ({pop['note']})" if pop.get("note") else who
    from db.pilots import parse_population

    try:
        f = parse_population({k: v for k, v in pop.items() if k in (
            "segments", "tiers", "joined_from", "joined_to", "active_within_days")})
    except Exception:  # noqa: BLE001 - an old or odd description is shown as is
        return str(pop)
    return f.describe(label=say)


def pilot_facts(p: PilotInfo, currency: str = "") -> html.Div:
    facts = [
        _("Status: %(status)s", status=status_text(p)),
        _("rule set #%(id)s '%(name)s' (%(status)s)", id=p.rule_set_id, name=p.rule_set_name,
          status=rule_status_label(p.rule_set_status)),
        _("population: %(who)s", who=population_text(p.population or {})),
        _("pilot share %(share)s, seed %(seed)s", share=fmt.rate_bp(p.share_bp), seed=p.seed),
        _("%(pilot)s pilot / %(control)s control members", pilot=fmt.points(p.n_pilot),
          control=fmt.points(p.n_control)),
        (_("from %(start)s to %(end)s, ended %(ended)s", start=fmt.when(p.start_at),
           end=fmt.when(p.planned_end_at), ended=fmt.when(p.ended_at)) if p.ended_at else
         _("from %(start)s to %(end)s", start=fmt.when(p.start_at),
           end=fmt.when(p.planned_end_at))),
        _("primary metric: %(metric)s, minimum effect %(effect)s",
          metric=translate(METRIC_NAMES[p.primary_metric]),
          effect=min_effect_shown(p.primary_metric, p.min_effect, currency)),
        "".join([
            _("created by %(name)s", name=say(p.created_by)),
            _(", start requested by %(name)s", name=say(p.start_requested_by))
            if p.start_requested_by else "",
            _(", approved by %(name)s", name=say(p.started_by)) if p.started_by else "",
        ]),
    ]
    return html.Div(" · ".join(facts), className="small text-muted mb-2", id="pilots-facts")


def draft_alert(p: PilotInfo) -> dbc.Alert:
    """What a draft waits for: a start request, then a second supervisor."""
    if p.start_requested_by is None:
        return dbc.Alert(
            _("This pilot is a draft (created by %(name)s): nothing has changed for its members "
              "yet. Check the power estimate, then request its start; another supervisor "
              "approves it.", name=say(p.created_by)), color="info", id="pilots-draft-state")
    return dbc.Alert(
        _("Start requested by %(name)s on %(date)s. A supervisor who did not write the pilot's "
          "rules, create the pilot or request its start approves it (or sends it back with a "
          "reason); until then nothing changes for its members.",
          name=say(p.start_requested_by), date=fmt.when(p.start_requested_at)),
        color="warning", id="pilots-draft-state")


def results_view(r: PilotResults) -> html.Div:
    days = round(r.days)
    period = ngettext(
        "Pre period %(pre_start)s – %(start)s, pilot period %(start)s – %(end)s (%(count)s day "
        "each).",
        "Pre period %(pre_start)s – %(start)s, pilot period %(start)s – %(end)s (%(count)s days "
        "each).", days, count=fmt.points(days), pre_start=fmt.when(r.pre_start),
        start=fmt.when(r.start), end=fmt.when(r.end))
    return html.Div([
        pilot_facts(r.pilot, r.currency),
        verdict_alert(r),
        srm_alert(r),
        html.Div(period, className="small mb-2"),
        html.H2(_("Lift by metric"), className="h6 mt-3"),
        html.Div(_("Difference in differences: (pilot during − pilot before) − (control during "
                   "− control before), per member. Average check counts members who ordered in "
                   "both periods. Green rows: the 95% interval excludes zero."),
                 className="small text-muted mb-1"),
        metric_table(r),
        html.H2(_("Cost"), className="h6 mt-3"),
        cost_tiles(r),
        html.H2(_("The two groups over time"), className="h6 mt-3"),
        dbc.Row([
            dbc.Col(dcc.Graph(id="pilots-spend-figure", figure=daily_figure(r, "spend"),
                              config=charts.config()), md=6),
            dbc.Col(dcc.Graph(id="pilots-orders-figure", figure=daily_figure(r, "orders"),
                              config=charts.config()), md=6),
        ]),
    ])


def _stratum(name: str) -> str:
    return _("(no tier)") if name == NO_TIER else name


def power_card(p: PowerPreview, currency: str, *, title: str | None = None) -> dbc.Card:
    effect = min_effect_shown(p.metric, p.min_effect, currency)
    strata = ", ".join(f"{_stratum(k)}: {fmt.points(a)}/{fmt.points(b)}"
                       for k, (a, b) in sorted(p.strata.items()))
    color = "success" if p.enough else "warning"
    groups = _("Groups: %(pilot)s pilot + %(control)s control", pilot=fmt.points(p.n_pilot),
               control=fmt.points(p.n_control))
    if p.left_out:
        groups += _(" (%(n)s left out: inactive or in another pilot)", n=fmt.points(p.left_out))
    return dbc.Card([
        dbc.CardHeader(title or _("Power estimate")),
        dbc.CardBody([
            dbc.Alert(say(p.sentence()), color=color if p.power is not None else "secondary",
                      className="mb-2", id="pilots-power-sentence"),
            html.Ul([
                html.Li(groups),
                html.Li(_("By tier (pilot/control): %(strata)s", strata=strata or "–")),
                html.Li(_("Pre-period data: %(start)s – %(end)s (as long as the planned pilot)",
                          start=fmt.when(p.pre_start), end=fmt.when(p.pre_end))),
                html.Li(_("%(metric)s: mean %(mean)s, sd %(sd)s; sd of the change between two "
                          "such periods %(sd_change)s",
                          metric=translate(METRIC_LABELS[p.metric]),
                          mean=value(p.metric, p.mean, currency),
                          sd=value(p.metric, p.sd, currency),
                          sd_change=value(p.metric, p.sd_change, currency))),
                html.Li(_("Minimum effect worth detecting: %(effect)s; members needed in total: "
                          "%(needed)s; power: %(power)s", effect=effect,
                          needed=fmt.points(p.required_total) if p.required_total else "–",
                          power=fmt.number(p.power, ".0%") if p.power is not None else "–")),
            ], className="small mb-0"),
        ]),
    ], className="mb-3", id="pilots-power")


def pilot_options(choices: list[tuple[int, str, str]]) -> list[dict[str, Any]]:
    return [{"label": _("#%(id)s %(name)s (%(status)s)", id=i, name=name,
                        status=status_label(status)), "value": i}
            for i, name, status in choices]


def rule_set_options(choices: list[tuple[int, str, str]]) -> list[dict[str, Any]]:
    return [{"label": _("#%(id)s %(name)s (%(status)s)", id=i, name=name,
                        status=rule_status_label(status)), "value": i}
            for i, name, status in choices]


def pilot_rows(pilots: Iterable[PilotView], now: dt.datetime | None = None
               ) -> list[dict[str, Any]]:
    now = now or dt.datetime.now(dt.UTC).replace(tzinfo=None)
    return [
        {
            "name": p.name,
            "status": _("running, past planned end") if p.status == "running"
            and now >= p.planned_end_at else status_label(p.status), "rule_set": p.rule_set,
            "metric": translate(METRIC_LABELS.get(p.primary_metric, p.primary_metric)),
            "share": fmt.rate_bp(p.pilot_share_bp),
            "start": fmt.when(p.start_at), "planned_end": fmt.when(p.planned_end_at),
            "ended": fmt.when(p.ended_at), "pilot_members": p.pilot_members,
            "control_members": p.control_members,
        }
        for p in pilots
    ]


PILOT_COLUMNS = [
    {"field": "name", "headerName": N_("Pilot")},
    {"field": "status", "headerName": N_("Status")},
    {"field": "rule_set", "headerName": N_("Rule set tried")},
    {"field": "metric", "headerName": N_("Primary metric")},
    {"field": "share", "headerName": N_("Pilot share")},
    {"field": "start", "headerName": N_("Start")},
    {"field": "planned_end", "headerName": N_("Planned end")},
    {"field": "ended", "headerName": N_("Ended")},
    {"field": "pilot_members", "headerName": N_("Pilot group"), **charts.NUMBER_COLUMN},
    {"field": "control_members", "headerName": N_("Control group"), **charts.NUMBER_COLUMN},
]


def pilot_columns() -> list[dict[str, Any]]:
    """The list's columns, headers in the user's language."""
    return [{**c, "headerName": translate(c["headerName"])} for c in PILOT_COLUMNS]


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
    date_hint = _("YYYY-MM-DD HH:MM")
    return html.Div([
        html.P(_("A pilot applies a draft rule set to a random part of a population; the rest "
                 "of that population is the control group and keeps the published rules. "
                 "The groups are drawn per tier, reproducibly from the seed."),
               className="text-muted small"),
        dbc.Row([
            _field(_("Pilot name"), dbc.Input(id=ids.NAME, maxLength=200), "name", md=5),
            _field(_("Rule set to try (draft or pending)"), dcc.Dropdown(id=ids.RULE_SET),
                   "rule_set_id", md=7),
        ]),
        dbc.Label(_("Population")),
        dbc.RadioItems(id=ids.SOURCE, value="filter", inline=True, className="mb-2", options=[
            {"label": _("Members matching a filter"), "value": "filter"},
            {"label": _("An uploaded list of members (CSV)"), "value": "file"},
        ]),
        html.Div(id=ids.FILTER_BOX, children=dbc.Row([
            _field(_("Segments"), dcc.Dropdown(
                id=ids.SEGMENTS, multi=True, placeholder=_("Any"),
                options=[{"label": translate(SEGMENT_LABELS.get(x, x)), "value": x}
                         for x in SEGMENTS]), md=3),
            _field(_("Tiers"), dcc.Dropdown(id=ids.TIERS, multi=True, placeholder=_("Any")),
                   md=3),
            _field(_("Joined from"), dbc.Input(id=ids.JOINED_FROM, placeholder=_("YYYY-MM-DD")),
                   md=2),
            _field(_("Joined to"), dbc.Input(id=ids.JOINED_TO, placeholder=_("YYYY-MM-DD")),
                   md=2),
            _field(_("Ordered within (days)"), dbc.Input(
                id=ids.ACTIVE_DAYS, type="text", inputMode="numeric",
                placeholder=_("any (1 to %(most)s)", most=fmt.points(3660))), md=2),
        ])),
        html.Div(id=ids.FILE_BOX, style={"display": "none"}, children=[
            dcc.Upload(id=ids.UPLOAD, multiple=False, accept=".csv,.txt,text/csv,text/plain",
                       className="pilots-upload border rounded p-3 mb-1 text-center",
                       children=html.Div([_("Drop a CSV here or "),
                                          html.A(_("choose a file"))])),
            html.Div(_("One column: member_id (numbers) or customer_id (the shop's ids); the "
                       "header line is optional. A file with any bad line is refused."),
                     className="form-text"),
            html.Div(id=ids.UPLOAD_INFO, className="small mb-1"),
            _feedback("member_file"),
        ]),
        _feedback("population"),
        dbc.Row([
            _field(_("Pilot share (%)"), dbc.Input(id=ids.SHARE, value="50"), "pilot_share",
                   _("of the population in the pilot group"), md=2),
            _field(_("Random seed"), dbc.Input(id=ids.SEED, type="text", inputMode="numeric",
                                               value="20250601"),
                   "seed", _("the same seed draws the same groups"), md=2),
            _field(_("Start (UTC)"), dbc.Input(id=ids.START_AT, value=f"{tomorrow} 00:00"),
                   "start_at", date_hint, md=2),
            _field(_("Planned end (UTC)"), dbc.Input(
                id=ids.END_AT, value=f"{tomorrow + dt.timedelta(days=30)} 00:00"),
                "planned_end_at", date_hint, md=2),
            _field(_("Primary metric"), dcc.Dropdown(
                id=ids.METRIC, value="spend_per_member", clearable=False,
                options=[{"label": translate(METRIC_LABELS[m]), "value": m}
                         for m in PILOT_METRICS]),
                "primary_metric", md=2),
            _field(_("Minimum effect"), dbc.Input(id=ids.MIN_EFFECT, value="100"), "min_effect",
                   _("in the metric's unit (money, orders, or a share: %(example)s)",
                     example=fmt.number(0.02, ".2f")), md=2),
        ]),
        dbc.Button(_("Estimate power"), id=ids.PREVIEW, color="secondary", className="me-2"),
        dbc.Button(_("Create pilot (draft)"), id=ids.CREATE, color="primary"),
        html.Div(id=ids.CREATE_MSG, className="mt-2"),
        dcc.Loading(html.Div(id=ids.PREVIEW_OUT, className="mt-3")),
    ])


def no_results() -> dbc.Alert:
    """The results panel before a pilot is chosen."""
    return empty_state(
        _("Choose a pilot to see its results."),
        _("Running and ended pilots show the lift against their control group; a draft shows "
          "what its groups can detect."))


def layout(**_kwargs: object) -> html.Div:
    writer = getattr(current_user, "role", None) in roles_of(__name__, "write_roles")
    hide = "" if writer else "d-none"
    return html.Div(
        [
            page_header(
                _("Pilots"),
                _("A draft rule set applied to a pilot group, a random control group keeping "
                  "the current rules; the lift is measured against the control group."),
            ),
            dcc.Store(id=ids.REFRESH, data=0),
            token_store(ids.TOKEN),
            dcc.Store(id=ids.ACTOR),
            dcc.Store(id=ids.RESULTS_CSV),
            dbc.Tabs(id=ids.TABS, active_tab="results", children=[
                dbc.Tab(label=_("Pilots and results"), tab_id="results", children=html.Div([
                    dbc.Row(dbc.Col([
                        dbc.Label(_("Status"), html_for=ids.STATUS),
                        dcc.Dropdown(
                            id=ids.STATUS, placeholder=_("All statuses"),
                            options=[{"label": status_label(s), "value": s}
                                     for s in PILOT_STATUSES],
                        ),
                    ], md=3), className="mb-3"),
                    html.Div(id=ids.LIST),
                    html.Hr(),
                    dbc.Row([
                        dbc.Col([dbc.Label(_("Pilot"), html_for=ids.PICK),
                                 dcc.Dropdown(id=ids.PICK, placeholder=_("Choose a pilot"))],
                                md=6),
                        dbc.Col([
                            dbc.Button(_("Request start"), id=ids.START, color="primary",
                                       className=f"text-nowrap {hide}", disabled=True),
                            dbc.Button(_("Send back"), id=ids.SEND_BACK, color="warning",
                                       outline=True, className=f"text-nowrap {hide}",
                                       disabled=True),
                            dbc.Button(_("Cancel draft"), id=ids.CANCEL, color="secondary",
                                       outline=True, className=f"text-nowrap {hide}",
                                       disabled=True),
                            dbc.Button(_("End pilot"), id=ids.END, color="danger", outline=True,
                                       className=f"text-nowrap {hide}", disabled=True),
                            dbc.Button(_("Roll out as a new draft"), id=ids.ROLLOUT,
                                       color="success", className=f"text-nowrap {hide}",
                                       disabled=True),
                            dbc.Button(_("Export CSV"), id=ids.EXPORT, color="secondary",
                                       outline=True, disabled=True),
                            dcc.Download(id=ids.DOWNLOAD),
                        ], md=6, className="d-flex flex-wrap gap-2 align-items-end "
                                         "justify-content-end"),
                    ], className="mb-2"),
                    dbc.Row(dbc.Col(dbc.Input(
                        id=ids.SEND_BACK_REASON, maxlength=500,
                        placeholder=_("Why the start is sent back (needed to send it back)"),
                    ), md={"size": 6, "offset": 6}), className=f"mb-2 {hide}"),
                    html.Div(id=ids.ACTION_MSG),
                    dbc.Alert(id=ids.OVERDUE, is_open=False, color="warning",
                              className="d-flex flex-wrap align-items-center gap-2", children=[
                                  html.Span(id=ids.OVERDUE_TEXT),
                                  dbc.Button(_("End pilot now"), id=ids.END_NOW, color="danger",
                                             size="sm", className=f"text-nowrap {hide}"),
                              ]),
                    dbc.Row([
                        dbc.Col(dbc.Progress(id=ids.RESULTS_PROGRESS, value=0, label="",
                                             striped=True, animated=True,
                                             style={"visibility": "hidden", "height": "1.4rem"}),
                                md=10, className="d-flex flex-column justify-content-center"),
                        dbc.Col(dbc.Button(_("Stop computing"), id=ids.RESULTS_CANCEL,
                                           color="secondary", outline=True, size="sm",
                                           disabled=True), md=2, className="text-end"),
                    ], className="mb-2 align-items-center"),
                    html.Div(id=ids.RESULTS, children=no_results()),
                ], className="pt-3")),
                dbc.Tab(label=_("New pilot") if writer else _("New pilot (supervisors)"),
                        tab_id="new", disabled=not writer,
                        children=html.Div(_create_form(), className="pt-3")),
            ]),
        ]
    )
