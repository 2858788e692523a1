"""A big import leaves room for other writers and stays all or nothing.

The import goes in short committed batches (``batch_rows``) into staging
tables and becomes visible in one final transaction: other writers get the
database between batches, a failure or a crash at any point changes no
program data, what a crash leaves staged can be discarded, and the file is
read as a stream (memory does not grow with the file).
"""

from __future__ import annotations

import datetime as dt
import io
import subprocess
import sys
import textwrap
import threading
import time
import tracemalloc
from pathlib import Path

import pytest
from sqlalchemy import func, select

from db import importer, users
from db.actor import CLI
from db.importer import OrderImportError, discard_abandoned, import_orders
from db.integrity import run_check
from db.models import (
    STAGED,
    STAGED_BALANCES,
    STAGED_TIERS,
    Account,
    ImportRow,
    ImportRun,
    LedgerEntry,
    LedgerTransaction,
    Member,
    Order,
    StaffUser,
)
from tests.support.factories import member, publish

HEADER = "customer_id,order_id,paid_at,amount,referrer_id,points_redeemed\n"
START = dt.datetime(2025, 1, 1)
PASSWORD = "Lantern-Quarry-4471"
ROOT = Path(__file__).resolve().parents[1]


def orders_csv(n: int, *, customers: int = 0, last: str | None = None) -> str:
    """``n`` orders in payment order; every 7th names an earlier customer as
    referrer of a new one, every 5th redeems a point its customer has."""
    customers = customers or max(n // 4, 1)
    out = [HEADER]
    seen: set[int] = set()
    for i in range(n):
        c = (i * 7919) % customers
        ref = f"C{(c // 2):06d}" if c not in seen and c // 2 in seen and i % 7 == 0 else ""
        pts = "1" if c in seen and i % 5 == 0 else ""
        seen.add(c)
        at = START + dt.timedelta(minutes=i)
        out.append(f"C{c:06d},O{i:07d},{at:%Y-%m-%dT%H:%M:%S},{500 + i % 900}.50,{ref},{pts}\n")
    if last is not None:
        out[-1] = last + "\n"
    return "".join(out)


def program_state(d) -> dict:
    with d.read() as s:
        state = {
            m.__tablename__: s.scalar(select(func.count()).select_from(m))
            for m in (Member, Account, Order, LedgerTransaction, LedgerEntry)
        }
        state["balances"] = s.scalar(select(func.coalesce(func.sum(Account.balance), 0)))
        state["tiers"] = sorted(tuple(r) for r in s.execute(select(Member.external_id,
                                                                    Member.tier)))
    return state


def staged_rows(d) -> int:
    tables = [ImportRun.__table__, ImportRow.__table__, *STAGED.values(), STAGED_BALANCES,
              STAGED_TIERS]
    with d.read() as s:
        return sum(s.scalar(select(func.count()).select_from(t)) for t in tables)


@pytest.fixture
def program(any_db):
    with any_db.begin() as s:
        publish(s)
        member(s, "OLD")
        users.create_user(s, "ann", PASSWORD, "support")
    return any_db


# ------------------------------------------------------------ other writers


@pytest.mark.slow
def test_other_writers_get_the_database_between_batches(db):
    with db.begin() as s:
        publish(s)
        users.create_user(s, "ann", PASSWORD, "support")
    text = orders_csv(40_000)
    applying = threading.Event()
    real_apply = importer._apply

    def apply(*args):
        applying.set()
        return real_apply(*args)

    result: dict = {}

    def run():
        try:
            result["report"] = import_orders(db, io.StringIO(text), actor=CLI, batch_rows=1000)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            result["error"] = exc

    writes, logins = [], []
    mp = pytest.MonkeyPatch()
    mp.setattr(importer, "_apply", apply, raising=False)
    try:
        t = threading.Thread(target=run)
        t.start()
        time.sleep(1.0)  # into the import
        while t.is_alive():
            t0 = time.perf_counter()
            in_batches = not applying.is_set()
            # a plain write (what an adjustment or a login stamp needs)
            with db.begin() as s:
                s.execute(StaffUser.__table__.update().values(full_name=f"w{len(writes)}"))
            if in_batches:
                writes.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            # the login form's call
            info = db.write_tx(lambda s: users.authenticate(s, "ann", PASSWORD))
            assert info is not None
            logins.append(time.perf_counter() - t0)
            time.sleep(0.1)
        t.join()
    finally:
        mp.undo()
    assert "error" not in result, result.get("error")
    assert result["report"].imported == 40_000
    assert len(writes) >= 3, "the import ended before the other writers could try"
    assert max(writes) < 2.0, sorted(writes)[-5:]
    assert max(logins) < 3.5, sorted(logins)[-5:]  # even while the import is applied
    assert staged_rows(db) == 0


def test_login_does_not_wait_for_a_writer_and_stamps_best_effort(db, monkeypatch):
    with db.begin() as s:
        users.create_user(s, "ann", PASSWORD, "support")
    monkeypatch.setattr(users, "STAMP_WAIT_SECONDS", 0.3)
    with db.begin() as busy:  # another writer holds the database
        busy.execute(StaffUser.__table__.update().values(full_name="busy"))
        t0 = time.perf_counter()
        info = db.write_tx(lambda s: users.authenticate(s, "ann", PASSWORD))
        took = time.perf_counter() - t0
        assert info is not None and info.last_login_at is None  # stamp skipped
        assert took < 2.0
    info = db.write_tx(lambda s: users.authenticate(s, "ann", PASSWORD))
    with db.read() as s:
        assert users.get_user_by_name(s, "ann").last_login_at == info.last_login_at
    assert info.last_login_at is not None


# ------------------------------------------------------------ all or nothing


def test_a_bad_value_in_the_last_batch_changes_nothing(program):
    before = program_state(program)
    text = orders_csv(600, last="C000001,O9999999,2025-03-01,12.3.4,,")
    with pytest.raises(OrderImportError) as ei:
        import_orders(program, io.StringIO(text), actor=CLI, batch_rows=50)
    assert [(p.line, p.column) for p in ei.value.problems] == [(601, "amount")]
    assert "nothing was imported" in str(ei.value)
    assert program_state(program) == before
    assert staged_rows(program) == 0


def test_points_missing_at_the_last_row_after_many_posted_batches_change_nothing(program):
    before = program_state(program)
    text = orders_csv(600, last="OLD,O9999999,2025-03-01,10,,5")
    with pytest.raises(OrderImportError) as ei:
        import_orders(program, io.StringIO(text), actor=CLI, batch_rows=50)
    assert [(p.line, p.column) for p in ei.value.problems] == [(601, "points_redeemed")]
    assert program_state(program) == before
    assert staged_rows(program) == 0
    # the same file without that row goes in whole, the same as in one batch
    good = text.rsplit("\n", 2)[0] + "\n"
    r = import_orders(program, io.StringIO(good), actor=CLI, batch_rows=50)
    assert r.imported == 599
    with program.read() as s:
        assert run_check(s).ok


def test_batches_give_the_same_ledger_as_one_batch(db, sqlite_template, tmp_path):
    import shutil

    from db.session import Database

    text = orders_csv(900)
    results = []
    for batch in (10_000, 37):
        p = tmp_path / f"b{batch}.sqlite3"
        shutil.copy(sqlite_template, p)
        d = Database(f"sqlite:///{p}")
        with d.begin() as s:
            publish(s)
            member(s, "OLD")
        r = import_orders(d, io.StringIO(text), actor=CLI, batch_rows=batch)
        with d.read() as s:
            assert run_check(s).ok
            entries = s.execute(
                select(LedgerEntry.id, LedgerEntry.kind, LedgerEntry.debit_account_id,
                       LedgerEntry.credit_account_id, LedgerEntry.amount, LedgerEntry.order_id,
                       LedgerEntry.tx_id).order_by(LedgerEntry.id)).all()
            orders = s.execute(select(Order.id, Order.order_ref, Order.member_id, Order.tier)
                               .order_by(Order.id)).all()
        results.append((entries, orders, program_state(d), r.points_accrued))
        d.dispose()
    assert results[0] == results[1]


# ------------------------------------------------------------ crashes

CRASH = textwrap.dedent("""
    import io, os, sys
    sys.path.insert(0, {root!r})
    from db import importer
    from db.actor import CLI
    from db.bulk import BulkPoster
    from db.session import Database

    where = sys.argv[1]
    if where == "posting":
        real = BulkPoster.flush
        calls = []
        def flush(self, s=None):
            real(self, s)
            calls.append(1)
            if len(calls) == 3:
                os._exit(9)  # as if killed: no cleanup, no finally
        BulkPoster.flush = flush
    else:  # inside the final transaction, after the orders went in
        real_write = importer.update
        def update(table):
            if getattr(table, "name", "") == "accounts":
                os._exit(9)
            return real_write(table)
        importer.update = update
    d = Database(sys.argv[2])
    importer.import_orders(d, io.StringIO(sys.stdin.read()), actor=CLI, batch_rows=50)
""")


@pytest.mark.parametrize("where", ["posting", "applying"])
def test_a_crash_changes_nothing_and_a_rerun_works(program, where):
    before = program_state(program)
    text = orders_csv(500)
    url = program.engine.url.render_as_string(hide_password=False)
    proc = subprocess.run(
        [sys.executable, "-c", CRASH.format(root=str(ROOT)), where, url],
        input=text, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 9, proc.stderr
    assert program_state(program) == before
    assert staged_rows(program) > 0  # what the crashed import staged is still there
    r = import_orders(program, io.StringIO(text), actor=CLI, batch_rows=50)
    assert r.imported == 500
    # an abandoned import is discarded once idle; a finished one leaves nothing
    assert discard_abandoned(program, older_than=dt.timedelta(0)) == 1
    assert staged_rows(program) == 0
    with program.read() as s:
        assert run_check(s).ok


# ------------------------------------------------------------ memory


class _Stop(Exception):
    pass


def _reader_peak(d, rows: int, tmp_path, monkeypatch) -> int:
    """Peak traced memory of reading, checking and staging a file of ``rows`` rows."""

    def stop(*_a, **_k):
        raise _Stop

    monkeypatch.setattr(importer, "_plan", stop)
    path = tmp_path / f"orders-{rows}.csv"
    path.write_text(orders_csv(rows, customers=rows))
    tracemalloc.start()
    try:
        with pytest.raises(_Stop):
            import_orders(d, path, actor=CLI, batch_rows=2000)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.slow
def test_reading_memory_does_not_grow_with_the_file(db, tmp_path, monkeypatch):
    with db.begin() as s:
        publish(s)
    small = _reader_peak(db, 20_000, tmp_path, monkeypatch)
    large = _reader_peak(db, 80_000, tmp_path, monkeypatch)
    assert large < 1.5 * small, (small, large)
    assert staged_rows(db) == 0
