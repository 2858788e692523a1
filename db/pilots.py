"""Pilots: try a draft rule set on part of a population, measure against a random control.

The life of a pilot: ``create_pilot`` (draft: eligible population, groups
drawn and stored) -> ``power_preview`` / ``pilot_power`` (what the groups can
detect, from the pre-period data) -> ``request_start`` (one supervisor) ->
``start_pilot`` (a second supervisor approves; running: the engine
applies the pilot's rule set to pilot-group orders, see
:meth:`db.rules.RuleBook.for_member`) -> ``end_pilot`` (everyone back on the
published rules) -> ``rollout_draft`` (a normal draft that goes through the
approval).

Assignment: the eligible population (filter or uploaded list, active
members, minus members already in a draft or running pilot - in either
group) is stratified by tier; within each tier a permutation drawn from
``numpy.random.default_rng([seed, stratum index])`` sends the first
``round(share x n)`` members to the pilot group and the rest to the
control group, so the draw is reproducible from the stored seed and the
pilot share per tier is exact to one member.

Results (``pilot_results``) are array programs: both groups' orders of the
pre period (same length, just before the start) and the pilot period are
read once (integers straight from SQL) and give the per-member totals, the
daily series and the spend history of the points cost; the lift of each metric is a difference in
differences with Welch, bootstrap and CUPED intervals (:mod:`db.stats`).
The verdict is the primary metric's, and says "lift" or "harm" only when
the Welch and the bootstrap intervals agree, the groups are the drawn
sizes and there is enough data.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import and_, case, func, insert, literal, or_, select, text
from sqlalchemy.orm import Session

from db import audit, exports, rules, stats
from db.actor import Actor
from db.errors import Forbidden, FormErrors, InvalidState, NotFound, ValidationError, too_large
from db.models import (
    PILOT_METRICS,
    SEGMENTS,
    LedgerEntry,
    Member,
    Order,
    Pilot,
    PilotMember,
    ProgramSettings,
    RuleSet,
    StaffUser,
    Tier,
)

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
from db.text import MAX_REASON, check_length

BP = 10_000
MAX_CSV_ROWS = 1_000_000
MAX_CSV_PROBLEMS = 50
MAX_PILOT_DAYS = 366
ADVISORY_LOCK_KEY = 70_007  # PostgreSQL advisory lock serialising pilot assignment
NO_TIER = "(no tier)"

SEGMENT_LABELS = {
    "regular": "Regular", "student": "Students", "pensioner": "Pensioners",
    "large_family": "Large families", "corporate": "Corporate",
}
METRIC_LABELS = {
    "spend_per_member": "Spend per member",
    "orders_per_member": "Orders per member",
    "average_check": "Average check",
    "active_rate": "Active rate",
}
# what one unit of each metric is ("money" = the program currency)
METRIC_UNITS = {
    "spend_per_member": "money",
    "orders_per_member": "orders",
    "average_check": "money",
    "active_rate": "share of members",
}


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


# --------------------------------------------------------------------------
# input parsing


@dataclass(frozen=True)
class PopulationFilter:
    """Who may take part; empty lists mean "any"."""

    segments: tuple[str, ...] = ()
    tiers: tuple[str, ...] = ()
    joined_from: dt.date | None = None
    joined_to: dt.date | None = None  # inclusive
    active_within_days: int | None = None  # a paid order in the N days before the draw

    def as_dict(self) -> dict[str, Any]:
        return {
            "segments": list(self.segments),
            "tiers": list(self.tiers),
            "joined_from": self.joined_from.isoformat() if self.joined_from else None,
            "joined_to": self.joined_to.isoformat() if self.joined_to else None,
            "active_within_days": self.active_within_days,
        }

    def describe(self) -> str:
        parts = []
        if self.segments:
            parts.append("segments " + ", ".join(
                SEGMENT_LABELS.get(x, x).lower() for x in self.segments))
        if self.tiers:
            parts.append("tiers " + ", ".join(self.tiers))
        if self.joined_from or self.joined_to:
            parts.append(f"joined {self.joined_from or '…'} to {self.joined_to or '…'}")
        if self.active_within_days:
            parts.append(f"ordered in the last {self.active_within_days} days")
        return "; ".join(parts) or "all active members"


def _date(value: Any, fld: str) -> dt.date | None:
    if value in (None, ""):
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value)[:10])
    except ValueError:
        raise ValidationError(fld, "must be a date like 2025-01-31") from None


def parse_population(raw: dict[str, Any] | PopulationFilter | None) -> PopulationFilter:
    """Validate a population filter from the form (or pass one through)."""
    if isinstance(raw, PopulationFilter):
        return raw
    raw = raw or {}
    segments = tuple(raw.get("segments") or ())
    bad = [x for x in segments if x not in SEGMENTS]
    if bad:
        raise ValidationError("segments", "choose the segments from the list")
    tiers = tuple(str(t) for t in raw.get("tiers") or ())
    jf, jt = _date(raw.get("joined_from"), "joined_from"), _date(raw.get("joined_to"), "joined_to")
    if jf and jt and jf > jt:
        raise ValidationError("joined_from", "the join date range starts after it ends")
    days = raw.get("active_within_days")
    if days in (None, ""):
        days = None
    else:
        try:
            days = int(days)
        except (TypeError, ValueError):
            raise ValidationError("active_within_days", "must be a whole number of days") from None
        if days > 3660:
            raise ValidationError("active_within_days", too_large("3,660 days"))
        if days < 1:
            raise ValidationError("active_within_days", "must be 1 to 3,660 days")
    return PopulationFilter(segments, tiers, jf, jt, days)


def parse_share_bp(value: Any) -> int:
    """'20' / 20 / '20 %' (percent of the population in the pilot group) -> 2000 bp."""
    if isinstance(value, bool):
        raise ValidationError("pilot_share", "must be a percentage such as 50")
    try:
        d = Decimal(str(value).strip().rstrip("%").strip().replace(",", "."))
    except (InvalidOperation, AttributeError):
        raise ValidationError("pilot_share", "must be a percentage such as 50") from None
    if d.is_finite() and d > 99:
        raise ValidationError("pilot_share", too_large("99 %") + " (1 to 99 %)")
    if not d.is_finite() or not Decimal("1") <= d <= Decimal("99"):
        raise ValidationError("pilot_share", "must be between 1 and 99 %")
    bp = d * 100
    if bp != bp.to_integral_value():
        raise ValidationError("pilot_share", "at most 2 decimals")
    return int(bp)


def parse_min_effect(value: Any, metric: str) -> Decimal:
    """The smallest lift worth detecting, in the metric's unit (> 0)."""
    try:
        d = Decimal(str(value).strip().replace(",", "."))
    except (InvalidOperation, AttributeError):
        raise ValidationError("min_effect", "must be a positive number") from None
    if not d.is_finite() or d <= 0:
        raise ValidationError("min_effect", "must be a positive number")
    if metric == "active_rate" and d >= 1:
        raise ValidationError("min_effect", "the active rate is a share: give e.g. 0.02 for 2 pp")
    if d > Decimal(10) ** 9:
        raise ValidationError("min_effect", too_large("1,000,000,000"))
    return d


@dataclass(frozen=True)
class CsvProblem:
    line: int  # 1-based line in the file
    value: str
    reason: str

    def __str__(self) -> str:
        shown = self.value if len(self.value) <= 40 else self.value[:37] + "..."
        return f"line {self.line}: {shown!r}: {self.reason}"


