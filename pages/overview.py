"""Overview KPIs (executive): is the program paying for itself?"""

from __future__ import annotations

import datetime as dt
from typing import Any

import dash_bootstrap_components as dbc
from dash import dcc, html

from dashboard import charts
from dashboard import format as fmt
from dashboard.access import register_page
from dashboard.i18n import N_, _, ngettext, translate
from dashboard.shell import dropdown_props, grid, page_header
from db.metrics import SEGMENT_LABELS
from db.models import SEGMENTS
from db.reports.overview import NO_TIER

register_page(
    __name__, path="/overview", name=N_("Overview"), title=N_("Overview"), order=10,
    roles=("supervisor", "executive"),
)


# ---------------------------------------------------------------- ids


class Overview:
    MONTHS = "overview-months"
    SEGMENT = "overview-segment"
    SUMMARY = "overview-summary"
    KPI_GRID = "overview-kpi-grid"
    KPI_CSV = "overview-kpi-csv"
    MONTHLY_GRID = "overview-monthly-grid"
    MONTHLY_CSV = "overview-monthly-csv"
    ORDERS_FIG = "overview-orders-figure"
    REVENUE_FIG = "overview-revenue-figure"
    COST_FIG = "overview-cost-figure"
    LTV_FIG = "overview-ltv-figure"
    RETENTION_FIG = "overview-retention-figure"
    TIERS_FIG = "overview-tiers-figure"
    ACTOR = "overview-actor"
    LOADED = "overview-loaded"
    PROGRESS = "overview-progress"
    CANCEL = "overview-cancel"


ids = Overview


# ---------------------------------------------------------------- builders
# (pure: engine data in, components and figures out; no queries)


# the hover shows the KPI's definition (a getter, not a field name: the
# definition is a row's value, translated with the row)
DEFINITION_TOOLTIP = {"tooltipValueGetter": {"function": "params.data.definition"}}
KPI_COLUMNS = [
    {"field": "metric", "headerName": N_("KPI"), **DEFINITION_TOOLTIP, "minWidth": 260},
    {"field": "current_text", "headerName": N_("This period"), **DEFINITION_TOOLTIP},
    {"field": "previous_text", "headerName": N_("Previous period"), **DEFINITION_TOOLTIP},
    {"field": "change", "headerName": N_("Change")},
    {"field": "definition", "headerName": N_("Definition"), "hide": True},
]
MONTHLY_COLUMNS = [
    {"field": "month", "headerName": N_("Month")},
    {"field": "coverage", "headerName": N_("Days counted")},
    {"field": "paid_orders_m", "headerName": N_("Orders, members"), **charts.NUMBER_COLUMN},
    {"field": "paid_orders_g", "headerName": N_("Orders, guests"), **charts.NUMBER_COLUMN},
    {"field": "revenue_m_text", "headerName": N_("Revenue, members")},
    {"field": "revenue_g_text", "headerName": N_("Revenue, guests")},
    {"field": "points_cost_text", "headerName": N_("Points issued (money)")},
    {"field": "redeemed_text", "headerName": N_("Points redeemed (money)")},
]
# the two series of the monthly charts
MEMBERS, GUESTS = N_("members"), N_("guests")


def show(value: Any, unit: str, currency: str) -> str:
    """A KPI value for the table; '–' (with the reason on hover) when undefined."""
    if value is None:
        return "–"
    if unit == "money":
        return fmt.money(round(value), currency)
    if unit == "rate":
        return fmt.percent(value, 2)
    if unit == "count":
        return fmt.points(int(value))
    return fmt.decimal(value, 2)


def change(cur: Any, prev: Any) -> str:
    if cur is None or prev is None or prev == 0:
        return "–"
    return fmt.percent((cur - prev) / abs(prev), 1, sign=True)


