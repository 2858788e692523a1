"""simulate() against a plain per-member reference on random memberships.

The reference walks each member's orders in Python exactly as the engine
decides accrual (db.ledger.qualifying_spend: paid orders strictly before the
moment, within the tier window) - the per-member loop the set-based code
replaces. Random data includes guests, refunded orders, referrers, blocked
and closed members (no accrual, no referral bonus, as in the engine), orders
of one member at the same moment, orders before the period and rolling
windows on either side.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections import Counter, defaultdict

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, insert

from db import rules
from db.models import Member, Order
from db.rules import Rules, get_rules, rules_in_force
from db.simulation import simulate
from tests.support.factories import T0, publish, staff

AS_OF = T0 + dt.timedelta(days=400)
SEGMENTS = ("regular", "student")
_versions = itertools.count(1)

tiers_st = st.lists(
    st.tuples(st.integers(1, 60), st.integers(0, 900), st.integers(0, 400)),
    min_size=1, max_size=4,
).map(lambda rows: [
    {"name": f"T{i}", "threshold": str(0 if i == 0 else sum(r[0] for r in rows[1:i + 1]) * 50),
     "accrual_rate": f"{a / 100:.2f}", "referral_rate": f"{b / 100:.2f}"}
    for i, (_, a, b) in enumerate(rows)
])
# days, windows and the period on a 20-day grid, minutes from a short list, few members: orders
# of one member at one moment, and orders exactly a window or a period apart, are common
window_st = st.one_of(st.none(), st.integers(1, 6).map(lambda n: n * 20))
member_st = st.tuples(
    st.sampled_from([True, True, False]), st.integers(0, 9),  # referred?, which earlier member
    st.sampled_from(SEGMENTS), st.sampled_from(["active"] * 4 + ["blocked", "closed"]),
)
order_st = st.tuples(
    st.integers(-1, 3),  # member index (-1: a guest)
    # day (mostly in the period), minute
    st.one_of(st.integers(0, 19), st.integers(14, 19)).map(lambda n: n * 20),
    st.sampled_from([0, 0, 0, 600]),
    st.integers(0, 150_000),  # amount in minor units: a few orders climb a tier
    st.sampled_from([True, True, True, False]),  # paid (else refunded)
)


def reference(orders, members, current: Rules, draft: Rules, start: dt.datetime):
    """(tiers today per rules, points per rules and kind, by segment, by day) the slow way."""
    paid = defaultdict(list)
    for m, at, amount in orders:
        paid[m].append((at, amount))

    def spend(m, before, window):
        return sum(a for at, a in paid[m] if at < before
                   and (window is None or at >= before - dt.timedelta(days=window)))

    out = {}
    for key, r in (("current", current), ("draft", draft)):
        w = r.tier_window_days
        acc = ref = 0
        seg = Counter()
        day = Counter()
        for m, at, amount in orders:
            if at < start:
                continue
            a = r.points_for(amount, r.tier_for(spend(m, at, w)).accrual_rate_bp)
            if not members[m][2]:  # the engine gives an inactive member nothing
                a = 0
            b = 0
            referrer = members[m][0]
            if referrer is not None and members[referrer][2]:
                b = r.points_for(amount, r.tier_for(spend(referrer, at, w)).referral_rate_bp)
            acc, ref = acc + a, ref + b
            seg[members[m][1]] += a
            day[at.date()] += a + b
        today = {m: r.tiers.index(r.tier_for(spend(m, AS_OF, w))) for m in members}
        out[key] = (today, acc, ref, seg, day)
    return out


@settings(max_examples=80, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture,
                                 HealthCheck.too_slow])
@given(tiers_st, tiers_st, window_st, window_st, st.integers(5, 10).map(lambda n: n * 20),
       st.lists(member_st, min_size=2, max_size=6), st.lists(order_st, min_size=10, max_size=40))
def test_simulate_matches_the_per_member_reference(
    any_db, cur_tiers, new_tiers, cur_window, new_window, days, member_specs, order_specs
):
    db = any_db
    version = next(_versions)
    with db.begin() as s:
        publish(s, cur_tiers, effective_at=T0 - dt.timedelta(days=2000) + dt.timedelta(
            minutes=version), name=f"current {version}", tier_window_days=cur_window)
        draft_id = rules.create_draft(s, staff(s, "author", "supervisor"), f"draft {version}",
                                      new_tiers, tier_window_days=new_window)
        ids = []
        for i, (referred, pick, segment, status) in enumerate(member_specs):
            referrer = ids[pick % len(ids)] if ids and referred else None
            mid = s.execute(insert(Member).values(
                external_id=f"M{version}-{i}", name="", joined_at=T0, segment=segment,
                referrer_id=referrer, status=status).returning(Member.id)).scalar_one()
            ids.append(mid)
        members = {}
        for mid in ids:
            row = s.get(Member, mid)
            members[mid] = (row.referrer_id, row.segment, row.status == "active")
        paid_orders = []
        for k, (who, day, minute, amount, is_paid) in enumerate(order_specs):
            mid = ids[who % len(ids)] if who >= 0 else None
            at = T0 + dt.timedelta(days=day, minutes=minute)
            s.execute(insert(Order).values(
                order_ref=f"O{version}-{k}", customer_ref=f"C{mid}", member_id=mid,
                paid_at=at, amount_minor=amount, points_redeemed=0,
                status="paid" if is_paid else "refunded",
                refunded_at=None if is_paid else at + dt.timedelta(hours=1),
                payload_hash="", created_at=at))
            if is_paid and mid is not None:
                paid_orders.append((mid, at, amount))
    try:
        with db.read() as s:
            result = simulate(s, draft_id, days=days, as_of=AS_OF)
            current, draft = rules_in_force(s, AS_OF), get_rules(s, draft_id)
        start = AS_OF - dt.timedelta(days=days)
        ref = reference(paid_orders, members, current, draft, start)

        today_cur, acc_cur, ref_cur, seg_cur, day_cur = ref["current"]
        today_new, acc_new, ref_new, seg_new, day_new = ref["draft"]
        assert result.members == len(ids)
        assert result.orders == sum(1 for _, at, _ in paid_orders if at >= start)
        assert result.points["accrual"]["current"] == acc_cur
        assert result.points["accrual"]["draft"] == acc_new
        assert result.points["referral"]["current"] == ref_cur
        assert result.points["referral"]["draft"] == ref_new
        cells = Counter((today_cur[m], today_new[m]) for m in ids)
        assert {(i, j): int(result.matrix.iat[i, j])
                for i in range(len(current.tiers)) for j in range(len(draft.tiers))
                if result.matrix.iat[i, j]} == dict(cells)
        rate_cur = {m: current.tiers[today_cur[m]].accrual_rate_bp for m in ids}
        rate_new = {m: draft.tiers[today_new[m]].accrual_rate_bp for m in ids}
        moves = Counter((rate_new[m] > rate_cur[m]) - (rate_new[m] < rate_cur[m]) for m in ids)
        assert (result.moved_up, result.moved_down, result.unchanged) == (
            moves[1], moves[-1], moves[0])
        seg = result.by_segment.set_index("segment")
        for name in {sg for _, sg, _ in members.values()}:
            assert seg.loc[name, "points_current"] == seg_cur[name]
            assert seg.loc[name, "points_draft"] == seg_new[name]
            assert seg.loc[name, "members"] == sum(1 for _, sg, _ in members.values()
                                                   if sg == name)
        by_day = {d.date(): (c, n) for d, c, n in zip(
            result.by_day["date"], result.by_day["current_points"],
            result.by_day["draft_points"], strict=True)}
        assert by_day == {d: (day_cur[d], day_new[d]) for d in set(day_cur) | set(day_new)}
    finally:
        with db.begin() as s:
            s.execute(delete(Order))
            s.execute(delete(Member).where(Member.referrer_id.is_not(None)))
            s.execute(delete(Member))