class MemberFileError(ValidationError):
    """An uploaded member list with bad lines; nothing is created."""

    def __init__(self, problems: list[CsvProblem], total: int | None = None) -> None:
        total = len(problems) if total is None else total
        more = f" (and {total - len(problems)} more)" if total > len(problems) else ""
        super().__init__(
            "member_file",
            f"{total} bad line(s){more}: " + "; ".join(str(p) for p in problems[:5]),
        )
        self.problems = problems
        self.total = total


def parse_member_csv(s: Session, content: str | bytes) -> list[int]:
    """Member ids from an uploaded file: one column ``member_id`` (numbers) or
    ``customer_id`` (the shop's ids); the header is optional (without one,
    the values are member ids). Every bad line is named; any bad line means
    the whole file is refused."""
    if isinstance(content, bytes):
        try:
            content = content.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise MemberFileError([CsvProblem(1, "", "the file is not UTF-8 text")]) from None
    content = content.lstrip("\ufeff")
    rows = list(csv.reader(io.StringIO(content)))
    problems: list[CsvProblem] = []
    total_bad = 0

    def bad(line: int, value: str, reason: str) -> None:
        nonlocal total_bad
        total_bad += 1
        if len(problems) < MAX_CSV_PROBLEMS:
            problems.append(CsvProblem(line, value, reason))

    lines = [(i + 1, r) for i, r in enumerate(rows) if any(c.strip() for c in r)]
    if not lines:
        raise MemberFileError([CsvProblem(1, "", "the file has no member ids")])
    kind = "member_id"
    first_line, first = lines[0]
    head = first[0].strip().lower() if first else ""
    if head in ("member_id", "customer_id"):
        kind = head
        if len([c for c in first if c.strip()]) > 1:
            bad(first_line, ",".join(first), "expected one column (member_id or customer_id)")
        lines = lines[1:]
    if not lines:
        raise MemberFileError([CsvProblem(first_line, head, "the file has no member ids")])
    if len(lines) > MAX_CSV_ROWS:
        raise MemberFileError(
            [CsvProblem(lines[MAX_CSV_ROWS][0], "", f"more than {MAX_CSV_ROWS:,} lines")]
        )
    values: list[tuple[int, str]] = []
    for line, row in lines:
        cells = [c.strip() for c in row]
        if len([c for c in cells if c]) > 1:
            bad(line, ",".join(row), "expected one value per line")
            continue
        values.append((line, next(c for c in cells if c)))
    wanted: list[tuple[int, str, Any]] = []
    for line, v in values:
        if kind == "member_id":
            if not v.isdigit() or len(v) > 18:
                bad(line, v, "not a number (expected a member id)")
                continue
            wanted.append((line, v, int(v)))
        else:
            if len(v) > 64:
                bad(line, v, "customer id longer than 64 characters")
                continue
            wanted.append((line, v, v))
    keys = sorted({k for _, _, k in wanted})
    found: dict[Any, int] = {}
    col = Member.id if kind == "member_id" else Member.external_id
    for start in range(0, len(keys), 5000):
        chunk = keys[start : start + 5000]
        for mid, key in s.execute(select(Member.id, col).where(col.in_(chunk))):
            found[key] = mid
    seen: dict[int, int] = {}
    ids: list[int] = []
    for line, v, k in wanted:
        mid = found.get(k)
        if mid is None:
            bad(line, v, "unknown member")
        elif mid in seen:
            bad(line, v, f"duplicate of line {seen[mid]}")
        else:
            seen[mid] = line
            ids.append(mid)
    if total_bad:
        raise MemberFileError(sorted(problems, key=lambda p: p.line), total_bad)
    return ids


# --------------------------------------------------------------------------
# population and assignment


def _lock(s: Session) -> None:
    """Serialise pilot assignment: two pilots created at once must not share members.

    PostgreSQL: a transaction-level advisory lock. SQLite: write sessions
    already begin IMMEDIATE, so writers are serialised by the database lock.
    """
    if s.get_bind().dialect.name == "postgresql":
        s.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": ADVISORY_LOCK_KEY})


def _busy_members():
    """Members in a draft or running pilot (either group)."""
    return (
        select(PilotMember.member_id)
        .join(Pilot, Pilot.id == PilotMember.pilot_id)
        .where(Pilot.status.in_(("draft", "running")))
    )


def eligible_population(
    s: Session,
    *,
    population: PopulationFilter | None = None,
    member_ids: list[int] | None = None,
    at: dt.datetime | None = None,
) -> tuple[pd.DataFrame, int]:
    """(members that may take part: ``member_id``, ``stratum``; how many were
    left out because they are inactive or already in a draft/running pilot).

    With ``member_ids`` (an uploaded list) the filter is not used.
    """
    at = at or utcnow()
    q = select(Member.id.label("member_id"), Member.tier.label("stratum")).where(
        Member.status == "active"
    )
    if member_ids is None:
        f = population or PopulationFilter()
        if f.segments:
            q = q.where(Member.segment.in_(f.segments))
        if f.tiers:
            q = q.where(Member.tier.in_(f.tiers))
        if f.joined_from:
            q = q.where(Member.joined_at >= dt.datetime.combine(f.joined_from, dt.time()))
        if f.joined_to:
            q = q.where(
                Member.joined_at < dt.datetime.combine(f.joined_to, dt.time())
                + dt.timedelta(days=1)
            )
        if f.active_within_days:
            q = q.where(
                Member.id.in_(
                    select(Order.member_id).where(
                        Order.status == "paid",
                        Order.paid_at >= at - dt.timedelta(days=f.active_within_days),
                        Order.paid_at < at,
                        Order.member_id.is_not(None),
                    )
                )
            )
        candidates = pd.DataFrame(s.execute(q).all(), columns=["member_id", "stratum"])
        busy = set(s.scalars(_busy_members()))
        keep = ~candidates["member_id"].isin(busy)
        left_out = int((~keep).sum())
    else:
        wanted = pd.Index(member_ids)
        candidates = pd.DataFrame(s.execute(q).all(), columns=["member_id", "stratum"])
        candidates = candidates[candidates["member_id"].isin(wanted)]
        busy = set(s.scalars(_busy_members()))
        keep = ~candidates["member_id"].isin(busy)
        left_out = len(wanted) - int(keep.sum())
    out = candidates[keep].copy()
    out["member_id"] = out["member_id"].astype(np.int64)
    out["stratum"] = out["stratum"].fillna(NO_TIER).astype(str)
    return out.reset_index(drop=True), left_out


