"""Order import: every bad-row rule, all-or-nothing, idempotent re-import, referrers."""

from __future__ import annotations

import datetime as dt
import io

import pytest
from sqlalchemy import func, select

from db.actor import CLI
from db.importer import OrderImportError, import_orders
from db.integrity import run_check
from db.models import Account, LedgerEntry, Member, Order
from tests.support.factories import member, publish

HEADER = "customer_id,order_id,paid_at,amount,referrer_id,points_redeemed\n"


def csv_of(*rows: str, header: str = HEADER) -> io.StringIO:
    return io.StringIO(header + "".join(r + "\n" for r in rows))


def counts(d) -> dict[str, int]:
    with d.read() as s:
        return {
            m.__tablename__: s.scalar(select(func.count()).select_from(m))
            for m in (Member, Account, Order, LedgerEntry)
        }


def problems_of(exc: OrderImportError) -> list[tuple[int, str]]:
    return [(p.line, p.column) for p in exc.problems]


@pytest.fixture
def program(any_db):
    with any_db.begin() as s:
        publish(s)  # Bronze 1 % / 0.5 %, Silver from 1000 at 3 %, Gold from 5000 at 5 %
        member(s, "OLD")
    return any_db


@pytest.fixture
def lite(db):
    with db.begin() as s:
        publish(s)
        member(s, "OLD")
    return db


def test_import_creates_members_posts_orders_and_referrals(program):
    f = csv_of(
        "A,o1,2025-01-05,800.00,,",
        "B,o2,2025-01-06T10:00:00+03:00,1000.5,A,",  # 07:00 UTC
        "A,o3,2025-01-07 12:00:00,300,,5",
        "G,o4,2025-01-08T09:00:00Z,99.99,OLD,",
    )
    r = import_orders(program, f, actor=CLI)
    assert (r.rows, r.imported, r.members_created, r.skipped_existing) == (4, 4, 3, 0)
    assert r.points_redeemed == 5
    with program.read() as s:
        m = {x.external_id: x for x in s.scalars(select(Member))}
        assert m["A"].joined_at == dt.datetime(2025, 1, 5)
        assert m["B"].referrer_id == m["A"].id
        assert m["G"].referrer_id == m["OLD"].id
        o = {x.order_ref: x for x in s.scalars(select(Order))}
        assert o["o2"].amount_minor == 100050
        assert o["o2"].paid_at == dt.datetime(2025, 1, 6, 7, 0)
        assert o["o4"].amount_minor == 9999
        assert o["o3"].points_redeemed == 5
        assert r.points_accrued == 8 + 10 + 3 + 0  # Bronze 1 %: 800, 1000.50, 300, 99.99
        assert r.referral_bonus == 5  # A at 0.5 % of 1000.50
        report = run_check(s)
    assert report.ok, report.violations


def test_reimport_changes_nothing(program):
    text = HEADER + "A,o1,2025-01-05,800,,\nB,o2,2025-01-06,1000,A,\nA,o3,2025-01-07,50,,8\n"
    import_orders(program, io.StringIO(text), actor=CLI)
    before = counts(program)
    r = import_orders(program, io.StringIO(text), actor=CLI)
    assert (r.imported, r.skipped_existing, r.members_created) == (0, 3, 0)
    assert counts(program) == before


def test_same_order_twice_in_file_is_posted_once(lite):
    r = import_orders(lite, csv_of("A,o1,2025-01-05,800,,", "A,o1,2025-01-05,800,,"), actor=CLI)
    assert (r.imported, r.duplicates_in_file) == (1, 1)


def test_order_paid_later_today_is_refused_naming_the_row(lite):
    soon = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%S")
    ok = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S")
    text = HEADER + f"A,o1,{ok},5,,\nB,o2,{soon},5,,\n"
    before = counts(lite)
    with pytest.raises(OrderImportError) as ei:
        import_orders(lite, io.StringIO(text), actor=CLI)
    assert [(p.line, p.column) for p in ei.value.problems] == [(3, "paid_at")]
    assert "line 3, paid_at: " in str(ei.value) and "is in the future" in str(ei.value)
    assert counts(lite) == before


