"""Time ``kpi_snapshot`` (and the LTV / time-series helpers) on a big database.

Builds -- or reuses, when the database at ``--db`` already has members -- a
program database with N members (default 1,000,000) and about 10 N ledger
entries of synthetic but consistent data: every balance equals the sum of its
entries and never goes below zero, refunds reverse their accrual, expiry is
lot-based at 365 days. Rows are numpy-generated and bulk-loaded (SQLite:
executemany with the secondary indexes dropped and rebuilt; PostgreSQL:
COPY). Then it prints table sizes, wall-clock seconds per call and per SQL
statement, and the query plan of each statement the snapshot runs.

    .venv/bin/python benchmarks/bench_kpis.py                       # SQLite, 1M
    .venv/bin/python benchmarks/bench_kpis.py --members 100000 --db /tmp/b.sqlite3
    .venv/bin/python benchmarks/bench_kpis.py --db postgresql+psycopg://postgres@127.0.0.1/bench
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Engine, event, inspect, text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from db import metrics  # noqa: E402
from db.migrate import upgrade  # noqa: E402
from db.session import Database  # noqa: E402

END = np.datetime64("2026-11-01T00:00:00", "us")
YEARS = 3
DAY_US = 86_400 * 10**6
CHUNK = 500_000
NULL = -1  # integer columns: this value is written as NULL

Column = np.ndarray | str | None
Table = dict[str, Column]


# --------------------------------------------------------------------------- data


def generate(n: int, seed: int = 0) -> dict[str, Table]:
    """Column arrays of every table, consistent by construction (see module doc)."""
    rng = np.random.default_rng(seed)
    span = YEARS * 365 * DAY_US
    start = END - np.timedelta64(span, "us")
    us = lambda a: a.astype("timedelta64[us]")  # noqa: E731

    # members: ids 1..n join in id order; 30 % were referred by an earlier member
    ids = np.arange(1, n + 1, dtype=np.int64)
    joined = start + us(np.sort(rng.integers(0, int(span * 0.97), n)) // 10**6 * 10**6)
    referrer = np.where(
        (rng.random(n) < 0.3) & (ids > 1), 1 + (rng.random(n) * (ids - 1)).astype(np.int64), NULL
    )
    account_of = lambda member: member + 100  # noqa: E731 - ids 1..99 are program accounts

    # member orders, grouped by member and in time order within a member
    k = rng.poisson(6.2, n)
    om = np.repeat(ids, k)
    m_count = len(om)
    life = (END - joined[om - 1]).astype(np.int64)
    paid = joined[om - 1] + us((rng.random(m_count) * life).astype(np.int64) // 10**6 * 10**6)
    order = np.lexsort((paid, om))
    om, paid = om[order], paid[order]
    amount = (rng.lognormal(np.log(120_000), 0.7, m_count).astype(np.int64) // 100) * 100
    refunded = rng.random(m_count) < 0.02
    first = np.r_[True, om[1:] != om[:-1]]
    accrual = amount * 5 // 10_000  # 5 %: minor units -> points
    bonus = amount * 3 // 10_000  # referrer's 3 %
    prev = np.maximum(np.arange(m_count) - 1, 0)
    # each redemption spends at most half of the member's previous (unrefunded)
    # accrual and each expiry at most 40 % of its own lot: no balance goes negative
    redeem = np.where(
        ~first & ~refunded[prev] & (rng.random(m_count) < 0.25), accrual[prev] // 2, 0
    )
    exp_at = paid + np.timedelta64(365 * DAY_US, "us")
    expire = np.where(
        ~refunded & (exp_at < END) & (rng.random(m_count) < 0.35), accrual * 2 // 5, 0
    )

    # guest orders: 30 % on top, from n/2 guest customer refs
    g_count = int(m_count * 0.3)
    g_paid = start + us(rng.integers(0, span, g_count) // 10**6 * 10**6)
    g_amount = (rng.lognormal(np.log(90_000), 0.7, g_count).astype(np.int64) // 100) * 100
    g_refunded = rng.random(g_count) < 0.02
    g_ref = rng.integers(0, max(n // 2, 1), g_count)

    all_refunded = np.r_[refunded, g_refunded]
    all_paid = np.r_[paid, g_paid]
    # ids follow payment time, as when orders are posted as they happen
    by_paid = np.argsort(all_paid, kind="stable")
    all_order_id = np.empty(m_count + g_count, dtype=np.int64)
    all_order_id[by_paid] = np.arange(1, m_count + g_count + 1)
    order_id = all_order_id[:m_count]
    refunded_at = np.where(
        all_refunded, all_paid + np.timedelta64(2 * DAY_US, "us"), np.datetime64("NaT")
    )

    # ledger entries, block by block; ``src`` links a reversal to its original
    blocks: list[dict[str, np.ndarray]] = []

    def block(kind: str, mask: np.ndarray, **cols: np.ndarray) -> np.ndarray:
        """Append the rows where ``mask``; return their positions in the final concat."""
        offset = sum(len(b["amount"]) for b in blocks)
        rows = {c: np.asarray(v)[mask] for c, v in cols.items()}
        rows["kind"] = np.full(int(mask.sum()), kind, dtype=object)
        blocks.append(rows)
        pos = np.full(len(mask), NULL, dtype=np.int64)
        pos[mask] = offset + np.arange(int(mask.sum()))
        return pos

    # one journal transaction per member order, numbered in time order
    tx_order = np.empty(m_count, dtype=np.int64)
    tx_order[np.argsort(paid, kind="stable")] = np.arange(1, m_count + 1)
    has_acc = accrual > 0
    acc_pos = block(
        "accrual",
        has_acc,
        debit=np.full(m_count, 1),
        credit=account_of(om),
        amount=accrual,
        at=paid,
        order=order_id,
        tx=tx_order,
        src=np.full(m_count, NULL),
    )
    ref_of = referrer[om - 1]
    block(
        "referral_bonus",
        (ref_of != NULL) & ~refunded & (bonus > 0),
        debit=np.full(m_count, 1),
        credit=account_of(ref_of),
        amount=bonus,
        at=paid,
        order=order_id,
        tx=tx_order,
        src=np.full(m_count, NULL),
    )
    red_mask = redeem > 0
    red_pos = block(
        "redemption",
        red_mask,
        debit=account_of(om),
        credit=np.full(m_count, 2),
        amount=redeem,
        at=paid,
        order=order_id,
        tx=tx_order,
        src=np.full(m_count, NULL),
    )
    next_tx = m_count + 1
    refund_mask = refunded & has_acc
    refund_tx = np.full(m_count, NULL)
    refund_tx[refund_mask] = next_tx + np.arange(int(refund_mask.sum()))
    next_tx += int(refund_mask.sum())
    block(
        "reversal",
        refund_mask,
        debit=account_of(om),
        credit=np.full(m_count, 1),
        amount=accrual,
        at=refunded_at[:m_count],
        order=order_id,
        tx=refund_tx,
        src=acc_pos,
    )
    rr_mask = red_mask & (rng.random(m_count) < 0.01)
    rr_tx = np.full(m_count, NULL)
    rr_tx[rr_mask] = next_tx + np.arange(int(rr_mask.sum()))
    next_tx += int(rr_mask.sum())
    block(
        "reversal",
        rr_mask,
        debit=np.full(m_count, 2),
        credit=account_of(om),
        amount=redeem,
        at=paid + np.timedelta64(DAY_US, "us"),
        order=order_id,
        tx=rr_tx,
        src=red_pos,
    )
    exp_mask = expire > 0
    exp_day = exp_at.astype("datetime64[D]")
    days, day_idx = np.unique(exp_day[exp_mask], return_inverse=True)
    exp_tx = np.full(m_count, NULL)
    exp_tx[exp_mask] = next_tx + day_idx  # the daily expiry job: one transaction a day
    block(
        "expiry",
        exp_mask,
        debit=account_of(om),
        credit=np.full(m_count, 3),
        amount=expire,
        at=exp_at,
        order=np.full(m_count, NULL),
        tx=exp_tx,
        src=np.full(m_count, NULL),
    )

    cat = {c: np.concatenate([b[c] for b in blocks]) for c in blocks[0]}
    by_time = np.argsort(cat["at"], kind="stable")
    entry_id = np.empty(len(by_time), dtype=np.int64)
    entry_id[by_time] = np.arange(1, len(by_time) + 1)
    src = cat["src"]
    reverses = np.where(src == NULL, NULL, entry_id[np.maximum(src, 0)])
    e = {c: v[by_time] for c, v in cat.items()}
    e["reverses"] = reverses[by_time]

    n_acc = n + 101
    balance = np.bincount(e["credit"], e["amount"], n_acc) - np.bincount(
        e["debit"], e["amount"], n_acc
    )
    member_balance = balance[account_of(ids)].astype(np.int64)
    assert (member_balance >= 0).all(), "generator bug: negative balance"

    # journal headers
    ref_tx_ids = refund_tx[refund_mask]
    rr_tx_ids = rr_tx[rr_mask]
    exp_tx_ids = next_tx + np.arange(len(days))
    tx_ids = np.concatenate([tx_order, ref_tx_ids, rr_tx_ids, exp_tx_ids])
    tx_kind = np.concatenate(
        [
            np.full(m_count, "order", dtype=object),
            np.full(len(ref_tx_ids), "refund", dtype=object),
            np.full(len(rr_tx_ids), "reversal", dtype=object),
            np.full(len(exp_tx_ids), "expiry", dtype=object),
        ]
    )
    tx_order_id = np.concatenate(
        [order_id, order_id[refund_mask], order_id[rr_mask], np.full(len(days), NULL)]
    )
    tx_at = np.concatenate(
        [
            paid,
            refunded_at[:m_count][refund_mask],
            paid[rr_mask] + np.timedelta64(DAY_US, "us"),
            days.astype("datetime64[us]"),
        ]
    )

    all_ids = np.arange(1, m_count + g_count + 1, dtype=np.int64)
    orders: Table = {
        "id": all_ids,
        "order_ref": _prefixed("O", all_ids),
        "customer_ref": np.concatenate([_prefixed("M", om), _prefixed("G", g_ref)])[by_paid],
        "member_id": np.r_[om, np.full(g_count, NULL)][by_paid],
        "paid_at": all_paid[by_paid],
        "amount_minor": np.r_[amount, g_amount][by_paid],
        "points_redeemed": np.r_[redeem, np.zeros(g_count, dtype=np.int64)][by_paid],
        "status": np.where(all_refunded, "refunded", "paid").astype(object)[by_paid],
        "refunded_at": refunded_at[by_paid],
        "payload_hash": "x",
        "created_at": all_paid[by_paid],
    }
    tx_sorted = np.argsort(tx_ids, kind="stable")
    return {
        "members": {
            "id": ids,
            "external_id": _prefixed("M", ids),
            "name": "",
            "joined_at": joined,
            "segment": "regular",
            "referrer_id": referrer,
            "status": "active",
        },
        "accounts": {
            "id": account_of(ids),
            "kind": "member",
            "member_id": ids,
            "balance": member_balance,
        },
        "orders": orders,
        "ledger_transactions": {
            "id": tx_ids[tx_sorted],
            "kind": tx_kind[tx_sorted],
            "idempotency_key": _prefixed("tx:", tx_ids[tx_sorted]),
            "payload_hash": "x",
            "order_id": tx_order_id[tx_sorted],
            "actor": "system",
            "effective_at": tx_at[tx_sorted],
            "created_at": tx_at[tx_sorted],
        },
        "ledger_entries": {
            "id": np.arange(1, len(by_time) + 1, dtype=np.int64),
            "tx_id": e["tx"],
            "kind": e["kind"],
            "debit_account_id": e["debit"],
            "credit_account_id": e["credit"],
            "amount": e["amount"],
            "effective_at": e["at"],
            "order_id": e["order"],
            "reverses_entry_id": e["reverses"],
            "memo": "",
        },
    }


def _prefixed(prefix: str, ids: np.ndarray) -> np.ndarray:
    return np.char.add(prefix, ids.astype(str)).astype(object)


def _chunk_rows(table: Table, lo: int, hi: int, iso_t: bool) -> list[tuple[Any, ...]]:
    """Rows [lo, hi) as tuples of Python values (None for NULL)."""
    cols: list[Any] = []
    for v in table.values():
        if not isinstance(v, np.ndarray):
            cols.append(itertools.repeat(v))
        elif v.dtype.kind == "M":
            part = v[lo:hi]
            s = np.datetime_as_string(part, unit="us")
            if not iso_t:  # SQLAlchemy's SQLite storage format
                s = np.char.replace(s, "T", " ")
            s = s.astype(object)
            s[np.isnat(part)] = None
            cols.append(s.tolist())
        elif v.dtype.kind == "i":
            part = v[lo:hi].tolist()
            cols.append([None if x == NULL else x for x in part] if NULL in v[lo:hi] else part)
        else:
            cols.append(v[lo:hi].tolist())
    return list(zip(*cols, strict=False))


def _length(table: Table) -> int:
    return next(len(v) for v in table.values() if isinstance(v, np.ndarray))


# --------------------------------------------------------------------------- loading


BIG_TABLES = ("members", "accounts", "orders", "ledger_transactions", "ledger_entries")


def load_sqlite(engine: Engine, data: dict[str, Table]) -> None:
    """executemany in big batches, secondary indexes dropped and rebuilt after."""
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        cur.execute("PRAGMA foreign_keys = OFF")
        cur.execute("PRAGMA synchronous = OFF")
        cur.execute("PRAGMA cache_size = -1000000")
        names = ", ".join(f"'{t}'" for t in BIG_TABLES)
        indexes = cur.execute(
            f"SELECT name, sql FROM sqlite_master WHERE type = 'index' "
            f"AND tbl_name IN ({names}) AND sql IS NOT NULL"
        ).fetchall()
        for name, _ in indexes:
            cur.execute(f'DROP INDEX "{name}"')
        for table, cols in data.items():
            t0 = time.perf_counter()
            sql = f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"
            n = _length(cols)
            cur.execute("BEGIN")
            for lo in range(0, n, CHUNK):
                cur.executemany(sql, _chunk_rows(cols, lo, min(n, lo + CHUNK), iso_t=False))
            cur.execute("COMMIT")
            print(f"  loaded {table:<20} {n:>11,} rows  {time.perf_counter() - t0:7.1f} s")
        t0 = time.perf_counter()
        for _, sql in indexes:
            cur.execute(sql)
        print(f"  rebuilt {len(indexes)} indexes      {time.perf_counter() - t0:7.1f} s")
        raw.commit()
    finally:
        raw.close()


def _chunk_tsv(table: Table, lo: int, hi: int) -> str:
    """Rows [lo, hi) as COPY text (tab-separated, \\N for NULL); built column-wise."""
    cols: list[Any] = []
    for v in table.values():
        if not isinstance(v, np.ndarray):
            cols.append(itertools.repeat("\\N" if v is None else v))
            continue
        part = v[lo:hi]
        if part.dtype.kind == "M":
            text_ = np.datetime_as_string(part, unit="us").astype(object)
            text_[np.isnat(part)] = "\\N"
        elif part.dtype.kind == "i":
            text_ = part.astype(str).astype(object)
            text_[part == NULL] = "\\N"
        else:
            text_ = part
        cols.append(text_.tolist())
    return "".join(f"{line}\n" for line in map("\t".join, zip(*cols, strict=False)))


def load_postgres(engine: Engine, data: dict[str, Table]) -> None:
    """COPY in big text batches, FK triggers off (session_replication_role),
    secondary indexes dropped and rebuilt after, then VACUUM ANALYZE."""
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        cur.execute("SET session_replication_role = replica")
        cur.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' "
            "AND tablename = ANY(%s) AND indexname NOT IN (SELECT conname FROM pg_constraint)",
            (list(BIG_TABLES),),
        )
        indexes = cur.fetchall()
        for name, _ in indexes:
            cur.execute(f'DROP INDEX "{name}"')
        for table, cols in data.items():
            t0 = time.perf_counter()
            n = _length(cols)
            with cur.copy(f"COPY {table} ({', '.join(cols)}) FROM STDIN") as copy:
                for lo in range(0, n, CHUNK):
                    copy.write(_chunk_tsv(cols, lo, min(n, lo + CHUNK)))
            cur.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"(SELECT max(id) FROM {table}))"
            )
            print(f"  loaded {table:<20} {n:>11,} rows  {time.perf_counter() - t0:7.1f} s")
        t0 = time.perf_counter()
        for _, sql in indexes:
            cur.execute(sql)
        print(f"  rebuilt {len(indexes)} indexes      {time.perf_counter() - t0:7.1f} s")
        cur.execute("SET session_replication_role = DEFAULT")
        raw.commit()
    finally:
        raw.close()
    t0 = time.perf_counter()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
        c.execute(text("VACUUM ANALYZE"))
    print(f"  vacuum analyze                    {time.perf_counter() - t0:7.1f} s")


def ensure_database(url: str, members: int, seed: int, analyze: bool) -> Database:
    d = Database(url)
    if "members" in inspect(d.engine).get_table_names():
        with d.engine.connect() as c:
            have = c.execute(text("SELECT count(*) FROM members")).scalar_one()
        if have:
            print(f"reusing {d.url.render_as_string(hide_password=True)} ({have:,} members)")
            upgrade(d.engine)  # tables added by later migrations (empty rollups: raw SQL path)
            return d
    print(f"building {d.url.render_as_string(hide_password=True)} with {members:,} members")
    upgrade(d.engine)
    t0 = time.perf_counter()
    data = generate(members, seed)
    print(f"  generated                         {time.perf_counter() - t0:7.1f} s")
    if d.dialect == "sqlite":
        load_sqlite(d.engine, data)
    else:
        load_postgres(d.engine, data)
    if analyze and d.dialect == "sqlite":
        t0 = time.perf_counter()
        with d.engine.begin() as c:
            c.exec_driver_sql("ANALYZE")
        print(f"  analyze                           {time.perf_counter() - t0:7.1f} s")
    return d


# --------------------------------------------------------------------------- timing


class StatementLog:
    """Wall-clock time of every SQL statement the engine runs."""

    def __init__(self, engine: Engine) -> None:
        self.rows: list[tuple[str, Any, float]] = []
        self._t0: list[float] = []
        event.listen(engine, "before_cursor_execute", self._before)
        event.listen(engine, "after_cursor_execute", self._after)

    def _before(self, *_args: Any) -> None:
        self._t0.append(time.perf_counter())

    def _after(self, _conn, _cur, statement, parameters, _ctx, _many) -> None:  # noqa: ANN001
        self.rows.append((statement, parameters, time.perf_counter() - self._t0.pop()))


def timed(label: str, fn: Callable[[], Any], log: StatementLog, top: int = 6) -> Any:
    log.rows.clear()
    t0 = time.perf_counter()
    result = fn()
    total = time.perf_counter() - t0
    print(f"\n{label}: {total:.2f} s ({len(log.rows)} statements)")
    for statement, _params, sec in sorted(log.rows, key=lambda r: -r[2])[:top]:
        print(f"  {sec:7.3f} s  {_one_line(statement)[:110]}")
    return result


def _one_line(sql: str) -> str:
    return " ".join(sql.split())


def explain(d: Database, statements: Sequence[tuple[str, Any, float]]) -> None:
    prefix = "EXPLAIN QUERY PLAN " if d.dialect == "sqlite" else "EXPLAIN "
    seen: set[str] = set()
    with d.engine.connect() as c:
        for statement, params, sec in statements:
            if statement in seen or not statement.lstrip().upper().startswith("SELECT"):
                continue
            seen.add(statement)
            print(f"\n-- {sec:.3f} s: {_one_line(statement)[:300]}")
            for row in c.exec_driver_sql(prefix + statement, params).all():
                print("   ", row[-1])


# candidate covering index: lets the per-customer GROUP BY stream over an index
# in customer_ref order (no sort, no hash spill, no heap visits) on both dialects
CANDIDATE_INDEXES = {
    "bench_ix_orders_customer_cover": (
        "orders (customer_ref, paid_at, member_id, status, amount_minor)"
    ),
}


def try_indexes(d: Database, log: StatementLog, period: tuple[dt.datetime, dt.datetime]) -> None:
    """Time the snapshot with each candidate index, then drop it (scratch database)."""
    for name, target in CANDIDATE_INDEXES.items():
        t0 = time.perf_counter()
        with d.engine.begin() as c:
            c.exec_driver_sql(f"CREATE INDEX {name} ON {target}")
            if d.dialect == "postgresql":
                c.exec_driver_sql(f"ANALYZE {target.split()[0]}")
        print(f"\ncreated {name} ON {target}: {time.perf_counter() - t0:.1f} s")
        for run in ("cold", "warm"):
            with d.read() as s:
                timed(
                    f"kpi_snapshot year with {name} ({run})",
                    lambda s=s: metrics.kpi_snapshot(s, *period),
                    log,
                    top=4,
                )
        with d.engine.begin() as c:
            c.exec_driver_sql(f"DROP INDEX {name}")


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--members", type=int, default=1_000_000)
    p.add_argument("--db", help="SQLite file path or database URL (reused when populated)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--analyze", action="store_true", help="run SQLite ANALYZE after loading")
    p.add_argument("--no-plans", action="store_true", help="skip the query plans")
    p.add_argument(
        "--try-indexes",
        action="store_true",
        help="also time the year snapshot with the candidate covering indexes (dropped after)",
    )
    args = p.parse_args(argv)
    target = args.db or f"instance/bench_kpis_{args.members}.sqlite3"
    url = target if "://" in target else f"sqlite:///{Path(target).resolve()}"
    if url.startswith("sqlite"):
        Path(url.split("///", 1)[1]).parent.mkdir(parents=True, exist_ok=True)

    d = ensure_database(url, args.members, args.seed, args.analyze)
    with d.engine.connect() as c:
        for table in BIG_TABLES:
            n = c.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()
            print(f"  {table:<20} {n:>12,}")
    log = StatementLog(d.engine)
    year = (dt.datetime(2025, 11, 1), dt.datetime(2026, 11, 1))
    month = (dt.datetime(2026, 10, 1), dt.datetime(2026, 11, 1))
    snap_log: list[tuple[str, Any, float]] = []
    for label, (f, t) in (("year", year), ("month", month)):
        for run in ("cold", "warm"):
            with d.read() as s:
                snap = timed(
                    f"kpi_snapshot {label} ({run})",
                    lambda s=s, f=f, t=t: metrics.kpi_snapshot(s, f, t),
                    log,
                )
            if label == "year" and run == "warm":
                snap_log = list(log.rows)
        print(
            "  participation",
            snap["participation_rate"]["value"],
            "active",
            snap["active_member_rate"]["value"],
            "redemption",
            snap["redemption_rate"]["value"],
            "breakage",
            snap["breakage_rate"]["value"],
            "liability",
            snap["points_liability"]["amount_minor"],
        )
    with d.read() as s:
        timed("kpi_timeseries year by month", lambda: metrics.kpi_timeseries(s, *year), log)
        ltv = timed("ltv_cohorts year", lambda: metrics.ltv_cohorts(s, *year), log)
        print(f"  {len(ltv)} cohort-month rows")
    if not args.no_plans:
        explain(d, snap_log)
    if args.try_indexes:
        try_indexes(d, log, year)
    d.dispose()


if __name__ == "__main__":
    main()