def no_comparison(history_start: dt.datetime | None) -> str:
    """The Change column when the history does not cover the earlier stretch."""
    if history_start is None:
        return _("no comparison: no orders yet")
    return _("no comparison: history starts %(date)s", date=fmt.day(history_start))


def kpi_rows(rows: list[dict[str, Any]], currency: str, *, comparable: bool = True,
             history_start: dt.datetime | None = None) -> list[dict[str, Any]]:
    """The KPI grid's rows: names and definitions in the user's language."""
    return [
        {**r, "metric": translate(r["metric"]), "definition": translate(r["definition"]),
         "current_text": show(r["current"], r["unit"], currency),
         "previous_text": show(r["previous"], r["unit"], currency) if comparable else "–",
         "change": change(r["current"], r["previous"]) if comparable
         else no_comparison(history_start)}
        for r in rows
    ]


def partial_note(m: dict[str, Any], *, short: bool = False) -> str | None:
    """None for a whole month, else which of its days the figures cover:
    "1–2 Dec, 2 of 31 days" (short: "1–2 Dec")."""
    if not m.get("partial"):
        return None
    if m["days"] <= 0:
        return _("no complete day yet")
    first, last = (dt.date.fromisoformat(m[k]) for k in ("covered_from", "covered_to"))
    span = fmt.day_span(first, last)
    if short:
        return span
    return ngettext("%(span)s, %(days)s of %(num)s day", "%(span)s, %(days)s of %(num)s days",
                    m["month_days"], span=span, days=m["days"])


def coverage(m: dict[str, Any]) -> str:
    note = partial_note(m)
    if note is None:
        return _("all %(num)s", num=m["month_days"])
    return _("partial: %(note)s", note=note)


def monthly_rows(monthly: list[dict[str, Any]], currency: str) -> list[dict[str, Any]]:
    return [
        {**m, "coverage": coverage(m),
         "revenue_m_text": fmt.money(m["revenue_m"], currency),
         "revenue_g_text": fmt.money(m["revenue_g"], currency),
         "points_cost_text": fmt.money(m["points_cost_minor"], currency),
         "redeemed_text": fmt.money(m["redeemed_minor"], currency)}
        for m in monthly
    ]


def _layout(title: str, **extra: Any) -> dict[str, Any]:
    return charts.layout(title, height=340, **extra)


def _major(minor: list[int]) -> list[float]:
    """Chart axes only (never stored or summed): minor units to currency units."""
    return [m / 100 for m in minor]


def _monthly(monthly: list[dict[str, Any]], title: str, bars: list[dict[str, Any]],
             lines: list[dict[str, Any]] = (), **extra: Any) -> dict[str, Any]:
    """A per-month figure on a category axis: partial months (the current one,
    the one the history starts in) lighter, hatched, shaded and labelled."""
    x = [m["month"] for m in monthly]
    partial = [bool(m.get("partial")) for m in monthly]
    data = [charts.partial_bars({"type": "bar", "x": x, **b}, partial) for b in bars]
    for line in lines:
        data += charts.partial_line({"type": "scatter", "mode": "lines+markers", "x": x,
                                     **line}, partial)
    marks = charts.partial_marks(x, [partial_note(m, short=True) for m in monthly])
    layout = _layout(title, xaxis=charts.axis(type="category"), **marks, **extra)
    return {"data": data, "layout": layout}


def orders_figure(monthly: list[dict[str, Any]]) -> dict[str, Any]:
    return _monthly(monthly, _("Paid orders per month"), [
        {"name": translate(MEMBERS), "y": [m["paid_orders_m"] for m in monthly]},
        {"name": translate(GUESTS), "y": [m["paid_orders_g"] for m in monthly]},
    ], barmode="group")


def revenue_figure(monthly: list[dict[str, Any]], currency: str) -> dict[str, Any]:
    unit = fmt.currency_unit(currency)
    return _monthly(monthly, _("Paid revenue per month (%(currency)s)", currency=unit), [
        {"name": translate(MEMBERS), "y": _major([m["revenue_m"] for m in monthly])},
        {"name": translate(GUESTS), "y": _major([m["revenue_g"] for m in monthly])},
    ], barmode="group")