def assign_groups(population: pd.DataFrame, share_bp: int, seed: int) -> pd.DataFrame:
    """Stratified random assignment: ``member_id``, ``stratum``, ``grp``.

    Within each stratum (sorted by name; members sorted by id) a permutation
    from ``default_rng([seed, k])`` puts the first ``round(share x n)``
    members in the pilot group. The same population, share and seed always
    give the same groups.
    """
    if population.empty:
        return pd.DataFrame({"member_id": pd.Series([], dtype=np.int64),
                             "stratum": pd.Series([], dtype=str), "grp": pd.Series([], dtype=str)})
    pop = population.sort_values(["stratum", "member_id"]).reset_index(drop=True)
    grp = np.empty(len(pop), dtype=object)
    for k, (_stratum, idx) in enumerate(pop.groupby("stratum", sort=True).indices.items()):
        n = len(idx)
        n_pilot = (n * share_bp + BP // 2) // BP  # round half up, integers only
        perm = np.random.default_rng([int(seed) & 0xFFFFFFFF, k]).permutation(n)
        g = np.full(n, "control", dtype=object)
        g[perm[:n_pilot]] = "pilot"
        grp[idx] = g
    pop["grp"] = grp
    return pop[["member_id", "stratum", "grp"]]


# --------------------------------------------------------------------------
# metrics per member


def _period_aggregates(
    s: Session, t0: dt.datetime, t1: dt.datetime, pilot_id: int | None = None,
    split_at: dt.datetime | None = None,
) -> pd.DataFrame:
    """Paid orders and spend per member in [t0, t1) (and per period when split)."""
    period = (
        case((Order.paid_at < split_at, literal("pre")), else_=literal("during"))
        if split_at is not None else literal("pre")
    )
    q = (
        select(Order.member_id, period.label("period"), func.count().label("orders"),
               func.sum(Order.amount_minor).label("spend_minor"))
        .where(Order.status == "paid", Order.member_id.is_not(None),
               Order.paid_at >= t0, Order.paid_at < t1)
        .group_by(Order.member_id, period)
    )
    if pilot_id is not None:
        q = q.join(PilotMember, and_(PilotMember.member_id == Order.member_id,
                                     PilotMember.pilot_id == pilot_id))
    df = pd.DataFrame(s.execute(q).all(), columns=["member_id", "period", "orders", "spend_minor"])
    df["orders"] = df["orders"].astype(np.int64)
    df["spend_minor"] = df["spend_minor"].astype(np.int64)
    return df


def _member_table(groups: pd.DataFrame, agg: pd.DataFrame) -> pd.DataFrame:
    """One row per assigned member: orders and spend before and during (zeros filled)."""
    wide = agg.pivot_table(index="member_id", columns="period", values=["orders", "spend_minor"],
                           aggfunc="sum", fill_value=0)
    wide.columns = [f"{a}_{b}" for a, b in wide.columns]
    t = groups.set_index("member_id").join(wide, how="left")
    for c in ("orders_pre", "orders_during", "spend_minor_pre", "spend_minor_during"):
        if c not in t:
            t[c] = 0
        t[c] = t[c].fillna(0).astype(np.int64)
    return t.reset_index()


def metric_values(t: pd.DataFrame, metric: str, period: str) -> np.ndarray:
    """Per-member values of ``metric`` in ``period`` (money in currency units)."""
    orders = t[f"orders_{period}"].to_numpy(np.float64)
    spend = t[f"spend_minor_{period}"].to_numpy(np.float64) / 100
    if metric == "spend_per_member":
        return spend
    if metric == "orders_per_member":
        return orders
    if metric == "active_rate":
        return (orders > 0).astype(np.float64)
    if metric == "average_check":
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(orders > 0, spend / np.maximum(orders, 1), np.nan)
    raise ValidationError("primary_metric", "choose a metric from the list")


def _paired(g: pd.DataFrame, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """(pre, during) values of one group's members; the average check only
    exists for members who ordered in both periods."""
    pre, post = metric_values(g, metric, "pre"), metric_values(g, metric, "during")
    ok = np.isfinite(pre) & np.isfinite(post)
    return pre[ok], post[ok]


# --------------------------------------------------------------------------
# power before the start


@dataclass(frozen=True)
class PowerPreview:
    metric: str
    min_effect: float
    pre_start: dt.datetime
    pre_end: dt.datetime
    n_pilot: int
    n_control: int
    left_out: int
    mean: float  # of the metric per member over the pre window
    sd: float  # of the metric per member
    sd_change: float  # of the change between two consecutive pre windows (what DiD sees)
    required_total: int | None
    power: float | None
    strata: dict[str, tuple[int, int]] = field(default_factory=dict)  # tier -> (pilot, control)

    @property
    def enough(self) -> bool:
        return self.required_total is not None and self.n_pilot + self.n_control >= (
            self.required_total
        )

    def sentence(self) -> str:
        if self.power is None or self.required_total is None:
            return ("No estimate: the population had no orders in the pre period, so the "
                    "variation of the metric is unknown.")
        verdict = ("enough" if self.enough else "not enough")
        return (
            f"To detect a lift of {self.min_effect:g} in {METRIC_LABELS[self.metric].lower()} "
            f"with 80% power at the 5% level, about {self.required_total:,} members are needed "
            f"in total; the drawn groups ({self.n_pilot:,} pilot + {self.n_control:,} control) "
            f"are {verdict}: power {self.power:.0%}."
        )


def _preview(
    s: Session, groups: pd.DataFrame, metric: str, min_effect: float, start_at: dt.datetime,
    planned_end_at: dt.datetime, left_out: int, now: dt.datetime | None = None,
) -> PowerPreview:
    now = now or utcnow()
    length = planned_end_at - start_at
    pre_end = min(start_at, now)
    pre_start = pre_end - length
    # two consecutive windows of the pilot's length: the change between them is
    # what a difference in differences sees when nothing is changed
    agg = _period_aggregates(s, pre_start - length, pre_end, split_at=pre_start)
    agg = agg[agg["member_id"].isin(groups["member_id"])]
    t = _member_table(groups[["member_id", "grp"]], agg)
    both = metric_values(t, metric, "during")  # "during" = the later window here
    before = metric_values(t, metric, "pre")
    ok = np.isfinite(both)
    sd = float(np.std(both[ok], ddof=1)) if ok.sum() > 1 else 0.0
    mean = float(np.mean(both[ok])) if ok.any() else 0.0
    ok2 = ok & np.isfinite(before)
    sd_change = float(np.std(both[ok2] - before[ok2], ddof=1)) if ok2.sum() > 1 else 0.0
    n_p = int((groups["grp"] == "pilot").sum())
    n_c = int((groups["grp"] == "control").sum())
    share = n_p / (n_p + n_c) if n_p + n_c else 0.5
    # the average check only counts members who order; scale to the ones who do
    frac = float(ok2.mean()) if metric == "average_check" and len(ok2) else 1.0
    sd_used = sd_change if sd_change > 0 else sd
    req = stats.required_sample(sd_used, min_effect, share) if 0 < share < 1 else None
    if req is not None and frac > 0 and metric == "average_check":
        req = int(np.ceil(req / frac))
    pw = stats.power(sd_used, min_effect, int(n_p * frac), int(n_c * frac))
    strata = {
        str(k): (int(v.get("pilot", 0)), int(v.get("control", 0)))
        for k, v in groups.groupby("stratum")["grp"].value_counts().unstack(fill_value=0)
        .to_dict("index").items()
    }
    return PowerPreview(metric, float(min_effect), pre_start, pre_end, n_p, n_c, left_out, mean,
                        sd, sd_change, req, pw, strata)


MAX_SEED = 2**63 - 1


def form_problems(name: Any, rule_set_id: Any, pilot_share: Any, seed: Any,
                  start_at: Any, planned_end_at: Any, primary_metric: Any, min_effect: Any
                  ) -> dict[str, str]:
    """Every problem of the pilot form's own fields at once, by field (empty: none).
    The rule set's state and the population are checked when it is created."""
    out: dict[str, str] = {}
    name = (name or "").strip() if isinstance(name, str) else ""
    if not name:
        out["name"] = "is required"
    elif len(name) > 200:
        out["name"] = "too long: at most 200 characters"
    if rule_set_id is None:
        out["rule_set_id"] = "choose the draft rule set to try"
    metric_ok = primary_metric in PILOT_METRICS
    if not metric_ok:
        out["primary_metric"] = "choose a metric from the list"
    checks = [("pilot_share", lambda: parse_share_bp(pilot_share)),
              ("planned_end_at", lambda: _check_dates(start_at, planned_end_at))]
    if metric_ok:
        checks.append(("min_effect", lambda: parse_min_effect(min_effect, primary_metric)))
    for where, check in checks:
        try:
            check()
        except ValidationError as exc:
            out.setdefault(exc.field or where, exc.message)
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool) or seed < 0):
        out["seed"] = "must be a non-negative whole number"
    elif isinstance(seed, int) and seed > MAX_SEED:
        out["seed"] = too_large(f"{MAX_SEED:,}")
    return out


