"""The live page's read model: today's and the window's figures, drawn from
the rollups (db/rollups.py keeps them current) and the KPI definitions in
db/metrics.py, so the page and ``loyalty kpis --json`` agree."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func, select
from sqlalchemy.orm import Session

from db import clock, metrics, program, rollups
from db.models import Member, RollupMember, RollupReferrer, RollupTransferIn, Transfer

_m = Member.__table__
_rr = RollupReferrer.__table__
_rt = RollupTransferIn.__table__


@dataclass(frozen=True)
class LiveSnapshot:
    """Everything the live page shows, as plain data (numbers and small tables)."""

    at: dt.datetime
    refreshed_at: dt.datetime | None
    days: int
    currency: str
    point_value_minor: int
    values: dict[str, Any]
    daily: list[dict[str, Any]]
    top_referrers: list[dict[str, Any]]
    top_receivers: list[dict[str, Any]]


def _within_days(s: Session, later: Any, earlier: Any, days: int) -> ColumnElement[bool]:
    if s.get_bind().dialect.name == "postgresql":
        return later < earlier + func.make_interval(0, 0, 0, days)
    return func.julianday(later) - func.julianday(earlier) < days


def _earning_within(s: Session, now: dt.datetime, days: int) -> dict[str, Any]:
    """Members who joined in the 30 days before the last ``days`` days (so all
    have had ``days`` days): how many earned (first accrual) within ``days``."""
    end = now - dt.timedelta(days=days)
    start = end - dt.timedelta(days=30)
    rm = RollupMember.__table__
    n, earned = s.execute(
        select(
            func.count(),
            func.sum(case((and_(rm.c.first_earn_at.is_not(None),
                                _within_days(s, rm.c.first_earn_at, rm.c.joined_at, days)),
                           1), else_=0)),
        ).where(rm.c.joined_at >= start, rm.c.joined_at < end)
    ).one()
    n, earned = int(n or 0), int(earned or 0)
    return {"numerator": earned, "denominator": n, "value": earned / n if n else None}


def live_snapshot(s: Session, *, days: int = 7, now: dt.datetime | None = None) -> LiveSnapshot:
    """The live page's figures from the rollups (refresh them first).

    The window is whole UTC days: today and the ``days - 1`` before it. KPI
    values come from db.metrics (which reads these same rollups), so the page
    and ``loyalty kpis --json`` agree.
    """
    rollups.prefer_rollups(s)
    now = now or clock.utcnow()
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    tomorrow = today + dt.timedelta(days=1)
    start = today - dt.timedelta(days=days - 1)
    ps = program.program_info(s)
    currency, active_days = ps.currency, ps.active_days
    value = metrics.point_value_minor(s, now)
    flows_today = metrics.points_flows(s, today, tomorrow)
    flows = metrics.points_flows(s, start, tomorrow)
    sums = rollups.daily_sum(
        s, ["new_members", "new_members_referred", "pts_transfer", "n_transfer"], start, tomorrow
    )
    totals = rollups.daily_sum(s, ["new_members", "new_members_referred"], None, None)
    new_today = rollups.daily_sum(s, ["new_members"], today, tomorrow)["new_members"]
    liability = metrics.points_liability(s, now)
    participation = metrics.participation_rate(s, start, now + dt.timedelta(microseconds=1))
    active = metrics.active_member_rate(s, now + dt.timedelta(microseconds=1), active_days)
    referral = metrics.referral_conversion(s, start, tomorrow)
    bonus = rollups.daily_sum(s, ["pts_referral_bonus", "pts_rev_referral_bonus"], start, tomorrow)
    values: dict[str, Any] = {
        "enrolled": totals["new_members"],
        "new_today": new_today,
        "new_window": sums["new_members"],
        "participation_rate": participation.as_dict(),
        "active_member_rate": active.ratio.as_dict(),
        "active_days": active_days,
        "earning_7": _earning_within(s, now, 7),
        "earning_30": _earning_within(s, now, 30),
        "issued_today": flows_today.issued_net,
        "redeemed_today": flows_today.redeemed_net,
        "expired_today": flows_today.expired_net,
        "issued_window": flows.issued_net,
        "redeemed_window": flows.redeemed_net,
        "redemption_rate": metrics.ratio(flows.redeemed_net, flows.issued_net).as_dict(),
        "breakage_rate": metrics.breakage_of(flows.expired_net, flows.redeemed_net).as_dict(),
        "liability_points": liability.points,
        "liability_minor": liability.amount_minor,
        "referred_total": totals["new_members_referred"],
        "referral_conversion": referral.as_dict(),
        "referral_share": metrics.ratio(sums["new_members_referred"],
                                        sums["new_members"]).as_dict(),
        "referral_bonus": bonus["pts_referral_bonus"] - bonus["pts_rev_referral_bonus"],
        "transfer_points": sums["pts_transfer"],
        "transfer_count": sums["n_transfer"],
    }
    series: dict[dt.datetime, dict[str, int]] = {}
    sign = {"pts_accrual": ("issued", 1), "pts_referral_bonus": ("issued", 1),
            "pts_rev_accrual": ("issued", -1), "pts_rev_referral_bonus": ("issued", -1),
            "pts_redemption": ("redeemed", 1), "pts_rev_redemption": ("redeemed", -1),
            "pts_expiry": ("expired", 1), "pts_rev_expiry": ("expired", -1),
            "new_members": ("new_members", 1), "new_members_referred": ("new_referred", 1)}
    chart_start = today - dt.timedelta(days=max(days, 14) - 1)
    for k in range((tomorrow - chart_start).days):
        series[chart_start + dt.timedelta(days=k)] = {
            "issued": 0, "redeemed": 0, "expired": 0, "new_members": 0, "new_referred": 0}
    for day, metric, _g, v in rollups.daily_series(s, sign, chart_start, tomorrow):
        col, k = sign[metric]
        series[day][col] += k * v
    daily = [{"day": d.date().isoformat(), **v} for d, v in sorted(series.items())]
    refs = s.execute(
        select(_rr.c.member_id, _m.c.external_id, _m.c.name, _rr.c.referred, _rr.c.bonus_points)
        .join(_m, _m.c.id == _rr.c.member_id)
        .order_by(_rr.c.bonus_points.desc(), _rr.c.member_id).limit(10)
    ).all()
    recv = s.execute(
        select(_rt.c.member_id, func.sum(_rt.c.points).label("pts"), func.sum(_rt.c.transfers))
        .where(_rt.c.day >= start, _rt.c.day < tomorrow)
        .group_by(_rt.c.member_id)
        .order_by(func.sum(_rt.c.points).desc(), _rt.c.member_id).limit(10)
    ).all()
    names = {}
    senders: dict[int, int] = {}
    if recv:
        ids = [int(r[0]) for r in recv]
        names = {int(i): (e, n) for i, e, n in s.execute(
            select(_m.c.id, _m.c.external_id, _m.c.name).where(_m.c.id.in_(ids)))}
        tr = Transfer.__table__
        senders = {int(i): int(n) for i, n in s.execute(
            select(tr.c.to_member_id, func.count(func.distinct(tr.c.from_member_id)))
            .where(tr.c.to_member_id.in_(ids), tr.c.created_at >= start)
            .group_by(tr.c.to_member_id))}
    st = rollups.state(s)
    return LiveSnapshot(
        at=now,
        refreshed_at=rollups.from_micros(st["refreshed_at"]),
        days=days,
        currency=currency,
        point_value_minor=value,
        values=values,
        daily=daily,
        top_referrers=[
            {"member_id": int(i), "customer": e, "name": n, "referred": int(r),
             "bonus_points": int(b)} for i, e, n, r, b in refs],
        top_receivers=[
            {"member_id": int(i), "customer": names.get(int(i), ("", ""))[0],
             "name": names.get(int(i), ("", ""))[1], "points": int(p), "transfers": int(c),
             "senders": senders.get(int(i), 0)} for i, p, c in recv],
    )


