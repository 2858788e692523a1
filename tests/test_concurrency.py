"""The points engine under concurrent writers, and a writer that dies mid-way.

On SQLite (a file database in WAL mode, writers serialised by BEGIN
IMMEDIATE) and on PostgreSQL (READ COMMITTED with row locks): many threads
post orders, redeem, transfer between a few hot members, refund, double-post
the same order ids, run the same expiry twice, and several supervisors
approve the same adjustment requests at the same moment. Expected refusals
(not enough points, already decided, same key with another payload) are
fine; anything else fails the test. Afterwards the ledger must be clean and
agree with what the threads were told succeeded.

Nothing here depends on timing: the threads start together at a barrier and
the assertions hold for any interleaving.
"""

from __future__ import annotations

import datetime as dt
import os
import random
import signal
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import func, select

from db import bulk, ledger
from db.adjustments import approve_adjustment, request_adjustment
from db.errors import IdempotencyConflict, InsufficientPoints, InvalidState, ValidationError
from db.integrity import run_check
from db.ledger import ADJUSTMENT, OrderIn
from db.models import (
    Account,
    AdjustmentRequest,
    LedgerEntry,
    LedgerTransaction,
    Order,
    Transfer,
)
from db.session import Database
from tests.support.factories import T0, member, publish, staff

REPO = Path(__file__).resolve().parent.parent
THREADS = 8
OPS_PER_THREAD = 40
APPROVERS = 4
REQUESTS = 12
SHARED_ORDERS = 10  # order ids every worker posts
SEED_AMOUNT = 5_000_000_00
EXPECTED = (InsufficientPoints, InvalidState, IdempotencyConflict)


def day(n: float) -> dt.datetime:
    return T0 + dt.timedelta(days=n)


def setup_program(d: Database) -> dict:
    """Rules, four hot members (H1 referred by H0) with points, staff."""
    with d.begin() as s:
        publish(s)
        hot = [member(s, "H0")]
        hot.append(member(s, "H1", referrer_id=hot[0]))
        hot += [member(s, "H2"), member(s, "H3")]
        actors = {"support": staff(s, "support1", "support")}
        for i in range(APPROVERS):
            actors[f"sup{i}"] = staff(s, f"sup{i}", "supervisor")
    # 5 000 000 units at 1 % -> 50 000 points each (H0 also gets H1's referral
    # bonus): more than all the workers' spending could ever take from one
    # member, so the expiry run below always has seed points to expire
    for i in range(len(hot)):
        ledger.post_order(d, OrderIn(f"seed-{i}", f"H{i}", day(1), SEED_AMOUNT))
    return {"hot": hot, "actors": actors}


def assert_clean(d: Database) -> None:
    with d.read() as s:
        report = run_check(s)
    assert report.ok, "integrity check failed:\n" + "\n".join(map(str, report.violations))


def balances(d: Database) -> dict[int, int]:
    with d.read() as s:
        return dict(
            s.execute(select(Account.id, Account.balance).where(Account.kind == "member")).all()
        )


def entries_net(s) -> dict[int, int]:
    """Every account's balance recomputed from the entries alone."""
    net: Counter = Counter()
    for d_acc, c_acc, amount in s.execute(
        select(LedgerEntry.debit_account_id, LedgerEntry.credit_account_id, LedgerEntry.amount)
    ):
        net[d_acc] -= amount
        net[c_acc] += amount
    return dict(net)


# --------------------------------------------------------------------------
# many writers at once


