"""Load check: N logged-in users against gunicorn (2 workers) on loopback.

Builds a throwaway SQLite program database (the small test seed plus
``--members`` synthetic members with ``--orders`` paid orders each), starts
``gunicorn dashboard.wsgi:server`` on 127.0.0.1 at a free port, logs N users
in through the real login form (roles in turn), and has each send a fixed
number of requests (page load, Dash layout, the page's data callbacks, the
outage-banner ping). Prints requests/s, p50/p95/max latency and the error
count. A measurement, not a pass/fail test.

    .venv/bin/python benchmarks/bench_http_load.py --users 20 --requests 50
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import os
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests
from sqlalchemy import insert, select

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.dash_requests import UPDATE, keys_writing, request_body  # noqa: E402
from benchmarks.small_program import PASSWORD, STAFF, seed_small  # noqa: E402
from db.migrate import upgrade  # noqa: E402
from db.models import Account, Member, Order  # noqa: E402
from db.session import Database  # noqa: E402

MAX_USERS = 64


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_gunicorn(env: dict[str, str], options: list[str], log: Path | None = None,
                   wait: float = 60) -> tuple[subprocess.Popen, str | None]:
    """``gunicorn dashboard.wsgi:server`` on a free loopback port, once /healthz
    answers; (process, base URL), the URL None if it did not start in ``wait`` s.
    Its log goes to ``log`` if given (a pipe nobody reads would fill up and
    stall it on a long run), else to a pipe read only if it does not start."""
    port = free_port()
    gunicorn = shutil.which("gunicorn", path=str(Path(sys.executable).parent)) or "gunicorn"
    proc = subprocess.Popen(
        [gunicorn, *options, "--bind", f"127.0.0.1:{port}", "--log-level", "warning",
         "dashboard.wsgi:server"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, text=True,
        stderr=subprocess.PIPE if log is None else log.open("w"),
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + wait
    while True:
        try:
            if requests.get(f"{base}/healthz", timeout=2).status_code == 200:
                return proc, base
        except requests.RequestException:
            pass
        if proc.poll() is not None or time.time() > deadline:
            print("gunicorn did not start:", proc.stderr.read() if proc.stderr
                  else log.read_text() if log else "")
            return proc, None
        time.sleep(0.3)


def stop_gunicorn(proc: subprocess.Popen | None) -> None:
    if proc is not None and proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def build_db(path: Path, members: int, orders: int) -> str:
    url = f"sqlite:///{path}"
    db = Database(url)
    upgrade(db.engine)
    seed_small(db)
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)

    def bulk(s: Any) -> None:
        s.execute(insert(Member), [
            {"external_id": f"B{i:07d}", "name": f"Bench Member {i}",
             "email": f"bench{i}@example.com", "joined_at": now - dt.timedelta(days=i % 700),
             "segment": "regular", "status": "active", "tier": "Bronze"}
            for i in range(members)
        ])
        ids = list(s.scalars(select(Member.id).where(Member.external_id.like("B%"))))
        s.execute(insert(Account), [{"kind": "member", "member_id": m, "balance": 0}
                                    for m in ids])
        rows = []
        for n, m in enumerate(ids):
            for k in range(orders):
                ref = f"BO{n:07d}-{k}"
                rows.append({"order_ref": ref, "customer_ref": f"B{n:07d}", "member_id": m,
                             "paid_at": now - dt.timedelta(days=(n * 7 + k * 31) % 360),
                             "amount_minor": 50_000 + (n * k) % 200_000, "status": "paid",
                             "payload_hash": hashlib.sha256(ref.encode()).hexdigest()})
        for i in range(0, len(rows), 5000):
            s.execute(insert(Order), rows[i:i + 5000])

    db.write_tx(bulk)
    db.dispose()
    return url


def find_callback(deps: list[dict[str, Any]], output_id: str) -> dict[str, Any]:
    """The server callback (from ``/_dash-dependencies``) writing to ``output_id``."""
    server = {d["output"]: d for d in deps if not d.get("clientside_function")}
    found = keys_writing(server, output_id)
    if len(found) != 1:
        raise SystemExit(f"no single server callback writes to {output_id!r}: {found}")
    return server[found[0]]


def body(dep: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """A request body shaped like the Dash renderer's, values keyed 'id.property'."""
    return request_body(dep["output"], dep, values)