@pytest.mark.parametrize(
    "text, line, column, reason",
    [
        ("customer_id,order_id,amount\nA,o1,5\n", 1, "paid_at", "required column is missing"),
        ("customer_id,order_id,paid_at,amount,colour\nA,o1,2025-01-01,5,red\n",
         1, "colour", "unknown column"),
        ("customer_id,order_id,paid_at,amount,amount\nA,o1,2025-01-01,5,5\n",
         1, "amount", "duplicate column"),
        ("", 1, "header", "the file is empty"),
        (HEADER + "A,o1,2025-01-01,,,\n", 2, "amount", "is empty"),
        (HEADER + ",o1,2025-01-01,5,,\n", 2, "customer_id", "is empty"),
        (HEADER + "A, ,2025-01-01,5,,\n", 2, "order_id", "is empty"),
        (HEADER + "A,o1,,5,,\n", 2, "paid_at", "is empty"),
        (HEADER + "A,o1,2025-01-01,5\n", 2, "row", "has 4 fields, the header has 6"),
        (HEADER + "A,o1,2025-01-01,-5,,\n", 2, "amount", "must not be negative"),
        (HEADER + "A,o1,2025-01-01,1.005,,\n", 2, "amount", "more than 2 decimals"),
        (HEADER + "A,o1,2025-01-01,NaN,,\n", 2, "amount", "not a finite number"),
        (HEADER + "A,o1,2025-01-01,inf,,\n", 2, "amount", "not a finite number"),
        (HEADER + "A,o1,2025-01-01,-Infinity,,\n", 2, "amount", "not a finite number"),
        (HEADER + "A,o1,2025-01-01,1e308,,\n", 2, "amount", "plain digits"),
        (HEADER + "A,o1,2025-01-01,12abc,,\n", 2, "amount", "is not a number"),
        (HEADER + "A,o1,2025-01-01,99999999999999999999,,\n", 2, "amount", "must be at most"),
        (HEADER + "A,o1,2025-02-30,5,,\n", 2, "paid_at", "is not a date"),
        (HEADER + "A,o1,yesterday,5,,\n", 2, "paid_at", "is not a date"),
        (HEADER + "A,o1,2999-01-01,5,,\n", 2, "paid_at", "is in the future"),
        (HEADER + "A,o1,1969-12-31,5,,\n", 2, "paid_at", "is before 1970-01-01: check the year"),
        (HEADER + "A,o1,0202-05-01,5,,\n", 2, "paid_at", "is before 1970-01-01: check the year"),
        (HEADER + "A,o1,2025-01-01,5,,1.5\n", 2, "points_redeemed", "not a whole number"),
        (HEADER + "A,o1,2025-01-01,5,,-3\n", 2, "points_redeemed", "must not be negative"),
        (HEADER + "A,o1,2025-01-01,5,,\nB,o1,2025-01-01,5,,\n",
         3, "order_id", "already on line 2 with other details"),
        (HEADER + "A,o1,2025-01-01,5,NOBODY,\n",
         2, "referrer_id", "neither a customer in this file nor an existing member"),
        (HEADER + "A,o1,2025-01-01,5,A,\n", 2, "referrer_id", "cannot refer themselves"),
        (HEADER + "A,o1,2025-01-01,5,B,\nB,o2,2025-01-02,5,A,\n", 2, "referrer_id",
         "referral cycle: 'A' -> 'B' -> 'A'"),
        (HEADER + "A,o1,2025-01-01,5,,1\n", 2, "points_redeemed", "has 0 points"),
        (HEADER + "OLD,o1,2025-01-01,500,,\nOLD,o2,2025-01-02,5,,6\n",
         3, "points_redeemed", "has 5 points at 2025-01-02 00:00:00, cannot redeem 6"),
    ],
)
def test_bad_row_is_named_and_nothing_is_imported(lite, text, line, column, reason):
    before = counts(lite)
    with pytest.raises(OrderImportError) as ei:
        import_orders(lite, io.StringIO(text), actor=CLI)
    p = ei.value.problems
    assert (p[0].line, p[0].column) == (line, column), p
    assert reason in p[0].message
    assert f"line {line}, {column}: " in str(ei.value)
    assert "nothing was imported" in str(ei.value)
    assert counts(lite) == before


def test_guest_rules(lite):
    with pytest.raises(OrderImportError) as ei:
        import_orders(
            lite,
            csv_of("A,o1,2025-01-01,5,,2", "B,o2,2025-01-01,5,OLD,", "OLD,o3,2025-01-01,5,,"),
            actor=CLI, unknown_customers="guests",
        )
    assert [(p.line, p.column) for p in ei.value.problems] == [
        (2, "points_redeemed"), (3, "referrer_id")
    ]
    assert "guest cannot redeem" in ei.value.problems[0].message
    r = import_orders(lite, csv_of("A,o1,2025-01-01,5,,", "OLD,o2,2025-01-01,500,,"),
                      actor=CLI, unknown_customers="guests")
    assert (r.guest_orders, r.member_orders, r.members_created) == (1, 1, 0)


def test_blocked_member_cannot_redeem(lite):
    with lite.begin() as s:
        s.execute(Member.__table__.update().values(status="blocked"))
    with pytest.raises(OrderImportError) as ei:
        import_orders(lite, csv_of("OLD,o1,2025-01-01,5,,1"), actor=CLI)
    assert "is blocked and cannot redeem" in ei.value.problems[0].message


