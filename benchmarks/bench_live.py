"""Live-page refresh time at ~1M and ~10M ledger entries, and against pandas.

Builds (once, reused if present) synthetic SQLite programs set-based in SQL
(members, accounts, orders, one accrual per order, redemptions, transfers,
referral bonuses; two years of history): 100k and 1M members with six
orders each, and 100k members with sixty orders each (ten times the history
at the same membership), rebuilds the rollups, then times what
the live page's interval callback does — ``refresh_rollups`` after a fixed
batch of new events written through the engine (db.live_stream), plus
``live_snapshot`` — and a naive full-table pandas computation of the same
headline figures (liability, window flows, participation, active rate).

    .venv/bin/python benchmarks/bench_live.py                      # 100k and 1M members,
                                                                   # and 100k x 60 orders
    .venv/bin/python benchmarks/bench_live.py --members 100000     # one size
    .venv/bin/python benchmarks/bench_live.py --no-pandas-large    # skip pandas at 10M
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import time
from pathlib import Path

import pandas as pd
from sqlalchemy import func, select, text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from db import rollups  # noqa: E402
from db.live_stream import LiveStream  # noqa: E402
from db.migrate import upgrade  # noqa: E402
from db.models import LedgerEntry  # noqa: E402
from db.reports.live import live_snapshot  # noqa: E402
from db.session import Database  # noqa: E402

DAY = 86400
SPAN_DAYS = 730
BASE_ORDERS = 6  # orders per member of the size runs; the history run has more


def build(d: Database, n: int, per_member: int = BASE_ORDERS) -> None:
    """n members with ``per_member`` orders (~1.6 ledger entries per order) each,
    in a handful of SQL statements."""
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)
    start = now - dt.timedelta(days=SPAN_DAYS)
    s0 = start.strftime("%Y-%m-%d %H:%M:%S")
    seq = f"WITH RECURSIVE q(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM q WHERE x < {n})"
    ts = "strftime('%Y-%m-%d %H:%M:%S.000000', '{s0}', '+' || ({expr}) || ' seconds')"
    join = ts.format(s0=s0, expr=f"(x * 7919) % ({SPAN_DAYS * DAY - 40 * DAY})")
    stmts = [
        f"""{seq} INSERT INTO members (id, external_id, name, joined_at, segment, referrer_id,
            status) SELECT x, 'C' || x, 'Member ' || x, {join},
            CASE x % 5 WHEN 0 THEN 'regular' WHEN 1 THEN 'student' WHEN 2 THEN 'pensioner'
            WHEN 3 THEN 'large_family' ELSE 'corporate' END,
            CASE WHEN x % 3 = 0 AND x > 10 THEN x / 3 END, 'active' FROM q""",
        f"""{seq} INSERT INTO accounts (id, kind, member_id, balance)
            SELECT x + 4, 'member', x, 0 FROM q""",
        # per_member orders per member over the time after joining, one of ten by a guest
        f"""WITH RECURSIVE k(j) AS (SELECT 0 UNION ALL SELECT j + 1 FROM k
            WHERE j < {per_member - 1})
            INSERT INTO orders (id, order_ref, customer_ref, member_id, paid_at, amount_minor,
            points_redeemed, status, payload_hash, created_at)
            SELECT m.id * {per_member} + j, 'O' || (m.id * {per_member} + j),
              CASE WHEN (m.id + j) % 10 = 0 THEN 'G' || (m.id % 50000) ELSE m.external_id END,
              CASE WHEN (m.id + j) % 10 = 0 THEN NULL ELSE m.id END,
              strftime('%Y-%m-%d %H:%M:%S.000000', m.joined_at, '+' ||
                ((m.id * 31 + j * 104729) % (CAST(julianday('{now}') - julianday(m.joined_at)
                  AS INTEGER) * 86400 + 1)) || ' seconds'),
              5000 + (m.id * 13 + j * 7) % 200000, 0, 'paid', 'x', '{now}'
            FROM members m, k""",
        # one transaction + entry per movement; accruals for member orders
        """INSERT INTO ledger_transactions (id, kind, idempotency_key, payload_hash, order_id,
            actor, effective_at, created_at)
            SELECT id, 'order', 'o' || id, 'x', id, 'bench', paid_at, paid_at FROM orders
            WHERE member_id IS NOT NULL""",
        """INSERT INTO ledger_entries (id, tx_id, kind, debit_account_id, credit_account_id,
            amount, effective_at, order_id, memo)
            SELECT id, id, 'accrual', 1, member_id + 4, 1 + amount_minor / 2000, paid_at, id, ''
            FROM orders WHERE member_id IS NOT NULL""",
        # referral bonus for referred members' orders
        """INSERT INTO ledger_entries (tx_id, kind, debit_account_id, credit_account_id, amount,
            effective_at, order_id, memo)
            SELECT o.id, 'referral_bonus', 1, m.referrer_id + 4, 1 + o.amount_minor / 10000,
            o.paid_at, o.id, '' FROM orders o JOIN members m ON m.id = o.member_id
            WHERE m.referrer_id IS NOT NULL""",
        # two redemptions per member (small), a transfer from every fifth member
        """INSERT INTO ledger_transactions (kind, idempotency_key, payload_hash, actor,
            effective_at, created_at)
            SELECT 'redemption', 'r' || o.id, 'x', 'bench', o.paid_at, o.paid_at
            FROM orders o WHERE o.member_id IS NOT NULL AND o.id % 3 = 0""",
        """INSERT INTO ledger_entries (tx_id, kind, debit_account_id, credit_account_id, amount,
            effective_at, memo)
            SELECT t.id, 'redemption', o.member_id + 4, 2, 1, t.effective_at, ''
            FROM ledger_transactions t JOIN orders o ON t.idempotency_key = 'r' || o.id
            WHERE t.kind = 'redemption'""",
        """INSERT INTO ledger_transactions (kind, idempotency_key, payload_hash, actor,
            effective_at, created_at)
            SELECT 'transfer', 't' || m.id, 'x', 'bench', o.paid_at, o.paid_at
            FROM members m JOIN orders o ON o.id = m.id * {per_member} + 1 WHERE m.id % 5 = 0
            AND o.member_id IS NOT NULL""",
        """INSERT INTO ledger_entries (tx_id, kind, debit_account_id, credit_account_id, amount,
            effective_at, memo)
            SELECT t.id, 'transfer', CAST(substr(t.idempotency_key, 2) AS INTEGER) + 4,
              (CAST(substr(t.idempotency_key, 2) AS INTEGER) * 7) % {n} + 5, 1,
              t.effective_at, '' FROM ledger_transactions t WHERE t.kind = 'transfer'""",
        """INSERT INTO transfers (from_member_id, to_member_id, points, tx_id, created_at)
            SELECT debit_account_id - 4, credit_account_id - 4, amount, tx_id, effective_at
            FROM ledger_entries WHERE kind = 'transfer'""",
        """UPDATE accounts SET balance = COALESCE((SELECT SUM(amount) FROM ledger_entries
            WHERE credit_account_id = accounts.id), 0) - COALESCE((SELECT SUM(amount)
            FROM ledger_entries WHERE debit_account_id = accounts.id), 0)
            WHERE kind = 'member'""",
    ]
    with d.engine.begin() as c:
        for sql in stmts:
            c.exec_driver_sql(sql.replace("{n}", str(n))
                              .replace("{per_member}", str(per_member)))
    with d.engine.connect() as c:
        c.exec_driver_sql("ANALYZE")


def naive_pandas(d: Database, days: int = 7) -> dict:
    """The live headline figures from whole tables in pandas (what a first
    version of such a page would do)."""
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    start = today - dt.timedelta(days=days - 1)
    with d.engine.connect() as c:
        e = pd.read_sql("SELECT kind, debit_account_id, credit_account_id, amount, effective_at "
                        "FROM ledger_entries", c, parse_dates=["effective_at"])
        o = pd.read_sql("SELECT customer_ref, member_id, paid_at FROM orders", c,
                        parse_dates=["paid_at"])
        m = pd.read_sql("SELECT id, joined_at, referrer_id FROM members", c,
                        parse_dates=["joined_at"])
        acc = pd.read_sql("SELECT id, member_id FROM accounts WHERE kind = 'member'", c)
    into = (e.debit_account_id <= 4) & (e.credit_account_id > 4)
    out = (e.credit_account_id <= 4) & (e.debit_account_id > 4)
    liability = int(e.amount[into].sum() - e.amount[out].sum())
    w = e[e.effective_at >= start]
    issued = int(w.amount[w.kind.isin(["accrual", "referral_bonus"])].sum())
    redeemed = int(w.amount[w.kind == "redemption"].sum())
    ow = o[o.paid_at >= start]
    participation = ow[ow.member_id.notna()].customer_ref.nunique() / max(
        ow.customer_ref.nunique(), 1)
    a30 = now - dt.timedelta(days=30)
    red = e[(e.kind == "redemption") & (e.effective_at >= a30)].merge(
        acc, left_on="debit_account_id", right_on="id")
    active = set(o[(o.paid_at >= a30) & o.member_id.notna()].member_id) | set(red.member_id)
    return {"liability": liability, "issued": issued, "redeemed": redeemed,
            "participation": participation, "active_rate": len(active) / max(len(m), 1)}


def measure(d: Database, rounds: int, events: int) -> dict[str, float]:
    stream = LiveStream(d, rate=1000, seed=1, expiry_every=10**9)
    refresh, snapshot = [], []
    for _ in range(rounds):
        for _ in range(events):
            stream.step()
        t0 = time.perf_counter()
        r = rollups.refresh_rollups(d)
        t1 = time.perf_counter()
        with d.read() as s:
            live_snapshot(s, days=7)
        t2 = time.perf_counter()
        assert r.events > 0
        refresh.append(t1 - t0)
        snapshot.append(t2 - t1)
    return {"refresh_ms": 1000 * statistics.median(refresh),
            "snapshot_ms": 1000 * statistics.median(snapshot),
            "total_ms": 1000 * statistics.median([a + b for a, b in zip(refresh, snapshot,
                                                                         strict=True)])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--members", type=int, nargs="*", default=[100_000, 1_000_000])
    ap.add_argument("--dir", default="/tmp/live_bench")
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--events", type=int, default=100, help="New events per refresh.")
    ap.add_argument("--no-pandas-large", action="store_true",
                    help="Skip the pandas comparison above 2M ledger entries.")
    ap.add_argument("--history-orders", type=int, default=60, metavar="K",
                    help="Also time the smallest membership with K orders per member "
                         "(ten times the history at the same size; 0 to skip).")
    args = ap.parse_args()
    runs = [(n, BASE_ORDERS) for n in args.members]
    if args.history_orders and args.members:
        runs.append((min(args.members), args.history_orders))
    results: dict[tuple[int, int], tuple[int, dict[str, float]]] = {}
    for n, k in runs:
        name = f"synthetic-{n}.sqlite3" if k == BASE_ORDERS else f"synthetic-{n}-orders{k}.sqlite3"
        path = Path(args.dir) / name
        fresh = not path.exists()
        d = Database(f"sqlite:///{path}")
        upgrade(d.engine)  # a reused database gets the newest indexes too
        if fresh:
            t0 = time.perf_counter()
            build(d, n, k)
            print(f"built {n:,} members x {k} orders in {time.perf_counter() - t0:.0f} s",
                  flush=True)
        with d.read() as s:
            entries = s.scalar(select(func.max(LedgerEntry.id))) or 0
        t0 = time.perf_counter()
        rollups.rebuild_rollups(d)
        rebuild_s = time.perf_counter() - t0
        # the rebuild leaves a large write-ahead log: fold it into the file first, so
        # the timed refreshes do not pay for checkpointing what the rebuild wrote
        with d.engine.connect() as c:
            c.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
        m = measure(d, args.rounds, args.events)
        line = (f"{n:>9,} members x {k:>2} orders {entries:>11,} ledger entries  "
                f"rebuild {rebuild_s:6.1f} s  "
                f"refresh after {args.events} events {m['refresh_ms']:7.1f} ms  "
                f"snapshot {m['snapshot_ms']:7.1f} ms  total {m['total_ms']:7.1f} ms")
        if not (args.no_pandas_large and entries > 2_000_000):
            t0 = time.perf_counter()
            naive_pandas(d)
            pandas_ms = 1000 * (time.perf_counter() - t0)
            m["pandas_ms"] = pandas_ms
            line += f"  pandas {pandas_ms:9.0f} ms  speed-up x{pandas_ms / m['total_ms']:.0f}"
        print(line, flush=True)
        results[(n, k)] = (entries, m)
        with d.engine.connect() as c:
            c.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
        d.dispose()

    def compare(label: str, a: tuple[int, int], b: tuple[int, int]) -> None:
        (e1, m1), (e2, m2) = results[a], results[b]
        print(f"{label}: ledger entries x{e2 / e1:.1f} -> refresh "
              f"x{m2['refresh_ms'] / m1['refresh_ms']:.2f}, snapshot "
              f"x{m2['snapshot_ms'] / m1['snapshot_ms']:.2f}, refresh + snapshot "
              f"x{m2['total_ms'] / m1['total_ms']:.2f}")

    sizes = sorted(n for n, k in results if k == BASE_ORDERS)
    if len(sizes) >= 2:
        compare(f"members x{sizes[1] / sizes[0]:.0f} (history and program grow)",
                (sizes[0], BASE_ORDERS), (sizes[1], BASE_ORDERS))
    if args.history_orders and (min(args.members), args.history_orders) in results:
        n0 = min(args.members)
        compare(f"same {n0:,} members, {args.history_orders} orders each instead of {BASE_ORDERS} "
                "(history grows)", (n0, BASE_ORDERS), (n0, args.history_orders))

if __name__ == "__main__":
    main()
