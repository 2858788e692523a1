"""The API's order batch in the engine alone (no HTTP): ``bulk.post_orders``
(set-based) side by side with ``ledger.post_orders_each`` (each order through
``post_order`` in a savepoint, the reference), on SQLite or PostgreSQL.

Builds a throwaway program database (a published rule set, ``--members``
members, a fifth of them referred by another member), then posts
``--rounds`` rounds; each round posts one batch of ``--batch`` orders through
each path, alternately first, to separate member pools (so the two see the
same kind of history and a busy machine slows both alike). Every tenth order
redeems a few points, and the last order of each batch repeats an earlier one
(a till's retry). Prints, per path, orders/s, ms per batch (p50/p95) and the
SQL statements sent per order (an execute, executemany or COPY is one; then
again with an executemany counted once per row), then the ratios, and checks
the ledger (``loyalty check``).
A measurement, not a pass/fail test.

    .venv/bin/python benchmarks/bench_batch.py
    .venv/bin/python benchmarks/bench_batch.py --batch 500 --rounds 6 \\
        --postgres postgresql+psycopg://postgres@127.0.0.1/bench
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import event, text, update

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.small_program import publish  # noqa: E402
from db import bulk, clock, ledger  # noqa: E402
from db.integrity import run_check  # noqa: E402
from db.migrate import upgrade  # noqa: E402
from db.models import Member  # noqa: E402
from db.session import Database  # noqa: E402

PATHS = {"one by one (post_orders_each)": ledger.post_orders_each,
         "set-based (post_orders)": bulk.post_orders}


class StatementCounter:
    """SQL statements the engine sends (``calls``: one per execute, executemany
    or COPY) and how often they run (``runs``: an executemany once per row)."""

    def __init__(self, db: Database) -> None:
        self.calls = self.runs = 0
        event.listen(db.engine, "before_cursor_execute", self._on_execute)
        real = bulk.write_rows

        def write_rows(s, table, columns, rows):
            if rows and s.get_bind().dialect.name == "postgresql":
                self.calls += 1  # one COPY (SQLite's executemany is counted above)
                self.runs += 1
            return real(s, table, columns, rows)

        bulk.write_rows = write_rows

    def _on_execute(self, conn, cursor, statement, parameters, context, executemany):
        self.calls += 1
        self.runs += len(parameters) if executemany else 1


def build(url: str, members: int) -> None:
    db = Database(url)
    if db.dialect == "postgresql":
        with db.engine.begin() as c:
            c.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    upgrade(db.engine)
    now = clock.utcnow()
    with db.begin() as s:
        publish(s, effective_at=now - dt.timedelta(days=60))
        ids = [ledger.create_member(s, f"C-{i}", now - dt.timedelta(days=30))
               for i in range(members)]
        for i in range(0, members, 5):  # a fifth referred by a member of the same pool
            if i + 2 < members:
                s.execute(update(Member).where(Member.id == ids[i])
                          .values(referrer_id=ids[i + 2]))
    db.dispose()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=500, help="orders per batch (at most 500)")
    ap.add_argument("--rounds", type=int, default=6, help="batches per path")
    ap.add_argument("--members", type=int, default=1000, help="in all (half per path)")
    ap.add_argument("--postgres", default=None, help="a PostgreSQL URL (its schema is replaced)")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="loyalty-bench-batch-"))
    url = args.postgres or f"sqlite:///{tmp / 'bench.sqlite3'}"
    try:
        build(url, args.members)
        db = Database(url)
        counter = StatementCounter(db)
        paid = clock.utcnow() - dt.timedelta(minutes=10)
        half = args.members // 2
        took: dict[str, list[float]] = {p: [] for p in PATHS}
        statements = dict.fromkeys(PATHS, 0)
        runs = dict.fromkeys(PATHS, 0)
        refused = dict.fromkeys(PATHS, 0)
        for r in range(args.rounds):
            names = list(PATHS) if r % 2 == 0 else list(PATHS)[::-1]
            for name in names:
                k = list(PATHS).index(name)
                base = (k * args.rounds + r) * args.batch
                orders = [ledger.OrderIn(
                    f"E{k}-{base + j}", f"C-{k * half + (base + j * 7) % half}",
                    paid + dt.timedelta(microseconds=j), 10_000 + j,
                    3 if j % 10 == 9 else 0) for j in range(args.batch)]
                orders[-1] = orders[0]  # a retried order: a replay
                before, runs_before = counter.calls, counter.runs
                t0 = time.perf_counter()
                got = PATHS[name](db, orders)
                took[name].append(time.perf_counter() - t0)
                statements[name] += counter.calls - before
                runs[name] += counter.runs - runs_before
                refused[name] += sum(isinstance(x, Exception) for x in got)
        load = os.getloadavg()[0]
        print(f"database: {db.dialect}; {args.rounds} batches of {args.batch} orders per path; "
              f"load average (1 min) {load:.2f} on {os.cpu_count()} CPUs")
        rate, per_order = {}, {}
        for name in PATHS:
            t = sorted(took[name])
            q = statistics.quantiles(t, n=20, method="inclusive") if len(t) > 1 else t * 19
            n = args.rounds * args.batch
            rate[name] = n / sum(t)
            per_order[name] = statements[name] / n
            print(f"{name}: {rate[name]:.0f} orders/s; per batch p50 "
                  f"{statistics.median(t) * 1000:.0f} ms, p95 {q[18] * 1000:.0f} ms; "
                  f"SQL statements per order: {per_order[name]:.2f} "
                  f"({runs[name] / n:.2f} counting each executemany row); "
                  f"refused {refused[name]}")
        old, new = list(PATHS)
        print(f"set-based vs one by one: {rate[new] / rate[old]:.1f}x the orders/s, "
              f"{per_order[old] / per_order[new]:.0f}x fewer statements per order")
        with db.read() as s:
            check = run_check(s)
        print(f"ledger check: {'clean' if check.ok else check.violations}")
        db.dispose()
        return 0 if check.ok else 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
