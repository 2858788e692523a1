"""The executive overview's read model: a period against the same stretch
earlier, monthly series, tier mix, LTV and retention by join cohort, drawn
from the rollups (db/rollups.py) and the KPI definitions (db/metrics.py)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from db import clock, metrics, program, rollups
from db.i18n import N_
from db.models import Member, Order, RuleSet

# the tier column of the orders accrued without one (a guest's order never is)
NO_TIER = N_("(none)")

_o = Order.__table__
_m = Member.__table__


@dataclass(frozen=True)
class Overview:
    """The executive page's data for a period and the one before it."""

    period: tuple[dt.datetime, dt.datetime]
    previous: tuple[dt.datetime, dt.datetime]
    segment: str | None
    currency: str
    point_value_minor: int
    rows: list[dict[str, Any]]
    monthly: list[dict[str, Any]]
    tiers: list[dict[str, Any]]
    ltv: Any  # pandas DataFrame (db.metrics.ltv_cohorts)
    retention: list[dict[str, Any]]
    # the day of the first recorded order (None: no order yet); the previous
    # stretch is compared only when the history covers all of it
    history_start: dt.datetime | None = None
    comparable: bool = True


def month_start(value: dt.datetime) -> dt.datetime:
    return value.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def add_months(value: dt.datetime, months: int) -> dt.datetime:
    idx = value.year * 12 + value.month - 1 + months
    return value.replace(year=idx // 12, month=idx % 12 + 1)


def comparable_periods(now: dt.datetime, months: int
                       ) -> tuple[dt.datetime, dt.datetime, dt.datetime, dt.datetime]:
    """(from, to, previous from, previous to) of the overview: ``months``
    calendar months from the start of the month ``months - 1`` before this one
    up to today 00:00, and the same whole months plus the same number of days
    ``months`` months earlier (days cut at that month's length)."""
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    start = month_start(now)
    f = add_months(start, 1 - months)
    pf = add_months(f, -months)
    done = (start.year - f.year) * 12 + start.month - f.month  # whole months before this one
    month = add_months(pf, done)
    length = (add_months(month, 1) - month).days
    pt = month + dt.timedelta(days=min((today - start).days, length))
    return f, today, pf, pt


def history_start(s: Session) -> dt.datetime | None:
    """Midnight of the day the program's records begin: its first published
    rule version in force or its first recorded order (an imported history
    may predate the rules), whichever is earlier; None when neither exists.
    Before it there is no data, not zero activity. Both are index reads."""
    found = [x for x in (
        s.scalar(select(func.min(_o.c.paid_at))),
        s.scalar(select(func.min(RuleSet.effective_at)).where(RuleSet.status == "published")),
    ) if x is not None]
    if not found:
        return None
    return min(found).replace(hour=0, minute=0, second=0, microsecond=0)


def month_coverage(month: dt.datetime, to: dt.datetime, start: dt.datetime | None
                   ) -> tuple[int, int, dt.datetime, dt.datetime]:
    """(days with data, days in the month, first, end) of a calendar month of
    the series that ends at ``to`` (exclusive) and whose history begins at
    ``start``: the current month counts its complete days only, the month the
    history began counts from that day."""
    end = add_months(month, 1)
    first = max(month, start) if start is not None else month
    last = min(end, max(to, first))
    return (last - first).days, (end - month).days, first, last


ORDER_METRICS = ["paid_orders_m", "paid_orders_g", "revenue_m", "revenue_g"]
POINT_METRICS = ["pts_accrual", "pts_referral_bonus", "pts_rev_accrual",
                 "pts_rev_referral_bonus", "pts_redemption", "pts_rev_redemption",
                 "pts_expiry", "pts_rev_expiry"]


def _period_figures(s: Session, f: dt.datetime, t: dt.datetime,
                    segment: str | None, now: dt.datetime) -> dict[str, Any]:
    orders = rollups.daily_sum(s, ORDER_METRICS, f, t, segment=segment)
    if segment:  # guests have no segment: always all guests, side by side
        orders |= rollups.daily_sum(s, ["paid_orders_g", "revenue_g"], f, t)
    pts = rollups.daily_sum(s, POINT_METRICS, f, t, segment=segment)
    st = metrics.order_stats(s, f, t)
    months = metrics.months_between(f, t)
    return {
        "orders": orders,
        "issued": pts["pts_accrual"] + pts["pts_referral_bonus"] - pts["pts_rev_accrual"]
        - pts["pts_rev_referral_bonus"],
        "redeemed": pts["pts_redemption"] - pts["pts_rev_redemption"],
        "expired": pts["pts_expiry"] - pts["pts_rev_expiry"],
        "frequency": metrics.purchase_frequency_of(st, months),
        "repeat": metrics.repeat_of(st),
        "participation": metrics.participation_of(st),
        "breakage": metrics.breakage_of(pts["pts_expiry"] - pts["pts_rev_expiry"],
                                        pts["pts_redemption"] - pts["pts_rev_redemption"]),
        "liability": metrics.points_liability(s, min(t, now)),
    }


def overview(
    s: Session, *, months: int = 3, segment: str | None = None, now: dt.datetime | None = None,
    progress: Callable[[float, str], None] | None = None,
) -> Overview:
    """The last ``months`` calendar months, the current one up to the end of
    yesterday (complete days only: today is the live page's), against the same
    stretch ``months`` months earlier - like for like, so a month only two days
    old is not compared with a whole one.

    Sums (revenue, orders, points) come from rollup_daily and follow the
    segment filter; distinct-customer KPIs (frequency, repeat, participation)
    come from db.metrics over the period's orders and cover every customer.
    """
    def step(frac: float, message: str) -> None:
        if progress is not None:
            progress(frac, message)

    rollups.prefer_rollups(s)
    now = now or clock.utcnow()
    month_end = add_months(month_start(now), 1)  # the cohort charts' whole months
    f, t, pf, pt = comparable_periods(now, months)
    currency = program.currency(s)
    value = metrics.point_value_minor(s, now)
    begun = history_start(s)
    # the same stretch earlier is only a comparison when the history covers
    # all of it: a stretch before the first order would set a year against a
    # few weeks (or nothing)
    comparable = begun is not None and begun <= pf
    step(0.05, N_("the period's orders and points"))
    cur = _period_figures(s, f, t, segment, now)
    if comparable:
        step(0.35, N_("the previous period"))
        prev = _period_figures(s, pf, pt, segment, now)
    else:
        prev = None
    step(0.65, N_("monthly series and tier mix"))
    rows = []

    def ratio_value(r: Any) -> float | None:
        return None if r.value is None else r.value

    def add(key: str, label: str, unit: str, get: Callable[[dict[str, Any]], Any]) -> None:
        rows.append({"key": key, "metric": label, "unit": unit, "current": get(cur),
                     "previous": None if prev is None else get(prev),
                     "definition": metrics.DEFINITIONS[key.split(":")[0]]})

    # the KPI names are marked (N_): the page shows them in the user's language
    for sfx, revenue, paid, check in (
        ("_m", N_("Revenue, members"), N_("Paid orders, members"), N_("Average check, members")),
        ("_g", N_("Revenue, guests"), N_("Paid orders, guests"), N_("Average check, guests")),
    ):
        add("revenue", revenue, "money", lambda x, k="revenue" + sfx: x["orders"][k])
        add("orders", paid, "count", lambda x, k="paid_orders" + sfx: x["orders"][k])
        add("average_check", check, "money",
            lambda x, k=sfx: metrics.ratio(x["orders"]["revenue" + k],
                                           x["orders"]["paid_orders" + k]).value)
    add("purchase_frequency", N_("Purchase frequency, members (orders / month)"), "number",
        lambda x: ratio_value(x["frequency"].split.members))
    add("purchase_frequency", N_("Purchase frequency, guests (orders / month)"), "number",
        lambda x: ratio_value(x["frequency"].split.guests))
    add("repeat_purchase_rate", N_("Repeat purchase rate"), "rate",
        lambda x: ratio_value(x["repeat"]))
    add("participation_rate", N_("Participation rate"), "rate",
        lambda x: ratio_value(x["participation"]))
    add("points_cost", N_("Points issued, in money"), "money", lambda x: x["issued"] * value)
    add("points_redeemed", N_("Points redeemed, in money"), "money",
        lambda x: x["redeemed"] * value)
    add("points_cost", N_("Points cost ÷ member revenue"), "rate",
        lambda x: metrics.ratio(x["issued"] * value, x["orders"]["revenue_m"]).value)
    add("redemption_rate", N_("Redemption rate"), "rate",
        lambda x: metrics.ratio(x["redeemed"], x["issued"]).value)
    add("breakage_rate", N_("Breakage rate"), "rate",
        lambda x: ratio_value(x["breakage"].ratio))
    add("points_liability", N_("Points liability at the end, in money"), "money",
        lambda x: x["liability"].amount_minor)

    # monthly series over both periods (without a comparison: from the month
    # the history begins), each month marked with the days it covers
    if comparable or begun is None:
        first = pf if comparable else f
    else:
        first = max(pf, month_start(begun))
    n_months = (f.year - first.year) * 12 + f.month - first.month + months
    monthly: dict[dt.datetime, dict[str, int]] = {}
    for k in range(n_months):
        monthly[add_months(first, k)] = {m: 0 for m in (*ORDER_METRICS, "issued", "redeemed")}
    sign = {"pts_accrual": ("issued", 1), "pts_referral_bonus": ("issued", 1),
            "pts_rev_accrual": ("issued", -1), "pts_rev_referral_bonus": ("issued", -1),
            "pts_redemption": ("redeemed", 1), "pts_rev_redemption": ("redeemed", -1)}
    for day, metric, _g, v in rollups.daily_series(s, [*ORDER_METRICS, *sign], first, t,
                                           segment=segment):
        col, k = sign.get(metric, (metric, 1))
        if segment and metric in ("paid_orders_g", "revenue_g"):
            continue
        monthly[month_start(day)][col] += k * v
    if segment:
        for day, metric, _g, v in rollups.daily_series(s, ["paid_orders_g", "revenue_g"], first, t):
            monthly[month_start(day)][metric] += v
    monthly_rows = []
    for m, v in sorted(monthly.items()):
        days, length, a, b = month_coverage(m, t, begun)
        monthly_rows.append({"month": m.strftime("%Y-%m"), **v,
                             "points_cost_minor": v["issued"] * value,
                             "redeemed_minor": v["redeemed"] * value,
                             "days": days, "month_days": length, "partial": days < length,
                             # the days covered, both inclusive (none: to < from)
                             "covered_from": a.date().isoformat(),
                             "covered_to": (b - dt.timedelta(days=1)).date().isoformat()})
    tier_acc: dict[tuple[str, str], int] = {}
    for day, _metric, tier, v in rollups.daily_series(s, ["paid_orders_m"], first, t,
                                                      segment=segment, by="tier"):
        key = (day.strftime("%Y-%m"), tier or NO_TIER)
        tier_acc[key] = tier_acc.get(key, 0) + v
    tiers = [{"month": m, "tier": tr, "orders": n} for (m, tr), n in sorted(tier_acc.items())]
    cohort_from = add_months(month_end, -12)
    cohort_to = min(month_end, now + dt.timedelta(microseconds=1))
    step(0.75, N_("LTV by join cohort"))
    ltv = metrics.ltv_cohorts(s, cohort_from, cohort_to)
    step(0.85, N_("cohort retention"))
    retention = cohort_retention(s, cohort_from, cohort_to, segment)
    step(1.0, N_("done"))
    return Overview(
        period=(f, t), previous=(pf, pt), segment=segment, currency=currency,
        point_value_minor=value, rows=rows, monthly=monthly_rows, tiers=tiers, ltv=ltv,
        retention=retention, history_start=begun, comparable=comparable,
    )


def cohort_retention(s: Session, f: dt.datetime, t: dt.datetime,
               segment: str | None) -> list[dict[str, Any]]:
    """Per monthly join cohort and month since joining: share of the cohort's
    members with a paid order that month (from the cohort's orders only).
    Read from rollup_cohort_months when they can answer (:func:`db.rollups.cohort_rows`),
    else from the raw orders."""
    fast = rollups.cohort_rows(s, f, t, segment=segment)
    if fast is not None:
        sizes, grid = fast
        counts = [(c, m - c, a) for c, m, a, _n, _r in grid if a > 0]
    else:
        sizes, counts = cohort_retention_raw(s, f, t, segment)
    out = []
    for c, k, n in counts:
        size = sizes.get(int(c), 0)
        out.append({"cohort": f"{int(c) // 12:04d}-{int(c) % 12 + 1:02d}",
                    "months_since_join": int(k), "members": size, "active": int(n),
                    "share": int(n) / size if size else None})
    return sorted(out, key=lambda r: (r["cohort"], r["months_since_join"]))


def cohort_retention_raw(s: Session, f: dt.datetime, t: dt.datetime, segment: str | None
                   ) -> tuple[dict[int, int], list[tuple[int, int, int]]]:
    """Cohort sizes and (cohort, months since joining, active members) from the
    members and orders tables (the definition the rollups are tested against)."""
    cohort = rollups.month_index(_m.c.joined_at)
    where = [_m.c.joined_at >= f, _m.c.joined_at < t]
    if segment:
        where.append(_m.c.segment == segment)
    sizes = {int(c): int(n) for c, n in s.execute(
        select(cohort, func.count()).where(*where).group_by(cohort))}
    since = rollups.month_index(_o.c.paid_at) - cohort
    sq = (
        select(cohort.label("c"), since.label("k"), _o.c.member_id.label("m"))
        .select_from(_o.join(_m, _m.c.id == _o.c.member_id))
        .where(*where, _o.c.status == "paid", _o.c.paid_at >= _m.c.joined_at,
               _o.c.paid_at < t)
        .subquery()
    )
    rows = s.execute(
        select(sq.c.c, sq.c.k, func.count(func.distinct(sq.c.m))).group_by(sq.c.c, sq.c.k)
    ).all()
    return sizes, [(int(c), int(k), int(n)) for c, k, n in rows]