ROWS = {"startRow": 0, "endRow": 100, "sortModel": [], "filterModel": {}}
# what each role's user does, in turn: (method, path, (output id, input values) or None)
PLANS: dict[str, list[tuple[str, str, tuple[str, dict[str, Any]] | None]]] = {
    "supervisor": [
        ("GET", "/overview", None),
        ("POST", UPDATE, ("overview-actor", {"overview-loaded.data": 1})),
        ("POST", UPDATE, ("members-grid", {"members-grid.getRowsRequest": ROWS,
                                           "members-query.value": "bench member 12",
                                           "members-field.value": "auto"})),
        ("POST", UPDATE, ("live-updated", {"live-interval.n_intervals": 1,
                                           "live-days.value": 30})),
    ],
    "executive": [
        ("GET", "/overview", None),
        ("POST", UPDATE, ("overview-actor", {"overview-loaded.data": 1})),
        ("POST", UPDATE, ("live-updated", {"live-interval.n_intervals": 1,
                                           "live-days.value": 7})),
        ("GET", "/_dash-layout", None),
    ],
    "support": [
        ("GET", "/members", None),
        ("POST", UPDATE, ("members-grid", {"members-grid.getRowsRequest": ROWS,
                                           "members-query.value": "Bench Member 3",
                                           "members-field.value": "name"})),
        ("POST", UPDATE, ("live-updated", {"live-interval.n_intervals": 1,
                                           "live-days.value": 30})),
        ("POST", UPDATE, ("shell-db-banner", {"shell-db-interval.n_intervals": 1})),
    ],
}

Result = tuple[float, bool, str]


def run_user(base: str, role: str, n_requests: int, timeout: float) -> list[Result]:
    s = requests.Session()
    page = s.get(f"{base}/login", timeout=timeout)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    r = s.post(f"{base}/login", data={"username": STAFF[role][0], "password": PASSWORD,
                                      "csrf_token": token, "next": "/"},
               allow_redirects=False, timeout=timeout)
    if r.status_code != 302:
        return [(0.0, False, f"{role} login {r.status_code}")] * n_requests
    deps = s.get(f"{base}/_dash-dependencies", timeout=timeout).json()
    plan = [(m, p, None if c is None else (c[0], body(find_callback(deps, c[0]), c[1])))
            for m, p, c in PLANS[role]]
    out: list[Result] = []
    for i in range(n_requests):
        method, path, call = plan[i % len(plan)]
        label = f"{role} {method} {path}" + (f" -> {call[0]}" if call else "")
        t0 = time.perf_counter()
        try:
            if call is None:
                resp = s.get(base + path, timeout=timeout, allow_redirects=False)
            else:
                resp = s.post(base + path, json=call[1], timeout=timeout)
            ok = resp.status_code in (200, 204)
            label += f" {resp.status_code}"
        except requests.RequestException as e:
            ok = False
            label += f" {type(e).__name__}"
        out.append((time.perf_counter() - t0, ok, label))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=20)
    ap.add_argument("--requests", type=int, default=50, help="requests per user")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--members", type=int, default=2000)
    ap.add_argument("--orders", type=int, default=10, help="orders per synthetic member")
    ap.add_argument("--timeout", type=float, default=15.0)
    args = ap.parse_args()
    users = max(1, min(args.users, MAX_USERS))

    tmp = Path(tempfile.mkdtemp(prefix="loyalty-bench-"))
    proc = None
    try:
        t0 = time.perf_counter()
        url = build_db(tmp / "bench.sqlite3", args.members, args.orders)
        print(f"database: {args.members} synthetic members x {args.orders} orders "
              f"(+ test seed) in {time.perf_counter() - t0:.1f}s")
        env = dict(os.environ, DATABASE_URL=url, SECRET_KEY=secrets.token_hex(32),
                   LOYALTY_ENV="development")
        env.pop("REDIS_URL", None)
        proc, base = start_gunicorn(env, ["--workers", str(args.workers)])
        if base is None:
            return 1

        roles = list(PLANS)
        t0 = time.perf_counter()
        with ThreadPoolExecutor(max_workers=users) as pool:
            futures = [pool.submit(run_user, base, roles[i % len(roles)], args.requests,
                                   args.timeout) for i in range(users)]
            results = [r for f in futures for r in f.result()]
        elapsed = time.perf_counter() - t0
        lat = sorted(x for x, _, _ in results)
        failed = Counter(label for _, ok, label in results if not ok)
        q = statistics.quantiles(lat, n=100)
        print(f"gunicorn workers: {args.workers}; users: {users}; "
              f"requests: {len(results)} (+{users * 2} login requests)")
        print(f"elapsed: {elapsed:.2f}s; throughput: {len(results) / elapsed:.1f} req/s")
        print(f"latency p50: {q[49] * 1000:.0f} ms; p95: {q[94] * 1000:.0f} ms; "
              f"max: {lat[-1] * 1000:.0f} ms")
        print(f"errors: {sum(failed.values())}")
        for label, n in failed.most_common():
            print(f"  {n:5d} x {label}")
        return 1 if failed else 0
    finally:
        stop_gunicorn(proc)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
