"""A realistic live stream of program events, written through the engine.

``loyalty simulate-live`` uses it so the live page can be watched moving: member
and guest orders (some paying with points), redemptions, transfers, sign-ups
(a share through referral links) and, every ``expiry_every`` seconds, the
expiry job — each through the single-operation services of db.ledger, each in
its own transaction, exactly as production traffic would arrive.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import func, select

from db import clock, ledger
from db.actor import Actor
from db.errors import LoyaltyError
from db.models import SEGMENTS, Member
from db.session import Database

SIMULATOR = Actor("simulate-live", None, "system")
# share of events by kind (the rest are member orders)
MIX = {"guest_order": 0.25, "signup": 0.08, "redeem": 0.07, "transfer": 0.04}
REFERRED_SHARE = 0.4


@dataclass
class StreamStats:
    """Events written so far, by kind (refused ones under "refused")."""

    counts: Counter = field(default_factory=Counter)
    started: float = field(default_factory=time.monotonic)

    @property
    def total(self) -> int:
        return sum(v for k, v in self.counts.items() if k != "refused")


class LiveStream:
    """Writes events at ``rate`` per second until stopped or ``duration`` passes."""

    def __init__(self, db: Database, *, rate: float = 5.0, seed: int | None = None,
                 expiry_every: float = 60.0) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.db = db
        self.rate = rate
        self.rng = random.Random(seed)
        self.expiry_every = expiry_every
        # keys stay unique when a seeded run is repeated on the same database
        self.run_id = uuid.uuid4().hex[:8] if seed is None else f"s{seed}-{uuid.uuid4().hex[:6]}"
        self.stats = StreamStats()
        self.stop_event = threading.Event()
        self._n = 0
        self._members: list[tuple[int, str]] = []
        self._load_members()

    def _load_members(self) -> None:
        """A sample of existing members to act (recent ones and a random spread)."""
        with self.db.read() as s:
            top = s.scalar(select(func.max(Member.id))) or 0
            rows = s.execute(
                select(Member.id, Member.external_id)
                .where(Member.status == "active", Member.id > max(0, top - 2000))
            ).all()
        self._members = [(int(i), e) for i, e in rows]

    def _key(self) -> str:
        self._n += 1
        return f"live-{self.run_id}-{self._n}"

    def step(self) -> str:
        """Write one event; returns its kind."""
        rng, now = self.rng, clock.utcnow()
        r = rng.random()
        kind = "member_order"
        acc = 0.0
        for k, share in MIX.items():
            acc += share
            if r < acc:
                kind = k
                break
        if not self._members:
            kind = "signup"
        try:
            if kind == "signup":
                ref = (rng.choice(self._members)[0]
                       if self._members and rng.random() < REFERRED_SHARE else None)
                ext, segment = self._key(), rng.choice(SEGMENTS)
                mid = self.db.write_tx(lambda s: ledger.create_member(
                    s, ext, now, segment=segment, referrer_id=ref,
                    name=f"Live member {self._n}"))
                self._members.append((mid, ext))
            elif kind == "guest_order":
                ledger.post_order_safely(self.db, ledger.OrderIn(
                    self._key(), f"guest-{rng.randint(1, 5000)}", now,
                    rng.randint(30_000, 300_000)), actor=SIMULATOR)
            elif kind == "member_order":
                mid, ext = rng.choice(self._members[-500:] if rng.random() < 0.5
                                      else self._members)
                with self.db.read() as s:
                    bal = ledger.balance(s, mid)
                use = rng.randint(1, bal) if bal and rng.random() < 0.2 else 0
                ledger.post_order_safely(self.db, ledger.OrderIn(
                    self._key(), ext, now, rng.randint(50_000, 500_000), points_redeemed=use),
                    actor=SIMULATOR)
            elif kind == "redeem":
                mid, _ = rng.choice(self._members)
                with self.db.read() as s:
                    bal = ledger.balance(s, mid)
                if bal <= 0:
                    return "skipped"
                ledger.redeem(self.db, mid, rng.randint(1, bal), key=self._key(), at=now,
                              memo="voucher", actor=SIMULATOR)
            elif kind == "transfer":
                (a, _), (b, _) = rng.sample(self._members, 2)
                with self.db.read() as s:
                    bal = ledger.balance(s, a)
                if bal <= 0:
                    return "skipped"
                ledger.transfer(self.db, a, b, rng.randint(1, bal), key=self._key(), at=now,
                                actor=SIMULATOR)
        except LoyaltyError:
            self.stats.counts["refused"] += 1
            return "refused"
        self.stats.counts[kind] += 1
        return kind

    def run(self, duration: float | None = None,
            report: Callable[[str], None] | None = None) -> StreamStats:
        """Write events at the chosen rate; a line per second through ``report``."""
        start = time.monotonic()
        next_line = start + 1
        next_expiry = start + self.expiry_every
        written = 0
        while not self.stop_event.is_set():
            now = time.monotonic()
            if duration is not None and now - start >= duration:
                break
            due = int((now - start) * self.rate) + 1
            if written < due:
                self.step()
                written += 1
            else:
                self.stop_event.wait(min(1 / self.rate, 0.05))
            if now >= next_expiry:
                res = ledger.expire_points(self.db, clock.utcnow(), actor=SIMULATOR)
                self.stats.counts["expiry"] += res.members
                next_expiry += self.expiry_every
            if report and now >= next_line:
                c = self.stats.counts
                report(f"{now - start:6.0f} s  {self.stats.total:,} events  "
                       + "  ".join(f"{k} {v:,}" for k, v in sorted(c.items())))
                next_line += 1
        return self.stats


def simulate(db: Database, *, rate: float = 5.0, duration: float | None = None,
             seed: int | None = None,
             report: Callable[[str], None] | None = None) -> StreamStats:
    """Run a stream in this thread (Ctrl-C stops it cleanly)."""
    stream = LiveStream(db, rate=rate, seed=seed)
    try:
        return stream.run(duration, report)
    except KeyboardInterrupt:
        return stream.stats

