"""A synthetic program database for the rules benchmarks, built with bulk
inserts (no engine, no ledger) in minutes rather than the demo seeder's
hour: N members (15 % referred, four segments), paid orders over the last
400 days, a published rule version and a draft. A SQLite file under /tmp,
or a PostgreSQL database (given by URL; dropped and created again) loaded
with COPY; reused when it already holds the same size."""

from __future__ import annotations

import datetime as dt
import os
import sqlite3
import time
from pathlib import Path

import numpy as np

from db import rule_review, rules, users
from db.actor import Actor
from db.migrate import upgrade
from db.session import Database

AS_OF = dt.datetime(2026, 6, 1)
SEGMENTS = np.array(["regular", "student", "pensioner", "family"])
CURRENT = [
    {"name": "Bronze", "threshold": "0", "accrual_rate": "3", "referral_rate": "1"},
    {"name": "Silver", "threshold": "20000", "accrual_rate": "5", "referral_rate": "2"},
    {"name": "Gold", "threshold": "100000", "accrual_rate": "7.5", "referral_rate": "3"},
]
DRAFT = [
    {"name": "Bronze", "threshold": "0", "accrual_rate": "2", "referral_rate": "1"},
    {"name": "Silver", "threshold": "15000", "accrual_rate": "4", "referral_rate": "2"},
    {"name": "Gold", "threshold": "60000", "accrual_rate": "6", "referral_rate": "3"},
    {"name": "Platinum", "threshold": "150000", "accrual_rate": "9", "referral_rate": "4"},
]
_FMT = "%Y-%m-%d %H:%M:%S.%f"


def _ts(base: dt.datetime, seconds: np.ndarray) -> list[str]:
    origin = np.datetime64(base, "s")
    return np.datetime_as_string(origin + seconds.astype("timedelta64[s]"), unit="us").tolist()


def build(path: Path | str, members: int, orders_per_member: float = 3.5,
          seed: int = 7) -> tuple[str, int]:
    """(database URL, draft id); builds the database unless it is already there."""
    if str(path).startswith("postgresql"):
        return _build_postgres(str(path), members, orders_per_member, seed)
    return _build_sqlite(Path(path), members, orders_per_member, seed)


def _rules(url: str) -> int:
    """Migrate, add two supervisors, publish CURRENT long ago; the DRAFT's id."""
    d = Database(url)
    upgrade(d.engine)

    def staff(s):
        a = users.create_user(s, "author", "password-123", "supervisor")
        b = users.create_user(s, "approver", "password-123", "supervisor")
        author, approver = Actor(a.username, a.id, a.role), Actor(b.username, b.id, b.role)
        live = rules.create_draft(s, author, "Current", CURRENT)
        rule_review.submit(s, author, live)
        rules.approve(s, approver, live, AS_OF - dt.timedelta(days=800), allow_past=True)
        return rules.create_draft(s, author, "Draft", DRAFT)

    draft_id = d.write_tx(staff)
    d.dispose()
    return draft_id


def _draft_if_built(url: str, members: int) -> int | None:
    from sqlalchemy import func, select

    from db.models import Member, RuleSet

    d = Database(url)
    try:
        with d.read() as s:
            if s.scalar(select(func.count()).select_from(Member)) != members:
                return None
            draft = s.scalar(select(RuleSet.id).where(RuleSet.status == "draft"))
        upgrade(d.engine)  # a database built before the latest migration
        return int(draft) if draft is not None else None
    except Exception:  # noqa: BLE001 - not there, or not a program database
        return None
    finally:
        d.dispose()


