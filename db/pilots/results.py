"""Pilot results: array programs over both groups' orders.

Both groups' orders of the pre period (same length, just before the start)
and the pilot period are read once (integers straight from SQL) and give the
per-member totals, the daily series and the spend history of the points
cost; the lift of each metric is a difference in differences with Welch,
bootstrap and CUPED intervals (:mod:`db.stats`). The verdict is the primary
metric's, and says "lift" or "harm" only when the Welch and the bootstrap
intervals agree, the groups are the drawn sizes and there is enough data."""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

import numpy as np
import pandas as pd
from sqlalchemy import and_, case, func, literal, or_, select
from sqlalchemy.orm import Session

from db import clock, exports, program, rules, stats
from db.errors import InvalidState
from db.i18n import N_, Message
from db.models import (
    PILOT_METRICS,
    LedgerEntry,
    Order,
    Pilot,
    PilotMember,
    RuleSet,
)
from db.pilots.info import PilotInfo, get_pilot, pilot_info
from db.pilots.measures import paired
from db.pilots.parsing import BP, METRIC_LABELS, METRIC_NAMES, Figure
from db.pilots.parsing import metric_text as metric_text  # the tests import it from here
from db.pilots.parsing import min_effect_text as min_effect_text  # db.pilots exports it
from db.pilots.power import pilot_groups

# the simulation's prefix-sum spend index and tier/points arithmetic: the
# points cost recomputes published-rules accrual exactly as a simulation does
from db.simulation import (
    MS_PER_DAY,
    Cancelled,
    Progress,
    SpendIndex,
    epoch_ms,
    int_rows,
    rate_points,
    tier_ranks,
    to_epoch_ms,
)


@dataclass(frozen=True)
class MetricResult:
    metric: str
    n_pilot: int
    n_control: int
    pilot_pre: float
    pilot_during: float
    control_pre: float
    control_during: float
    welch: stats.Estimate
    bootstrap: stats.Estimate
    cuped: stats.Estimate

    @property
    def label(self) -> str:
        return METRIC_LABELS[self.metric]

    def estimates(self) -> list[stats.Estimate]:
        return [self.welch, self.bootstrap, self.cuped]


@dataclass(frozen=True)
class PointsCost:
    pilot_orders: int
    points_actual: int  # accrued on the pilot group's orders under the pilot's rules
    points_published: int  # what the published rules would have given the same orders
    point_value_minor: int
    incremental_revenue_minor: int  # spend lift x pilot members (Welch DiD)
    incremental_revenue_low_minor: int
    incremental_revenue_high_minor: int

    @property
    def extra_points(self) -> int:
        return self.points_actual - self.points_published

    @property
    def extra_cost_minor(self) -> int:
        return self.extra_points * self.point_value_minor

    @property
    def revenue_per_point_minor(self) -> float | None:
        """Incremental revenue per extra point issued (None: no extra points)."""
        return self.incremental_revenue_minor / self.extra_points if self.extra_points > 0 else None


@dataclass(frozen=True)
class PilotResults:
    pilot: PilotInfo
    as_of: dt.datetime
    pre_start: dt.datetime
    start: dt.datetime
    end: dt.datetime
    metrics: list[MetricResult]
    srm: stats.SrmResult
    cost: PointsCost
    daily: pd.DataFrame  # date, period, group, members, orders, spend_minor
    verdict_code: str
    verdict: Message  # N_ with Figure params (db.pilots.parsing)
    currency: str

    @property
    def days(self) -> float:
        return (self.end - self.start).total_seconds() / 86_400

    def metric(self, name: str) -> MetricResult:
        return next(m for m in self.metrics if m.metric == name)


