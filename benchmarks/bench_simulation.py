"""Rule simulation at scale: db.simulation.simulate (set-based, numpy) on the
whole membership against a per-member Python loop doing the same
computation (each member's orders and their referrer's fetched and walked
in Python) on a sample; prints the time per member of both and the ratio.

    .venv/bin/python -m benchmarks.bench_simulation --members 1000000
    .venv/bin/python -m benchmarks.bench_simulation --members 1000000 \
        --db postgresql+psycopg://postgres@127.0.0.1:5432/bench_simulation

The database is synthetic (benchmarks/synthetic_membership.py): a SQLite
file under /tmp, or the PostgreSQL database named (dropped and created
again); it is reused between runs when it holds the same number of members.
"""

from __future__ import annotations

import argparse
import bisect
import datetime as dt
import random
import time
from pathlib import Path

from sqlalchemy import text

from benchmarks.synthetic_membership import AS_OF, build
from db.rules import Rules, get_rules, rules_in_force
from db.session import Database
from db.simulation import simulate


def loop_member(s, member_id: int, referrer_id: int | None, current: Rules, draft: Rules,
                start: dt.datetime, as_of: dt.datetime) -> tuple[int, int, int, int, int, int]:
    """One member the naive way: (tier now, draft tier now, accrual now, draft,
    referral now, draft) - what simulate() computes for everyone at once."""
    def orders_of(mid: int) -> list[tuple[dt.datetime, int]]:
        rows = s.execute(text(
            "SELECT paid_at, amount_minor FROM orders WHERE member_id = :m AND status = 'paid' "
            "AND paid_at < :t ORDER BY paid_at"), {"m": mid, "t": as_of}).all()
        return [(p if isinstance(p, dt.datetime) else dt.datetime.fromisoformat(p), a)
                for p, a in rows]

    mine = orders_of(member_id)
    theirs = orders_of(referrer_id) if referrer_id else []

    def spend_before(orders, t: dt.datetime) -> int:
        i = bisect.bisect_left(orders, (t, -1))
        return sum(a for _, a in orders[:i])

    tier_now = current.tiers.index(current.tier_for(spend_before(mine, as_of)))
    tier_new = draft.tiers.index(draft.tier_for(spend_before(mine, as_of)))
    acc_cur = acc_new = ref_cur = ref_new = 0
    for t, amount in mine:
        if t < start:
            continue
        spend = spend_before(mine, t)
        acc_cur += current.points_for(amount, current.tier_for(spend).accrual_rate_bp)
        acc_new += draft.points_for(amount, draft.tier_for(spend).accrual_rate_bp)
        if referrer_id:
            rs = spend_before(theirs, t)
            ref_cur += current.points_for(amount, current.tier_for(rs).referral_rate_bp)
            ref_new += draft.points_for(amount, draft.tier_for(rs).referral_rate_bp)
    return tier_now, tier_new, acc_cur, acc_new, ref_cur, ref_new


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--members", type=int, default=1_000_000)
    ap.add_argument("--days", type=int, default=90)
    ap.add_argument("--sample", type=int, default=2_000)
    ap.add_argument("--runs", type=int, default=3, help="simulate() runs; the best is compared")
    ap.add_argument("--db", default="/tmp/loyalty-bench-{members}.sqlite3")
    args = ap.parse_args()
    target = args.db.format(members=args.members)
    path = target if target.startswith("postgresql") else Path(target)
    url, draft_id = build(path, args.members)
    d = Database(url)
    with d.read() as s:
        n_orders = s.execute(text(
            "SELECT count(*) FROM orders WHERE paid_at >= :a"),
            {"a": AS_OF - dt.timedelta(days=args.days)}).scalar()
    print(f"database: {path} ({args.members:,} members, {n_orders:,} orders in the last "
          f"{args.days} days)")

    runs = []
    for run in range(1, args.runs + 1):
        steps: list[tuple[float, str]] = []
        t0 = time.perf_counter()
        with d.read() as s:
            result = simulate(s, draft_id, days=args.days, as_of=AS_OF,
                              progress=lambda f, m, steps=steps, t0=t0: steps.append(
                                  (time.perf_counter() - t0, m)))
        took = time.perf_counter() - t0
        runs.append(took)
        # the first run may find the database's pages out of the OS cache
        print(f"simulate() run {run}: {took:.2f} s for {result.members:,} members and "
              f"{result.orders:,} orders -> {took / result.members * 1e6:.2f} us per member "
              f"(target < 10 s: {'met' if took < 10 else 'NOT met'})")
        print("  steps: " + ", ".join(f"{m} @{t:.1f}s" for t, m in steps))
    set_based = min(runs)
    print(f"  moved up {result.moved_up:,}, down {result.moved_down:,}; accrual "
          f"{result.points['accrual']}, referral {result.points['referral']}")

    rng = random.Random(1)
    with d.read() as s:
        sample = rng.sample(range(1, args.members + 1), min(args.sample, args.members))
        refs = dict(s.execute(text(
            "SELECT id, referrer_id FROM members WHERE referrer_id IS NOT NULL")).all())
        current, draft = rules_in_force(s, AS_OF), get_rules(s, draft_id)
        start = AS_OF - dt.timedelta(days=args.days)
        t1 = time.perf_counter()
        for mid in sample:
            loop_member(s, mid, refs.get(mid), current, draft, start, AS_OF)
        loop = time.perf_counter() - t1
    per_loop = loop / len(sample)
    per_set = set_based / result.members
    print(f"per-member Python loop: {loop:.2f} s for a sample of {len(sample):,} members -> "
          f"{per_loop * 1e6:.0f} us per member; {per_loop * result.members:.0f} s projected "
          f"for the whole membership")
    print(f"ratio per member (loop / best set-based run): {per_loop / per_set:.0f}x")
    d.dispose()


if __name__ == "__main__":
    main()