class Worker:
    """One thread's operations, drawn from its own seeded generator."""

    def __init__(self, n: int, d: Database, hot: list[int], barrier: threading.Barrier):
        self.n, self.d, self.hot, self.barrier = n, d, hot, barrier
        self.rng = random.Random(1000 + n)
        self.posted: dict[str, int] = {}  # order ref -> order id (new or replayed)
        self.new_orders = 0
        self.redeemed = 0
        self.transfers = 0
        self.refunds = 0
        self.refused: Counter = Counter()
        self.errors: list[BaseException] = []

    def run(self) -> None:
        try:
            self.barrier.wait()
            for i in range(OPS_PER_THREAD):
                try:
                    self.step(i)
                except EXPECTED as exc:
                    self.refused[type(exc).__name__] += 1
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.errors.append(exc)

    def step(self, i: int) -> None:
        rng, hot = self.rng, self.hot
        at = day(2 + i / 100 + self.n / 10_000)
        op = rng.choice(["order", "order", "shared", "redeem", "transfer", "refund"])
        if op == "order":
            who = rng.randrange(len(hot) + 1)
            cust = f"H{who}" if who < len(hot) else f"guest-{self.n}"
            pts = rng.choice([0, 0, 5, 40, 150]) if who < len(hot) else 0
            ref = f"w{self.n}-o{i}"
            r = ledger.post_order_safely(self.d, OrderIn(ref, cust, at, rng.randint(1, 500_000),
                                                         pts))
            self.new_orders += not r.replayed
            self.posted[ref] = r.order_id
        elif op == "shared":
            # every worker posts the same ids with the same payload: written once
            k = rng.randrange(SHARED_ORDERS)
            cust = f"H{k % len(hot)}" if k % 3 else f"guest-{k}"
            r = ledger.post_order_safely(self.d, OrderIn(f"shared-{k}", cust, day(1.5), 1234_56))
            self.new_orders += not r.replayed
            self.posted[f"shared-{k}"] = r.order_id
            # ...and now and then the same id with this worker's own payload
            if rng.random() < 0.3:
                r = ledger.post_order_safely(
                    self.d, OrderIn(f"contested-{k}", cust, day(1.5), 100_00 + self.n)
                )
                self.new_orders += not r.replayed
                self.posted[f"contested-{k}"] = r.order_id
        elif op == "redeem":
            who = rng.choice(hot)
            pts = rng.choice([1, 7, 30, 90])
            ledger.redeem(self.d, who, pts, key=f"w{self.n}-r{i}", at=at)
            self.redeemed += pts
        elif op == "transfer":
            a, b = rng.sample(hot, 2)
            ledger.transfer(self.d, a, b, rng.choice([1, 10, 60]), key=f"w{self.n}-t{i}", at=at)
            self.transfers += 1
        else:
            mine = [r for r in self.posted if not r.startswith("contested")]
            if mine:
                r = ledger.refund_order(self.d, rng.choice(mine), at=day(3))
                self.refunds += not r.replayed


class Approver:
    """A supervisor clicking approve on every request, in their own order."""

    def __init__(self, n: int, d: Database, actor, request_ids, barrier):
        self.n, self.d, self.actor, self.barrier = n, d, actor, barrier
        self.ids = list(request_ids)
        random.Random(n).shuffle(self.ids)
        self.approved: list[int] = []
        self.refused: Counter = Counter()
        self.errors: list[BaseException] = []

    def run(self) -> None:
        try:
            self.barrier.wait()
            for rid in self.ids:
                try:
                    info = approve_adjustment(self.d, self.actor, rid, at=day(2.5))
                    assert info.status == "approved"
                    self.approved.append(rid)
                except EXPECTED as exc:
                    self.refused[type(exc).__name__] += 1
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.errors.append(exc)