def _check_dates(start_at: dt.datetime, planned_end_at: dt.datetime) -> None:
    if not isinstance(start_at, dt.datetime):
        raise ValidationError("start_at", "is required")
    if not isinstance(planned_end_at, dt.datetime):
        raise ValidationError("planned_end_at", "is required")
    if planned_end_at <= start_at:
        raise ValidationError("planned_end_at", "must be after the start")
    if planned_end_at - start_at > dt.timedelta(days=MAX_PILOT_DAYS):
        raise ValidationError("planned_end_at", f"a pilot runs at most {MAX_PILOT_DAYS} days")


def power_preview(
    s: Session,
    *,
    population: PopulationFilter | dict | None = None,
    member_ids: list[int] | None = None,
    member_file: str | bytes | None = None,
    pilot_share: Any = 50,
    seed: int = 1,
    start_at: dt.datetime,
    planned_end_at: dt.datetime,
    primary_metric: str = "spend_per_member",
    min_effect: Any,
    now: dt.datetime | None = None,
) -> PowerPreview:
    """What a pilot with these settings could detect, before anything is saved."""
    if primary_metric not in PILOT_METRICS:
        raise ValidationError("primary_metric", "choose a metric from the list")
    share_bp = parse_share_bp(pilot_share)
    effect = parse_min_effect(min_effect, primary_metric)
    _check_dates(start_at, planned_end_at)
    if member_file is not None:
        member_ids = parse_member_csv(s, member_file)
    pop = None if member_ids is not None else parse_population(population)
    at = min(start_at, now or utcnow())
    eligible, left_out = eligible_population(s, population=pop, member_ids=member_ids, at=at)
    groups = assign_groups(eligible, share_bp, seed)
    return _preview(s, groups, primary_metric, float(effect), start_at, planned_end_at, left_out,
                    now)


def _groups_of(s: Session, pilot_id: int) -> pd.DataFrame:
    return pd.DataFrame(
        s.execute(
            select(PilotMember.member_id, PilotMember.stratum, PilotMember.grp)
            .where(PilotMember.pilot_id == pilot_id)
        ).all(),
        columns=["member_id", "stratum", "grp"],
    )


def pilot_power(s: Session, pilot_id: int, *, now: dt.datetime | None = None) -> PowerPreview:
    """The power preview of a saved pilot, from its stored groups."""
    p = _get(s, pilot_id)
    effect = float(Decimal(p.min_effect)) if p.min_effect else 0.0
    return _preview(s, _groups_of(s, pilot_id), p.primary_metric, effect, p.start_at,
                    p.planned_end_at, 0, now)


# --------------------------------------------------------------------------
# the workflow


@dataclass(frozen=True)
class PilotCreated:
    pilot_id: int
    n_pilot: int
    n_control: int
    left_out: int


def _get(s: Session, pilot_id: int, *, lock: bool = False) -> Pilot:
    p = s.get(Pilot, pilot_id, with_for_update=lock)
    if p is None:
        raise NotFound(f"pilot {pilot_id} does not exist")
    return p


def _snapshot(p: Pilot) -> dict[str, Any]:
    return {"name": p.name, "status": p.status, "rule_set_id": p.rule_set_id,
            "start_at": p.start_at, "planned_end_at": p.planned_end_at, "ended_at": p.ended_at,
            "start_requested_by_id": p.start_requested_by_id,
            "started_by_id": p.started_by_id}


def create_pilot(
    s: Session,
    actor: Actor,
    name: str,
    rule_set_id: int,
    *,
    population: PopulationFilter | dict | None = None,
    member_ids: list[int] | None = None,
    member_file: str | bytes | None = None,
    source_note: str = "",
    pilot_share: Any = 50,
    seed: int | None = None,
    start_at: dt.datetime,
    planned_end_at: dt.datetime,
    primary_metric: str = "spend_per_member",
    min_effect: Any,
    now: dt.datetime | None = None,
) -> PilotCreated:
    """Save a draft pilot with its drawn groups (nothing changes for members yet).

    ``member_file`` (an uploaded CSV) is parsed here, so a bad file refuses
    the whole pilot inside the same transaction.
    """
    problems = form_problems(name, rule_set_id, pilot_share, seed, start_at, planned_end_at,
                             primary_metric, min_effect)
    if problems:
        raise FormErrors(problems)
    name = (name or "").strip()
    share_bp = parse_share_bp(pilot_share)
    effect = parse_min_effect(min_effect, primary_metric)
    _check_dates(start_at, planned_end_at)
    if seed is None:
        seed = int(np.random.default_rng().integers(1, 2**31 - 1))
    rs = s.get(RuleSet, rule_set_id) if rule_set_id is not None else None
    if rs is None:
        raise ValidationError("rule_set_id", "choose the draft rule set to try")
    if rs.status not in ("draft", "pending"):
        raise ValidationError(
            "rule_set_id", f"rule set {rs.id} is {rs.status}: a pilot tries a draft or pending one"
        )
    if not rs.tiers:
        raise ValidationError("rule_set_id", "the rule set has no tiers")
    if member_file is not None:
        member_ids = parse_member_csv(s, member_file)
    pop = None if member_ids is not None else parse_population(population)
    _lock(s)
    if s.scalar(select(Pilot.id).where(Pilot.name == name)):
        raise ValidationError("name", f"a pilot named {name!r} already exists")
    at = min(start_at, now or utcnow())
    eligible, left_out = eligible_population(s, population=pop, member_ids=member_ids, at=at)
    groups = assign_groups(eligible, share_bp, seed)
    n_p = int((groups["grp"] == "pilot").sum())
    n_c = len(groups) - n_p
    if n_p == 0 or n_c == 0:
        raise ValidationError(
            "population",
            f"{len(groups)} eligible member(s) ({left_out} left out: inactive or already in a "
            "pilot) - too few to form both a pilot and a control group",
        )
    described = (
        {"source": "file", "members": len(member_ids), "note": source_note}
        if member_ids is not None else {"source": "filter", **pop.as_dict()}
    )
    described["eligible"] = len(groups)
    described["left_out"] = left_out
    p = Pilot(
        name=name, rule_set_id=rs.id, status="draft", population=json.dumps(described),
        pilot_share_bp=share_bp, random_seed=seed, primary_metric=primary_metric,
        min_effect=str(effect), start_at=start_at, planned_end_at=planned_end_at,
        created_by_id=actor.id, created_at=now or utcnow(),
    )
    s.add(p)
    s.flush()
    rows = [
        {"pilot_id": p.id, "member_id": int(m), "grp": g, "stratum": st[:64]}
        for m, st, g in groups[["member_id", "stratum", "grp"]].itertuples(index=False)
    ]
    for i in range(0, len(rows), 10_000):
        s.execute(insert(PilotMember), rows[i : i + 10_000])
    audit.record(
        s, actor.name, "pilot.create", actor_id=actor.id, object_type="pilot", object_id=p.id,
        after={**_snapshot(p), "population": described, "share_bp": share_bp, "seed": seed,
               "metric": primary_metric, "min_effect": str(effect), "pilot": n_p,
               "control": n_c},
    )
    return PilotCreated(p.id, n_p, n_c, left_out)


