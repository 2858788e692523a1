"""Sustained order posts through the shop's API (/api/v1/orders) against
gunicorn on loopback, on SQLite or PostgreSQL.

Builds a throwaway program database (a published rule set and ``--members``
members enrolled ahead), creates an API key, starts ``gunicorn
dashboard.wsgi:server`` and has ``--clients`` threads post ``--orders``
orders in all (each with its own Idempotency-Key; every tenth one sent twice,
as a till retries). Prints orders/s, p50/p95/max latency and the error count,
then checks the ledger: one order per order id and ``loyalty check`` clean.
A measurement, not a pass/fail test.

    .venv/bin/python benchmarks/bench_api.py --orders 5000 --clients 16
    .venv/bin/python benchmarks/bench_api.py --postgres postgresql+psycopg://postgres@127.0.0.1/test
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests
from sqlalchemy import func, select, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.bench_http_load import start_gunicorn, stop_gunicorn  # noqa: E402
from db import api_keys, ledger  # noqa: E402
from db.integrity import run_check  # noqa: E402
from db.migrate import upgrade  # noqa: E402
from db.models import Order  # noqa: E402
from db.session import Database  # noqa: E402
from tests.factories import publish, staff  # noqa: E402


def build(url: str, members: int) -> str:
    db = Database(url)
    if db.dialect == "postgresql":
        with db.engine.begin() as c:
            c.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    upgrade(db.engine)
    now = ledger.utcnow()

    def enrol(s) -> str:
        publish(s, effective_at=now - dt.timedelta(days=60))
        for i in range(members):
            ledger.create_member(s, f"API-{i}", now - dt.timedelta(days=30))
        return api_keys.create_key(s, staff(s, "bench", "supervisor"), "Benchmark till",
                                   ["orders"])[1]

    token = db.write_tx(enrol)
    db.dispose()
    return token


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--orders", type=int, default=3000)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--members", type=int, default=500)
    ap.add_argument("--postgres", default=None, help="a PostgreSQL URL (its schema is replaced)")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="loyalty-bench-api-"))
    url = args.postgres or f"sqlite:///{tmp / 'bench.sqlite3'}"
    proc = None
    try:
        token = build(url, args.members)
        env = dict(os.environ, DATABASE_URL=url, SECRET_KEY=secrets.token_hex(32),
                   LOYALTY_ENV="development", API_KEY_LIMIT="1000000 per minute")
        env.pop("REDIS_URL", None)
        proc, base = start_gunicorn(env, ["--workers", str(args.workers), "--threads", "4"])
        if base is None:
            return 1

        paid = (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=10)).isoformat()
        sessions: dict[int, requests.Session] = {}

        def post(i: int) -> list[tuple[float, int]]:
            import threading

            s = sessions.setdefault(threading.get_ident(), requests.Session())
            body = {"order_id": f"B-{i}", "customer_id": f"API-{i % args.members}",
                    "paid_at": paid, "amount_minor": 10_000 + i}
            out = []
            for _ in range(2 if i % 10 == 0 else 1):
                t0 = time.perf_counter()
                r = s.post(f"{base}/api/v1/orders", json=body, timeout=30, headers={
                    "Authorization": f"Bearer {token}", "Idempotency-Key": f"k-{i}"})
                out.append((time.perf_counter() - t0, r.status_code))
            return out

        t0 = time.perf_counter()
        with ThreadPoolExecutor(args.clients) as pool:
            results = [x for xs in pool.map(post, range(args.orders)) for x in xs]
        elapsed = time.perf_counter() - t0
        lat = sorted(x for x, _ in results)
        codes = Counter(c for _, c in results)
        q = statistics.quantiles(lat, n=100)
        print(f"database: {'PostgreSQL' if args.postgres else 'SQLite'}; gunicorn workers: "
              f"{args.workers} x 4 threads; clients: {args.clients}")
        print(f"orders: {args.orders} ({len(results)} requests with retries) in {elapsed:.1f}s: "
              f"{args.orders / elapsed:.0f} orders/s")
        print(f"latency p50: {q[49] * 1000:.0f} ms; p95: {q[94] * 1000:.0f} ms; "
              f"max: {lat[-1] * 1000:.0f} ms")
        errors = sum(n for c, n in codes.items() if c != 201)
        print(f"responses: {dict(codes)}; errors: {errors}")
        db = Database(url)
        try:
            with db.read() as s:
                posted = s.scalar(select(func.count()).select_from(Order).where(
                    Order.order_ref.like("B-%")))
                check = run_check(s)
        finally:
            db.dispose()
        print(f"orders in the database: {posted} (expected {args.orders}); "
              f"ledger check: {'clean' if check.ok else check.violations}")
        return 0 if errors == 0 and posted == args.orders and check.ok else 1
    finally:
        stop_gunicorn(proc)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