def _generate(members: int, orders_per_member: float, seed: int):
    """(member rows, order batches): the same data for both databases."""
    rng = np.random.default_rng(seed)
    ids = np.arange(1, members + 1)
    joined = rng.integers(0, 700 * 86400, members)
    referred = rng.random(members) < 0.15
    referrer = np.where(referred & (ids > 1), rng.integers(1, np.maximum(ids, 2)), 0)
    seg = SEGMENTS[rng.choice(4, members, p=[0.7, 0.1, 0.1, 0.1])]
    joined_s = _ts(AS_OF - dt.timedelta(days=700), joined)
    member_rows = [(int(i), f"M{i}", j, str(g), int(r) if r else None)
                   for i, j, g, r in zip(ids, joined_s, seg, referrer, strict=True)]
    n_orders = int(members * orders_per_member)
    who = rng.integers(1, members + 1, n_orders)
    when = rng.integers(0, 400 * 86400, n_orders)
    amount = np.clip(rng.lognormal(np.log(150_000), 0.8, n_orders), 100, 5_000_000).astype(
        np.int64)
    paid_s = _ts(AS_OF - dt.timedelta(days=400), when)
    now_s = AS_OF.strftime(_FMT)

    def batches(size: int = 200_000):
        for lo in range(0, n_orders, size):
            hi = min(lo + size, n_orders)
            yield [(f"O{k}", f"M{m}", int(m), p, int(a), now_s)
                   for k, m, p, a in zip(range(lo, hi), who[lo:hi], paid_s[lo:hi],
                                         amount[lo:hi], strict=True)]

    return member_rows, n_orders, batches


MEMBER_COLS = "id, external_id, joined_at, segment, referrer_id"
ORDER_COLS = "order_ref, customer_ref, member_id, paid_at, amount_minor, created_at"


def _build_postgres(url: str, members: int, orders_per_member: float,
                    seed: int) -> tuple[str, int]:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    url = make_url(url).set(drivername="postgresql+psycopg").render_as_string(
        hide_password=False)
    draft = _draft_if_built(url, members)
    if draft is not None:
        return url, draft
    name = make_url(url).database
    admin = create_engine(make_url(url).set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        c.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    t0 = time.perf_counter()
    draft_id = _rules(url)
    member_rows, n_orders, batches = _generate(members, orders_per_member, seed)
    d = Database(url)
    raw = d.engine.raw_connection()
    try:
        cur = raw.cursor()
        with cur.copy(f"COPY members ({MEMBER_COLS}, name, status) FROM STDIN") as copy:
            for row in member_rows:
                copy.write_row((*row, "", "active"))
        del member_rows
        cur.execute("SELECT setval(pg_get_serial_sequence('members', 'id'), "
                    "(SELECT max(id) FROM members))")
        for batch in batches():
            with cur.copy(f"COPY orders ({ORDER_COLS}, points_redeemed, status, payload_hash)"
                          " FROM STDIN") as copy:
                for row in batch:
                    copy.write_row((*row, 0, "paid", ""))
        raw.commit()
    finally:
        raw.close()
    with d.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
        c.execute(text("VACUUM ANALYZE members"))
        c.execute(text("VACUUM ANALYZE orders"))
    d.dispose()
    print(f"built {url} ({members:,} members, {n_orders:,} orders) in "
          f"{time.perf_counter() - t0:.0f} s")
    return url, draft_id


def _build_sqlite(path: Path, members: int, orders_per_member: float,
                  seed: int) -> tuple[str, int]:
    url = f"sqlite:///{path}"
    marker = path.with_suffix(".ok")
    if path.exists() and marker.exists() and marker.read_text().strip() == str(members):
        draft = _draft_if_built(url, members)
        if draft is not None:
            return url, draft
    for p in (path, marker, Path(f"{path}-wal"), Path(f"{path}-shm")):
        if p.exists():
            p.unlink()
    t0 = time.perf_counter()
    draft_id = _rules(url)
    member_rows, n_orders, batches = _generate(members, orders_per_member, seed)
    con = sqlite3.connect(path)
    con.execute("PRAGMA synchronous=OFF")
    con.executemany(
        f"INSERT INTO members ({MEMBER_COLS}, name, status) VALUES (?, ?, ?, ?, ?, '', 'active')",
        member_rows,
    )
    con.commit()
    del member_rows
    for batch in batches():
        con.executemany(
            f"INSERT INTO orders ({ORDER_COLS}, points_redeemed, status, payload_hash) "
            "VALUES (?, ?, ?, ?, ?, ?, 0, 'paid', '')",
            batch,
        )
        con.commit()
    con.execute("ANALYZE")
    con.commit()
    con.close()
    marker.write_text(str(members))
    print(f"built {path} ({members:,} members, {n_orders:,} orders) in "
          f"{time.perf_counter() - t0:.0f} s, {os.path.getsize(path) / 2**20:.0f} MiB")
    return url, draft_id
