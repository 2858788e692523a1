"""The points engine, one service at a time, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from db import clock, ledger
from db.errors import IdempotencyConflict, InsufficientPoints, ValidationError
from db.integrity import run_check
from db.ledger import OrderIn
from db.models import LedgerEntry, Member, Order
from tests.support.factories import T0, member, publish, simulated


def day(n: int, hour: int = 12) -> dt.datetime:
    return T0 + dt.timedelta(days=n, hours=hour)


def order(ref, cust, n, amount_units, redeemed=0):
    return OrderIn(ref, cust, day(n), amount_units * 100, redeemed)


def assert_clean(d):
    with d.read() as s:
        report = run_check(s)
    assert report.ok, "\n".join(map(str, report.violations))


@pytest.fixture
def program(any_db):
    with any_db.begin() as s:
        publish(s)
        a = member(s, "A")
        b = member(s, "B", referrer_id=a)
    return any_db, a, b


def test_accrual_tiers_and_referral(program):
    d, a, b = program
    r1 = ledger.post_order(d, order("o1", "B", 1, 800))  # Bronze 1 % -> 8
    assert (r1.accrued, r1.tier, r1.referral_bonus) == (8, "Bronze", 4)  # A Bronze 0.5 %
    r2 = ledger.post_order(d, order("o2", "B", 2, 999))  # spend 800 -> still Bronze
    assert (r2.accrued, r2.tier) == (9, "Bronze")
    r3 = ledger.post_order(d, order("o3", "B", 3, 100))  # spend 1799 -> Silver 3 %
    assert (r3.accrued, r3.tier) == (3, "Silver")
    with d.read() as s:
        assert ledger.balance(s, b) == 20
        assert ledger.balance(s, a) == 4 + 4 + 0  # 0.5 % of 999 = 4.995 -> 4, of 100 -> 0
        assert s.get(Member, b).tier == "Silver"
    assert_clean(d)


def test_accrual_rounds_down_in_integer_arithmetic(program):
    d, _, _ = program
    r = ledger.post_order(d, OrderIn("o1", "A", day(1), 99_99))  # 99.99 at 1 % = 0.9999
    assert r.accrued == 0
    r = ledger.post_order(d, OrderIn("o2", "A", day(1, 13), 1_000_01))
    assert r.accrued == 10


def test_posting_twice_changes_nothing_and_other_payload_is_error(program):
    d, _, b = program
    first = ledger.post_order(d, order("o1", "B", 1, 500))
    again = ledger.post_order(d, order("o1", "B", 1, 500))
    assert again.replayed and again.accrued == first.accrued and again.order_id == first.order_id
    with pytest.raises(IdempotencyConflict):
        ledger.post_order(d, order("o1", "B", 1, 501))
    with d.read() as s:
        assert s.scalar(select(func.count()).select_from(Order)) == 1
        assert ledger.balance(s, b) == 5


def test_version_in_force_at_payment_time(any_db):
    d = any_db
    with d.begin() as s:
        publish(s, name="v1")
        tiers2 = [{"name": "Base", "threshold": "0", "accrual_rate": "10", "referral_rate": "0"}]
        v2 = publish(s, tiers2, effective_at=day(10, 0), name="v2")
        member(s, "A")
    before = ledger.post_order(d, order("o1", "A", 9, 100))
    after = ledger.post_order(d, order("o2", "A", 10, 100))
    assert before.accrued == 1 and after.accrued == 10
    assert after.rule_set_id == v2 and before.rule_set_id != v2
    assert_clean(d)


def test_rolling_window_spend(any_db):
    d = any_db
    with d.begin() as s:
        publish(s, tier_window_days=30)
        member(s, "A")
    ledger.post_order(d, order("o1", "A", 0, 1000))
    assert ledger.post_order(d, order("o2", "A", 10, 100)).tier == "Silver"
    # day 40: o1 is out of the 30-day window, only o2 (100) counts
    assert ledger.post_order(d, order("o3", "A", 40, 100)).tier == "Bronze"
    assert_clean(d)


def test_guest_orders_earn_nothing(program):
    d, _, _ = program
    r = ledger.post_order(d, order("g1", "walk-in-1", 1, 1000))
    assert r.member_id is None and r.accrued == 0
    with pytest.raises(ValidationError):
        ledger.post_order(d, order("g2", "walk-in-1", 1, 1000, redeemed=5))
    assert_clean(d)


def test_redemption_never_below_zero(program):
    d, a, _ = program
    ledger.post_order(d, order("o1", "A", 1, 1000))  # 10 points
    with pytest.raises(InsufficientPoints):
        ledger.post_order(d, order("o2", "A", 2, 100, redeemed=11))
    r = ledger.post_order(d, order("o3", "A", 2, 100, redeemed=10))
    assert r.redeemed == 10
    with d.read() as s:
        assert ledger.balance(s, a) == 3  # 10 - 10 + 3 (spend 1000 reached Silver, 3 %)
    with pytest.raises(InsufficientPoints):
        ledger.redeem(d, a, 4, key="voucher-1")
    ledger.redeem(d, a, 3, key="voucher-1")
    ledger.redeem(d, a, 3, key="voucher-1")  # replay: nothing more
    with d.read() as s:
        assert ledger.balance(s, a) == 0
    assert_clean(d)


def test_refund_reverses_everything(program):
    d, a, b = program
    ledger.post_order(d, order("o1", "B", 1, 2000))  # B: 20 pts; A (Bronze 0.5 %): 10
    ledger.post_order(d, order("o2", "B", 2, 500, redeemed=15))  # B: -15 +15(Silver 3%)
    res = ledger.refund_order(d, "o2", at=day(3))
    assert (res.restored_redemption, res.reversed_accrual, res.unrecovered) == (15, 15, 0)
    assert res.reversed_referral == 2  # A, still Bronze: 0.5 % of 500 = 2.5 -> 2
    with d.read() as s:
        assert ledger.balance(s, b) == 20
        assert ledger.balance(s, a) == 10
        assert s.get(Member, b).tier == "Silver"
    again = ledger.refund_order(d, "o2", at=day(4))
    assert again.replayed
    assert_clean(d)


def test_refund_of_spent_points_claws_back_what_is_there(program):
    d, a, _ = program
    ledger.post_order(d, order("o1", "A", 1, 1000))  # 10
    ledger.redeem(d, a, 8, key="v1", at=day(2))
    res = ledger.refund_order(d, "o1", at=day(3))
    assert res.reversed_accrual == 2 and res.unrecovered == 8
    with d.read() as s:
        assert ledger.balance(s, a) == 0
    assert_clean(d)


def test_transfer_both_legs_or_neither(program):
    d, a, b = program
    ledger.post_order(d, order("o1", "A", 1, 1000))
    ledger.transfer(d, a, b, 4, key="t1", at=day(2))
    with pytest.raises(InsufficientPoints):
        ledger.transfer(d, a, b, 7, key="t2", at=day(2))
    with pytest.raises(ValidationError):
        ledger.transfer(d, a, a, 1, key="t3")
    with pytest.raises(IdempotencyConflict):
        ledger.transfer(d, a, b, 5, key="t1")
    with d.read() as s:
        assert (ledger.balance(s, a), ledger.balance(s, b)) == (6, 4)
    assert_clean(d)


def test_expiry_is_fifo_and_idempotent(program):
    d, a, _ = program
    ledger.post_order(d, order("o1", "A", 0, 10_000))  # Bronze 1 % -> 100, day 0
    ledger.post_order(d, order("o2", "A", 200, 1000))  # Gold 5 % -> 50, day 200
    ledger.redeem(d, a, 30, key="v1", at=day(300))
    res = ledger.expire_points(d, day(366))
    assert (res.members, res.points) == (1, 70)  # 100 earned early - 30 spent
    assert ledger.expire_points(d, day(366)).replayed
    assert ledger.expire_points(d, day(367)).points == 0
    res = ledger.expire_points(d, day(570))  # day 200 points now old too
    assert res.points == 50
    with d.read() as s:
        assert ledger.balance(s, a) == 0
    assert_clean(d)


def test_ledger_is_append_only_in_the_database(program):
    d, _, _ = program
    ledger.post_order(d, order("o1", "A", 1, 1000))
    for sql in ("UPDATE ledger_entries SET amount = 1", "DELETE FROM ledger_entries"):
        with pytest.raises(DBAPIError, match="append-only"):
            with d.begin() as s:
                s.execute(text(sql))
    with d.read() as s:
        assert s.scalar(select(func.sum(LedgerEntry.amount))) == 10


@pytest.mark.postgres
@pytest.mark.parametrize(
    "sql",
    [
        "TRUNCATE ledger_entries CASCADE",
        "TRUNCATE ledger_transactions CASCADE",
        "TRUNCATE audit_log CASCADE",
        "TRUNCATE members CASCADE",  # reaches the ledger by cascade
    ],
)
def test_ledger_and_audit_refuse_truncate_on_postgres(pg_db, sql):
    with pg_db.begin() as s:
        publish(s)
        member(s, "A")
    ledger.post_order(pg_db, order("o1", "A", 1, 1000))
    with pytest.raises(DBAPIError, match="append-only"):
        with pg_db.begin() as s:
            s.execute(text(sql))
    with pg_db.read() as s:
        assert s.scalar(select(func.sum(LedgerEntry.amount))) == 10
        assert s.scalar(text("SELECT count(*) FROM audit_log")) > 0


def test_future_order_is_refused_and_rules_can_still_be_published_now(program):
    from db import rule_review, rules
    from tests.support.factories import DEFAULT_TIERS, staff

    d, _, _ = program
    now = clock.utcnow()
    ahead = OrderIn("early", "A", now + dt.timedelta(hours=1), 1000_00)
    with pytest.raises(ValidationError) as ei:
        ledger.post_order(d, ahead)
    assert ei.value.field == "paid_at"
    assert "is in the future" in ei.value.message
    assert f"{ahead.paid_at:%Y-%m-%d %H:%M:%S} UTC" in ei.value.message
    # within the clock skew an order is taken
    ledger.post_order(d, OrderIn("skew", "A", now + dt.timedelta(minutes=2), 10_00))
    with d.read() as s:
        assert s.scalar(select(func.count()).select_from(Order)) == 1
    # nothing recorded later than the skew blocks a version effective from now on
    with d.begin() as s:
        author, approver = staff(s, "author", "supervisor"), staff(s, "approver", "supervisor")
        rid = rules.create_draft(s, author, "Now", DEFAULT_TIERS)
        simulated(s, author, rid)
        rule_review.submit(s, author, rid)
        rules.approve(s, approver, rid, now + dt.timedelta(minutes=10))
    assert_clean(d)


def test_database_refuses_negative_balance(program):
    d, a, _ = program
    with pytest.raises(DBAPIError):
        with d.begin() as s:
            s.execute(text("UPDATE accounts SET balance = -1 WHERE member_id = :m"), {"m": a})


def test_check_reports_tampering(program):
    d, a, _ = program
    ledger.post_order(d, order("o1", "A", 1, 1000))
    with d.begin() as s:
        s.execute(text("UPDATE accounts SET balance = 99 WHERE member_id = :m"), {"m": a})
    with d.read() as s:
        report = run_check(s)
    assert [v.code for v in report.violations] == ["balance_mismatch"]
    assert "balance 99 but entries sum to 10" in report.violations[0].detail


def test_part_refund_ids_are_any_text_of_their_length(any_db):
    """Order and refund ids of 64 characters, and ids with ':' in them (a part
    refund "B" of order "A" is not the whole refund of order "A:B")."""
    with any_db.begin() as s:
        publish(s)
        member(s, "C1")
    long_ref = "o" * 64
    for ref in (long_ref, "A", "A:B"):
        ledger.post_order(any_db, OrderIn(ref, "C1", T0 + dt.timedelta(days=1), 100_000))
    r = ledger.refund_order(any_db, long_ref, at=T0 + dt.timedelta(days=2),
                            amount_minor=10_000, refund_ref="r" * 64)
    assert (r.amount_minor, r.remaining_minor) == (10_000, 90_000)
    ledger.refund_order(any_db, "A", at=T0 + dt.timedelta(days=2), amount_minor=10_000,
                        refund_ref="B")
    whole = ledger.refund_order(any_db, "A:B", at=T0 + dt.timedelta(days=2))
    assert not whole.replayed and whole.status == "refunded"


def test_a_replayed_part_refund_answers_as_it_did(db):
    with db.begin() as s:
        publish(s)
        member(s, "C1")
    ledger.post_order(db, OrderIn("o1", "C1", T0 + dt.timedelta(days=1), 100_000))
    first = ledger.refund_order(db, "o1", at=T0 + dt.timedelta(days=2), amount_minor=10_000,
                                refund_ref="r1")
    ledger.refund_order(db, "o1", at=T0 + dt.timedelta(days=3), amount_minor=20_000,
                        refund_ref="r2")
    ledger.refund_order(db, "o1", at=T0 + dt.timedelta(days=4))  # the rest
    again = ledger.refund_order(db, "o1", at=T0 + dt.timedelta(days=2), amount_minor=10_000,
                                refund_ref="r1")
    assert again.replayed
    assert (again.remaining_minor, again.status, again.amount_minor) == (90_000, "paid", 10_000)
    assert (first.remaining_minor, first.status) == (90_000, "paid")
