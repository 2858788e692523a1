"""The points engine under random operation sequences (hypothesis, stateful).

One state machine drives the real services - orders (members and guests,
with and without points, with referrers, odd minor units), replays with the
same and with a different payload, refunds (also of orders whose points were
already spent), redemptions, transfers, adjustment requests with approvals
and rejections, expiry runs, and new rule versions published to take effect
later - while a clock only moves forward. A small Python model predicts every
balance and every result exactly (accrual from the tier rules, clawbacks,
FIFO expiry); after every step the invariants compare the database with the
model and with itself.

The same machine runs on a fresh SQLite file and on a fresh PostgreSQL
database per example (the PostgreSQL one is skipped, with the reason, when no
server answers).
"""

from __future__ import annotations

import datetime as dt
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from sqlalchemy import func, select

from db import clock, ledger
from db.adjustments import approve_adjustment, reject_adjustment, request_adjustment
from db.errors import (
    Forbidden,
    IdempotencyConflict,
    InsufficientPoints,
    InvalidState,
    ValidationError,
)
from db.integrity import run_check
from db.ledger import ADJUSTMENT, BREAKAGE, ISSUANCE, REDEMPTION, OrderIn
from db.models import Account, AdjustmentRequest, LedgerEntry, Order
from db.session import Database
from tests.support.ledger_model import (
    V1,
    TierSpec,
    VersionSpec,
    empty_postgres,
    insert_staff,
    publish_version,
)

# far enough back that 40 steps of up to 400 days stay in the past (orders
# after now are refused)
T0 = dt.datetime(1980, 1, 1)
START = T0 + dt.timedelta(days=1)
EXPIRY_DAYS = 365  # the migration's default program setting
SECOND_APPROVAL_OVER = 5000  # ditto: adjustments above this need two approvals

# A step (operation + invariants, ~25 queries) costs ~10-20 ms on SQLite and
# ~60 ms on PostgreSQL (a network round trip per query), so PostgreSQL gets
# fewer examples; the file stays inside 90 s on 2 busy cores.
SQLITE_SETTINGS = settings(
    max_examples=40,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    print_blob=True,
)
POSTGRES_SETTINGS = settings(SQLITE_SETTINGS, max_examples=20, stateful_step_count=30)


# --------------------------------------------------------------------------
# the rules the model applies on its own


LATER_VERSIONS = [
    # half-unit points, a 30-day rolling window
    VersionSpec(
        "windowed", (TierSpec("Base", 0, 250, 125), TierSpec("Plus", 300_00, 700, 333)),
        point_value_minor=50, window_days=30,
    ),
    # odd rates, a 100 % top tier
    VersionSpec(
        "odd", (TierSpec("Flat", 0, 1234, 1), TierSpec("Top", 20000_00, 10000, 10000)),
    ),
    # a program pause: nothing accrues
    VersionSpec("zero", (TierSpec("None", 0, 0, 0),)),
    # a point worth 3.33 units
    VersionSpec("dear", (TierSpec("One", 0, 999, 777),), point_value_minor=333),
]

# index -> referrer index: B was referred by A, C by B, E by D
MEMBERS = ["A", "B", "C", "D", "E"]
REFERRER = {0: None, 1: 0, 2: 1, 3: None, 4: 3}
GUESTS = ["guest-1", "guest-2"]

# paid amounts in minor units: edges (0, odd kopecks, tier thresholds), small
# change, and - most often - amounts big enough to earn points
AMOUNTS = st.one_of(
    st.sampled_from([0, 1, 99, 100, 101, 9_999, 1000_00, 5000_00, 20000_00]),
    st.integers(0, 999),
    st.integers(1_000, 3_000_000),
    st.integers(10_000, 3_000_000).map(lambda a: a | 1),
    st.integers(100_000, 5_000_000),
)
# minutes the clock moves before an operation: none (same instant), up to three
# days, or now and then 20-400 days (so tier windows lapse and points expire)
GAP = st.one_of(
    st.just(0),
    st.integers(1, 3 * 24 * 60),
    st.integers(1, 3 * 24 * 60),
    st.integers(1, 3 * 24 * 60),
    st.integers(20 * 24 * 60, 400 * 24 * 60),
)
PICK = st.integers(0, 10_000)
POINTS_MODE = st.sampled_from(["part", "part", "all", "over", "one"])