def cost_figure(monthly: list[dict[str, Any]], currency: str) -> dict[str, Any]:
    unit = fmt.currency_unit(currency)
    return _monthly(
        monthly, _("Points cost against member revenue (%(currency)s)", currency=unit),
        [{"name": _("member revenue"), "y": _major([m["revenue_m"] for m in monthly])}],
        [{"name": _("points issued (money)"), "yaxis": "y2",
          "y": _major([m["points_cost_minor"] for m in monthly])},
         {"name": _("points redeemed (money)"), "yaxis": "y2",
          "y": _major([m["redeemed_minor"] for m in monthly])}],
        yaxis=charts.value_axis(_("revenue (%(currency)s)", currency=unit)),
        # its own title and tick labels get their own margin, off the bars
        yaxis2=charts.value_axis(_("points (%(currency)s)", currency=unit), overlaying="y",
                                 side="right", showgrid=False, tickmode="auto"))


def ltv_figure(ltv: Any, currency: str) -> dict[str, Any]:
    unit = fmt.currency_unit(currency)
    data = []
    if ltv is not None and not ltv.empty:
        for cohort, g in ltv.groupby("cohort"):
            data.append({"type": "scatter", "mode": "lines", "name": f"{cohort:%Y-%m}",
                         "x": g["months_since_join"].tolist(),
                         "y": (g["ltv_minor"] / 100).round(2).tolist()})
    # a dozen cohorts: a column beside the plot, clear of the axis title
    layout = _layout(_("LTV per member by months since joining (%(currency)s)",
                       currency=unit), legend="right",
                     xaxis=charts.axis(_("months since joining")),
                     yaxis=charts.value_axis(_("%(currency)s per member", currency=unit)))
    layout["legend"]["title"] = {"text": _("joined")}
    return {"data": data, "layout": layout}


def retention_figure(retention: list[dict[str, Any]]) -> dict[str, Any]:
    cohorts = sorted({r["cohort"] for r in retention})
    ks = sorted({r["months_since_join"] for r in retention})
    cell = {(r["cohort"], r["months_since_join"]): r["share"] for r in retention}
    z = [[None if cell.get((c, k)) is None else round(100 * cell[(c, k)], 1) for k in ks]
         for c in cohorts]
    # Plotly's own placeholders go in as values, so the message has none of its own
    hover = _("joined %(cohort)s, month %(month)s: %(share)s active",
              cohort="%{y}", month="%{x}", share="%{z:.1f} %") + "<extra></extra>"
    return {"data": [{"type": "heatmap", "x": ks, "y": cohorts, "z": z, "colorscale": "Blues",
                      "colorbar": {"title": {"text": _("% active")}},
                      "hovertemplate": hover}] if cohorts else [],
            "layout": _layout(_("Cohort retention: % of members with a paid order"),
                              legend="none",
                              xaxis=charts.axis(_("months since joining")),
                              yaxis=charts.axis(type="category"))}


def tiers_figure(tiers: list[dict[str, Any]], monthly: list[dict[str, Any]] | None = None
                 ) -> dict[str, Any]:
    """Stacked per tier, over the months of the monthly series (partial ones marked).
    Tier names are the program's own; only "(none)" is the app's."""
    names = sorted({t["tier"] for t in tiers})
    cell = {(t["month"], t["tier"]): t["orders"] for t in tiers}
    if monthly is None:
        monthly = [{"month": m} for m in sorted({t["month"] for t in tiers})]
    return _monthly(monthly, _("Member orders by the tier they were accrued under"), [
        {"name": fmt.chart_text(translate(NO_TIER) if n == NO_TIER else n),
         "y": [cell.get((m["month"], n), 0) for m in monthly]}
        for n in names], barmode="stack")