def _overlap(s: Session, pilot_id: int) -> int:
    """Members of this pilot who are also in another running pilot."""
    other = (
        select(PilotMember.member_id)
        .join(Pilot, Pilot.id == PilotMember.pilot_id)
        .where(Pilot.status == "running", Pilot.id != pilot_id)
    )
    return int(s.scalar(
        select(func.count()).select_from(PilotMember)
        .where(PilotMember.pilot_id == pilot_id, PilotMember.member_id.in_(other))
    ) or 0)


def _check_startable(s: Session, p: Pilot, now: dt.datetime, allow_past: bool) -> RuleSet:
    if p.start_at < now - dt.timedelta(minutes=5) and not allow_past:
        raise ValidationError("start_at", "is in the past: change the dates or create it again")
    rs = s.get(RuleSet, p.rule_set_id)
    if rs is None or rs.status == "rejected":
        raise InvalidState("the pilot's rule set was rejected; create a pilot with another one")
    clash = s.scalar(
        select(func.count()).select_from(Order)
        .join(PilotMember, and_(PilotMember.member_id == Order.member_id,
                                PilotMember.pilot_id == p.id, PilotMember.grp == "pilot"))
        .where(Order.paid_at >= p.start_at, Order.paid_at < p.planned_end_at)
    )
    if clash:
        raise InvalidState(
            f"{clash} order(s) of pilot-group members are already recorded after the start: "
            "they were accrued under the published rules; choose a later start"
        )
    if n := _overlap(s, p.id):
        raise InvalidState(f"{n} member(s) of this pilot are already in another running pilot")
    return rs


def _name_of(s: Session, user_id: int | None) -> str:
    if user_id is None:
        return "the system"
    return s.scalar(select(StaffUser.username).where(StaffUser.id == user_id)) or f"#{user_id}"


def request_start(
    s: Session, actor: Actor, pilot_id: int, *, now: dt.datetime | None = None,
    allow_past: bool = False,
) -> None:
    """Ask for a draft pilot to start: members' points change only when a
    second supervisor approves (:func:`start_pilot`)."""
    now = now or utcnow()
    _lock(s)
    p = _get(s, pilot_id, lock=True)
    if p.status != "draft":
        raise InvalidState(f"pilot {pilot_id} is {p.status}; only a draft pilot can be started")
    if p.start_requested_by_id is not None:
        raise InvalidState(
            f"the start was already requested by {_name_of(s, p.start_requested_by_id)}: "
            "another supervisor approves or sends it back"
        )
    _check_startable(s, p, now, allow_past)
    before = _snapshot(p)
    p.start_requested_by_id = actor.id
    p.start_requested_at = now
    audit.record(s, actor.name, "pilot.start_request", actor_id=actor.id, object_type="pilot",
                 object_id=p.id, before=before, after=_snapshot(p))


def start_pilot(
    s: Session, actor: Actor, pilot_id: int, *, now: dt.datetime | None = None,
    allow_past: bool = False,
) -> None:
    """Approve a requested start: draft -> running (four-eyes).

    From ``start_at`` the engine applies the pilot's rule set to the pilot
    group's orders, so the approver is a supervisor who neither wrote that
    rule set, nor created the pilot, nor requested its start. A start in the
    past would re-label orders already accrued, so it is refused (the demo
    seeder starts its pilot after the last order)."""
    now = now or utcnow()
    _lock(s)
    p = _get(s, pilot_id, lock=True)
    if p.status != "draft":
        raise InvalidState(f"pilot {pilot_id} is {p.status}; only a draft pilot can be started")
    if p.start_requested_by_id is None:
        raise InvalidState(
            "nobody has requested this pilot's start yet: one supervisor requests it, "
            "another approves it"
        )
    rs = _check_startable(s, p, now, allow_past)
    involved = {p.start_requested_by_id, p.created_by_id, rs.created_by_id} - {None}
    if actor.id is None or actor.id in involved:
        raise Forbidden(
            "four-eyes: the start must be approved by a supervisor who did not write the "
            "pilot's rules, create the pilot or request its start"
        )
    before = _snapshot(p)
    p.status = "running"
    p.started_by_id = actor.id
    audit.record(s, actor.name, "pilot.start", actor_id=actor.id, object_type="pilot",
                 object_id=p.id, before=before,
                 after={**_snapshot(p),
                        "requested_by": _name_of(s, p.start_requested_by_id),
                        "approved_by": actor.name})


def send_back_start(s: Session, actor: Actor, pilot_id: int, reason: str) -> None:
    """Refuse a requested start: the pilot stays a draft, the request is cleared."""
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError("reason", "say why the start is sent back")
    check_length("reason", reason, MAX_REASON)
    p = _get(s, pilot_id, lock=True)
    if p.status != "draft" or p.start_requested_by_id is None:
        raise InvalidState(f"pilot {pilot_id} has no start waiting for approval")
    before = _snapshot(p)
    p.start_requested_by_id = None
    p.start_requested_at = None
    audit.record(s, actor.name, "pilot.start_rejected", actor_id=actor.id, object_type="pilot",
                 object_id=p.id, before=before, after=_snapshot(p), detail=reason[:2000])


def end_pilot(s: Session, actor: Actor, pilot_id: int, *, now: dt.datetime | None = None) -> None:
    """running -> ended now: every member is back on the published rules."""
    now = now or utcnow()
    p = _get(s, pilot_id, lock=True)
    if p.status != "running":
        raise InvalidState(f"pilot {pilot_id} is {p.status}; only a running pilot can be ended")
    before = _snapshot(p)
    p.status = "ended"
    p.ended_at = max(now, p.start_at)
    audit.record(s, actor.name, "pilot.end", actor_id=actor.id, object_type="pilot",
                 object_id=p.id, before=before, after=_snapshot(p))


def cancel_pilot(s: Session, actor: Actor, pilot_id: int) -> None:
    """draft -> cancelled: its members become free for another pilot."""
    p = _get(s, pilot_id, lock=True)
    if p.status != "draft":
        raise InvalidState(f"pilot {pilot_id} is {p.status}; only a draft pilot can be cancelled")
    before = _snapshot(p)
    p.status = "cancelled"
    audit.record(s, actor.name, "pilot.cancel", actor_id=actor.id, object_type="pilot",
                 object_id=p.id, before=before, after=_snapshot(p))