def _default_as_of(s: Session, p: Pilot, now: dt.datetime) -> dt.datetime:
    """Now, but never before the latest recorded pilot order (demo data may
    run ahead of the clock) and never after the pilot's window."""
    end = min(p.planned_end_at, p.ended_at) if p.ended_at else p.planned_end_at
    last = s.scalar(select(func.max(Order.paid_at)).where(Order.pilot_id == p.id))
    as_of = max(now, last + dt.timedelta(seconds=1)) if last else now
    return min(as_of, end)


@dataclass(frozen=True)
class _WindowOrders:
    """Paid orders of a pilot's members as arrays (times in epoch ms).

    ``period``: 0 before the pre window (pilot group only, spend history for
    the points cost), 1 pre, 2 during; ``pilot``: the member is in the pilot
    group.
    """

    member: np.ndarray
    t_ms: np.ndarray
    amount: np.ndarray
    period: np.ndarray
    pilot: np.ndarray

    @classmethod
    def empty(cls) -> _WindowOrders:
        i = np.zeros(0, np.int64)
        return cls(i, i, i, np.zeros(0, np.int8), np.zeros(0, bool))


def _window_orders(s: Session, pilot_id: int, groups: pd.DataFrame, t0: dt.datetime,
                   pre_start: dt.datetime, start: dt.datetime, end: dt.datetime
                   ) -> _WindowOrders:
    """One read of both groups' paid orders in [t0, end) (rows before
    ``pre_start`` for the pilot group only): the per-member totals, the daily
    series and the spend history of the points cost all come from it.

    Driven by pilot_members and read from the covering index on orders
    (member_id, status, paid_at, amount_minor); times come out as integer
    epoch ms, the period split is exact in SQL.
    """
    pm = PilotMember.__table__.alias("pm")
    period = case((Order.paid_at < start, literal(1)), else_=literal(2))
    if t0 < pre_start:
        period = case((Order.paid_at < pre_start, literal(0)), (Order.paid_at < start, literal(1)),
                      else_=literal(2))
    q = (
        select(Order.member_id, epoch_ms(Order.paid_at, s), Order.amount_minor, period)
        .select_from(pm)
        .join(Order, Order.member_id == pm.c.member_id)
        .where(pm.c.pilot_id == pilot_id, Order.status == "paid", Order.paid_at >= t0,
               Order.paid_at < end)
    )
    if t0 < pre_start:
        q = q.where(or_(Order.paid_at >= pre_start, pm.c.grp == "pilot"))
    a = int_rows(s.connection(), q, 4)
    n = len(a)
    member, t_ms, amount = a[:, 0].copy(), a[:, 1].copy(), a[:, 2].copy()
    per = a[:, 3].astype(np.int8)
    del a
    ids = groups["member_id"].to_numpy(np.int64)
    is_pilot = (groups["grp"] == "pilot").to_numpy()
    order = np.argsort(ids)
    pos = order[np.searchsorted(ids, member, sorter=order)] if n else np.zeros(0, np.int64)
    return _WindowOrders(member, t_ms, amount, per, is_pilot[pos])


def _member_arrays(groups: pd.DataFrame, w: _WindowOrders) -> pd.DataFrame:
    """One row per assigned member (``groups`` order): orders and spend before
    and during - :func:`member_table`'s shape, from the arrays."""
    ids = groups["member_id"].to_numpy(np.int64)
    order = np.argsort(ids)
    out = pd.DataFrame({"member_id": ids, "grp": groups["grp"].to_numpy()})
    for code, name in ((1, "pre"), (2, "during")):
        sel = w.period == code
        pos = order[np.searchsorted(ids, w.member[sel], sorter=order)]
        orders = np.bincount(pos, minlength=len(ids)).astype(np.int64)
        spend = np.zeros(len(ids), dtype=np.int64)
        np.add.at(spend, pos, w.amount[sel])
        out[f"orders_{name}"] = orders
        out[f"spend_minor_{name}"] = spend
    return out