def _grid(cid: str, defs: list[dict[str, Any]], height: str) -> Any:
    """A grid of the page, its headers and its no-rows text in the user's language."""
    return grid(cid, defs, height=height, empty=_("No rows yet"))


# ---------------------------------------------------------------- layout


def _graph(cid: str) -> dcc.Graph:
    return dcc.Graph(id=cid, config=charts.config())


def _months_label(n: int) -> str:
    return _("This month so far") if n == 1 else ngettext(
        "Last %(num)s month", "Last %(num)s months", n)


def layout(**_kwargs: object) -> html.Div:
    return html.Div(
        [
            page_header(
                _("Overview"),
                _("The chosen calendar months, the current one up to the end of yesterday, "
                  "against the same stretch as many months earlier (today's activity is on the "
                  "live page). Hover a KPI for its definition; export the tables as CSV and "
                  "each chart as PNG (camera icon)."),
            ),
            dbc.Row(
                [
                    dbc.Col([
                        dbc.Label(_("Period"), html_for=ids.MONTHS),
                        dcc.Dropdown(id=ids.MONTHS, clearable=False, value=3,
                                     **dropdown_props(), options=[
                            {"label": _months_label(n), "value": n} for n in (1, 3, 6, 12)]),
                    ], md=3),
                    dbc.Col([
                        dbc.Label(_("Member segment"), html_for=ids.SEGMENT),
                        dcc.Dropdown(id=ids.SEGMENT, clearable=False, value="",
                                     **dropdown_props(),
                                     options=[{"label": _("All members"), "value": ""}]
                                     + [{"label": translate(SEGMENT_LABELS.get(s, s)),
                                         "value": s} for s in SEGMENTS]),
                    ], md=3),
                ],
                className="mb-3",
            ),
            dcc.Store(id=ids.LOADED, data=0),
            dcc.Store(id=ids.ACTOR),
            dbc.Row([
                dbc.Col(dbc.Progress(id=ids.PROGRESS, value=0, label="", striped=True,
                                     animated=True,
                                     style={"visibility": "hidden", "height": "1.4rem"}),
                        md=10, className="d-flex flex-column justify-content-center"),
                dbc.Col(dbc.Button(_("Stop computing"), id=ids.CANCEL, color="secondary",
                                   outline=True, size="sm", disabled=True),
                        md=2, className="text-end"),
            ], className="mb-2 align-items-center"),
            html.Div(id=ids.SUMMARY, className="mb-2",
                     children=_("Computing the figures for the chosen months…")),
            dbc.Row([
                dbc.Col(html.H2(_("KPIs"), className="h6"), width="auto"),
                dbc.Col(dbc.Button("CSV", id=ids.KPI_CSV, size="sm", color="secondary",
                                   outline=True), width="auto"),
            ], className="align-items-center"),
            _grid(ids.KPI_GRID, KPI_COLUMNS, "560px"),
            dbc.Row([
                dbc.Col(_graph(ids.ORDERS_FIG), lg=6),
                dbc.Col(_graph(ids.REVENUE_FIG), lg=6),
            ], className="mt-3"),
            dbc.Row([
                dbc.Col(_graph(ids.COST_FIG), lg=6),
                dbc.Col(_graph(ids.TIERS_FIG), lg=6),
            ]),
            dbc.Row([
                dbc.Col(_graph(ids.LTV_FIG), lg=6),
                dbc.Col(_graph(ids.RETENTION_FIG), lg=6),
            ]),
            dbc.Row([
                dbc.Col(html.H2(_("Per month"), className="h6"), width="auto"),
                dbc.Col(dbc.Button("CSV", id=ids.MONTHLY_CSV, size="sm", color="secondary",
                                   outline=True), width="auto"),
            ], className="align-items-center mt-3"),
            _grid(ids.MONTHLY_GRID, MONTHLY_COLUMNS, "360px"),
        ]
    )
