"""The bulk poster must give exactly the entries the single-order path gives."""

from __future__ import annotations

import datetime as dt
import random

from sqlalchemy import select

from db import clock, ledger
from db.bulk import BulkPoster
from db.integrity import run_check
from db.ledger import OrderIn
from db.models import Member, Order
from tests.support.factories import T0, member, publish

V2 = [
    {"name": "Base", "threshold": "0", "accrual_rate": "2", "referral_rate": "1"},
    {"name": "Plus", "threshold": "700", "accrual_rate": "4.5", "referral_rate": "3"},
]


def _program(d, window):
    with d.begin() as s:
        publish(s, tier_window_days=window)
        publish(s, V2, effective_at=T0 + dt.timedelta(days=20), name="v2",
                tier_window_days=window)
        ids = [member(s, "M0")]
        for i in range(1, 8):
            ids.append(member(s, f"M{i}", referrer_id=ids[(i - 1) // 2]))
    return ids


def _orders(n, seed):
    rng = random.Random(seed)
    out = []
    at = T0 + dt.timedelta(hours=1)
    for i in range(n):
        at += dt.timedelta(hours=rng.choice([0, 1, 7, 30]))  # 0: same-time orders
        cust = rng.choice([f"M{k}" for k in range(8)] + ["guest-1", "guest-2"])
        out.append(OrderIn(f"o{i}", cust, at, rng.randint(0, 150_000)))
    return out


def _snapshot(d):
    with d.read() as s:
        orders = s.execute(
            select(Order.order_ref, Order.tier, Order.rule_set_id).order_by(Order.order_ref)
        ).all()
        bal = {m: ledger.balance(s, m) for m in s.scalars(select(Member.id))}
        tiers = dict(s.execute(select(Member.id, Member.tier)).all())
        assert run_check(s).ok, run_check(s).violations
    return orders, bal, tiers


def test_bulk_equals_single_path(tmp_path, sqlite_template):
    import shutil

    from db.session import Database

    for window in (None, 10):
        dbs = []
        for name in ("single", "bulk"):
            p = tmp_path / f"{name}-{window}.sqlite3"
            shutil.copy(sqlite_template, p)
            dbs.append(Database(f"sqlite:///{p}"))
        single, bulk = dbs
        _program(single, window)
        ids = _program(bulk, window)
        orders = _orders(300, seed=window or 1)
        for o in orders[:150]:
            ledger.post_order(single, o)
        for o in orders[150:]:
            ledger.post_order(single, o)
        # the bulk side: first half in one poster, second half in another (state reload)
        for part in (orders[:150], orders[150:]):
            with bulk.begin() as s:
                p = BulkPoster(s)
                p.prepare(ids, part[0].paid_at)
                ext = {f"M{i}": m for i, m in enumerate(ids)}
                for o in part:
                    p.post(o, ext.get(o.customer_ref))
                p.flush()
        assert _snapshot(single) == _snapshot(bulk)


def test_bulk_poster_refuses_a_future_order(db):
    import pytest

    from db.errors import ValidationError

    with db.begin() as s:
        publish(s)
        mid = member(s, "M0")
        poster = BulkPoster(s)
        poster.prepare([mid], T0)
        late = clock.utcnow() + dt.timedelta(hours=3)
        with pytest.raises(ValidationError, match="paid_at: .* is in the future"):
            poster.post(OrderIn("o1", "M0", late, 100_00), mid)