def _daily_arrays(w: _WindowOrders, t0: dt.datetime, t1: dt.datetime, start: dt.datetime,
                  sizes: dict[str, int]) -> pd.DataFrame:
    """Orders and spend per group and UTC day over [t0, t1), every day listed."""
    day0 = to_epoch_ms(dt.datetime.combine(t0.date(), dt.time())) // MS_PER_DAY
    last = to_epoch_ms(dt.datetime.combine((t1 - dt.timedelta(microseconds=1)).date(),
                                           dt.time())) // MS_PER_DAY
    n_days = int(last - day0 + 1)
    sel = w.period > 0
    day = np.clip(w.t_ms[sel] // MS_PER_DAY - day0, 0, n_days - 1)
    # pilot rows first, then control (as the groups are listed)
    key = np.where(w.pilot[sel], 0, n_days) + day
    orders = np.bincount(key, minlength=2 * n_days).astype(np.int64)
    spend = np.zeros(2 * n_days, dtype=np.int64)
    np.add.at(spend, key, w.amount[sel])
    dates = pd.date_range(pd.Timestamp(t0).floor("D"), periods=n_days, freq="D")
    out = pd.DataFrame({
        "date": dates.append(dates),
        "group": ["pilot"] * n_days + ["control"] * n_days,
        "members": np.repeat([sizes.get("pilot", 0), sizes.get("control", 0)], n_days
                             ).astype(np.int64),
        "orders": orders,
        "spend_minor": spend,
    })
    out["period"] = np.where(out["date"] < pd.Timestamp(start).floor("D"), "pre", "during")
    return out[["date", "period", "group", "members", "orders", "spend_minor"]]


@dataclass(frozen=True)
class _PilotOrders:
    """The pilot's own orders in the window (what its rules accrued on)."""

    member: np.ndarray
    t_ms: np.ndarray
    amount: np.ndarray
    points: np.ndarray  # accrued under the pilot's rules
    published: list[tuple[int, rules.Rules]]  # (effective epoch ms, rules), oldest first
    version: np.ndarray  # index into ``published`` in force at each order (-1: none)

    @property
    def lookback_days(self) -> int | None:
        """Days of spend history the tiers of these orders need (None: lifetime)."""
        used = [self.published[v][1].tier_window_days for v in np.unique(self.version) if v >= 0]
        if any(w is None for w in used):
            return None
        return max(used, default=0)


def _pilot_orders(s: Session, p: Pilot, start: dt.datetime, end: dt.datetime) -> _PilotOrders:
    """The pilot's orders in [start, end) with their accrual (index on orders.pilot_id)."""
    a = int_rows(s.connection(), (
        select(Order.member_id, epoch_ms(Order.paid_at, s), Order.amount_minor,
               func.coalesce(LedgerEntry.amount, 0))
        .outerjoin(LedgerEntry, and_(LedgerEntry.order_id == Order.id,
                                     LedgerEntry.kind == "accrual"))
        .where(Order.pilot_id == p.id, Order.status == "paid", Order.paid_at >= start,
               Order.paid_at < end)
    ), 4)
    member, t_ms, amount, points = (a[:, i].copy() for i in range(4))
    del a
    published = [
        (to_epoch_ms(rs.effective_at), rules.rules_from_rows(rs))
        for rs in s.scalars(select(RuleSet).where(RuleSet.status == "published")
                            .order_by(RuleSet.effective_at, RuleSet.id))
    ]
    eff = np.array([e for e, _ in published], dtype=np.int64)
    version = np.searchsorted(eff, t_ms, side="right") - 1
    return _PilotOrders(member, t_ms, amount, points, published, version)


def _points_cost(s: Session, pilot_id: int, po: _PilotOrders, w: _WindowOrders,
                 t0: dt.datetime) -> tuple[int, int, int, int]:
    """(pilot orders, points accrued, points the published rules would have
    given, point value): the published rules' accrual recomputed as the
    simulation does (:class:`db.simulation.SpendIndex`), with the pilot
    group's spend history taken from the window's orders (read from ``t0``)
    plus, for lifetime tiers, one sum per member of everything before it."""
    pv = po.published[-1][1].point_value_minor if po.published else 100
    n, actual = len(po.member), int(po.points.sum())
    if not n or not po.published:
        return n, actual, 0, pv
    origin_ms = to_epoch_ms(t0 - dt.timedelta(days=1))
    base = None
    if po.lookback_days is None:
        b = int_rows(s.connection(), (
            select(Order.member_id, func.sum(Order.amount_minor))
            .join(PilotMember, and_(PilotMember.member_id == Order.member_id,
                                    PilotMember.pilot_id == pilot_id,
                                    PilotMember.grp == "pilot"))
            .where(Order.status == "paid", Order.paid_at < t0)
            .group_by(Order.member_id)
        ), 2)
        base = (b[:, 0].copy(), b[:, 1].copy())
    hist = w.pilot
    # every member the index is asked about or given a base for: a base of a
    # member missing from the universe would land on another member's rank
    universe = np.unique(np.concatenate([w.member[hist], po.member]
                                        + ([base[0]] if base is not None else [])))
    idx = SpendIndex(universe, w.member[hist], w.t_ms[hist] - origin_ms, w.amount[hist], base)
    o_t = po.t_ms - origin_ms
    pub_points = np.zeros(n, dtype=np.int64)
    for v in np.unique(po.version):
        if v < 0:
            continue
        r = po.published[v][1]
        sel = po.version == v
        window = r.tier_window_days * MS_PER_DAY if r.tier_window_days else None
        rank = tier_ranks(r, idx.before(po.member[sel], o_t[sel], window))
        pub_points[sel] = rate_points(r, po.amount[sel], rank, referral=False)
    return n, actual, int(pub_points.sum()), pv


BOOT_LARGE_GROUP = 20_000


def bootstrap_resamples(n_pilot: int, n_control: int) -> int:
    """2,000 resamples, 1,000 when a group exceeds 20,000 members: the cost is
    resamples x members, and at that size the percentile interval's Monte
    Carlo error is far below its width (and Welch agrees with it anyway)."""
    return 1000 if max(n_pilot, n_control) > BOOT_LARGE_GROUP else 2000


def pilot_results(
    s: Session, pilot_id: int, as_of: dt.datetime | None = None, *, n_boot: int | None = None,
    now: dt.datetime | None = None, progress: Progress | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> PilotResults:
    """Pilot vs control, before vs during, for every metric, with the verdict.

    The orders are read twice: the pilot's own orders with their accrual (by
    the index on orders.pilot_id) and both groups' orders of the pre + during
    window once (from the covering member index); the per-member totals, the
    daily series and the points cost are array work on those. ``progress``
    (fraction, message) is called between the steps; ``cancelled()`` true
    there raises :class:`db.simulation.Cancelled` (the background callback's
    Cancel).
    """

    def step(frac: float, msg: str) -> None:
        if cancelled is not None and cancelled():
            raise Cancelled("pilot results cancelled")
        if progress is not None:
            progress(frac, msg)

    step(0.02, N_("reading the pilot"))
    p = get_pilot(s, pilot_id)
    if p.status in ("draft", "cancelled"):
        raise InvalidState(N_("pilot %(id)s is %(status)s: it has no results (it never ran)",
                               id=pilot_id, status=p.status))
    info = pilot_info(s, pilot_id)
    now = now or clock.utcnow()
    as_of = as_of or _default_as_of(s, p, now)
    start = p.start_at
    end = max(start, min(as_of, info.window_end))
    length = end - start
    pre_start = start - length
    groups = pilot_groups(s, pilot_id)
    n_p = int((groups["grp"] == "pilot").sum())
    n_c = int((groups["grp"] == "control").sum())
    step(0.08, N_("reading the pilot group's orders"))
    po = _pilot_orders(s, p, start, end)
    back = po.lookback_days
    t0 = pre_start if back is None else min(pre_start, start - dt.timedelta(days=back))
    step(0.15, N_("reading the orders of %(n)s members", n=Figure(n_p + n_c, ",d")))
    w = _window_orders(s, pilot_id, groups, t0, pre_start, start, end) if length else (
        _WindowOrders.empty())
    t = _member_arrays(groups[["member_id", "grp"]], w)
    by_group = {g: t[t["grp"] == g] for g in ("pilot", "control")}
    step(0.4, N_("recomputing points under the published rules"))
    n_orders, actual, published, pv = _points_cost(s, pilot_id, po, w, t0)
    daily = _daily_arrays(w, pre_start, end, start, {"pilot": n_p, "control": n_c}) if (
        length) else pd.DataFrame(columns=["date", "period", "group", "members", "orders",
                                           "spend_minor"])
    del w
    if n_boot is None:
        n_boot = bootstrap_resamples(n_p, n_c)
    results = []
    for k, metric in enumerate(PILOT_METRICS):
        step(0.5 + 0.48 * k / len(PILOT_METRICS),
             N_("%(metric)s: Welch, bootstrap (%(n)s), CUPED", metric=METRIC_NAMES[metric],
                n=Figure(n_boot, ",d")))
        pre_p, post_p = paired(by_group["pilot"], metric)
        pre_c, post_c = paired(by_group["control"], metric)
        results.append(MetricResult(
            metric, len(pre_p), len(pre_c),
            float(pre_p.mean()) if len(pre_p) else float("nan"),
            float(post_p.mean()) if len(post_p) else float("nan"),
            float(pre_c.mean()) if len(pre_c) else float("nan"),
            float(post_c.mean()) if len(post_c) else float("nan"),
            stats.did_welch(pre_p, post_p, pre_c, post_c),
            stats.did_bootstrap(pre_p, post_p, pre_c, post_c, n_boot=n_boot,
                                seed=(p.random_seed + k) & 0xFFFFFFFF),
            stats.did_cuped(pre_p, post_p, pre_c, post_c),
        ))
    step(0.99, N_("verdict"))
    srm = stats.srm_check(n_p, n_c, p.pilot_share_bp / BP)
    spend = next(r for r in results if r.metric == "spend_per_member")

    def rev(x: float) -> int:
        return int(round(x * 100 * n_p)) if np.isfinite(x) else 0

    cost = PointsCost(n_orders, actual, published, pv, rev(spend.welch.lift),
                      rev(spend.welch.ci_low), rev(spend.welch.ci_high))
    primary = next(r for r in results if r.metric == p.primary_metric)
    currency = program.currency(s)
    code, sentence = _verdict(primary, srm, length, Decimal(p.min_effect or "0"), currency)
    step(1.0, N_("done"))
    return PilotResults(info, as_of, pre_start, start, end, results, srm, cost, daily, code,
                        sentence, currency)


VERDICTS = {
    "lift": N_("Significant lift"),
    "lift_below_minimum": N_("Statistically significant but below the minimum effect"),
    "harm": N_("Harm"),
    "no_effect": N_("No detectable effect"),
    "too_little_data": N_("Too little data"),
    "srm": N_("Sample ratio mismatch"),
}


def _verdict(m: MetricResult, srm: stats.SrmResult, length: dt.timedelta, min_effect: Decimal,
             currency: str = "") -> tuple[str, Message]:
    """The primary metric's verdict, never stronger than the evidence and never
    self-contradictory: a lift smaller than the minimum effect the pilot was set
    up to find is its own category, not a "significant lift" with a caveat.
    Values are in the metric's unit, money with the program currency; the
    sentence is a message (``N_``) whose numbers are :class:`Figure` params."""
    label, name = m.label, METRIC_NAMES[m.metric]
    if srm.mismatch:
        return ("srm", N_(
            "Sample ratio mismatch: the groups are %(observed)s pilot, %(expected)s was drawn "
            "(p = %(p)s). The assignment is broken, so no conclusion can be drawn from these "
            "results.", observed=Figure(srm.observed_share, ".1%"),
            expected=Figure(srm.expected_share, ".1%"), p=Figure(srm.p_value, ".2g")))
    if length < dt.timedelta(days=1):
        return ("too_little_data",
                N_("Too little data to judge: the pilot has run for less than a day."))
    w, b = m.welch, m.bootstrap
    code, sentence = stats.verdict(w)
    if code == "too_little_data":
        return code, N_("%(metric)s: %(sentence)s", metric=label, sentence=sentence)

    def v(x: float) -> Figure:
        return Figure(x, metric=m.metric, currency=currency, signed=True)

    interval = N_("95%% CI %(low)s to %(high)s, p = %(p)s", low=v(w.ci_low), high=v(w.ci_high),
                  p=Figure(w.p_value, ".3g"))
    minimum = Figure(float(min_effect), metric=m.metric, currency=currency, effect=True) if (
        min_effect) else ""
    if code in ("lift", "harm") and not ((b.ci_low > 0) if code == "lift" else (b.ci_high < 0)):
        return ("no_effect", N_(
            "No clear effect on %(metric)s: the Welch interval (%(low)s to %(high)s) excludes "
            "zero but the bootstrap interval (%(boot_low)s to %(boot_high)s) does not; treat it "
            "as not shown yet.", metric=name, low=v(w.ci_low), high=v(w.ci_high),
            boot_low=v(b.ci_low), boot_high=v(b.ci_high)))
    if code == "lift" and min_effect and w.lift < float(min_effect):
        return ("lift_below_minimum", N_(
            "%(metric)s: Statistically significant but below the minimum effect of %(minimum)s: "
            "%(lift)s (%(interval)s). The pilot changed %(name)s, but by less than the effect "
            "it was set up to find.", metric=label, minimum=minimum, lift=v(w.lift),
            interval=interval, name=name))
    if code == "lift":
        tail: Message | str = ""
        if min_effect and w.ci_low < float(min_effect):
            tail = N_(" The estimate reaches the minimum effect of %(minimum)s, but the "
                      "interval's lower end is below it, so the lift may be smaller than that.",
                      minimum=minimum)
        elif min_effect:
            tail = N_(" Even the interval's lower end is above the minimum effect of "
                      "%(minimum)s.", minimum=minimum)
        return ("lift", N_("%(metric)s: Significant lift: %(lift)s (%(interval)s).%(tail)s",
                           metric=label, lift=v(w.lift), interval=interval, tail=tail))
    if code == "harm":
        return ("harm", N_("%(metric)s: Harm: the pilot group did worse by %(amount)s "
                           "(%(interval)s).", metric=label,
                           amount=Figure(abs(w.lift), metric=m.metric, currency=currency),
                           interval=interval))
    tail = ""
    if min_effect and w.ci_high < float(min_effect):
        tail = N_(" A lift as large as the minimum effect of %(minimum)s is ruled out.",
                  minimum=minimum)
    return ("no_effect", N_(
        "%(metric)s: No detectable effect: %(lift)s with a 95%% CI from %(low)s to %(high)s; "
        "an effect of that size either way cannot be ruled out.%(tail)s", metric=label,
        lift=v(w.lift), low=v(w.ci_low), high=v(w.ci_high), tail=tail))


# the export's column and item names, marked so the page can name them in the
# user's language (the English names are the machine names, as they always were)
CSV_NAMES = {
    "pilot_id": N_("pilot_id"), "pilot": N_("pilot"), "metric": N_("metric"),
    "method": N_("method"), "lift": N_("lift"), "ci_low": N_("ci_low"),
    "ci_high": N_("ci_high"), "p_value": N_("p_value"), "n_pilot": N_("n_pilot"),
    "n_control": N_("n_control"), "pilot_pre_mean": N_("pilot_pre_mean"),
    "pilot_during_mean": N_("pilot_during_mean"), "control_pre_mean": N_("control_pre_mean"),
    "control_during_mean": N_("control_during_mean"), "primary": N_("primary"),
    "item": N_("item"), "value": N_("value"), "verdict": N_("verdict"),
    "srm_p_value": N_("srm_p_value"), "srm_expected_share": N_("srm_expected_share"),
    "srm_observed_share": N_("srm_observed_share"), "pilot_orders": N_("pilot_orders"),
    "points_actual": N_("points_actual"), "points_published_rules": N_("points_published_rules"),
    "extra_points": N_("extra_points"), "extra_cost_minor": N_("extra_cost_minor"),
    "incremental_revenue_minor": N_("incremental_revenue_minor"),
    "incremental_revenue_low_minor": N_("incremental_revenue_low_minor"),
    "incremental_revenue_high_minor": N_("incremental_revenue_high_minor"),
    "revenue_per_point_minor": N_("revenue_per_point_minor"),
}


def results_csv(r: PilotResults, label: Callable[[str], str] = str) -> str:
    """The export: one row per metric and method, then the cost and the SRM check.

    ``label`` names the columns and items (and writes the title line) from
    their marked names (:data:`CSV_NAMES`, ``N_``): the web layer passes one
    in the user's language; by default the English machine names."""

    def name(key: str) -> str:
        return label(CSV_NAMES[key])

    rows = []
    for m in r.metrics:
        for e in m.estimates():
            rows.append({
                "pilot_id": r.pilot.id, "pilot": r.pilot.name, "metric": m.metric,
                "method": e.method, "lift": e.lift, "ci_low": e.ci_low, "ci_high": e.ci_high,
                "p_value": e.p_value, "n_pilot": e.n_pilot, "n_control": e.n_control,
                "pilot_pre_mean": m.pilot_pre, "pilot_during_mean": m.pilot_during,
                "control_pre_mean": m.control_pre, "control_during_mean": m.control_during,
                "primary": m.metric == r.pilot.primary_metric,
            })
    df = pd.DataFrame(rows)
    df.columns = [name(c) for c in df.columns]
    out = io.StringIO()
    exports.write_rows(out, [[label(N_(
        "# pilot %(id)s %(name)s; pre %(pre_start)s to %(start)s; during to %(end)s; money in "
        "%(currency)s", id=str(r.pilot.id), name=repr(r.pilot.name),
        pre_start=f"{r.pre_start:%Y-%m-%d %H:%M}", start=f"{r.start:%Y-%m-%d %H:%M}",
        end=f"{r.end:%Y-%m-%d %H:%M}", currency=r.currency))]])
    exports.frame_to_csv(df, out, float_format="%.6g")
    c = r.cost
    out.write("\n")
    exports.write_rows(out, [(name(k), v) for k, v in (
        ("item", name("value")), ("verdict", r.verdict_code),
        ("srm_p_value", f"{r.srm.p_value:.6g}"),
        ("srm_expected_share", f"{r.srm.expected_share:.4f}"),
        ("srm_observed_share", f"{r.srm.observed_share:.4f}"),
        ("pilot_orders", c.pilot_orders), ("points_actual", c.points_actual),
        ("points_published_rules", c.points_published), ("extra_points", c.extra_points),
        ("extra_cost_minor", c.extra_cost_minor),
        ("incremental_revenue_minor", c.incremental_revenue_minor),
        ("incremental_revenue_low_minor", c.incremental_revenue_low_minor),
        ("incremental_revenue_high_minor", c.incremental_revenue_high_minor),
        ("revenue_per_point_minor", "" if c.revenue_per_point_minor is None
         else f"{c.revenue_per_point_minor:.4f}"),
    )])
    return out.getvalue()
