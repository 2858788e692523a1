"""A seeded random stream of program events, for the tests that compare the
rollups with the raw tables."""

from __future__ import annotations

import datetime as dt
import random

from sqlalchemy import select

from db import ledger
from db.bulk import BulkPoster
from db.ledger import OrderIn
from db.models import Order, ProgramSettings
from db.session import Database
from tests.support.factories import member, publish, staff

# long enough ago that a stream of a few thousand events stays in the past
# (orders paid after now are refused)
T0 = dt.datetime(2020, 1, 1)

SEGMENTS = ("regular", "student", "pensioner")


class Stream:
    """A seeded random stream of program events written through the engine."""

    def __init__(self, d: Database, seed: int) -> None:
        self.d = d
        self.rng = random.Random(seed)
        self.clock = T0
        self.members: list[int] = []
        self.orders: list[str] = []
        self.ext: dict[int, str] = {}
        self.n = 0
        with d.begin() as s:
            publish(s, effective_at=T0 - dt.timedelta(days=1))
            s.get(ProgramSettings, 1).expiry_days = 20
            self.actor = staff(s, "sup", "supervisor")

    def tick(self) -> dt.datetime:
        self.clock += dt.timedelta(hours=self.rng.randint(1, 30), seconds=self.rng.randint(0, 59))
        return self.clock

    def key(self) -> str:
        self.n += 1
        return f"k{self.n}"

    def single(self, events: int) -> None:
        rng = self.rng
        for _ in range(events):
            at = self.tick()
            r = rng.random()
            if r < 0.15 or len(self.members) < 3:
                ref = rng.choice(self.members) if self.members and rng.random() < 0.5 else None
                ext = f"M{self.key()}"
                with self.d.begin() as s:
                    mid = member(s, ext, referrer_id=ref, joined_at=at,
                                 segment=rng.choice(SEGMENTS))
                self.members.append(mid)
                self.ext[mid] = ext
            elif r < 0.55:
                guest = rng.random() < 0.3
                cust = f"G{rng.randint(1, 6)}" if guest else self._ext(rng.choice(self.members))
                ref = f"O{self.key()}"
                ledger.post_order_safely(self.d, OrderIn(ref, cust, at, rng.randint(100, 90000)))
                self.orders.append(ref)
            elif r < 0.65 and self.orders:
                ref = rng.choice(self.orders)
                left = self._left(ref)
                if left > 1 and rng.random() < 0.6:  # part of the money back
                    ledger.refund_order(self.d, ref, at=at, amount_minor=rng.randint(1, left - 1),
                                        refund_ref=self.key())
                else:
                    ledger.refund_order(self.d, ref, at=at)
            elif r < 0.75:
                m = rng.choice(self.members)
                bal = self._balance(m)
                if bal > 0:
                    ledger.redeem(self.d, m, rng.randint(1, bal), key=self.key(), at=at)
            elif r < 0.85 and len(self.members) > 1:
                a, b = rng.sample(self.members, 2)
                bal = self._balance(a)
                if bal > 0:
                    ledger.transfer(self.d, a, b, rng.randint(1, bal), key=self.key(), at=at)
            elif r < 0.92:
                m = rng.choice(self.members)
                pts = rng.choice([1, 1, -1]) * rng.randint(1, 50)
                if self._balance(m) + pts >= 0:
                    with self.d.begin() as s:
                        ledger.post_adjustment(s, m, pts, key=self.key(), at=at, memo="t",
                                               actor=self.actor)
            else:
                ledger.expire_points(self.d, at)

    def bulk(self, events: int) -> None:
        rng = self.rng
        with self.d.begin() as s:
            poster = BulkPoster(s)
            start = self.tick()
            exts = [f"B{self.key()}" for _ in range(5)]
            new = poster.add_members([
                {"external_id": ext, "joined_at": start,
                 "segment": rng.choice(SEGMENTS),
                 "referrer_id": rng.choice(self.members) if self.members else None}
                for ext in exts
            ])
            self.ext.update(zip(new, exts, strict=True))
            poster.prepare(self.members, start)
            everyone = self.members + new
            for _ in range(events):
                at = self.tick()
                m = rng.choice(everyone)
                ref = f"O{self.key()}"
                if rng.random() < 0.2:
                    poster.post(OrderIn(ref, f"G{rng.randint(1, 6)}", at, rng.randint(100, 9000)),
                                None)
                else:
                    poster.post(OrderIn(ref, self._ext(m), at, rng.randint(100, 90000)), m)
                self.orders.append(ref)
                if rng.random() < 0.2 and poster.balance_of(m) > 0:
                    poster.redeem(m, rng.randint(1, poster.balance_of(m)), at, self.key())
            poster.flush()
            poster.sync_balances()
            self.members = everyone

    def _ext(self, member_id: int) -> str:
        return self.ext[member_id]

    def _left(self, order_ref: str) -> int:
        """Money still paid on the order (0 once refunded in full)."""
        with self.d.read() as s:
            o = s.execute(select(Order.status, Order.amount_minor)
                          .where(Order.order_ref == order_ref)).one()
            return o.amount_minor if o.status == "paid" else 0

    def _balance(self, member_id: int) -> int:
        with self.d.read() as s:
            return ledger.balance(s, member_id)
