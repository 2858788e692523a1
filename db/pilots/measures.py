"""Pilot metrics per member: a period's order aggregates and each metric's
per-member values, shared by the power preview and the results."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
from sqlalchemy import and_, case, func, literal, select
from sqlalchemy.orm import Session

from db.errors import ValidationError
from db.i18n import N_
from db.models import Order, PilotMember


def period_aggregates(
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


def member_table(groups: pd.DataFrame, agg: pd.DataFrame) -> pd.DataFrame:
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
    raise ValidationError("primary_metric", N_("choose a metric from the list"))


def paired(g: pd.DataFrame, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """(pre, during) values of one group's members; the average check only
    exists for members who ordered in both periods."""
    pre, post = metric_values(g, metric, "pre"), metric_values(g, metric, "during")
    ok = np.isfinite(pre) & np.isfinite(post)
    return pre[ok], post[ok]
