"""The pilot verdict (db.pilots.results._verdict) over each of its cases: one category
per situation, never "significant lift" together with "below the minimum
effect", values in the metric's unit with the program currency."""

from __future__ import annotations

import datetime as dt
import itertools
from decimal import Decimal

import pytest

from db import stats
from db.pilots import MetricResult, PilotInfo, min_effect_text
from db.pilots.results import _verdict, metric_text

WEEKS = dt.timedelta(days=28)
FINE = stats.SrmResult(0.5, 0.5, 0.8)


def metric(lift: float, lo: float, hi: float, *, boot: tuple[float, float] | None = None,
           name: str = "spend_per_member", n: int = 500) -> MetricResult:
    def est(method: str, a: float, b: float) -> stats.Estimate:
        return stats.Estimate(method, lift, a, b, 0.004, n, n)

    blo, bhi = boot or (lo, hi)
    return MetricResult(name, n, n, 1000.0, 1000.0 + lift, 1000.0, 1000.0,
                        est("welch", lo, hi), est("bootstrap", blo, bhi), est("cuped", lo, hi))


def test_significant_and_above_the_minimum_effect_is_a_lift():
    code, text = _verdict(metric(800.0, 620.5, 979.5), FINE, WEEKS, Decimal("500"), "RUB")
    assert code == "lift"
    assert text.startswith("Spend per member: Significant lift: +800.00 RUB (95% CI +620.50 RUB "
                           "to +979.50 RUB, p = 0.004).")
    assert "Even the interval's lower end is above the minimum effect of 500.00 RUB" in text


def test_estimate_at_the_minimum_but_interval_reaching_below_says_so():
    code, text = _verdict(metric(1_250.0, 300.0, 2_200.0), FINE, WEEKS, Decimal("1000"), "RUB")
    assert code == "lift"
    assert "+1,250.00 RUB" in text and "+2,200.00 RUB" in text
    assert "reaches the minimum effect of 1,000.00 RUB" in text and "may be smaller" in text


def test_significant_but_below_the_minimum_effect_is_its_own_verdict():
    code, text = _verdict(metric(236.0, 40.0, 432.0), FINE, WEEKS, Decimal("500"), "RUB")
    assert code == "lift_below_minimum"
    assert text.startswith("Spend per member: Statistically significant but below the minimum "
                           "effect of 500.00 RUB: +236.00 RUB (95% CI +40.00 RUB to +432.00 RUB")
    assert "Significant lift" not in text


def test_welch_alone_is_not_enough():
    code, text = _verdict(metric(236.0, 40.0, 432.0, boot=(-5.0, 470.0)), FINE, WEEKS,
                          Decimal("100"), "RUB")
    assert code == "no_effect"
    assert "bootstrap interval (-5.00 RUB to +470.00 RUB) does not" in text


def test_harm_in_money():
    code, text = _verdict(metric(-120.0, -200.0, -40.0), FINE, WEEKS, Decimal("100"), "EUR")
    assert code == "harm"
    assert "did worse by 120.00 EUR (95% CI -200.00 EUR to -40.00 EUR" in text


def test_no_effect_and_whether_the_minimum_is_ruled_out():
    code, text = _verdict(metric(20.0, -60.0, 100.0), FINE, WEEKS, Decimal("500"), "RUB")
    assert code == "no_effect"
    assert "No detectable effect: +20.00 RUB" in text
    assert "as large as the minimum effect of 500.00 RUB is ruled out" in text
    code, text = _verdict(metric(20.0, -600.0, 640.0), FINE, WEEKS, Decimal("500"), "RUB")
    assert code == "no_effect" and "ruled out." in text and "minimum" not in text


def test_sample_ratio_mismatch_and_too_little_data_come_first():
    broken = stats.SrmResult(0.5, 0.56, 1e-6)
    assert _verdict(metric(800.0, 620.0, 980.0), broken, WEEKS, Decimal("500"), "RUB")[0] == "srm"
    short = _verdict(metric(800.0, 620.0, 980.0), FINE, dt.timedelta(hours=5), Decimal("500"),
                     "RUB")
    assert short[0] == "too_little_data" and "less than a day" in short[1]
    few = _verdict(metric(800.0, 620.0, 980.0, n=12), FINE, WEEKS, Decimal("500"), "RUB")
    assert few[0] == "too_little_data" and few[1].startswith("Spend per member: Too little")


def test_without_a_minimum_effect_a_significant_lift_is_a_lift():
    code, text = _verdict(metric(5.0, 1.0, 9.0), FINE, WEEKS, Decimal("0"), "RUB")
    assert code == "lift" and "minimum" not in text


@pytest.mark.parametrize(("name", "lift", "lo", "hi", "minimum", "code", "shown"), [
    ("orders_per_member", 0.15, 0.05, 0.25, "0.1", "lift", "+0.150 orders"),
    ("orders_per_member", 0.05, 0.01, 0.09, "0.1", "lift_below_minimum", "0.100 orders"),
    ("active_rate", 0.02, 0.005, 0.035, "0.03", "lift_below_minimum", "3.0 pp: +2.0 pp"),
])
def test_other_units(name, lift, lo, hi, minimum, code, shown):
    got, text = _verdict(metric(lift, lo, hi, name=name), FINE, WEEKS, Decimal(minimum), "RUB")
    assert got == code and shown in text and "RUB" not in text


def test_no_verdict_contradicts_itself():
    """Over a grid of intervals and minimum effects: a verdict that says
    "significant lift" never also says the lift is below the minimum effect."""
    for (lo, hi), minimum in itertools.product(
            [(-50.0, 30.0), (10.0, 90.0), (200.0, 900.0), (480.0, 520.0), (-90.0, -10.0)],
            ["0", "40", "100", "500", "1000"]):
        lift = (lo + hi) / 2
        code, text = _verdict(metric(lift, lo, hi), FINE, WEEKS, Decimal(minimum), "RUB")
        if "Significant lift" in text:
            assert code == "lift" and lift >= float(minimum), text
            assert "smaller than the minimum" not in text and "below the minimum" not in text
        if code == "lift_below_minimum":
            assert lift < float(minimum) and lo > 0


def test_formats():
    assert metric_text("spend_per_member", 1234.5, "RUB", signed=True) == "+1,234.50 RUB"
    assert metric_text("average_check", 1234.5, "₽") == "1,234.50 ₽"
    assert metric_text("active_rate", 0.0213, "RUB", signed=True) == "+2.1 pp"
    assert metric_text("spend_per_member", float("nan"), "RUB") == "–"
    assert min_effect_text("spend_per_member", "500", "RUB") == "500.00 RUB"
    assert min_effect_text("active_rate", Decimal("0.02"), "RUB") == "2.0 pp"
    assert min_effect_text("spend_per_member", "", "RUB") == "not set"


def test_a_running_pilot_past_its_planned_end():
    def info(status: str, end: dt.datetime) -> PilotInfo:
        return PilotInfo(1, "p", status, 1, "r", "draft", "spend_per_member", "500", 5000, 1,
                         end - WEEKS, end, None, {}, 10, 10)

    now = dt.datetime(2026, 12, 3, 9)
    assert info("running", dt.datetime(2026, 12, 2)).past_planned_end(now)
    assert not info("running", dt.datetime(2026, 12, 4)).past_planned_end(now)
    assert not info("ended", dt.datetime(2026, 12, 2)).past_planned_end(now)
