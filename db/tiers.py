"""Re-evaluate every member's tier in one set-based pass.

``members.tier`` is a cache for display and filtering (accrual derives the
tier from the orders themselves). When a new version takes effect, or a
rolling window moves on, this pass brings the cache up to date: one
aggregate of qualifying spend per member and one ``UPDATE ... FROM`` with a
``CASE`` over the thresholds - no per-member loop.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import and_, case, exists, func, or_, select, update
from sqlalchemy.orm import Session

from db import clock
from db.errors import LoyaltyError
from db.i18n import N_
from db.models import Member, Order
from db.rules import Rules, rules_in_force


@dataclass(frozen=True)
class TierPass:
    at: dt.datetime
    rule_set_id: int
    members: int
    changed: int
    distribution: dict[str, int]


def _tier_case(rules: Rules, spend):
    whens = [(spend >= t.threshold_minor, t.name) for t in reversed(rules.tiers[1:])]
    return case(*whens, else_=rules.tiers[0].name) if whens else rules.tiers[0].name


def reevaluate_tiers(s: Session, at: dt.datetime | None = None) -> TierPass:
    """Set every member's cached tier to the one their qualifying spend up to
    ``at`` reaches under the version in force then."""
    at = at or clock.utcnow()
    rules = rules_in_force(s, at)
    if rules is None:
        raise LoyaltyError(N_("no published rule version is in force: no tiers to evaluate"))
    cond = [Order.member_id.is_not(None), Order.status == "paid", Order.paid_at <= at]
    if rules.tier_window_days:
        cond.append(Order.paid_at > at - dt.timedelta(days=rules.tier_window_days))
    spend = (
        select(Order.member_id.label("member_id"), func.sum(Order.amount_minor).label("spend"))
        .where(*cond)
        .group_by(Order.member_id)
        .subquery()
    )
    new_tier = _tier_case(rules, spend.c.spend)
    changed = s.execute(
        update(Member)
        .where(Member.id == spend.c.member_id)
        .where(or_(Member.tier.is_(None), Member.tier != new_tier))
        .values(tier=new_tier, tier_evaluated_at=at)
        .execution_options(synchronize_session=False)
    ).rowcount
    first = rules.tiers[0].name
    no_orders = ~exists().where(and_(Order.member_id == Member.id, *cond))
    changed += s.execute(
        update(Member)
        .where(or_(Member.tier.is_(None), Member.tier != first))
        .where(no_orders)
        .values(tier=first, tier_evaluated_at=at)
        .execution_options(synchronize_session=False)
    ).rowcount
    dist = dict(s.execute(select(Member.tier, func.count()).group_by(Member.tier)).all())
    return TierPass(at, rules.rule_set_id, sum(dist.values()), changed,
                    {str(k): int(v) for k, v in dist.items()})