def _tier_rows(rs: RuleSet) -> list[dict[str, str]]:
    """A rule set's tiers in the editor's form (currency units, percent)."""
    return [
        {"name": t.name, "threshold": f"{t.threshold_minor // 100}.{t.threshold_minor % 100:02d}",
         "accrual_rate": f"{t.accrual_rate_bp // 100}.{t.accrual_rate_bp % 100:02d}",
         "referral_rate": f"{t.referral_rate_bp // 100}.{t.referral_rate_bp % 100:02d}"}
        for t in sorted(rs.tiers, key=lambda t: t.position)
    ]


def rollout_draft(s: Session, actor: Actor, pilot_id: int, *, now: dt.datetime | None = None
                  ) -> int:
    """A new draft with the pilot's rules, based on the published version in
    force; it goes through the normal submit/approve like any other draft."""
    p = _get(s, pilot_id)
    if p.status not in ("running", "ended"):
        raise InvalidState(f"pilot {pilot_id} is {p.status}: only a run pilot can be rolled out")
    src = s.get(RuleSet, p.rule_set_id)
    in_force = s.scalar(
        select(RuleSet.id)
        .where(RuleSet.status == "published", RuleSet.effective_at <= (now or utcnow()))
        .order_by(RuleSet.effective_at.desc(), RuleSet.id.desc()).limit(1)
    )
    rid = rules.create_draft(
        s, actor, f"Roll-out of pilot {p.name}"[:200], _tier_rows(src),
        point_value_minor=src.point_value_minor, tier_window_days=src.tier_window_days,
        based_on_id=in_force,
        note=f"Roll-out of pilot #{p.id} '{p.name}' (rule set #{src.id} '{src.name}').",
    )
    audit.record(s, actor.name, "pilot.rollout", actor_id=actor.id, object_type="pilot",
                 object_id=p.id, after={"draft_rule_set_id": rid, "based_on_id": in_force})
    return rid


# --------------------------------------------------------------------------
# read views for the page


@dataclass(frozen=True)
class PilotInfo:
    id: int
    name: str
    status: str
    rule_set_id: int
    rule_set_name: str
    rule_set_status: str
    primary_metric: str
    min_effect: str
    share_bp: int
    seed: int
    start_at: dt.datetime
    planned_end_at: dt.datetime
    ended_at: dt.datetime | None
    population: dict[str, Any]
    n_pilot: int
    n_control: int
    created_by: str = ""
    start_requested_by: str | None = None
    start_requested_at: dt.datetime | None = None
    started_by: str | None = None

    @property
    def window_end(self) -> dt.datetime:
        return min(self.planned_end_at, self.ended_at) if self.ended_at else self.planned_end_at

    def past_planned_end(self, now: dt.datetime | None = None) -> bool:
        """Still running although its planned end has passed: nobody ended it
        (the results stop at the planned end; the pilot rules still apply)."""
        return self.status == "running" and (now or utcnow()) >= self.planned_end_at


def pilot_info(s: Session, pilot_id: int) -> PilotInfo:
    p = _get(s, pilot_id)
    rs = s.get(RuleSet, p.rule_set_id)
    sizes = dict(s.execute(
        select(PilotMember.grp, func.count()).where(PilotMember.pilot_id == pilot_id)
        .group_by(PilotMember.grp)
    ).all())
    try:
        population = json.loads(p.population or "{}")
    except ValueError:
        population = {}
    return PilotInfo(p.id, p.name, p.status, rs.id, rs.name, rs.status, p.primary_metric,
                     p.min_effect, p.pilot_share_bp, p.random_seed, p.start_at, p.planned_end_at,
                     p.ended_at, population, int(sizes.get("pilot", 0)),
                     int(sizes.get("control", 0)), _name_of(s, p.created_by_id),
                     _name_of(s, p.start_requested_by_id) if p.start_requested_by_id else None,
                     p.start_requested_at,
                     _name_of(s, p.started_by_id) if p.started_by_id else None)


def pilot_choices(s: Session) -> list[tuple[int, str, str]]:
    """(id, name, status) of every pilot, newest first, for a picker."""
    return [tuple(r) for r in s.execute(
        select(Pilot.id, Pilot.name, Pilot.status).order_by(Pilot.start_at.desc(), Pilot.id.desc())
    ).all()]


def trial_rule_sets(s: Session) -> list[tuple[int, str, str]]:
    """(id, name, status) of the draft and pending rule sets a pilot can try."""
    return [tuple(r) for r in s.execute(
        select(RuleSet.id, RuleSet.name, RuleSet.status)
        .where(RuleSet.status.in_(("draft", "pending")))
        .where(select(Tier.id).where(Tier.rule_set_id == RuleSet.id).exists())
        .order_by(RuleSet.id.desc())
    ).all()]


def tier_names(s: Session) -> list[str]:
    return [t for t in s.scalars(select(Member.tier).distinct().order_by(Member.tier)) if t]


# --------------------------------------------------------------------------
# results


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
    verdict: str
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
    and during - :func:`_member_table`'s shape, from the arrays."""
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

    step(0.02, "reading the pilot")
    p = _get(s, pilot_id)
    if p.status in ("draft", "cancelled"):
        raise InvalidState(f"pilot {pilot_id} is {p.status}: it has no results (it never ran)")
    info = pilot_info(s, pilot_id)
    now = now or utcnow()
    as_of = as_of or _default_as_of(s, p, now)
    start = p.start_at
    end = max(start, min(as_of, info.window_end))
    length = end - start
    pre_start = start - length
    groups = _groups_of(s, pilot_id)
    n_p = int((groups["grp"] == "pilot").sum())
    n_c = int((groups["grp"] == "control").sum())
    step(0.08, "reading the pilot group's orders")
    po = _pilot_orders(s, p, start, end)
    back = po.lookback_days
    t0 = pre_start if back is None else min(pre_start, start - dt.timedelta(days=back))
    step(0.15, f"reading the orders of {n_p + n_c:,} members")
    w = _window_orders(s, pilot_id, groups, t0, pre_start, start, end) if length else (
        _WindowOrders.empty())
    t = _member_arrays(groups[["member_id", "grp"]], w)
    by_group = {g: t[t["grp"] == g] for g in ("pilot", "control")}
    step(0.4, "recomputing points under the published rules")
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
             f"{METRIC_LABELS[metric].lower()}: Welch, bootstrap ({n_boot:,}), CUPED")
        pre_p, post_p = _paired(by_group["pilot"], metric)
        pre_c, post_c = _paired(by_group["control"], metric)
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
    step(0.99, "verdict")
    srm = stats.srm_check(n_p, n_c, p.pilot_share_bp / BP)
    spend = next(r for r in results if r.metric == "spend_per_member")

    def rev(x: float) -> int:
        return int(round(x * 100 * n_p)) if np.isfinite(x) else 0

    cost = PointsCost(n_orders, actual, published, pv, rev(spend.welch.lift),
                      rev(spend.welch.ci_low), rev(spend.welch.ci_high))
    primary = next(r for r in results if r.metric == p.primary_metric)
    currency = s.scalar(select(ProgramSettings.currency)) or "RUB"
    code, sentence = _verdict(primary, srm, length, Decimal(p.min_effect or "0"), currency)
    step(1.0, "done")
    return PilotResults(info, as_of, pre_start, start, end, results, srm, cost, daily, code,
                        sentence, currency)