def test_concurrent_writers_keep_the_ledger_exact(any_db):
    d = any_db
    prog = setup_program(d)
    hot, actors = prog["hot"], prog["actors"]
    # adjustment requests (all below the two-approval limit), some removing
    # points that the workers may spend first
    requests = []
    for i in range(REQUESTS):
        pts = [25, -20, 3, -80, 4000][i % 5]
        requests.append(
            request_adjustment(d, actors["support"], hot[i % len(hot)], pts, "goodwill",
                               f"request {i}").id
        )
    # a year after the seed orders, before anything else: only seed points are due
    expiry_as_of = day(366.25)

    barrier = threading.Barrier(THREADS + APPROVERS + 2)
    workers = [Worker(n, d, hot, barrier) for n in range(THREADS)]
    approvers = [
        Approver(n, d, actors[f"sup{n}"], requests, barrier) for n in range(APPROVERS)
    ]
    expiry_results, expiry_errors = [], []

    def run_expiry():
        # two schedulers firing the same expiry run at once
        try:
            barrier.wait()
            expiry_results.append(ledger.expire_points(d, expiry_as_of))
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            expiry_errors.append(exc)

    threads = [threading.Thread(target=w.run) for w in workers + approvers]
    threads += [threading.Thread(target=run_expiry) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    errors = [e for x in workers + approvers for e in x.errors] + expiry_errors
    assert not errors, f"unexpected errors: {errors!r}"

    assert_clean(d)
    with d.read() as s:
        cached = dict(
            s.execute(select(Account.id, Account.balance).where(Account.kind == "member")).all()
        )
        net = entries_net(s)
        # no negative balance; cache == entries, member by member
        assert min(cached.values()) >= 0
        for acc, bal in cached.items():
            assert bal == net.get(acc, 0), f"account {acc}"
        # total liability == what the program accounts say was issued,
        # redeemed, expired and adjusted (double entry: all nets sum to 0)
        assert sum(cached.values()) == -sum(v for a, v in net.items() if a <= ADJUSTMENT)

        # each order id exactly once, and every worker was told the same id
        refs = Counter(s.scalars(select(Order.order_ref)))
        assert max(refs.values()) == 1
        ids = dict(s.execute(select(Order.order_ref, Order.id)).all())
        for w in workers:
            for ref, oid in w.posted.items():
                assert ids[ref] == oid, ref
        assert sum(w.new_orders for w in workers) + len(hot) == len(refs)
        assert s.scalar(
            select(func.count()).select_from(LedgerTransaction).where(
                LedgerTransaction.kind == "refund")
        ) == sum(w.refunds for w in workers)

        # what the workers were told succeeded is exactly what was written
        assert s.scalar(
            select(func.coalesce(func.sum(LedgerEntry.amount), 0)).where(
                LedgerEntry.kind == "redemption", LedgerEntry.order_id.is_(None))
        ) == sum(w.redeemed for w in workers)
        assert s.scalar(select(func.count()).select_from(Transfer)) == sum(
            w.transfers for w in workers
        )

        # adjustments: one success and one entry per approved request
        approved_by_threads = Counter(rid for a in approvers for rid in a.approved)
        assert max(approved_by_threads.values(), default=1) == 1
        status = dict(s.execute(select(AdjustmentRequest.id, AdjustmentRequest.status)).all())
        assert {r for r in requests if status[r] == "approved"} == set(approved_by_threads)
        for rid in requests:
            tx = s.scalar(select(AdjustmentRequest.tx_id).where(AdjustmentRequest.id == rid))
            n = s.scalar(
                select(func.count()).select_from(LedgerEntry).where(
                    LedgerEntry.kind == "adjustment", LedgerEntry.tx_id == tx)
            ) if tx else 0
            assert n == (1 if status[rid] == "approved" else 0), rid
        # the positive ones cannot be refused: they are all approved
        assert all(status[r] == "approved" for i, r in enumerate(requests) if i % 5 in (0, 2, 4))

        # the double-fired expiry expired once: the second run either replays
        # the first (it came after the commit) or waited for the first's locks
        # and found nothing left to expire
        assert s.scalar(
            select(func.count()).select_from(LedgerTransaction).where(
                LedgerTransaction.kind == "expiry")
        ) == 1
        expired = s.scalar(
            select(func.sum(LedgerEntry.amount)).where(LedgerEntry.kind == "expiry")
        )
    first, second = sorted(expiry_results, key=lambda r: (r.replayed, -r.points))
    assert not first.replayed and first.points == expired > 0
    assert (second.replayed and second.points == expired) or (second.points, second.tx_id) == (
        0, None,
    )
    refused = sum((x.refused for x in workers + approvers), Counter())
    print(f"{d.dialect}: refusals {dict(refused)}")


# --------------------------------------------------------------------------
# a writer that dies before commit


def snapshot(d: Database) -> tuple:
    with d.read() as s:
        return (
            s.scalar(select(func.count()).select_from(Order)),
            s.scalar(select(func.count()).select_from(LedgerEntry)),
            s.scalar(select(func.count()).select_from(LedgerTransaction)),
            s.scalar(select(func.count()).select_from(Transfer)),
            tuple(sorted(balances(d).items())),
        )


def test_exception_inside_a_write_transaction_leaves_nothing(any_db):
    d = any_db
    hot = setup_program(d)["hot"]
    before = snapshot(d)
    with pytest.raises(RuntimeError, match="crash"), d.begin() as s:
        ledger.post_order(s, OrderIn("doomed", "H1", day(2), 777_77, 10))
        ledger.transfer(s, hot[0], hot[2], 5, key="doomed-t", at=day(2))
        ledger.redeem(s, hot[3], 7, key="doomed-r", at=day(2))
        s.flush()
        raise RuntimeError("crash before commit")
    assert snapshot(d) == before
    assert_clean(d)
    # the same ids are free: nothing half-written claims them
    assert not ledger.post_order(d, OrderIn("doomed", "H1", day(2), 777_77, 10)).replayed
    assert_clean(d)


CHILD = r"""
import datetime as dt, sys, time
from db import ledger
from db.ledger import OrderIn
from db.session import Database

url, a, b = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
d = Database(url)
at = dt.datetime(2025, 1, 3)
with d.begin() as s:
    ledger.post_order(s, OrderIn("killed", "H1", at, 555_55, 10))
    ledger.transfer(s, a, b, 5, key="killed-t", at=at)
    s.flush()
    print("written", flush=True)
    time.sleep(600)  # killed here, before the commit
"""


def test_process_killed_mid_transaction_leaves_nothing(any_db):
    """A separate process writes an order and a transfer, holds the
    transaction open and is SIGKILLed: the database must roll it back and
    release its locks (the PostgreSQL row locks, the SQLite write lock)."""
    d = any_db
    hot = setup_program(d)["hot"]
    before = snapshot(d)
    url = d.engine.url.render_as_string(hide_password=False)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, url, str(hot[0]), str(hot[2])],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        line = child.stdout.readline()
        assert line.strip() == "written", f"child failed: {child.stderr.read()}"
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        child.stdout.close()
        child.stderr.close()
    assert child.returncode == -signal.SIGKILL
    # writing to the same members waits for the dead writer's locks to go
    # (no timeout assumed: the server drops them when the connection closes)
    r = ledger.post_order(d, OrderIn("after", "H1", day(3), 100_00))
    assert not r.replayed
    ledger.transfer(d, hot[0], hot[2], 5, key="after-t", at=day(3))
    with d.read() as s:
        assert s.scalar(select(Order.id).where(Order.order_ref == "killed")) is None
        assert s.scalar(
            select(LedgerTransaction.id).where(LedgerTransaction.idempotency_key.in_(
                ["order:killed", "transfer:killed-t"]))
        ) is None
    after = snapshot(d)
    assert (after[0], after[3]) == (before[0] + 1, before[3] + 1)  # only ours
    assert_clean(d)