def test_every_bad_row_is_reported_at_once(program):
    before = counts(program)
    f = csv_of(
        "A,o1,2025-01-01,5,,",       # 2 ok
        "A,o2,2025-01-01,-1,,",      # 3 amount
        "B,o3,not-a-date,x,,",       # 4 paid_at + amount
        "C,o1,2025-01-01,5,,",       # 5 duplicate order id, other details
        "D,o4,2025-01-01,5,ZED,",    # 6 unknown referrer
        "E,o5,2025-01-01,5,,",       # 7 ok
    )
    with pytest.raises(OrderImportError) as ei:
        import_orders(program, f, actor=CLI)
    assert problems_of(ei.value) == [
        (3, "amount"), (4, "amount"), (4, "paid_at"), (5, "order_id"), (6, "referrer_id")
    ]
    assert str(ei.value).startswith("file: 4 bad rows, nothing was imported: line 3, amount:")
    assert counts(program) == before


def test_insufficient_points_rolls_back_everything_and_names_every_line(program):
    before = counts(program)
    f = csv_of(
        "A,o1,2025-01-01,1000,,",  # earns 10
        "A,o2,2025-01-02,100,,11",  # line 3: too many
        "B,o3,2025-01-02,100,,1",  # line 4: a new member has nothing
        "A,o4,2025-01-03,100,,10",  # line 5: fine (the failed redemption took nothing)
    )
    with pytest.raises(OrderImportError) as ei:
        import_orders(program, f, actor=CLI)
    assert problems_of(ei.value) == [(3, "points_redeemed"), (4, "points_redeemed")]
    assert counts(program) == before


def test_changed_order_on_reimport_is_a_bad_row(program):
    import_orders(program, csv_of("A,o1,2025-01-01,5,,"), actor=CLI)
    before = counts(program)
    with pytest.raises(OrderImportError) as ei:
        import_orders(program, csv_of("A,o2,2025-01-02,7,,", "A,o1,2025-01-01,6,,"), actor=CLI)
    assert problems_of(ei.value) == [(3, "order_id")]
    assert "already imported with other details" in ei.value.problems[0].message
    assert counts(program) == before


def test_referrers(program):
    r = import_orders(
        program,
        csv_of(
            "B,o1,2025-01-01,100,A,",  # A appears later in the file: still a valid referrer
            "B,o2,2025-01-02,100,OLD,",  # B's referrer comes from the first row naming one
            "C,o3,2025-01-03,100,,",
            "C,o4,2025-01-04,100,B,",  # C's first row names none: this one counts
            "A,o5,2025-01-05,100,,",
            "OLD,o6,2025-01-06,100,A,",  # an existing member keeps their referrer
        ),
        actor=CLI,
    )
    assert r.members_created == 3
    assert len(r.warnings) == 1 and "line 7" in r.warnings[0]
    with program.read() as s:
        ids = {e: i for e, i in s.execute(select(Member.external_id, Member.id))}
        refs = {e: r for e, r in s.execute(select(Member.external_id, Member.referrer_id))}
        assert refs == {"OLD": None, "A": None, "B": ids["A"], "C": ids["B"]}
        assert run_check(s).ok


def test_file_objects_and_paths(lite, tmp_path):
    data = ("\ufeff" + HEADER + "A,o1,2025-01-01,5,,\r\n").encode()
    r = import_orders(lite, io.BytesIO(data), actor=CLI)
    assert r.imported == 1
    p = tmp_path / "orders.csv"
    p.write_bytes(("\ufeff" + "order_id,customer_id,amount,paid_at\n"
                   + 'o2,A,"1234,5",2025-01-02\n\n').encode())
    r = import_orders(lite, p, actor=CLI)
    assert (r.rows, r.imported) == (1, 1)
    with lite.read() as s:
        assert s.scalar(select(Order.amount_minor).where(Order.order_ref == "o2")) == 123450


def test_session_argument_joins_the_callers_transaction(lite):
    with lite.begin() as s:
        member(s, "KEPT")
        with pytest.raises(OrderImportError):
            import_orders(s, csv_of("A,o1,2025-01-01,5,,1"), actor=CLI)
        import_orders(s, csv_of("A,o2,2025-01-01,5,,"), actor=CLI)
    with lite.read() as s:
        assert {"KEPT", "A"} <= set(s.scalars(select(Member.external_id)))


def test_history_from_the_nineties_imports_under_the_rules_of_its_time(any_db):
    """A shop's old history (1997) loads; each order accrues under the version
    in force at its payment time."""
    with any_db.begin() as s:
        publish(s, effective_at=dt.datetime(1995, 1, 1))
    r = import_orders(any_db, csv_of(
        "A,o1,1997-03-01,800.00,,",
        "A,o2,1999-12-31T23:30:00,300,,",
        "B,o3,2001-06-01,100,A,",
    ), actor=CLI)
    assert (r.imported, r.members_created) == (3, 2)
    assert r.points_accrued == 8 + 3 + 1
    with any_db.read() as s:
        o = {x.order_ref: x for x in s.scalars(select(Order))}
        assert o["o1"].paid_at == dt.datetime(1997, 3, 1)
        m = {x.external_id: x for x in s.scalars(select(Member))}
        assert m["A"].joined_at == dt.datetime(1997, 3, 1)
        assert run_check(s).ok