def metric_text(metric: str, x: float | None, currency: str, *, signed: bool = False) -> str:
    """A metric value (or lift) in its unit: money with the program currency
    ("+1,234.50 RUB"), orders ("0.125 orders"), a share in percent (points
    when signed: a lift is "+2.0 pp")."""
    if x is None or not np.isfinite(x):
        return "–"
    sign = "+" if signed else ""
    unit = METRIC_UNITS[metric]
    if unit == "money":
        return f"{x:{sign},.2f} {currency}".strip()
    if unit == "orders":
        return f"{x:{sign},.3f} orders"
    return f"{x * 100:{sign},.1f} pp" if signed else f"{x * 100:,.1f} %"


def min_effect_text(metric: str, min_effect: Decimal | str | float, currency: str) -> str:
    """The minimum effect in the metric's unit (a share's is in points)."""
    try:
        x = float(min_effect)
    except (TypeError, ValueError):
        return "not set"
    if not x:
        return "not set"
    if METRIC_UNITS[metric] == "share of members":
        return f"{x * 100:,.1f} pp"
    return metric_text(metric, x, currency)


VERDICTS = {
    "lift": "Significant lift",
    "lift_below_minimum": "Statistically significant but below the minimum effect",
    "harm": "Harm",
    "no_effect": "No detectable effect",
    "too_little_data": "Too little data",
    "srm": "Sample ratio mismatch",
}


def _verdict(m: MetricResult, srm: stats.SrmResult, length: dt.timedelta, min_effect: Decimal,
             currency: str = "") -> tuple[str, str]:
    """The primary metric's verdict, never stronger than the evidence and never
    self-contradictory: a lift smaller than the minimum effect the pilot was set
    up to find is its own category, not a "significant lift" with a caveat.
    Values are in the metric's unit, money with the program currency."""
    label = m.label.lower()
    if srm.mismatch:
        return ("srm", f"Sample ratio mismatch: the groups are {srm.observed_share:.1%} pilot, "
                f"{srm.expected_share:.1%} was drawn (p = {srm.p_value:.2g}). The assignment is "
                "broken, so no conclusion can be drawn from these results.")
    if length < dt.timedelta(days=1):
        return ("too_little_data", "Too little data to judge: the pilot has run for less than a "
                "day.")
    w, b = m.welch, m.bootstrap
    code, sentence = stats.verdict(w)
    if code == "too_little_data":
        return code, f"{m.label}: {sentence}"

    def v(x: float) -> str:
        return metric_text(m.metric, x, currency, signed=True)

    interval = f"95% CI {v(w.ci_low)} to {v(w.ci_high)}, p = {w.p_value:.3g}"
    minimum = min_effect_text(m.metric, min_effect, currency) if min_effect else ""
    if code in ("lift", "harm") and not ((b.ci_low > 0) if code == "lift" else (b.ci_high < 0)):
        return ("no_effect", f"No clear effect on {label}: the Welch interval "
                f"({v(w.ci_low)} to {v(w.ci_high)}) excludes zero but the bootstrap interval "
                f"({v(b.ci_low)} to {v(b.ci_high)}) does not; treat it as not shown yet.")
    if code == "lift" and min_effect and w.lift < float(min_effect):
        return ("lift_below_minimum",
                f"{m.label}: {VERDICTS['lift_below_minimum']} of {minimum}: {v(w.lift)} "
                f"({interval}). The pilot changed {label}, but by less than the effect it was "
                "set up to find.")
    if code == "lift":
        tail = ""
        if min_effect and w.ci_low < float(min_effect):
            tail = (f" The estimate reaches the minimum effect of {minimum}, but the interval's "
                    "lower end is below it, so the lift may be smaller than that.")
        elif min_effect:
            tail = f" Even the interval's lower end is above the minimum effect of {minimum}."
        return ("lift", f"{m.label}: {VERDICTS['lift']}: {v(w.lift)} ({interval}).{tail}")
    if code == "harm":
        return ("harm", f"{m.label}: Harm: the pilot group did worse by "
                f"{metric_text(m.metric, abs(w.lift), currency)} ({interval}).")
    tail = ""
    if min_effect and w.ci_high < float(min_effect):
        tail = f" A lift as large as the minimum effect of {minimum} is ruled out."
    return ("no_effect", f"{m.label}: {VERDICTS['no_effect']}: {v(w.lift)} with a 95% CI from "
            f"{v(w.ci_low)} to {v(w.ci_high)}; an effect of that size either way cannot be ruled "
            f"out.{tail}")