def test_concurrent_part_refunds_never_give_back_more_than_was_paid(any_db):
    """Eight threads refund parts of the same two orders at once, each refund id
    sent twice, some asking for the rest: the money given back never exceeds
    what was paid, each refund id takes effect once, the points follow."""
    from db.models import OrderRefund

    with any_db.begin() as s:
        publish(s)
        member(s, "P0")
        member(s, "P1", referrer_id=member(s, "P2"))
    paid = {"pr-0": ("P0", 1_000_00), "pr-1": ("P1", 777_77)}
    for ref, (cust, amount) in paid.items():
        ledger.post_order(any_db, OrderIn(ref, cust, day(1), amount))
    barrier = threading.Barrier(THREADS)
    told: dict[str, int] = {}
    lock = threading.Lock()
    errors: list[BaseException] = []

    def work(n: int) -> None:
        rng = random.Random(n)
        barrier.wait()
        try:
            for k in range(6):
                order = f"pr-{rng.randint(0, 1)}"
                rid = f"t{n}-{k}"
                amount = rng.choice([1, 999, 5_000, 12_345, 40_000])
                for _ in range(2):  # the same refund id twice
                    try:
                        if rng.random() < 0.1:
                            r = ledger.refund_order(any_db, order, at=day(2))
                            key = f"{order}:whole"
                        else:
                            r = ledger.refund_order(any_db, order, at=day(2),
                                                    amount_minor=amount, refund_ref=rid)
                            key = f"{order}:{rid}"
                    except (InvalidState, ValidationError):
                        continue  # refunded in full already / more than remains
                    with lock:
                        if key in told and not key.endswith(":whole"):
                            assert r.replayed and told[key] == r.amount_minor
                        told.setdefault(key, r.amount_minor)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    assert_clean(any_db)
    with any_db.read() as s:
        for ref, (_, amount) in paid.items():
            o = s.execute(select(Order).where(Order.order_ref == ref)).scalar_one()
            back = s.scalar(select(func.coalesce(func.sum(OrderRefund.amount_minor), 0))
                            .where(OrderRefund.order_id == o.id))
            assert o.amount_minor + o.refunded_minor == amount
            assert back == (amount if o.status == "refunded" else o.refunded_minor)
        # every part refund the threads were told of is there once, as told
        rows = {f"{ref}:{rid}": amount for ref, rid, amount in s.execute(
            select(Order.order_ref, OrderRefund.refund_ref, OrderRefund.amount_minor)
            .join(Order, Order.id == OrderRefund.order_id).where(OrderRefund.refund_ref != ""))}
        assert rows == {k: v for k, v in told.items() if not k.endswith(":whole")}


def test_batches_with_referrers_in_any_order_never_deadlock(pg_db):
    """Batches whose customers and referrers cross (A referred by Z, batches
    [A, Y] and [Y, Z], and so on) run at once on PostgreSQL without a
    deadlock: each locks all it can touch first, in one ordered statement."""
    from sqlalchemy.orm import Session as OrmSession

    with pg_db.begin() as s:
        publish(s)
        z = member(s, "Z")
        member(s, "A", referrer_id=z)
        y = member(s, "Y")
        member(s, "B", referrer_id=y)
    plans = [["A", "Y"], ["Y", "Z"], ["B", "Z"], ["Z", "A", "B"]] * 3
    barrier = threading.Barrier(len(plans))
    errors: list[BaseException] = []

    def batch(n: int, customers: list[str]) -> None:
        barrier.wait()
        try:
            with OrmSession(pg_db.engine) as s, s.begin():  # no retry: a deadlock shows
                got = bulk.post_orders(s, [OrderIn(f"x{n}-{c}", c, day(1), 10_000 + n)
                                             for c in customers])
                assert not [r for r in got if isinstance(r, Exception)], got
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=batch, args=(n, p)) for n, p in enumerate(plans)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert_clean(pg_db)
    with pg_db.read() as s:
        assert s.scalar(select(func.count()).select_from(Order)) == sum(map(len, plans))
