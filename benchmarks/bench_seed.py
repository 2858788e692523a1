"""Time the demo seeder: members, orders, ledger entries and rows/s.

    .venv/bin/python benchmarks/bench_seed.py --members 20000
    .venv/bin/python benchmarks/bench_seed.py --members 1000000 --db /tmp/seed1m.sqlite3
    .venv/bin/python benchmarks/bench_seed.py --members 20000 --db postgresql+psycopg://...

Into a fresh migrated SQLite file (a temp dir unless ``--db``; an existing
file is replaced) or an empty PostgreSQL database. ``--check`` also runs
the integrity check and times it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from db import demo  # noqa: E402
from db.integrity import run_check  # noqa: E402
from db.migrate import upgrade  # noqa: E402
from db.session import Database  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--members", type=int, default=20_000)
    ap.add_argument("--months", type=int, default=12)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--db", default="", help="SQLite path or database URL")
    ap.add_argument("--check", action="store_true")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.db or str(Path(tmp) / "seed.sqlite3")
        if "://" not in url:
            for suffix in ("", "-wal", "-shm"):
                Path(url + suffix).unlink(missing_ok=True)
            url = f"sqlite:///{url}"
        d = Database(url)
        upgrade(d.engine)
        t0 = time.perf_counter()
        r = demo.seed(d, members=args.members, seed=args.seed, months=args.months,
                      start=dt.datetime(2025, 1, 1), progress=not args.no_progress)
        wall = time.perf_counter() - t0
        print(f"{d.dialect}: {args.members:,} members, {args.months} months")
        print(r)
        print(f"wall {wall:.1f} s incl. commit; members {r.members:,}, orders {r.orders:,}, "
              f"entries {r.entries:,}; {r.members / wall:,.0f} members/s, "
              f"{r.orders / wall:,.0f} orders/s, {r.entries / wall:,.0f} entries/s, "
              f"{(r.members + r.orders + r.entries) / wall:,.0f} rows/s", flush=True)
        if args.check:
            t0 = time.perf_counter()
            with d.read() as s:
                rep = run_check(s)
            print(f"integrity check ok={rep.ok} in {time.perf_counter() - t0:.1f} s {rep.summary}")
            for v in rep.violations[:20]:
                print(" ", v)
        d.dispose()


if __name__ == "__main__":
    main()
