"""The shared chart builders (dashboard/charts.py) and the figures' number formats,
without a browser (tests/test_browser_ux_charts.py renders them)."""

from __future__ import annotations

import pytest

from dashboard import charts
from pages import live as live_views
from pages import overview as ov


def test_layout_keeps_the_title_below_the_mode_bar_row_and_groups_thousands():
    lay = charts.layout("Paid revenue per month (RUB)")
    title = lay["title"]
    # anchored to the top of the plot area, inside a top margin that leaves the
    # mode bar (about 30 px at the top right) a row of its own
    assert (title["yref"], title["y"], title["yanchor"]) == ("paper", 1, "bottom")
    assert lay["margin"]["t"] - title["pad"]["b"] - title["font"]["size"] * 1.4 > 28
    y = lay["yaxis"]
    assert y["separatethousands"] and y["exponentformat"] == "none"
    assert "," in y["tickformat"] and "," in y["hoverformat"]
    # the bottom legend hangs from the figure's bottom edge, not the plot's
    assert lay["legend"]["yref"] == "container" and lay["legend"]["y"] == 0
    assert "legend" not in charts.layout("t", legend="none") and \
        charts.layout("t", legend="none")["showlegend"] is False
    # an explicit axis replaces the value axis (a heatmap's categories)
    assert charts.layout("t", yaxis=charts.axis(type="category"))["yaxis"] == {
        "automargin": True, "type": "category"}
    assert charts.CONFIG["displaylogo"] is False
    assert "toImage" not in charts.CONFIG["modeBarButtonsToRemove"]


@pytest.mark.parametrize(("values", "cut"), [
    ([[100, 120, 90, 110, 105, 95, 100]], None),             # nothing stands out
    ([[100, 120, 90, 110, 105, 95, 100, 2_000]], 138),        # one expiry night
    ([[100, 120, 90, 110], [0, 0, 0, 0]], None),               # too few values to judge
    ([[3_000] * 20, [0] * 19 + [9_001]], 3_450),               # 3x the typical day
])
def test_clip_tall(values, cut):
    top = charts.clip_tall(values)
    assert (None if top is None else round(top)) == cut


def test_live_points_chart_cuts_the_expiry_night_and_labels_it():
    days = [f"2026-11-{d:02d}" for d in range(1, 11)]
    issued = [3_000 + 10 * d for d in range(10)]
    redeemed = [1_500] * 10
    expired = [0] * 9 + [34_833]
    pairs = [(days, issued), (days, redeemed), (days, expired)]
    axis = live_views.outlier_layout(pairs, live_views.POINT_SERIES)
    assert axis["autorange"] is False and axis["range"][1] < 34_833
    assert axis["range"][1] >= max(issued)
    assert [(a["x"], a["text"]) for a in axis["annotations"]] == [
        ("2026-11-10", "expired: 34,833 ↑ (cut)")]
    plain = live_views.outlier_layout(pairs[:2], live_views.POINT_SERIES[:2])
    assert plain == {"range": None, "autorange": True, "annotations": []}


def test_kpi_figures_group_thousands():
    assert ov.change(15_869, 1_000) == "+1,486.9 %"
    assert ov.change(0.99996, 1.0) == "+0.0 %"  # never "-0.0 %"
    assert ov.show(12.5, "rate", "RUB") == "1,250.00 %"
    assert ov.show(1234.5, "number", "RUB") == "1,234.50"
    assert ov.show(123456789, "money", "RUB") == "1,234,567.89 RUB"


def test_partial_months_are_lighter_hatched_and_labelled():
    monthly = [
        {"month": "2026-10", "partial": True, "days": 30, "month_days": 31,
         "covered_from": "2026-10-02", "covered_to": "2026-10-31"},
        {"month": "2026-11", "partial": False, "days": 30, "month_days": 30,
         "covered_from": "2026-11-01", "covered_to": "2026-11-30"},
        {"month": "2026-12", "partial": True, "days": 2, "month_days": 31,
         "covered_from": "2026-12-01", "covered_to": "2026-12-02"},
    ]
    for m in monthly:
        m.update(paid_orders_m=10, paid_orders_g=5, revenue_m=100_00, revenue_g=50_00,
                 points_cost_minor=5_00, redeemed_minor=2_00)
    fig = ov.cost_figure(monthly, "RUB")
    bars = fig["data"][0]
    assert bars["marker"]["opacity"] == [charts.PARTIAL_OPACITY, 1, charts.PARTIAL_OPACITY]
    assert bars["marker"]["pattern"]["shape"] == ["/", "", "/"]
    # lines: solid over whole months, dotted into each partial one
    issued = [t for t in fig["data"] if t.get("legendgroup") == "points issued (money)"]
    assert issued[0]["y"] == [None, 5.0, None]
    assert [t["x"] for t in issued[1:]] == [["2026-10", "2026-11"], ["2026-11", "2026-12"]]
    assert all(t["line"]["dash"] == "dot" and t["showlegend"] is False for t in issued[1:])
    assert [a["text"] for a in fig["layout"]["annotations"]] == [
        "partial:<br>2–31 Oct", "partial:<br>1–2 Dec"]
    assert [(s["x0"], s["x1"]) for s in fig["layout"]["shapes"]] == [(-0.5, 0.5), (1.5, 2.5)]
    # the right axis has its own margin and no grid over the bars
    y2 = fig["layout"]["yaxis2"]
    assert y2["side"] == "right" and y2["automargin"] and y2["showgrid"] is False
    rows = ov.monthly_rows(monthly, "RUB")
    assert [r["coverage"] for r in rows] == [
        "partial: 2–31 Oct, 30 of 31 days", "all 30", "partial: 1–2 Dec, 2 of 31 days"]
