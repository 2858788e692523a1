"""What a pilot's groups can detect, from the pre-period data: before a
pilot exists (the form's preview) and for a drawn pilot."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from db import clock, stats
from db.errors import ValidationError, too_large
from db.i18n import N_, Message
from db.models import PILOT_METRICS, PilotMember
from db.pilots.info import get_pilot
from db.pilots.measures import member_table, metric_values, period_aggregates
from db.pilots.parsing import (
    MAX_PILOT_DAYS,
    METRIC_NAMES,
    Figure,
    PopulationFilter,
    parse_member_csv,
    parse_min_effect,
    parse_population,
    parse_share_bp,
)
from db.pilots.population import assign_groups, eligible_population


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

    def sentence(self) -> Message:
        """What the groups can detect; numbers are :class:`db.pilots.results.Figure`
        params, which the page shows in the user's language."""
        if self.power is None or self.required_total is None:
            return N_("No estimate: the population had no orders in the pre period, so the "
                      "variation of the metric is unknown.")
        params = {"effect": Figure(self.min_effect, "g"), "metric": METRIC_NAMES[self.metric],
                  "needed": Figure(self.required_total, ",d"),
                  "pilot": Figure(self.n_pilot, ",d"), "control": Figure(self.n_control, ",d"),
                  "power": Figure(self.power, ".0%")}
        if self.enough:
            return N_("To detect a lift of %(effect)s in %(metric)s with 80%% power at the 5%% "
                      "level, about %(needed)s members are needed in total; the drawn groups "
                      "(%(pilot)s pilot + %(control)s control) are enough: power %(power)s.",
                      **params)
        return N_("To detect a lift of %(effect)s in %(metric)s with 80%% power at the 5%% "
                  "level, about %(needed)s members are needed in total; the drawn groups "
                  "(%(pilot)s pilot + %(control)s control) are not enough: power %(power)s.",
                  **params)


def _preview(
    s: Session, groups: pd.DataFrame, metric: str, min_effect: float, start_at: dt.datetime,
    planned_end_at: dt.datetime, left_out: int, now: dt.datetime | None = None,
) -> PowerPreview:
    now = now or clock.utcnow()
    length = planned_end_at - start_at
    pre_end = min(start_at, now)
    pre_start = pre_end - length
    # two consecutive windows of the pilot's length: the change between them is
    # what a difference in differences sees when nothing is changed
    agg = period_aggregates(s, pre_start - length, pre_end, split_at=pre_start)
    agg = agg[agg["member_id"].isin(groups["member_id"])]
    t = member_table(groups[["member_id", "grp"]], agg)
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
        out["name"] = N_("is required")
    elif len(name) > 200:
        out["name"] = N_("too long: at most %(n)s characters", n=200)
    if rule_set_id is None:
        out["rule_set_id"] = N_("choose the draft rule set to try")
    metric_ok = primary_metric in PILOT_METRICS
    if not metric_ok:
        out["primary_metric"] = N_("choose a metric from the list")
    checks = [("pilot_share", lambda: parse_share_bp(pilot_share)),
              ("planned_end_at", lambda: check_dates(start_at, planned_end_at))]
    if metric_ok:
        checks.append(("min_effect", lambda: parse_min_effect(min_effect, primary_metric)))
    for where, check in checks:
        try:
            check()
        except ValidationError as exc:
            out.setdefault(exc.field or where, exc.message)
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool) or seed < 0):
        out["seed"] = N_("must be a non-negative whole number")
    elif isinstance(seed, int) and seed > MAX_SEED:
        out["seed"] = too_large(f"{MAX_SEED:,}")
    return out


def check_dates(start_at: dt.datetime, planned_end_at: dt.datetime) -> None:
    if not isinstance(start_at, dt.datetime):
        raise ValidationError("start_at", N_("is required"))
    if not isinstance(planned_end_at, dt.datetime):
        raise ValidationError("planned_end_at", N_("is required"))
    if planned_end_at <= start_at:
        raise ValidationError("planned_end_at", N_("must be after the start"))
    if planned_end_at - start_at > dt.timedelta(days=MAX_PILOT_DAYS):
        raise ValidationError("planned_end_at",
                              N_("a pilot runs at most %(n)s days", n=MAX_PILOT_DAYS))


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
        raise ValidationError("primary_metric", N_("choose a metric from the list"))
    share_bp = parse_share_bp(pilot_share)
    effect = parse_min_effect(min_effect, primary_metric)
    check_dates(start_at, planned_end_at)
    if member_file is not None:
        member_ids = parse_member_csv(s, member_file)
    pop = None if member_ids is not None else parse_population(population)
    at = min(start_at, now or clock.utcnow())
    eligible, left_out = eligible_population(s, population=pop, member_ids=member_ids, at=at)
    groups = assign_groups(eligible, share_bp, seed)
    return _preview(s, groups, primary_metric, float(effect), start_at, planned_end_at, left_out,
                    now)


def pilot_groups(s: Session, pilot_id: int) -> pd.DataFrame:
    return pd.DataFrame(
        s.execute(
            select(PilotMember.member_id, PilotMember.stratum, PilotMember.grp)
            .where(PilotMember.pilot_id == pilot_id)
        ).all(),
        columns=["member_id", "stratum", "grp"],
    )


def pilot_power(s: Session, pilot_id: int, *, now: dt.datetime | None = None) -> PowerPreview:
    """The power preview of a saved pilot, from its stored groups."""
    p = get_pilot(s, pilot_id)
    effect = float(Decimal(p.min_effect)) if p.min_effect else 0.0
    return _preview(s, pilot_groups(s, pilot_id), p.primary_metric, effect, p.start_at,
                    p.planned_end_at, 0, now)