def points_for(mode: str, balance: int, frac: int) -> int:
    """A point amount relative to a balance: within it, all of it, or too much."""
    if mode == "all":
        return balance
    if mode == "over":
        return balance + 1 + frac % 7
    if mode == "one":
        return 1
    return max(1, balance * frac // 100)


# --------------------------------------------------------------------------
# the model


@dataclass
class MOrder:
    ref: str
    customer: str
    member: int | None  # model index
    paid_at: dt.datetime
    amount: int
    redeemed: int
    accrued: int
    referral: int
    referrer: int | None
    version_id: int | None
    tier: str | None
    order_id: int
    status: str = "paid"
    refund: tuple[int, int, int, int] | None = None  # accrual, redemption, referral, lost
    refunded: int = 0  # money given back by part refunds (not the final one)


@dataclass
class MRequest:
    id: int
    member: int
    points: int
    required: int
    requested_by: int
    first_approver: int | None = None
    status: str = "pending"


@dataclass
class Movements:
    """A member's credits and debits with their times, for the FIFO expiry rule."""

    credits: list[tuple[dt.datetime, int]] = field(default_factory=list)
    spent: int = 0
    expired: int = 0


class LedgerMachine(RuleBasedStateMachine):
    """The machine; subclasses say which database each example gets."""

    def fresh_db(self) -> Database:  # pragma: no cover - overridden
        raise NotImplementedError

    def __init__(self) -> None:
        super().__init__()
        self.db = self.fresh_db()
        self.clock = START
        self.n = 0
        with self.db.begin() as s:
            self.actors = insert_staff(s)
            v1 = publish_version(s, V1, T0, self.actors, T0)
            self.member_ids = []
            for i, ext in enumerate(MEMBERS):
                ref = REFERRER[i]
                self.member_ids.append(
                    ledger.create_member(
                        s, ext, T0, referrer_id=self.member_ids[ref] if ref is not None else None
                    )
                )
            self.accounts = [ledger.account_of(s, m) for m in self.member_ids]
        self.versions: list[tuple[dt.datetime, int, VersionSpec]] = [(T0, v1, V1)]
        self.unused_specs = list(LATER_VERSIONS)
        self.bal = [0] * len(MEMBERS)
        self.moves = [Movements() for _ in MEMBERS]
        self.orders: dict[str, MOrder] = {}
        self.redemptions: dict[str, tuple[int, int, int]] = {}  # key -> member, points, tx
        self.transfers: dict[str, tuple[int, int, int, int]] = {}
        self.requests: dict[int, MRequest] = {}
        self.expiries: dict[dt.datetime, tuple[int, int]] = {}

    def teardown(self) -> None:
        self.db.dispose()

    # ---------------------------------------------------------------- helpers

    def tick(self, minutes: int) -> dt.datetime:
        # never past the wall clock: the ledger refuses orders paid after now
        self.clock = min(self.clock + dt.timedelta(minutes=minutes),
                         max(self.clock, clock.utcnow()))
        return self.clock

    def key(self, prefix: str) -> str:
        self.n += 1
        return f"{prefix}{self.n}"

    def version_at(self, at: dt.datetime) -> tuple[int, VersionSpec]:
        best = None
        for eff, vid, spec in self.versions:
            if eff <= at and (best is None or (eff, vid) >= (best[0], best[1])):
                best = (eff, vid, spec)
        assert best is not None
        return best[1], best[2]

    def spend_before(self, idx: int, at: dt.datetime, window: int | None) -> int:
        since = at - dt.timedelta(days=window) if window else None
        return sum(
            o.amount - o.refunded
            for o in self.orders.values()
            if o.member == idx and o.status == "paid" and o.paid_at < at
            and (since is None or o.paid_at >= since)
        )

    def credit(self, idx: int, points: int, at: dt.datetime) -> None:
        if points:
            self.bal[idx] += points
            self.moves[idx].credits.append((at, points))

    def debit(self, idx: int, points: int) -> None:
        if points:
            assert self.bal[idx] >= points, "the model would go negative"
            self.bal[idx] -= points
            self.moves[idx].spent += points

    def holder(self, i: int) -> int:
        """A member with points if there is one (spending from an empty
        balance is only ever refused), else any member."""
        return self.pick([m for m, b in enumerate(self.bal) if b > 0] or range(len(MEMBERS)), i)

    def pick(self, seq, i):
        seq = list(seq)
        return seq[i % len(seq)]

    # ---------------------------------------------------------------- rules

    # orders get three rules (hypothesis picks rules uniformly), so that an
    # example has enough of them for tiers, refunds and expiry to matter

    @rule(who=st.integers(0, len(MEMBERS) - 1), amount=AMOUNTS, gap=GAP)
    def post_order(self, who, amount, gap):
        self._member_order(who, amount, "none", 0, gap)

    @rule(who=st.integers(0, len(MEMBERS) - 1), amount=AMOUNTS,
          mode=st.sampled_from(["part", "part", "all", "over"]), frac=st.integers(1, 100),
          gap=GAP)
    def post_order_paying_with_points(self, who, amount, mode, frac, gap):
        self._member_order(self.holder(who), amount, mode, frac, gap)

    @rule(guest=st.sampled_from(GUESTS), amount=AMOUNTS, redeem=st.sampled_from([0, 0, 0, 5]),
          gap=GAP)
    def post_guest_order(self, guest, amount, redeem, gap):
        at = self.tick(gap)
        ref = self.key("g")
        if redeem:
            with pytest.raises(ValidationError):
                ledger.post_order(self.db, OrderIn(ref, guest, at, amount, redeem))
            return
        r = ledger.post_order(self.db, OrderIn(ref, guest, at, amount))
        assert (r.member_id, r.accrued, r.redeemed, r.referral_bonus, r.rule_set_id) == (
            None, 0, 0, 0, None,
        )
        self.orders[ref] = MOrder(ref, guest, None, at, amount, 0, 0, 0, None, None, None,
                                  r.order_id)

    def _member_order(self, who, amount, mode, frac, gap):
        at = self.tick(gap)
        ref = self.key("o")
        redeem = 0 if mode == "none" else points_for(mode, self.bal[who], frac)
        o = OrderIn(ref, MEMBERS[who], at, amount, redeem)
        if redeem > self.bal[who]:
            event("order: refused, not enough points")
            with pytest.raises(InsufficientPoints):
                ledger.post_order(self.db, o)
            return
        vid, spec = self.version_at(at)
        tier = spec.tier_for(self.spend_before(who, at, spec.window_days))
        accrued = spec.points(amount, tier.accrual_bp)
        referrer = REFERRER[who]
        referral = 0
        if referrer is not None:
            rtier = spec.tier_for(self.spend_before(referrer, at, spec.window_days))
            referral = spec.points(amount, rtier.referral_bp)
        r = ledger.post_order(self.db, o)
        event(f"order: version {spec.name}, {'with' if redeem else 'no'} redemption"
              f"{', referral bonus' if referral else ''}")
        assert not r.replayed
        assert (r.member_id, r.accrued, r.redeemed, r.referral_bonus, r.tier, r.rule_set_id) == (
            self.member_ids[who], accrued, redeem, referral, tier.name, vid,
        ), f"order {ref}: {r}"
        self.debit(who, redeem)
        self.credit(who, accrued, at)
        if referrer is not None:
            self.credit(referrer, referral, at)
        self.orders[ref] = MOrder(ref, MEMBERS[who], who, at, amount, redeem, accrued, referral,
                                  referrer, vid, tier.name, r.order_id)

    @precondition(lambda self: self.orders)
    @rule(i=PICK, change=st.sampled_from(["same", "amount", "customer", "paid_at", "points"]))
    def replay_order(self, i, change):
        o = self.pick(self.orders.values(), i)
        if change == "same":
            r = ledger.post_order(
                self.db, OrderIn(o.ref, o.customer, o.paid_at, o.amount, o.redeemed)
            )
            assert r.replayed
            assert (r.order_id, r.accrued, r.redeemed, r.referral_bonus, r.rule_set_id) == (
                o.order_id, o.accrued, o.redeemed, o.referral, o.version_id,
            )
            return
        other = {
            "amount": OrderIn(o.ref, o.customer, o.paid_at, o.amount + 1, o.redeemed),
            "customer": OrderIn(o.ref, "D" if o.customer != "D" else "E", o.paid_at, o.amount),
            "paid_at": OrderIn(o.ref, o.customer, o.paid_at + dt.timedelta(seconds=1),
                               o.amount, o.redeemed),
            "points": OrderIn(o.ref, o.customer, o.paid_at, o.amount, o.redeemed + 1),
        }[change]
        if other.points_redeemed and o.member is None:
            other = OrderIn(o.ref, o.customer, o.paid_at, o.amount + 1)
        with pytest.raises(IdempotencyConflict):
            ledger.post_order(self.db, other)

    @precondition(lambda self: self.orders)
    @rule(i=PICK, gap=GAP)
    def refund(self, i, gap):
        self._refund(self.pick(self.orders.values(), i), self.tick(gap))

    @precondition(lambda self: any(o.status == "paid" and o.accrued for o in self.orders.values()))
    @rule(i=PICK, frac=st.integers(1, 100), gap=GAP)
    def refund_after_points_were_spent(self, i, frac, gap):
        """The member spends (some of) what the order earned, then it is refunded."""
        o = self.pick([o for o in self.orders.values() if o.status == "paid" and o.accrued], i)
        at = self.tick(gap)
        pts = max(1, min(self.bal[o.member], o.accrued * frac // 100))
        if pts <= self.bal[o.member]:
            key = self.key("r")
            tx = ledger.redeem(self.db, self.member_ids[o.member], pts, key=key, at=at)
            self.debit(o.member, pts)
            self.redemptions[key] = (o.member, pts, tx)
        self._refund(o, at)

    @precondition(lambda self: any(o.status == "paid" and o.amount - o.refunded >= 1
                                   for o in self.orders.values()))
    @rule(i=PICK, frac=st.integers(1, 100), gap=GAP, replay=st.booleans())
    def part_refund(self, i, frac, gap, replay):
        """Part of an order's money comes back (all that is left when frac is 100)."""
        o = self.pick([o for o in self.orders.values()
                       if o.status == "paid" and o.amount - o.refunded >= 1], i)
        left = o.amount - o.refunded
        give = max(1, left * frac // 100)
        ref = self.key("p")
        at = self.tick(gap)
        first = self._refund(o, at, give, ref)
        if replay:
            again = ledger.refund_order(self.db, o.ref, at=at, amount_minor=give,
                                        refund_ref=ref)
            assert again.replayed and again.amount_minor == give
            assert (again.reversed_accrual, again.restored_redemption, again.reversed_referral,
                    again.unrecovered) == first
            with pytest.raises(IdempotencyConflict):
                ledger.refund_order(self.db, o.ref, at=at, amount_minor=give + 1,
                                    refund_ref=ref)
        if o.status == "paid":
            with pytest.raises(ValidationError):
                ledger.refund_order(self.db, o.ref, at=at, amount_minor=o.amount - o.refunded + 1,
                                    refund_ref=self.key("p"))

    def _refund(self, o: MOrder, at: dt.datetime, amount: int | None = None,
                ref: str | None = None) -> tuple[int, int, int, int]:
        if amount is None:
            r = ledger.refund_order(self.db, o.ref, at=at)
        else:
            r = ledger.refund_order(self.db, o.ref, at=at, amount_minor=amount, refund_ref=ref)
        got = (r.reversed_accrual, r.restored_redemption, r.reversed_referral, r.unrecovered)
        if o.status == "refunded":
            assert amount is None and r.replayed
            assert got == o.refund
            return got
        assert not r.replayed
        left = o.amount - o.refunded
        give = left if amount is None else amount
        final = give == left
        before, after = o.refunded, o.refunded + give

        def due(points: int) -> int:
            done = points * before // o.amount if o.amount else 0
            return (points if final else points * after // o.amount) - done

        take = take_ref = 0
        d_acc, d_red, d_ref = due(o.accrued), due(o.redeemed), due(o.referral)
        if o.member is not None:
            self.credit(o.member, d_red, at)
            take = min(d_acc, self.bal[o.member])
            self.debit(o.member, take)
            if o.referrer is not None:
                take_ref = min(d_ref, self.bal[o.referrer])
                self.debit(o.referrer, take_ref)
        lost = d_acc - take + d_ref - take_ref
        want = (take, d_red, take_ref, lost)
        event(("final refund" if final else "part refund")
              + (": points already spent, partly unrecovered" if lost else ": fully reversed"))
        assert got == want, f"refund of {o.ref}: {r}"
        assert r.amount_minor == give
        if final:
            o.status = "refunded"
            o.refund = want
        else:
            o.refunded = after
        return got

    @rule(who=st.integers(0, len(MEMBERS) - 1), mode=POINTS_MODE, frac=st.integers(1, 100),
          gap=GAP, replay=st.booleans(), i=PICK)
    def redeem(self, who, mode, frac, gap, replay, i):
        at = self.tick(gap)
        if replay and self.redemptions:
            key = self.pick(self.redemptions, i)
            m, pts, tx = self.redemptions[key]
            assert ledger.redeem(self.db, self.member_ids[m], pts, key=key, at=at) == tx
            with pytest.raises(IdempotencyConflict):
                ledger.redeem(self.db, self.member_ids[m], pts + 1, key=key, at=at)
            return
        who = self.holder(who)
        pts = points_for(mode, self.bal[who], frac)
        key = self.key("r")
        if pts == 0:
            with pytest.raises(ValidationError):
                ledger.redeem(self.db, self.member_ids[who], pts, key=key, at=at)
        elif pts > self.bal[who]:
            with pytest.raises(InsufficientPoints):
                ledger.redeem(self.db, self.member_ids[who], pts, key=key, at=at)
        else:
            tx = ledger.redeem(self.db, self.member_ids[who], pts, key=key, at=at)
            self.debit(who, pts)
            self.redemptions[key] = (who, pts, tx)

    @rule(src=st.integers(0, len(MEMBERS) - 1), dst=st.integers(0, len(MEMBERS) - 1),
          mode=POINTS_MODE, frac=st.integers(1, 100), gap=GAP, replay=st.booleans(), i=PICK)
    def transfer(self, src, dst, mode, frac, gap, replay, i):
        at = self.tick(gap)
        if replay and self.transfers:
            key = self.pick(self.transfers, i)
            a, b, pts, tx = self.transfers[key]
            ids = self.member_ids
            assert ledger.transfer(self.db, ids[a], ids[b], pts, key=key, at=at) == tx
            with pytest.raises(IdempotencyConflict):
                ledger.transfer(self.db, ids[b], ids[a], pts, key=key, at=at)
            return
        src = self.holder(src)
        pts = points_for(mode, self.bal[src], frac)
        key = self.key("t")
        call = lambda: ledger.transfer(  # noqa: E731
            self.db, self.member_ids[src], self.member_ids[dst], pts, key=key, at=at
        )
        if src == dst or pts == 0:
            with pytest.raises(ValidationError):
                call()
        elif pts > self.bal[src]:
            with pytest.raises(InsufficientPoints):
                call()
        else:
            tx = call()
            self.debit(src, pts)
            self.credit(dst, pts, at)
            self.transfers[key] = (src, dst, pts, tx)

    @rule(
        who=st.integers(0, len(MEMBERS) - 1),
        by=st.sampled_from(["support1", "sup1"]),
        kind=st.sampled_from(["plus", "plus_big", "minus", "minus_all", "minus_over",
                              "minus_big"]),
        size=st.integers(1, 500),
    )
    def request_adjustment(self, who, by, kind, size):
        bal = self.bal[who]
        points = {
            "plus": size,
            "plus_big": SECOND_APPROVAL_OVER + size,
            "minus": -max(1, min(size, bal)),
            "minus_all": -bal,
            "minus_over": -(bal + size),
            "minus_big": -(SECOND_APPROVAL_OVER + size),
        }[kind]
        actor = self.actors[by]
        args = (self.db, actor, self.member_ids[who], points, "goodwill", f"case {kind}")
        if points == 0:
            with pytest.raises(ValidationError):
                request_adjustment(*args)
        elif bal + points < 0:
            with pytest.raises(InsufficientPoints):
                request_adjustment(*args)
        else:
            info = request_adjustment(*args)
            required = 2 if abs(points) > SECOND_APPROVAL_OVER else 1
            assert (info.status, info.approvals_required) == ("pending", required)
            self.requests[info.id] = MRequest(info.id, who, points, required, actor.id)

    @precondition(lambda self: self.requests)
    @rule(i=PICK, by=st.sampled_from(["sup1", "sup2", "sup3"]), gap=GAP)
    def approve_adjustment(self, i, by, gap):
        r = self.pick(self.requests.values(), i)
        actor = self.actors[by]
        at = self.tick(gap)
        call = lambda: approve_adjustment(self.db, actor, r.id, at=at)  # noqa: E731
        if r.status != "pending":
            with pytest.raises(InvalidState):
                call()
        elif actor.id in (r.requested_by, r.first_approver):
            with pytest.raises(Forbidden):
                call()
        elif r.required == 2 and r.first_approver is None:
            info = call()
            assert (info.status, info.tx_id) == ("pending", None)
            r.first_approver = actor.id
        elif self.bal[r.member] + r.points < 0:
            with pytest.raises(InsufficientPoints):
                call()
        else:
            info = call()
            assert info.status == "approved" and info.tx_id is not None
            r.status = "approved"
            if r.points > 0:
                self.credit(r.member, r.points, at)
            else:
                self.debit(r.member, -r.points)

    @precondition(lambda self: self.requests)
    @rule(i=PICK, by=st.sampled_from(["sup1", "sup2", "sup3"]))
    def reject_adjustment(self, i, by):
        r = self.pick(self.requests.values(), i)
        actor = self.actors[by]
        call = lambda: reject_adjustment(self.db, actor, r.id, "not justified")  # noqa: E731
        if r.status != "pending":
            with pytest.raises(InvalidState):
                call()
        elif actor.id in (r.requested_by, r.first_approver):
            # four eyes: neither the requester nor the first approver decides
            with pytest.raises(Forbidden):
                call()
        else:
            assert call().status == "rejected"
            r.status = "rejected"

    @rule(gap=st.one_of(GAP, st.integers(300 * 24 * 60, 500 * 24 * 60)))
    def expire(self, gap):
        as_of = self.tick(gap)
        res = ledger.expire_points(self.db, as_of)
        if as_of in self.expiries:
            assert res.replayed and (res.members, res.points) == self.expiries[as_of]
            return
        cutoff = as_of - dt.timedelta(days=EXPIRY_DAYS)
        due = {}
        for idx, mv in enumerate(self.moves):
            early = sum(p for at, p in mv.credits if at <= cutoff)
            d = min(early - mv.spent - mv.expired, self.bal[idx])
            if d > 0:
                due[idx] = d
        assert not res.replayed
        assert (res.members, res.points) == (len(due), sum(due.values())), (res, due)
        event("expiry: points expired" if due else "expiry: nothing due")
        for idx, d in due.items():
            self.bal[idx] -= d
            self.moves[idx].expired += d
        if due:
            self.expiries[as_of] = (len(due), sum(due.values()))

    @precondition(lambda self: self.unused_specs)
    @rule(i=PICK, days=st.integers(0, 90), minutes=st.integers(1, 24 * 60))
    def publish_later_version(self, i, days, minutes):
        spec = self.unused_specs.pop(i % len(self.unused_specs))
        eff = self.clock + dt.timedelta(days=days, minutes=minutes)
        if any(e == eff for e, _, _ in self.versions):
            with pytest.raises(ValidationError), self.db.begin() as s:
                publish_version(s, spec, eff, self.actors, self.clock)
            return
        with self.db.begin() as s:
            vid = publish_version(s, spec, eff, self.actors, self.clock)
        self.versions.append((eff, vid, spec))

    # ---------------------------------------------------------------- invariants

    @invariant()
    def ledger_agrees_with_itself_and_the_model(self):
        with self.db.read() as s:
            report = run_check(s)
            assert report.ok, "integrity check failed:\n" + "\n".join(
                map(str, report.violations)
            )
            cached = dict(
                s.execute(
                    select(Account.id, Account.balance).where(Account.kind == "member")
                ).all()
            )
            net: dict[int, int] = {}
            for acc, amount in s.execute(
                select(LedgerEntry.credit_account_id, func.sum(LedgerEntry.amount))
                .group_by(LedgerEntry.credit_account_id)
            ):
                net[acc] = net.get(acc, 0) + int(amount)
            for acc, amount in s.execute(
                select(LedgerEntry.debit_account_id, func.sum(LedgerEntry.amount))
                .group_by(LedgerEntry.debit_account_id)
            ):
                net[acc] = net.get(acc, 0) - int(amount)
            # every member: cache == entries == model, never negative
            for idx, acc in enumerate(self.accounts):
                assert cached[acc] == net.get(acc, 0) == self.bal[idx], (
                    f"member {MEMBERS[idx]}: cached {cached[acc]}, entries "
                    f"{net.get(acc, 0)}, model {self.bal[idx]}"
                )
                assert cached[acc] >= 0
            # double entry: all accounts together hold nothing
            assert sum(net.values()) == 0

            # the liability, independently by entry kind
            by_kind: dict[tuple[str, int, int], int] = {}
            for kind, d, c, amount in s.execute(
                select(LedgerEntry.kind, LedgerEntry.debit_account_id,
                       LedgerEntry.credit_account_id, func.sum(LedgerEntry.amount))
                .group_by(LedgerEntry.kind, LedgerEntry.debit_account_id,
                          LedgerEntry.credit_account_id)
            ):
                k = (kind, min(d, ADJUSTMENT + 1), min(c, ADJUSTMENT + 1))  # 5 = any member
                by_kind[k] = by_kind.get(k, 0) + int(amount)
            M = ADJUSTMENT + 1  # noqa: N806 - reads like the account
            issued = (by_kind.get(("accrual", ISSUANCE, M), 0)
                      + by_kind.get(("referral_bonus", ISSUANCE, M), 0)
                      - by_kind.get(("reversal", M, ISSUANCE), 0))
            redeemed = (by_kind.get(("redemption", M, REDEMPTION), 0)
                        - by_kind.get(("reversal", REDEMPTION, M), 0))
            expired = by_kind.get(("expiry", M, BREAKAGE), 0)
            adjusted = (by_kind.get(("adjustment", ADJUSTMENT, M), 0)
                        - by_kind.get(("adjustment", M, ADJUSTMENT), 0))
            known = {("accrual", ISSUANCE, M), ("referral_bonus", ISSUANCE, M),
                     ("reversal", M, ISSUANCE), ("redemption", M, REDEMPTION),
                     ("reversal", REDEMPTION, M), ("expiry", M, BREAKAGE),
                     ("adjustment", ADJUSTMENT, M), ("adjustment", M, ADJUSTMENT),
                     ("transfer", M, M)}
            assert set(by_kind) <= known, f"unexpected movements: {set(by_kind) - known}"
            liability = issued - redeemed - expired + adjusted
            assert liability == sum(cached.values()) == sum(self.bal)
            assert net.get(ISSUANCE, 0) == -issued
            assert net.get(REDEMPTION, 0) == redeemed
            assert net.get(BREAKAGE, 0) == expired
            assert net.get(ADJUSTMENT, 0) == -adjusted

            # orders: one row per order id, the version in force at payment time
            rows = {
                o.order_ref: o
                for o in s.execute(
                    select(Order.order_ref, Order.id, Order.status, Order.rule_set_id,
                           Order.member_id, Order.amount_minor)
                )
            }
            assert set(rows) == set(self.orders)
            per_order: dict[int, list] = {}
            for e in s.execute(
                select(LedgerEntry.order_id, LedgerEntry.kind, LedgerEntry.rule_set_id,
                       LedgerEntry.amount).where(LedgerEntry.order_id.is_not(None))
            ):
                per_order.setdefault(e.order_id, []).append(e)
            for ref, o in self.orders.items():
                row = rows[ref]
                assert (row.id, row.status, row.amount_minor) == (
                    o.order_id, o.status, o.amount - o.refunded)
                entries = per_order.get(o.order_id, [])
                accruals = [e for e in entries if e.kind == "accrual"]
                assert len(accruals) <= 1
                if o.member is None:
                    assert row.rule_set_id is None and not entries
                    continue
                in_force, _ = self.version_at(o.paid_at)
                assert row.rule_set_id == o.version_id == in_force
                for e in entries:
                    if e.kind in ("accrual", "referral_bonus"):
                        assert e.rule_set_id == in_force, (ref, e)
                assert sum(e.amount for e in accruals) == o.accrued

            # adjustments: decided as the model says, one entry per approval
            statuses = dict(
                s.execute(select(AdjustmentRequest.id, AdjustmentRequest.status)).all()
            )
            assert statuses == {r.id: r.status for r in self.requests.values()}
            n_adj = s.scalar(
                select(func.count()).select_from(LedgerEntry)
                .where(LedgerEntry.kind == "adjustment")
            )
            assert n_adj == sum(r.status == "approved" for r in self.requests.values())


# --------------------------------------------------------------------------
# the two databases


class SQLiteLedgerMachine(LedgerMachine):
    template: Path | None = None
    workdir: Path | None = None

    def fresh_db(self) -> Database:
        self._dir = tempfile.mkdtemp(dir=self.workdir)
        path = Path(self._dir) / "loyalty.sqlite3"
        shutil.copy(self.template, path)
        return Database(f"sqlite:///{path}")

    def teardown(self) -> None:
        super().teardown()
        shutil.rmtree(self._dir, ignore_errors=True)


class PostgresLedgerMachine(LedgerMachine):
    shared: Database | None = None

    def fresh_db(self) -> Database:
        empty_postgres(self.shared)
        return self.shared

    def teardown(self) -> None:
        pass  # the engine is shared across examples; the fixture disposes it


class TestLedgerMachineSQLite(SQLiteLedgerMachine.TestCase):
    settings = SQLITE_SETTINGS

    @pytest.fixture(autouse=True)
    def _sqlite(self, sqlite_template, tmp_path):
        SQLiteLedgerMachine.template = sqlite_template
        SQLiteLedgerMachine.workdir = tmp_path


@pytest.mark.postgres
class TestLedgerMachinePostgres(PostgresLedgerMachine.TestCase):
    settings = POSTGRES_SETTINGS

    @pytest.fixture(autouse=True)
    def _postgres(self, pg_url):  # skips, with the reason, when PostgreSQL is unreachable
        PostgresLedgerMachine.shared = Database(pg_url)
        yield
        PostgresLedgerMachine.shared.dispose()
        PostgresLedgerMachine.shared = None


# --------------------------------------------------------------------------
# the first bug the machine found, pinned down as an example


def test_first_approver_cannot_also_reject(any_db):
    """A two-approval request: its first approver rejecting it used to hit the
    database's two_approvers_differ CHECK (an IntegrityError, a 500 in the
    app); now it is refused like any other four-eyes breach."""
    d = any_db
    with d.begin() as s:
        actors = insert_staff(s)
        publish_version(s, V1, T0, actors, T0)
        m = ledger.create_member(s, "A", T0)
    req = request_adjustment(d, actors["support1"], m, SECOND_APPROVAL_OVER + 1, "goodwill", "x")
    assert approve_adjustment(d, actors["sup1"], req.id, at=START).approvals_required == 2
    with pytest.raises(Forbidden, match="first approval"):
        reject_adjustment(d, actors["sup1"], req.id, "changed my mind")
    assert reject_adjustment(d, actors["sup2"], req.id, "not justified").status == "rejected"
    with d.read() as s:
        assert run_check(s).ok
