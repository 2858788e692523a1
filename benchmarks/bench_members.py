"""Member search and profile timings on a large membership.

Builds (once, reused if present) a synthetic program database with N
members, an account each, two paid orders and three ledger entries per
member, plus one heavy member with 5,000 entries, all set-based in SQL
(seconds, not the demo seeder's hours); then times the services the members
page calls, each repeated, median and p95 in milliseconds.

    .venv/bin/python benchmarks/bench_members.py                       # SQLite, 1M
    .venv/bin/python benchmarks/bench_members.py --postgres            # PostgreSQL, 1M
    .venv/bin/python benchmarks/bench_members.py --members 200000 --db /tmp/x.sqlite3

Databases live under /tmp (PostgreSQL: a database named loyalty_bench_members).
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import create_engine, func, select, text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from db import members, rule_review, rules, users  # noqa: E402
from db.actor import Actor  # noqa: E402
from db.migrate import upgrade  # noqa: E402
from db.models import Member  # noqa: E402
from db.session import Database  # noqa: E402

FIRST = ["Anna", "Boris", "Chen", "Dewi", "Omar", "Olga", "Ivan", "Maria", "Sergey", "Elena",
         "Pavel", "Irina", "Nikolai", "Tatiana", "Dmitri", "Yulia", "Ahmad", "Siti", "Budi",
         "Fatima"]
LAST = ["Petrova", "Ivanov", "Wei", "Lestari", "Haddad", "Smirnova", "Kuznetsov", "Popova",
        "Sokolov", "Lebedeva", "Kozlov", "Novikova", "Morozov", "Volkova", "Santoso",
        "Rahman", "Hassan", "Pratama", "Orlova", "Fedorov"]
HEAVY_ENTRIES = 5000
PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
PG_NAME = "loyalty_bench_members"


def _case(values: list[str], expr: str) -> str:
    return "CASE " + " ".join(f"WHEN {expr} = {i} THEN '{v}'" for i, v in enumerate(values)) \
        + " END"


def build(d: Database, n: int) -> None:
    """Fill an empty, migrated database (set-based, a few statements)."""
    pg = d.dialect == "postgresql"
    series = ("generate_series(1::bigint, :n) AS g(i)" if pg else
              "(WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < :n) "
              "SELECT i FROM g) AS g")
    pad7 = "lpad(i::text, 7, '0')" if pg else "printf('%07d', i)"
    pad9 = "lpad(((i * 7919) % 1000000000)::text, 9, '0')" if pg else \
        "printf('%09d', (i * 7919) % 1000000000)"
    first = _case(FIRST, f"(i % {len(FIRST)})")
    last = _case(LAST, f"((i / {len(FIRST)}) % {len(LAST)})")
    t0 = time.perf_counter()
    with d.begin() as s:
        sup1 = users.create_user(s, "bench_author", "bench-password-1", "supervisor")
        sup2 = users.create_user(s, "bench_approver", "bench-password-1", "supervisor")
        a1 = Actor(sup1.username, sup1.id, "supervisor")
        a2 = Actor(sup2.username, sup2.id, "supervisor")
        rid = rules.create_draft(s, a1, "Bench tiers", [
            {"name": "Bronze", "threshold": "0", "accrual_rate": "1", "referral_rate": "0.5"},
            {"name": "Silver", "threshold": "20000", "accrual_rate": "3", "referral_rate": "1"},
            {"name": "Gold", "threshold": "100000", "accrual_rate": "5", "referral_rate": "2"},
        ])
        rule_review.submit(s, a1, rid)
        rules.approve(s, a2, rid, dt.datetime(2024, 1, 1), allow_past=True)
        joined = "timestamp '2024-01-01'" if pg else "'2024-01-01 00:00:00.000000'"
        s.execute(text(f"""
            INSERT INTO members (id, external_id, name, email, phone, joined_at, segment,
                                 status, tier)
            SELECT i, 'C' || {pad7}, {first} || ' ' || {last},
                   CASE WHEN i % 10 < 7 THEN lower({first} || '.' || {last}) || i
                        || '@example.com' END,
                   CASE WHEN i % 10 < 8 THEN '+79' || {pad9} END,
                   {joined}, 'regular', 'active', 'Bronze'
            FROM {series}"""), {"n": n})
        s.execute(text("INSERT INTO accounts (kind, member_id, balance) "
                       "SELECT 'member', id, 0 FROM members"))
        at = "timestamp '2024-06-01'" if pg else "'2024-06-01 00:00:00.000000'"
        s.execute(text(f"""
            INSERT INTO orders (order_ref, customer_ref, member_id, paid_at, amount_minor,
                                points_redeemed, status, payload_hash, created_at, tier)
            SELECT 'O' || m.id || '-' || k.k, m.external_id, m.id, {at}, 100000 + k.k * 50000,
                   0, 'paid', 'bench', {at}, 'Bronze'
            FROM members m CROSS JOIN (SELECT 1 AS k UNION ALL SELECT 2) k"""))
        tx = s.execute(text(f"""
            INSERT INTO ledger_transactions (kind, idempotency_key, payload_hash, actor,
                                             effective_at, created_at)
            VALUES ('bench', 'bench', 'bench', 'bench', {at}, {at}) RETURNING id""")).scalar()
        # two accruals and a redemption per member (net 20 points)
        s.execute(text(f"""
            INSERT INTO ledger_entries (tx_id, kind, debit_account_id, credit_account_id,
                                        amount, effective_at, memo)
            SELECT :tx, k.kind, CASE WHEN k.kind = 'accrual' THEN 1 ELSE a.id END,
                   CASE WHEN k.kind = 'accrual' THEN a.id ELSE 2 END, k.amount, {at}, ''
            FROM accounts a CROSS JOIN (SELECT 'accrual' AS kind, 15 AS amount, 1 AS o
                                        UNION ALL SELECT 'accrual', 15, 2
                                        UNION ALL SELECT 'redemption', 10, 3) k
            WHERE a.kind = 'member'
            ORDER BY a.id, k.o"""), {"tx": tx})
        # the heavy member: member 1 gets 5,000 more lines
        heavy = ("generate_series(1, :h) AS g(i)" if pg else
                 "(WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g "
                 "WHERE i < :h) SELECT i FROM g) AS g")
        acc1 = s.scalar(text("SELECT id FROM accounts WHERE member_id = 1"))
        s.execute(text(f"""
            INSERT INTO ledger_entries (tx_id, kind, debit_account_id, credit_account_id,
                                        amount, effective_at, memo)
            SELECT :tx, CASE WHEN i % 4 = 0 THEN 'redemption' ELSE 'accrual' END,
                   CASE WHEN i % 4 = 0 THEN :acc ELSE 1 END,
                   CASE WHEN i % 4 = 0 THEN 2 ELSE :acc END, 7, {at}, 'heavy'
            FROM {heavy}"""), {"tx": tx, "acc": acc1, "h": HEAVY_ENTRIES})
        s.execute(text("""
            UPDATE accounts SET balance = COALESCE((SELECT SUM(amount) FROM ledger_entries
                WHERE credit_account_id = accounts.id), 0) - COALESCE((SELECT SUM(amount)
                FROM ledger_entries WHERE debit_account_id = accounts.id), 0)
            WHERE kind = 'member'"""))
    with d.engine.begin() as c:
        c.exec_driver_sql("ANALYZE")
    print(f"built {n:,} members in {time.perf_counter() - t0:.1f} s", flush=True)


def timed(label: str, fn: Callable[[], object], repeat: int) -> None:
    fn()  # warm the cache once
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    times.sort()
    p95 = times[min(len(times) - 1, int(round(0.95 * (len(times) - 1))))]
    print(f"  {label:<52} median {statistics.median(times):7.2f} ms   p95 {p95:7.2f} ms")


def run(d: Database, repeat: int) -> None:
    with d.read() as s:
        n = s.scalar(select(func.count()).select_from(Member))
        mid = n // 2 + 13  # i % 10 < 7: has an email and a phone
        m = s.get(Member, mid)
        email, phone, name, ext = m.email or "", m.phone or "+79", m.name, m.external_id
    print(f"{d.dialect}: {n:,} members; probe member {mid} ({name}, {email}, {phone})")

    def search(q: str, field: str = "auto", offset: int = 0, reveal: bool = True
               ) -> Callable[[], object]:
        """As support (contacts in clear, prefixes allowed) unless ``reveal`` is off."""
        def go() -> object:
            with d.read() as s:
                page = members.search_members(s, q, field, offset=offset, limit=100,
                                              reveal=reveal)
                assert page.rows or offset, (q, field)
                return page
        return go

    def profile(member_id: int) -> Callable[[], object]:
        def go() -> object:
            with d.read() as s:
                members.get_profile(s, member_id)
                members.member_orders(s, member_id)
                members.member_referrals(s, member_id)
                members.member_transfers(s, member_id)
                members.member_adjustments(s, member_id)
                return members.ledger_page(s, member_id, limit=100)
        return go

    def ledger_at(member_id: int, offset: int, kind: str | None = None) -> Callable[[], object]:
        def go() -> object:
            with d.read() as s:
                return members.ledger_page(s, member_id, kind=kind, offset=offset, limit=100)
        return go

    print("search (one page of 100):")
    timed(f"member id {mid}", search(str(mid)), repeat)
    timed(f"customer id {ext} (exact, auto)", search(ext), repeat)
    timed(f"email prefix '{email[:8]}'", search(email[:8]), repeat)
    timed(f"email full '{email}'", search(email), repeat)
    timed(f"name prefix '{name[:7]}'", search(name[:7]), repeat)
    timed(f"name prefix '{name[:2]}' (broad)", search(name[:2]), repeat)
    timed(f"name prefix '{name[:2]}', rows 1000-1099", search(name[:2], offset=1000), repeat)
    timed(f"phone prefix '{phone[:8]}'", search(phone[:8]), repeat)
    timed(f"phone full '{phone}'", search(phone), repeat)
    timed(f"masked role: email full '{email}' (exact only)", search(email, reveal=False), repeat)
    timed(f"masked role: phone full '{phone}' (exact only)", search(phone, reveal=False), repeat)
    timed("empty query (newest members)", search(""), repeat)
    print("profile + first ledger page:")
    timed(f"typical member {mid} (3 entries, 2 orders)", profile(mid), repeat)
    timed(f"heavy member 1 ({HEAVY_ENTRIES + 3:,} entries)", profile(1), repeat)
    timed("heavy member 1, ledger rows 4000-4099", ledger_at(1, 4000), repeat)
    timed("heavy member 1, ledger kind=redemption", ledger_at(1, 0, "redemption"), repeat)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--members", type=int, default=1_000_000)
    ap.add_argument("--db", default="/tmp/bench_members/members.sqlite3")
    ap.add_argument("--postgres", action="store_true")
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--rebuild", action="store_true")
    args = ap.parse_args()
    if args.postgres:
        admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
        with admin.connect() as c:
            exists = c.scalar(text("SELECT 1 FROM pg_database WHERE datname = :n"),
                              {"n": PG_NAME})
            if exists and args.rebuild:
                c.execute(text(f'DROP DATABASE "{PG_NAME}" WITH (FORCE)'))
                exists = False
            if not exists:
                c.execute(text(f'CREATE DATABASE "{PG_NAME}"'))
        admin.dispose()
        url = PG_ADMIN.rsplit("/", 1)[0] + f"/{PG_NAME}"
        fresh = not exists
    else:
        path = Path(args.db)
        if args.rebuild and path.exists():
            for p in path.parent.glob(path.name + "*"):
                p.unlink()
        fresh = not path.exists()
        path.parent.mkdir(parents=True, exist_ok=True)
        url = f"sqlite:///{path}"
    d = Database(url)
    upgrade(d.engine)  # also brings a reused database to the newest indexes
    with d.read() as s:
        empty = not s.scalar(select(func.count()).select_from(Member))
    if fresh or empty:  # an interrupted build leaves an empty database behind
        build(d, args.members)
    run(d, args.repeat)
    d.dispose()


if __name__ == "__main__":
    main()
