"""Pure builders of the executive overview: KPI table rows and figures."""

from __future__ import annotations

from typing import Any

from dashboard import format as fmt

IMAGE = {"displaylogo": False, "toImageButtonOptions": {"format": "png", "scale": 2}}

KPI_COLUMNS = [
    {"field": "metric", "headerName": "KPI", "tooltipField": "definition", "minWidth": 260},
    {"field": "current_text", "headerName": "This period", "tooltipField": "definition"},
    {"field": "previous_text", "headerName": "Previous period", "tooltipField": "definition"},
    {"field": "change", "headerName": "Change"},
    {"field": "definition", "headerName": "Definition", "hide": True},
]
MONTHLY_COLUMNS = [
    {"field": "month", "headerName": "Month"},
    {"field": "paid_orders_m", "headerName": "Orders, members", "type": "numericColumn"},
    {"field": "paid_orders_g", "headerName": "Orders, guests", "type": "numericColumn"},
    {"field": "revenue_m_text", "headerName": "Revenue, members"},
    {"field": "revenue_g_text", "headerName": "Revenue, guests"},
    {"field": "points_cost_text", "headerName": "Points issued (money)"},
    {"field": "redeemed_text", "headerName": "Points redeemed (money)"},
]


def show(value: Any, unit: str, currency: str) -> str:
    """A KPI value for the table; '–' (with the reason on hover) when undefined."""
    if value is None:
        return "–"
    if unit == "money":
        return fmt.money(round(value), currency)
    if unit == "rate":
        return f"{100 * value:.2f} %"
    if unit == "count":
        return f"{int(value):,}"
    return f"{value:.2f}"


def change(cur: Any, prev: Any) -> str:
    if cur is None or prev is None or prev == 0:
        return "–"
    return f"{100 * (cur - prev) / abs(prev):+.1f} %"


def kpi_rows(rows: list[dict[str, Any]], currency: str) -> list[dict[str, Any]]:
    return [
        {**r, "current_text": show(r["current"], r["unit"], currency),
         "previous_text": show(r["previous"], r["unit"], currency),
         "change": change(r["current"], r["previous"])}
        for r in rows
    ]


def monthly_rows(monthly: list[dict[str, Any]], currency: str) -> list[dict[str, Any]]:
    return [
        {**m, "revenue_m_text": fmt.money(m["revenue_m"], currency),
         "revenue_g_text": fmt.money(m["revenue_g"], currency),
         "points_cost_text": fmt.money(m["points_cost_minor"], currency),
         "redeemed_text": fmt.money(m["redeemed_minor"], currency)}
        for m in monthly
    ]


def _layout(title: str, **extra: Any) -> dict[str, Any]:
    return {"title": {"text": title}, "height": 340,
            "margin": {"l": 60, "r": 10, "t": 40, "b": 40},
            "legend": {"orientation": "h", "y": -0.2}, **extra}


def _major(minor: list[int]) -> list[float]:
    """Chart axes only (never stored or summed): minor units to currency units."""
    return [m / 100 for m in minor]


def orders_figure(monthly: list[dict[str, Any]]) -> dict[str, Any]:
    x = [m["month"] for m in monthly]
    return {"data": [
        {"type": "bar", "name": "members", "x": x, "y": [m["paid_orders_m"] for m in monthly]},
        {"type": "bar", "name": "guests", "x": x, "y": [m["paid_orders_g"] for m in monthly]},
    ], "layout": _layout("Paid orders per month", barmode="group")}


def revenue_figure(monthly: list[dict[str, Any]], currency: str) -> dict[str, Any]:
    x = [m["month"] for m in monthly]
    return {"data": [
        {"type": "bar", "name": "members", "x": x, "y": _major([m["revenue_m"] for m in monthly])},
        {"type": "bar", "name": "guests", "x": x, "y": _major([m["revenue_g"] for m in monthly])},
    ], "layout": _layout(f"Paid revenue per month ({currency})", barmode="group")}


def cost_figure(monthly: list[dict[str, Any]], currency: str) -> dict[str, Any]:
    x = [m["month"] for m in monthly]
    return {"data": [
        {"type": "bar", "name": "member revenue", "x": x,
         "y": _major([m["revenue_m"] for m in monthly])},
        {"type": "scatter", "mode": "lines+markers", "name": "points issued (money)", "x": x,
         "y": _major([m["points_cost_minor"] for m in monthly]), "yaxis": "y2"},
        {"type": "scatter", "mode": "lines+markers", "name": "points redeemed (money)", "x": x,
         "y": _major([m["redeemed_minor"] for m in monthly]), "yaxis": "y2"},
    ], "layout": _layout(f"Points cost against member revenue ({currency})",
                         yaxis2={"overlaying": "y", "side": "right",
                                 "title": {"text": "points (money)"}})}


def ltv_figure(ltv: Any, currency: str) -> dict[str, Any]:
    data = []
    if ltv is not None and not ltv.empty:
        for cohort, g in ltv.groupby("cohort"):
            data.append({"type": "scatter", "mode": "lines", "name": f"{cohort:%Y-%m}",
                         "x": g["months_since_join"].tolist(),
                         "y": (g["ltv_minor"] / 100).round(2).tolist()})
    return {"data": data, "layout": _layout(
        f"LTV per member by months since joining ({currency})",
        xaxis={"title": {"text": "months since joining"}})}


def retention_figure(retention: list[dict[str, Any]]) -> dict[str, Any]:
    cohorts = sorted({r["cohort"] for r in retention})
    ks = sorted({r["months_since_join"] for r in retention})
    cell = {(r["cohort"], r["months_since_join"]): r["share"] for r in retention}
    z = [[None if cell.get((c, k)) is None else round(100 * cell[(c, k)], 1) for k in ks]
         for c in cohorts]
    return {"data": [{"type": "heatmap", "x": ks, "y": cohorts, "z": z, "colorscale": "Blues",
                      "colorbar": {"title": {"text": "% active"}}}] if cohorts else [],
            "layout": _layout("Cohort retention: % of members with a paid order",
                              xaxis={"title": {"text": "months since joining"}},
                              yaxis={"type": "category"})}


def tiers_figure(tiers: list[dict[str, Any]]) -> dict[str, Any]:
    names = sorted({t["tier"] for t in tiers})
    months = sorted({t["month"] for t in tiers})
    cell = {(t["month"], t["tier"]): t["orders"] for t in tiers}
    return {"data": [{"type": "bar", "name": fmt.chart_text(n), "x": months,
                      "y": [cell.get((m, n), 0) for m in months]} for n in names],
            "layout": _layout("Member orders by the tier they were accrued under",
                              barmode="stack")}
