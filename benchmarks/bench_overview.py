"""Executive overview computations at ~1M members.

Uses the synthetic program bench_live.py builds (run it first, or pass --db),
brings the schema up to date and refreshes the rollups (the first refresh
after migration 0006 fills the cohort rollups: its time is printed), then
times ``db.reports.overview.overview`` (what the overview callback computes) for 1, 3
and 12 months, all members and one segment; median of a few runs, in
milliseconds, plus the parts.

    .venv/bin/python benchmarks/bench_overview.py
    .venv/bin/python benchmarks/bench_overview.py --db /tmp/live_bench/synthetic-100000.sqlite3
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from sqlalchemy import func, select

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from db import clock, metrics, rollups  # noqa: E402
from db.migrate import upgrade  # noqa: E402
from db.models import LedgerEntry, Member, Order  # noqa: E402
from db.reports import overview as report  # noqa: E402
from db.session import Database  # noqa: E402


def timed(fn, repeat: int) -> float:
    runs = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t0)
    return 1000 * statistics.median(runs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db", default="/tmp/live_bench/synthetic-1000000.sqlite3")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    if not Path(args.db).exists():
        sys.exit(f"{args.db} does not exist: run benchmarks/bench_live.py first")
    d = Database(f"sqlite:///{args.db}")
    upgrade(d.engine)  # an older synthetic program gets the newer rollup tables
    r = rollups.refresh_rollups(d)  # the first one after 0006 fills the cohort rollups
    with d.read() as s:
        n_m = s.scalar(select(func.count()).select_from(Member))
        n_o = s.scalar(select(func.max(Order.id)))
        n_e = s.scalar(select(func.max(LedgerEntry.id)))
    print(f"{n_m:,} members, ~{n_o:,} orders, ~{n_e:,} ledger entries "
          f"(refresh before: {1000 * r.seconds:.0f} ms)")
    for months in (1, 3, 12):
        for segment in (None, "student"):
            def run(months=months, segment=segment) -> None:
                with d.read() as s:
                    report.overview(s, months=months, segment=segment)
            ms = timed(run, args.repeat)
            print(f"overview {months:>2} month(s), {segment or 'all members':<12} {ms:8.0f} ms")
    # the parts, for 3 months
    with d.read() as s:
        rollups.prefer_rollups(s)
        now = clock.utcnow()
        t = report.add_months(report.month_start(now), 1)
        f = report.add_months(t, -3)
        parts = {
            "order stats (orders scan of the period)": lambda: metrics.order_stats(s, f, t),
            "rollup sums (daily)": lambda: rollups.daily_sum(s, report.ORDER_METRICS, f, t),
            "LTV cohorts (12 months)": lambda: metrics.ltv_cohorts(
                s, report.add_months(t, -12), now),
            "retention (12 months)": lambda: report.cohort_retention(
                s, report.add_months(t, -12), now, None),
        }
        for label, fn in parts.items():
            print(f"  {label:<42} {timed(fn, args.repeat):8.0f} ms")
    d.dispose()


if __name__ == "__main__":
    main()
