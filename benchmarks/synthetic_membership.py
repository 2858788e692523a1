"""A synthetic program database for the rules benchmarks, built with bulk
inserts (no engine, no ledger) in seconds rather than the demo seeder's
minutes: N members (15 % referred, four segments), paid orders over the last
400 days, a published rule version and a draft. Kept under /tmp, reused
when it already exists with the same size."""

from __future__ import annotations

import datetime as dt
import os
import sqlite3
import time
from pathlib import Path

import numpy as np

from db import rules, users
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


def build(path: Path, members: int, orders_per_member: float = 3.5,
          seed: int = 7) -> tuple[str, int]:
    """(database URL, draft id); builds the file unless it is already there."""
    url = f"sqlite:///{path}"
    marker = path.with_suffix(".ok")
    if path.exists() and marker.exists() and marker.read_text().strip() == str(members):
        d = Database(url)
        upgrade(d.engine)  # a file built before the latest migration
        with d.read() as s:
            from db.models import RuleSet

            draft = s.query(RuleSet.id).filter(RuleSet.status == "draft").scalar()
        d.dispose()
        return url, int(draft)
    for p in (path, marker, Path(f"{path}-wal"), Path(f"{path}-shm")):
        if p.exists():
            p.unlink()
    t0 = time.perf_counter()
    d = Database(url)
    upgrade(d.engine)

    def staff(s):
        a = users.create_user(s, "author", "password-123", "supervisor")
        b = users.create_user(s, "approver", "password-123", "supervisor")
        author, approver = Actor(a.username, a.id, a.role), Actor(b.username, b.id, b.role)
        live = rules.create_draft(s, author, "Current", CURRENT)
        rules.submit(s, author, live)
        rules.approve(s, approver, live, AS_OF - dt.timedelta(days=800), allow_past=True)
        return rules.create_draft(s, author, "Draft", DRAFT)

    draft_id = d.write_tx(staff)
    d.dispose()

    rng = np.random.default_rng(seed)
    con = sqlite3.connect(path)
    con.execute("PRAGMA synchronous=OFF")
    ids = np.arange(1, members + 1)
    joined = rng.integers(0, 700 * 86400, members)
    referred = rng.random(members) < 0.15
    referrer = np.where(referred & (ids > 1), rng.integers(1, np.maximum(ids, 2)), 0)
    seg = SEGMENTS[rng.choice(4, members, p=[0.7, 0.1, 0.1, 0.1])]
    joined_s = _ts(AS_OF - dt.timedelta(days=700), joined)
    con.executemany(
        "INSERT INTO members (id, external_id, name, joined_at, segment, referrer_id, status) "
        "VALUES (?, ?, '', ?, ?, ?, 'active')",
        ((int(i), f"M{i}", j, str(g), int(r) if r else None)
         for i, j, g, r in zip(ids, joined_s, seg, referrer, strict=True)),
    )
    con.commit()
    n_orders = int(members * orders_per_member)
    who = rng.integers(1, members + 1, n_orders)
    when = rng.integers(0, 400 * 86400, n_orders)
    amount = np.clip(rng.lognormal(np.log(150_000), 0.8, n_orders), 100, 5_000_000).astype(
        np.int64)
    paid_s = _ts(AS_OF - dt.timedelta(days=400), when)
    now_s = AS_OF.strftime(_FMT)
    batch = 200_000
    for lo in range(0, n_orders, batch):
        hi = min(lo + batch, n_orders)
        con.executemany(
            "INSERT INTO orders (order_ref, customer_ref, member_id, paid_at, amount_minor, "
            "points_redeemed, status, payload_hash, created_at) "
            "VALUES (?, ?, ?, ?, ?, 0, 'paid', '', ?)",
            ((f"O{k}", f"M{m}", int(m), p, int(a), now_s)
             for k, m, p, a in zip(range(lo, hi), who[lo:hi], paid_s[lo:hi], amount[lo:hi],
                                   strict=True)),
        )
        con.commit()
    con.execute("ANALYZE")
    con.commit()
    con.close()
    marker.write_text(str(members))
    print(f"built {path} ({members:,} members, {n_orders:,} orders) in "
          f"{time.perf_counter() - t0:.0f} s, {os.path.getsize(path) / 2**20:.0f} MiB")
    return url, draft_id