def results_csv(r: PilotResults) -> str:
    """The export: one row per metric and method, then the cost and the SRM check."""
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
    out = io.StringIO()
    exports.write_rows(out, [[
        f"# pilot {r.pilot.id} {r.pilot.name!r}; pre {r.pre_start:%Y-%m-%d %H:%M} to "
        f"{r.start:%Y-%m-%d %H:%M}; during to {r.end:%Y-%m-%d %H:%M}; money in {r.currency}"
    ]])
    exports.frame_to_csv(df, out, float_format="%.6g")
    c = r.cost
    out.write("\n")
    exports.write_rows(out, [("item", "value"), *(
        ("verdict", r.verdict_code), ("srm_p_value", f"{r.srm.p_value:.6g}"),
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


# --------------------------------------------------------------------------
# the demo pilot


@dataclass(frozen=True)
class DemoPilotReport:
    pilot_id: int
    rule_set_id: int
    start_at: dt.datetime
    data_until: dt.datetime
    n_pilot: int
    n_control: int
    member_orders: int
    guest_orders: int
    pilot_orders: int

    def summary(self) -> str:
        return (f"demo pilot #{self.pilot_id}: {self.n_pilot:,} pilot / {self.n_control:,} "
                f"control members from {self.start_at:%Y-%m-%d}; {self.member_orders:,} member "
                f"and {self.guest_orders:,} guest orders to {self.data_until:%Y-%m-%d}")


DEMO_SEGMENTS = ("regular", "pensioner")
DEMO_HOURS = np.arange(8, 23)


DEMO_REDEEM_SHARE = 0.15


def seed_demo_pilot(
    db: Any,
    *,
    seed: int = 42,
    effect: float = 0.25,
    days: int = 60,
    segments: tuple[str, ...] = DEMO_SEGMENTS,
    share_percent: int = 20,
    extra_accrual_bp: int = 200,
) -> DemoPilotReport:
    """A pilot with a real effect, on a database the demo seeder filled.

    The pilot starts at the midnight after the last recorded operation, so no
    existing order falls inside its window; then ``days`` days of orders for
    the whole active membership are posted through the engine
    (:class:`db.bulk.BulkPoster`, in payment order): each member keeps the
    order rate of their last 180 days and their own average check, the
    pilot group orders ``effect`` (0.25 = 25 %) more often, and guests keep
    buying. ``loyalty check`` stays clean. The history grows by ``days``
    days: seed the base history to end ``days`` before today.
    """
    from db.session import Database

    if isinstance(db, Database):
        with db.begin() as s:
            return _seed_demo_pilot(s, seed, effect, days, segments, share_percent,
                                    extra_accrual_bp)
    return _seed_demo_pilot(db, seed, effect, days, segments, share_percent, extra_accrual_bp)


def _seed_demo_pilot(s: Session, seed: int, effect: float, days: int, segments: tuple[str, ...],
                     share_percent: int, extra_accrual_bp: int) -> DemoPilotReport:
    from db import users
    from db.bulk import BulkPoster
    from db.ledger import OrderIn, expire_points
    from db.models import LedgerTransaction

    if not 0 <= effect <= 5:
        raise ValidationError("effect", "must be between 0 and 5 (0.25 = +25 % orders)")
    if not 7 <= days <= MAX_PILOT_DAYS:
        raise ValidationError("days", f"must be 7 to {MAX_PILOT_DAYS}")
    last = max(
        (x for x in (s.scalar(select(func.max(Order.paid_at))),
                     s.scalar(select(func.max(Order.refunded_at))),
                     s.scalar(select(func.max(LedgerTransaction.effective_at)))) if x),
        default=None,
    )
    if last is None:
        raise InvalidState("the database has no orders: run the demo seeder first")
    start = dt.datetime.combine(last.date() + dt.timedelta(days=1), dt.time())
    published = rules.rules_in_force(s, start)
    if published is None:
        raise InvalidState("no published rule version is in force: nothing to pilot against")
    u = users.get_user_by_name(s, "supervisor")
    u2 = users.get_user_by_name(s, "supervisor2")
    if u is None or u2 is None:
        raise InvalidState("the demo pilot needs the demo's two supervisors: run the demo seeder")
    actor = Actor(u.username, u.id, u.role)
    approver = Actor(u2.username, u2.id, u2.role)
    tier_rows = [
        {"name": t.name, "threshold": f"{t.threshold_minor / 100:.2f}",
         "accrual_rate": f"{min(BP, t.accrual_rate_bp + extra_accrual_bp) / 100:.2f}",
         "referral_rate": f"{t.referral_rate_bp / 100:.2f}"}
        for t in published.tiers
    ]
    pp = extra_accrual_bp / 100
    rs_id = rules.create_draft(
        s, actor, f"Pilot: +{pp:g} pp accrual on every tier", tier_rows,
        point_value_minor=published.point_value_minor,
        tier_window_days=published.tier_window_days, based_on_id=published.rule_set_id,
        note=f"{published.name} with {pp:g} percentage points more accrual; tried on a pilot "
             "group before anyone submits it.",
    )
    created = create_pilot(
        s, actor, f"Demo: +{pp:g} pp accrual for {' and '.join(segments)}", rs_id,
        population={"segments": list(segments), "active_within_days": 180},
        pilot_share=share_percent, seed=seed, start_at=start,
        planned_end_at=start + dt.timedelta(days=days),
        primary_metric="spend_per_member", min_effect="500", now=start,
    )
    # the same four-eyes path as on the page: one requests, the other approves
    request_start(s, actor, created.pilot_id, now=start, allow_past=True)
    start_pilot(s, approver, created.pilot_id, now=start, allow_past=True)

    rng = np.random.default_rng([seed & 0xFFFFFFFF, 7_007])
    hist_from = start - dt.timedelta(days=180)
    members = pd.DataFrame(
        s.execute(select(Member.id, Member.external_id).where(Member.status == "active")).all(),
        columns=["member_id", "external_id"],
    )
    recent = pd.DataFrame(
        s.execute(select(Order.member_id, func.count()).where(
            Order.member_id.is_not(None), Order.status == "paid", Order.paid_at >= hist_from,
            Order.paid_at < start).group_by(Order.member_id)).all(),
        columns=["member_id", "n"],
    )
    checks = pd.DataFrame(
        s.execute(select(Order.member_id, func.avg(Order.amount_minor)).where(
            Order.member_id.is_not(None), Order.status == "paid").group_by(Order.member_id)
        ).all(),
        columns=["member_id", "check"],
    )
    groups = _groups_of(s, created.pilot_id)
    m = (members.merge(recent, on="member_id", how="left")
         .merge(checks, on="member_id", how="left")
         .merge(groups[["member_id", "grp"]], on="member_id", how="left"))
    m["n"] = m["n"].fillna(0)
    m["check"] = m["check"].astype(float).fillna(80_000.0)
    rate = m["n"].to_numpy(float) / 180 * np.where(m["grp"].to_numpy() == "pilot", 1 + effect, 1)
    counts = rng.poisson(rate * days)
    who = np.repeat(np.arange(len(m)), counts)
    day = rng.integers(0, days, len(who))
    t_sec = (day * 86_400 + rng.choice(DEMO_HOURS, len(who)) * 3600
             + rng.integers(0, 3600, len(who)))
    amount = np.maximum(100, np.round(
        m["check"].to_numpy(float)[who] * rng.lognormal(-0.5**2 / 2, 0.5, len(who)))).astype(
        np.int64)
    guests = [r for (r,) in s.execute(
        select(Order.customer_ref).where(Order.member_id.is_(None)).distinct().limit(50_000))]
    n_guest = int(round(len(who) * 0.43)) if guests else 0
    g_ref = rng.integers(0, max(len(guests), 1), n_guest)
    g_t = (rng.integers(0, days, n_guest) * 86_400 + rng.choice(DEMO_HOURS, n_guest) * 3600
           + rng.integers(0, 3600, n_guest))
    g_amt = np.maximum(100, np.round(76_000 * rng.lognormal(-0.5**2 / 2, 0.5, n_guest))).astype(
        np.int64)
    # one time line, member orders first within a second (as the seeder does)
    kind = np.concatenate([np.zeros(len(who), np.int8), np.ones(n_guest, np.int8)])
    t_all = np.concatenate([t_sec, g_t])
    order = np.lexsort((kind, t_all))
    ids = m["member_id"].to_numpy(np.int64)
    ext = m["external_id"].tolist()
    poster = BulkPoster(s)
    poster.prepare(ids[np.unique(who)].tolist(), start)
    member_orders = pilot_orders = 0
    # members keep paying part of some orders with points, as in the base history
    redeem_rng = np.random.default_rng([seed, 7])
    redeem_u = redeem_rng.random(len(order))
    for seq, i in enumerate(order.tolist()):
        when = start + dt.timedelta(seconds=int(t_all[i]))
        ref = f"P{created.pilot_id}-{seq + 1:08d}"
        if kind[i] == 0:
            j = int(who[i])
            bal = poster.balance_of(int(ids[j]))
            use = 0
            if bal >= 100 and redeem_u[seq] < DEMO_REDEEM_SHARE:
                use = int(min(bal, amount[i] // 100 * 3 // 10))
            poster.post(OrderIn(ref, ext[j], when, int(amount[i]), use), int(ids[j]))
            member_orders += 1
            pilot_orders += m["grp"].iat[j] == "pilot"
        else:
            k = i - len(who)
            poster.post(OrderIn(ref, guests[int(g_ref[k])], when, int(g_amt[k])), None)
        if seq % 50_000 == 49_999:
            poster.flush()
    poster.flush()
    expire_points(s, start + dt.timedelta(days=days), actor=actor)
    audit.record(s, actor.name, "pilot.demo", actor_id=actor.id, object_type="pilot",
                 object_id=created.pilot_id,
                 after={"effect": effect, "days": days, "member_orders": member_orders,
                        "guest_orders": n_guest})
    return DemoPilotReport(created.pilot_id, rs_id, start, start + dt.timedelta(days=days),
                           created.n_pilot, created.n_control, member_orders, n_guest,
                           int(pilot_orders))
