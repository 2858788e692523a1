"""Time ``import_orders`` on a generated CSV (default 500,000 rows; --huge: 2,000,000).

Writes the CSV into a temp dir (about 20 % of customers referred, some
checkout redemptions that the balance covers), imports it into a fresh
migrated SQLite file and - if it answers - a fresh PostgreSQL database, and
prints seconds, rows/s, the process's peak memory (RSS) and how long the one
final transaction held the database (the batches before it are short). Then
imports the same file again (every row is skipped) to time the idempotency
path.

    .venv/bin/python benchmarks/bench_import.py
    .venv/bin/python benchmarks/bench_import.py --huge --pg ''
    .venv/bin/python benchmarks/bench_import.py --rows 50000 --pg postgresql+psycopg://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import resource
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from db import rule_review, rules, users  # noqa: E402
from db.actor import CLI, Actor  # noqa: E402
from db.importer import import_orders  # noqa: E402
from db.integrity import run_check  # noqa: E402
from db.migrate import upgrade  # noqa: E402
from db.session import Database  # noqa: E402

START = dt.datetime(2025, 1, 1)
TIERS = [
    {"name": "Bronze", "threshold": "0", "accrual_rate": "3", "referral_rate": "1"},
    {"name": "Silver", "threshold": "10000", "accrual_rate": "5", "referral_rate": "2"},
    {"name": "Gold", "threshold": "30000", "accrual_rate": "7", "referral_rate": "3"},
]


def write_csv(path: Path, rows: int, seed: int = 1) -> None:
    rng = np.random.default_rng(seed)
    customers = max(rows // 5, 1)
    cust = rng.integers(0, customers, rows)
    secs = np.sort(rng.integers(0, 365 * 86_400, rows))
    amount = np.round(rng.lognormal(np.log(800), 0.6, rows), 2)
    # a customer may be referred by a customer in the file with a smaller number
    present = np.flatnonzero(np.bincount(cust, minlength=customers))
    below = np.searchsorted(present, np.arange(customers))
    referred = (rng.random(customers) < 0.2) & (below > 0)
    referrer = present[(rng.random(customers) * np.maximum(below, 1)).astype(np.int64)]
    first_seen = np.full(customers, -1)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(
            ["customer_id", "order_id", "paid_at", "amount", "referrer_id", "points_redeemed"]
        )
        for i in range(rows):
            c = int(cust[i])
            ref = ""
            if first_seen[c] < 0:
                first_seen[c] = i
                if referred[c]:
                    ref = f"C{referrer[c]:07d}"
            # a 1-point redemption on a customer's later order is always covered:
            # the first order (>= 34 RUB at 3 %) earned at least one point
            pts = "1" if first_seen[c] < i and amount[first_seen[c]] >= 34 and i % 7 == 0 else ""
            paid = START + dt.timedelta(seconds=int(secs[i]))
            w.writerow([f"C{c:07d}", f"O{i:08d}", paid.isoformat(), f"{amount[i]:.2f}", ref, pts])


def fresh_program(d: Database) -> None:
    upgrade(d.engine)
    with d.begin() as s:
        a = users.create_user(s, "bench-author", "password-123", "supervisor")
        b = users.create_user(s, "bench-approver", "password-123", "supervisor")
        author, approver = Actor(a.username, a.id, a.role), Actor(b.username, b.id, b.role)
        rid = rules.create_draft(s, author, "Bench rules", TIERS)
        rule_review.submit(s, author, rid)
        rules.approve(s, approver, rid, START - dt.timedelta(days=1), allow_past=True)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def run(d: Database, path: Path, label: str, check: bool, batch: int | None) -> None:
    fresh_program(d)
    r = import_orders(d, path, actor=CLI, batch_rows=batch)
    print(
        f"{label:10s} import   {r.rows:>8,} rows  {r.seconds:6.2f} s  "
        f"{r.rows_per_second:>9,.0f} rows/s  peak RSS {peak_rss_mb():,.0f} MB  "
        f"final transaction {r.final_seconds:.2f} s  (members {r.members_created:,}, "
        f"accrued {r.points_accrued:,}, referral {r.referral_bonus:,}, "
        f"redeemed {r.points_redeemed:,})",
        flush=True,
    )
    r2 = import_orders(d, path, actor=CLI, batch_rows=batch)
    print(
        f"{label:10s} re-import {r2.rows:>7,} rows  {r2.seconds:6.2f} s  "
        f"{r2.rows_per_second:>9,.0f} rows/s  (skipped {r2.skipped_existing:,})",
        flush=True,
    )
    if check:
        t0 = time.perf_counter()
        with d.read() as s:
            rep = run_check(s)
        print(
            f"{label:10s} integrity check ok={rep.ok} in {time.perf_counter() - t0:.1f} s "
            f"{rep.summary}",
            flush=True,
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=500_000)
    ap.add_argument("--huge", action="store_true", help="2,000,000 rows")
    ap.add_argument("--batch", type=int, default=None, help="rows per import batch")
    ap.add_argument(
        "--pg",
        default="postgresql+psycopg://postgres@127.0.0.1:5432/test",
        help="admin URL of a PostgreSQL server ('' to skip)",
    )
    ap.add_argument("--check", action="store_true", help="run the integrity check afterwards")
    args = ap.parse_args()
    if args.huge:
        args.rows = 2_000_000
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "orders.csv"
        t0 = time.perf_counter()
        write_csv(path, args.rows)
        print(
            f"generated {args.rows:,} rows ({path.stat().st_size / 1e6:.1f} MB) "
            f"in {time.perf_counter() - t0:.1f} s (peak RSS so far {peak_rss_mb():,.0f} MB)",
            flush=True,
        )

        d = Database(f"sqlite:///{Path(tmp) / 'bench.sqlite3'}")
        run(d, path, "sqlite", args.check, args.batch)
        d.dispose()

        if args.pg:
            try:
                admin = create_engine(
                    args.pg, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3}
                )
                name = f"bench_import_{uuid.uuid4().hex[:8]}"
                with admin.connect() as c:
                    c.execute(text(f'CREATE DATABASE "{name}"'))
            except Exception as exc:  # noqa: BLE001 - any failure means "no PostgreSQL here"
                print(f"postgresql skipped: {type(exc).__name__}: {exc}")
                return
            try:
                d = Database(args.pg.rsplit("/", 1)[0] + f"/{name}")
                run(d, path, "postgresql", args.check, args.batch)
                d.dispose()
            finally:
                with admin.connect() as c:
                    c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                admin.dispose()


if __name__ == "__main__":
    main()
