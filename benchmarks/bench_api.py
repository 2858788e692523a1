"""Sustained order posts through the shop's API (/api/v1/orders) against
gunicorn on loopback, on SQLite or PostgreSQL.

Builds a throwaway program database (a published rule set and ``--members``
members enrolled ahead), creates an API key, starts ``gunicorn
dashboard.wsgi:server`` and has ``--clients`` threads post ``--orders``
orders in all (each with its own Idempotency-Key; every tenth one sent twice,
as a till retries). With ``--batch N`` each call is ``POST /orders/batch``
with N orders (a shop system forwarding what its tills buffered). Prints
orders/s, p50/p95/max latency per call and the error count, then checks the
ledger: one order per order id and ``loyalty check`` clean. ``--redis`` keeps
the per-key call limit in Redis, as production does (else the database).
Meanwhile an executive's live page refreshes once a second (its times are
printed too). The engine's share, and its SQL statements per order, without
HTTP: ``benchmarks/bench_batch.py``. A measurement, not a pass/fail test.

    .venv/bin/python benchmarks/bench_api.py --orders 5000 --clients 16
    .venv/bin/python benchmarks/bench_api.py --postgres postgresql+psycopg://postgres@127.0.0.1/bench
    .venv/bin/python benchmarks/bench_api.py --postgres ... --batch 100 --redis redis://127.0.0.1:6379/0
    .venv/bin/python benchmarks/bench_api.py --postgres ... --batch 500 --orders 20000
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import secrets
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import requests
from sqlalchemy import func, select, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.bench_http_load import (  # noqa: E402
    UPDATE,
    body,
    find_callback,
    start_gunicorn,
    stop_gunicorn,
)
from benchmarks.small_program import publish, staff  # noqa: E402
from db import api_keys, clock, ledger  # noqa: E402
from db.integrity import run_check  # noqa: E402
from db.migrate import upgrade  # noqa: E402
from db.models import Order  # noqa: E402
from db.session import Database  # noqa: E402


def build(url: str, members: int) -> str:
    db = Database(url)
    if db.dialect == "postgresql":
        with db.engine.begin() as c:
            c.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    upgrade(db.engine)
    now = clock.utcnow()

    def enrol(s) -> str:
        publish(s, effective_at=now - dt.timedelta(days=60))
        for i in range(members):
            ledger.create_member(s, f"API-{i}", now - dt.timedelta(days=30))
        staff(s, WATCHER, "executive")  # watches the live page during the load
        return api_keys.create_key(s, staff(s, "bench", "supervisor"), "Benchmark till",
                                   ["orders"])[1]

    token = db.write_tx(enrol)
    db.dispose()
    return token


class ServerCpu:
    """CPU seconds spent on the load: gunicorn's processes, the PostgreSQL
    backends serving this database (a local server) and this client. Divided
    by the orders, a figure other load on the machine barely moves, unlike
    orders/s."""

    def __init__(self, gunicorn_pid: int, url: str | None) -> None:
        self.gunicorn_pid, self.url = gunicorn_pid, url
        self.start = self.sample()

    def _backends(self) -> list[int]:
        if not self.url:
            return []
        db = Database(self.url)
        try:
            with db.engine.connect() as c:
                return list(c.execute(text(
                    "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                    "AND pid <> pg_backend_pid()")).scalars())
        finally:
            db.dispose()

    def sample(self) -> dict[str, dict[int, float]]:
        def cpu(procs) -> dict[int, float]:
            out = {}
            for p in procs:
                try:
                    c = p.cpu_times()
                    out[p.pid] = c.user + c.system
                except psutil.Error:
                    pass
            return out

        try:
            master = psutil.Process(self.gunicorn_pid)
            web = cpu([master, *master.children(recursive=True)])
        except psutil.Error:
            web = {}
        return {"gunicorn": web,
                "PostgreSQL": cpu(psutil.Process(pid) for pid in self._backends()),
                "this client": cpu([psutil.Process()])}

    def used(self) -> dict[str, float]:
        end = self.sample()
        return {k: sum(v - self.start[k].get(pid, 0.0) for pid, v in end[k].items())
                for k in end}


WATCHER = "watcher"
WATCHER_PASSWORD = "password-123"  # benchmarks.small_program.staff's


class LiveWatcher(threading.Thread):
    """An executive with the live page open: its refresh callback every
    ``every`` seconds while the load runs; each refresh's time and status."""

    def __init__(self, base: str, every: float = 1.0) -> None:
        super().__init__(daemon=True)
        self.base, self.every = base, every
        self.stop = threading.Event()
        self.samples: list[tuple[float, int]] = []

    def login(self) -> None:
        """Sign in and find the refresh callback (before the load: argon2 is slow)."""
        self.s = s = requests.Session()
        page = s.get(f"{self.base}/login", timeout=30)
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
        s.post(f"{self.base}/login", data={"username": WATCHER, "password": WATCHER_PASSWORD,
                                           "csrf_token": token, "next": "/live"},
               allow_redirects=False, timeout=30)
        deps = s.get(f"{self.base}/_dash-dependencies", timeout=30).json()
        self.call = body(find_callback(deps, "live-updated"),
                         {"live-interval.n_intervals": 1, "live-days.value": 7})

    def run(self) -> None:
        s, call = self.s, self.call
        while not self.stop.is_set():
            t0 = time.perf_counter()
            try:
                status = s.post(self.base + UPDATE, json=call, timeout=30).status_code
            except requests.RequestException:
                status = 0
            took = time.perf_counter() - t0
            self.samples.append((took, status))
            self.stop.wait(max(0.0, self.every - took))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--orders", type=int, default=3000)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=8, help="per worker, as the Procfile's")
    ap.add_argument("--members", type=int, default=500)
    ap.add_argument("--postgres", default=None, help="a PostgreSQL URL (its schema is replaced)")
    ap.add_argument("--batch", type=int, default=0,
                    help="orders per POST /orders/batch call (default: one POST /orders each)")
    ap.add_argument("--redis", default=None, help="a Redis URL for the per-key call limit")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="loyalty-bench-api-"))
    url = args.postgres or f"sqlite:///{tmp / 'bench.sqlite3'}"
    proc = None
    try:
        token = build(url, args.members)
        env = dict(os.environ, DATABASE_URL=url, SECRET_KEY=secrets.token_hex(32),
                   LOYALTY_ENV="development", API_KEY_LIMIT="1000000 per minute")
        env.pop("REDIS_URL", None)
        if args.redis:
            env["REDIS_URL"] = args.redis
        log = tmp / "gunicorn.log"
        proc, base = start_gunicorn(
            env, ["--workers", str(args.workers), "--threads", str(args.threads)], log,
            wait=180)  # a busy machine builds the app slowly
        if base is None:
            return 1

        paid = (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=10)).isoformat()
        sessions: dict[int, requests.Session] = {}

        def body(i: int) -> dict:
            return {"order_id": f"B-{i}", "customer_id": f"API-{i % args.members}",
                    "paid_at": paid, "amount_minor": 10_000 + i}

        def post(i: int) -> list[tuple[float, int]]:
            """Call i: one order, or orders [i*batch, (i+1)*batch) with --batch."""
            s = sessions.setdefault(threading.get_ident(), requests.Session())
            if args.batch:
                url_ = f"{base}/api/v1/orders/batch"
                payload = {"orders": [body(j) for j in range(
                    i * args.batch, min((i + 1) * args.batch, args.orders))]}
            else:
                url_, payload = f"{base}/api/v1/orders", body(i)
            out = []
            for _ in range(2 if i % 10 == 0 else 1):
                t0 = time.perf_counter()
                r = s.post(url_, json=payload, timeout=60, headers={
                    "Authorization": f"Bearer {token}", "Idempotency-Key": f"k-{i}"})
                ok = r.status_code in (200, 201) and (
                    not args.batch or r.json()["refused"] == 0)
                out.append((time.perf_counter() - t0, r.status_code if ok else -r.status_code))
            return out

        calls = -(-args.orders // args.batch) if args.batch else args.orders
        watcher = LiveWatcher(base)
        watcher.login()
        watcher.start()
        local_pg = args.postgres if args.postgres and re.search(
            r"@(127\.0\.0\.1|localhost)[:/]", args.postgres) else None
        server_cpu = ServerCpu(proc.pid, local_pg)
        load_before = os.getloadavg()[0]
        t0 = time.perf_counter()
        with ThreadPoolExecutor(args.clients) as pool:
            results = [x for xs in pool.map(post, range(calls)) for x in xs]
        elapsed = time.perf_counter() - t0
        cpu_used = server_cpu.used()
        load_after = os.getloadavg()[0]
        watcher.stop.set()
        watcher.join(35)
        lat = sorted(x for x, _ in results)
        codes = Counter(c for _, c in results)
        q = statistics.quantiles(lat, n=100, method="inclusive")
        print(f"database: {'PostgreSQL' if args.postgres else 'SQLite'}; gunicorn workers: "
              f"{args.workers} x {args.threads} threads; clients: {args.clients}; limit store: "
              f"{'Redis' if args.redis else 'database'}; "
              f"{f'batches of {args.batch}' if args.batch else 'one order per call'}")
        print(f"orders: {args.orders} ({len(results)} calls with retries) in {elapsed:.1f}s: "
              f"{args.orders / elapsed:.0f} orders/s")
        print(f"latency per call p50: {q[49] * 1000:.0f} ms; p95: {q[94] * 1000:.0f} ms; "
              f"max: {lat[-1] * 1000:.0f} ms")
        cpu_total = sum(cpu_used.values()) or float("nan")
        print(f"CPU: {'; '.join(f'{k} {v:.1f} s' for k, v in cpu_used.items())}"
              f"{' (PostgreSQL not local: not counted)' if args.postgres and not local_pg else ''}"
              f" = "
              f"{cpu_total * 1000 / args.orders:.2f} ms per order, so at most "
              f"~{args.orders * (os.cpu_count() or 1) / cpu_total:.0f} orders/s on "
              f"{os.cpu_count()} idle CPUs; load average (1 min) {load_before:.2f} before, "
              f"{load_after:.2f} after")
        errors = sum(n for c, n in codes.items() if c not in (200, 201))
        answered = (200, 204)  # 204: the page had nothing new to show
        live = sorted(x for x, c in watcher.samples if c in answered)
        live_failed = sum(1 for _, c in watcher.samples if c not in answered)
        live_codes = Counter(c for _, c in watcher.samples if c not in answered)
        if live:
            print(f"live page during the load: {len(live)} refreshes (one a second asked), "
                  f"p50 {statistics.median(live) * 1000:.0f} ms, max {live[-1] * 1000:.0f} ms; "
                  f"failed: {live_failed} {dict(live_codes) if live_codes else ''}")
        else:
            print(f"live page during the load: no refresh answered; failed: {live_failed}")
        print(f"responses: {dict(codes)}; errors: {errors}")
        if errors and log.stat().st_size:
            print("gunicorn's log (the end):", *log.read_text().splitlines()[-40:], sep="\n")
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
        return 0 if (errors == 0 and posted == args.orders and check.ok and live
                     and not live_failed) else 1
    finally:
        stop_gunicorn(proc)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
