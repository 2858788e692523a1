"""KPIs against a small hand-computed dataset, on SQLite and PostgreSQL.

The dataset (period = January 2025, ``[2025-01-01, 2025-02-01)``) is written
row by row below; every expected figure is worked out in the comments.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import shutil
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import insert

from db import metrics, rollups
from db.errors import ValidationError
from db.models import (
    Account,
    LedgerEntry,
    LedgerTransaction,
    Member,
    Order,
    ProgramSettings,
    RuleSet,
)
from db.reports.live import live_snapshot
from db.session import Database

D = dt.datetime
JAN, FEB, MAR = D(2025, 1, 1), D(2025, 2, 1), D(2025, 3, 1)


# single KPIs as the snapshot, the live page and the overview compute them
def average_check(s, f, t):
    return metrics.average_check_of(metrics.order_stats(s, f, t))


def repeat_purchase_rate(s, f, t):
    return metrics.repeat_of(metrics.order_stats(s, f, t))


def purchase_frequency(s, f, t):
    return metrics.purchase_frequency_of(metrics.order_stats(s, f, t), metrics.months_between(f, t))


def redemption_rate(s, f, t):
    flows = metrics.points_flows(s, f, t)
    return metrics.ratio(flows.redeemed_net, flows.issued_net)


def breakage_rate(s, f, t):
    flows = metrics.points_flows(s, f, t)
    return metrics.breakage_of(flows.expired_net, flows.redeemed_net)
ISS, RED, BRK, ADJ = 1, 2, 3, 4  # program accounts


def acc(member_id: int) -> int:
    return 100 + member_id


# id, joined_at, referrer
MEMBERS = [
    (1, D(2024, 6, 1), None),
    (2, D(2025, 1, 5), 1),
    (3, D(2025, 1, 20), 1),
    (4, D(2024, 12, 1), None),
    (5, D(2025, 1, 31, 23, 59, 59), 4),  # last second of the period: in the cohort
    (6, FEB, 1),  # first instant after the period: not in it
]

# id, customer_ref, member_id, paid_at, amount_minor, refunded_at
ORDERS = [
    (1, "C1", 1, JAN, 10000, None),  # first instant: inside
    (2, "C1", 1, D(2025, 1, 15), 20000, None),
    (3, "C2", 2, D(2025, 1, 10), 5000, None),
    (4, "C3", 3, D(2025, 1, 25), 8000, D(2025, 1, 26)),  # refunded
    (5, "G1", None, D(2025, 1, 2), 3000, None),
    (6, "G1", None, D(2025, 1, 3), 4000, None),
    (7, "G2", None, D(2025, 1, 31, 23, 59, 59, 999999), 6000, None),
    (8, "G3", None, FEB, 9999, None),  # first instant after: outside
    (9, "C4", 4, D(2024, 12, 31, 23, 59, 59), 7000, None),  # before
    (10, "C6", 6, D(2025, 2, 3), 1000, None),
    (11, "C5", 5, D(2025, 2, 10), 1500, None),
    (12, "C2", 2, D(2025, 1, 20), 1000, None),
]

# id, kind, debit, credit, amount, effective_at, reverses
ENTRIES = [
    (1, "accrual", ISS, acc(1), 100, JAN, None),
    (2, "accrual", ISS, acc(1), 200, D(2025, 1, 15), None),
    (3, "accrual", ISS, acc(2), 50, D(2025, 1, 10), None),
    (4, "referral_bonus", ISS, acc(1), 10, D(2025, 1, 10), None),
    (5, "accrual", ISS, acc(3), 80, D(2025, 1, 25), None),
    (6, "reversal", acc(3), ISS, 80, D(2025, 1, 26), 5),  # refund of order 4
    (7, "redemption", acc(1), RED, 60, D(2025, 1, 20), None),
    (8, "redemption", acc(2), RED, 30, D(2025, 1, 21), None),
    (9, "reversal", RED, acc(2), 30, D(2025, 1, 22), 8),
    (10, "expiry", acc(4), BRK, 40, D(2025, 1, 5), None),
    (11, "transfer", acc(1), acc(2), 20, D(2025, 1, 28), None),
    (12, "adjustment", ADJ, acc(4), 15, D(2025, 1, 29), None),
    (13, "accrual", ISS, acc(1), 999, FEB, None),  # after the period
    (14, "accrual", ISS, acc(4), 70, D(2024, 12, 31), None),
    # breakage cohort of January 2025 = [2024-01-02, 2024-02-02) (2024 is a leap year)
    (15, "accrual", ISS, acc(4), 70, D(2024, 1, 5), None),
    (16, "accrual", ISS, acc(4), 500, D(2024, 1, 1, 12), None),  # just before the cohort
]
# balances = credits - debits
BALANCES = {
    1: 100 + 200 + 10 - 60 - 20 + 999,
    2: 50 - 30 + 30 + 20,
    3: 0,
    4: 70 - 40 + 15 + 70 + 500,
}
BALANCES |= {5: 0, 6: 0}


def seed(d: Database) -> None:
    with d.begin() as s:
        s.execute(
            insert(Member),
            [
                {
                    "id": i,
                    "external_id": f"C{i}",
                    "joined_at": joined,
                    "referrer_id": ref,
                }
                for i, joined, ref in MEMBERS
            ],
        )
        s.execute(
            insert(Account),
            [
                {"id": acc(i), "kind": "member", "member_id": i, "balance": BALANCES[i]}
                for i, _, _ in MEMBERS
            ],
        )
        s.execute(
            insert(Order),
            [
                {
                    "id": i,
                    "order_ref": f"O{i}",
                    "customer_ref": ref,
                    "member_id": m,
                    "paid_at": paid,
                    "amount_minor": amount,
                    "status": "refunded" if refunded else "paid",
                    "refunded_at": refunded,
                    "payload_hash": "x",
                }
                for i, ref, m, paid, amount, refunded in ORDERS
            ],
        )
        s.execute(
            insert(LedgerTransaction),
            [
                {
                    "id": i,
                    "kind": kind,
                    "idempotency_key": f"k{i}",
                    "payload_hash": "x",
                    "effective_at": at,
                }
                for i, kind, _, _, _, at, _ in ENTRIES
            ],
        )
        s.execute(
            insert(LedgerEntry),
            [
                {
                    "id": i,
                    "tx_id": i,
                    "kind": kind,
                    "debit_account_id": deb,
                    "credit_account_id": cred,
                    "amount": amount,
                    "effective_at": at,
                    "reverses_entry_id": rev,
                }
                for i, kind, deb, cred, amount, at, rev in ENTRIES
            ],
        )


@pytest.fixture
def seeded(any_db: Database) -> Database:
    seed(any_db)
    return any_db


def approx(value: float | None) -> pytest.approx:
    return pytest.approx(value, rel=1e-12)


# --------------------------------------------------------------------------- orders


def test_participation(seeded: Database) -> None:
    # customers who ordered in January: C1 C2 C3 G1 G2 (G3 is on Feb 1, C4 on Dec 31);
    # members among them: C1 C2 C3 (C3's order was refunded but it happened)
    with seeded.read() as s:
        r = metrics.participation_rate(s, JAN, FEB)
    assert (r.numerator, r.denominator) == (3, 5)
    assert r.value == approx(0.6)


def test_average_check_members_and_guests(seeded: Database) -> None:
    # paid January orders: members 1,2,3,12 = 10000+20000+5000+1000; guests 5,6,7
    with seeded.read() as s:
        r = average_check(s, JAN, FEB)
    assert (r.all.numerator, r.all.denominator) == (49000, 7)
    assert r.all.value == approx(7000)
    assert (r.members.numerator, r.members.denominator) == (36000, 4)
    assert r.members.value == approx(9000)
    assert (r.guests.numerator, r.guests.denominator) == (13000, 3)
    assert r.guests.value == approx(13000 / 3)


def test_repeat_purchase_rate(seeded: Database) -> None:
    # paid orders per customer: C1 2, C2 2, G1 2, G2 1 (C3 only refunded) -> 3 / 4
    with seeded.read() as s:
        r = repeat_purchase_rate(s, JAN, FEB)
    assert (r.numerator, r.denominator, r.value) == (3, 4, 0.75)


def test_purchase_frequency(seeded: Database) -> None:
    # January is one whole month: 7 orders / 4 customers; members 4 / 2; guests 3 / 2
    with seeded.read() as s:
        r = purchase_frequency(s, JAN, FEB)
    assert r.months == 1
    assert (r.split.all.numerator, r.split.all.denominator) == (7, 4)
    assert r.split.all.value == approx(1.75)
    assert r.split.members.value == approx(2.0)
    assert r.split.guests.value == approx(1.5)


def test_purchase_frequency_scales_by_months(seeded: Database) -> None:
    # Dec + Jan: 8 paid orders (adds order 9 of C4) / 5 customers / 2 months
    with seeded.read() as s:
        r = purchase_frequency(s, D(2024, 12, 1), FEB)
    assert r.months == 2
    assert r.split.all.value == approx(8 / 5 / 2)
    # not month-aligned: by days / average month length
    with seeded.read() as s:
        r = purchase_frequency(s, D(2025, 1, 1), D(2025, 1, 16))
    assert r.months == approx(15 / (365.2425 / 12))


def test_referral_conversion(seeded: Database) -> None:
    # referred and joined in January: 2, 3, 5 (6 joined on Feb 1). Converted by
    # Feb 1: 2 (order 3); 3 only has a refunded order; 5 ordered on Feb 10.
    with seeded.read() as s:
        r = metrics.referral_conversion(s, JAN, FEB)
    assert (r.numerator, r.denominator) == (1, 3)
    # with a window to the end of February, 5 (Feb 10) converts; 6 joins the cohort
    with seeded.read() as s:
        r = metrics.referral_conversion(s, JAN, MAR)
    assert (r.numerator, r.denominator) == (3, 4)


def test_active_member_rate(seeded: Database) -> None:
    # as of Feb 1, 30 days = [Jan 2, Feb 1): orders of 1 (Jan 15), 2, 3 (refunded
    # still counts); redemptions of 1 and 2. Members joined before Feb 1: 1..5.
    with seeded.read() as s:
        r = metrics.active_member_rate(s, FEB)
    assert (r.ratio.numerator, r.ratio.denominator, r.days) == (3, 5, 30)
    assert r.ratio.value == approx(0.6)
    # 40 days reaches Dec 23: member 4's order of Dec 31 counts; expiry never does
    with seeded.read() as s:
        r = metrics.active_member_rate(s, FEB, days=40)
    assert (r.ratio.numerator, r.ratio.denominator) == (4, 5)


def test_active_days_from_settings(seeded: Database) -> None:
    with seeded.begin() as s:
        s.query(ProgramSettings).update({"active_days": 40})
    with seeded.read() as s:
        r = metrics.active_member_rate(s, FEB)
    assert (r.days, r.ratio.numerator) == (40, 4)


def test_active_rate_counts_redemption_only(seeded: Database) -> None:
    # as of Jan 22 over 1 day = [Jan 21, Jan 22): only member 2's redemption (entry 8)
    with seeded.read() as s:
        r = metrics.active_member_rate(s, D(2025, 1, 22), days=1)
    assert (r.ratio.numerator, r.ratio.denominator) == (1, 4)  # 1..4 had joined


# --------------------------------------------------------------------------- points


def test_points_flows(seeded: Database) -> None:
    # issued 100+200+50+10+80 = 440, 80 reversed; redeemed 60+30, 30 reversed; expired 40
    with seeded.read() as s:
        f = metrics.points_flows(s, JAN, FEB)
    assert f == metrics.PointsFlows(440, 80, 90, 30, 40, 0)
    assert (f.issued_net, f.redeemed_net, f.expired_net) == (360, 60, 40)


def test_redemption_rate(seeded: Database) -> None:
    with seeded.read() as s:
        r = redemption_rate(s, JAN, FEB)
    assert (r.numerator, r.denominator) == (60, 360)
    assert r.value == approx(1 / 6)


def test_breakage_is_expired_of_the_points_used_up(seeded: Database) -> None:
    # January: expired 40 (entry 10); redeemed 60 + 30 - 30 reversed = 60
    with seeded.read() as s:
        b = breakage_rate(s, JAN, FEB)
    assert (b.expired, b.redeemed, b.basis) == (40, 60, "expired_of_used")
    assert (b.ratio.numerator, b.ratio.denominator) == (40, 100)
    assert b.ratio.value == approx(0.4)


def test_breakage_does_not_depend_on_the_expiry_setting(seeded: Database) -> None:
    with seeded.read() as s:
        before = breakage_rate(s, JAN, FEB)
    with seeded.begin() as s:
        s.query(ProgramSettings).update({"expiry_days": None})
    with seeded.read() as s:
        assert breakage_rate(s, JAN, FEB) == before


def test_breakage_of_floors_net_flows_at_zero() -> None:
    # a refund restoring more redeemed points than the period's redemptions
    assert metrics.breakage_of(50, -20).ratio == metrics.Ratio(50, 50, 1.0)
    assert metrics.breakage_of(-5, 30).ratio == metrics.Ratio(0, 30, 0.0)
    assert metrics.breakage_of(0, 0).ratio.value is None


def test_liability(seeded: Database) -> None:
    total = sum(BALANCES.values())  # 1914, entry 13 (Feb 1, 999) included
    with seeded.read() as s:
        now = metrics.points_liability(s, D(2030, 1, 1))
        at_feb = metrics.points_liability(s, FEB)
        at_jan = metrics.points_liability(s, JAN)
    assert (now.points, now.point_value_minor, now.amount_minor, now.currency) == (
        total,
        100,
        total * 100,
        "RUB",
    )
    assert at_feb.points == total - 999  # entry 13 is dated exactly at as_of: not yet
    # before January: 70 (Dec 31) + 70 + 500 (Jan 2024) on member 4's account
    assert at_jan.points == 640


def test_liability_uses_point_value_in_force(seeded: Database) -> None:
    with seeded.begin() as s:
        s.execute(
            insert(RuleSet),
            [
                {
                    "id": 1,
                    "name": "v1",
                    "status": "published",
                    "point_value_minor": 50,
                    "effective_at": D(2025, 1, 15),
                },
                {
                    "id": 2,
                    "name": "v2",
                    "status": "published",
                    "point_value_minor": 200,
                    "effective_at": D(2025, 3, 1),
                },
                {"id": 3, "name": "draft", "status": "draft", "point_value_minor": 7},
            ],
        )
    with seeded.read() as s:
        r = metrics.points_liability(s, FEB)
        assert metrics.point_value_minor(s, D(2025, 1, 1)) == 100  # none in force yet
        assert metrics.point_value_minor(s, D(2025, 3, 1)) == 200
    assert (r.points, r.point_value_minor, r.amount_minor) == (915, 50, 915 * 50)


# --------------------------------------------------------------------------- LTV


def test_ltv_cohorts(seeded: Database) -> None:
    # cohorts joined Dec 2024 ({4}) and Jan 2025 ({2, 3, 5}), observed to Feb 1.
    # Dec: month 0 = order 9 (7000), month 1 = nothing. Jan: month 0 = orders 3 + 12
    # (order 4 refunded; 10 and 11 after the horizon).
    with seeded.read() as s:
        df = metrics.ltv_cohorts(s, D(2024, 12, 1), FEB)
    rows = [
        (
            r.cohort.to_pydatetime(),
            r.months_since_join,
            r.members,
            r.revenue_minor,
            r.cumulative_revenue_minor,
            r.ltv_minor,
        )
        for r in df.itertuples()
    ]
    assert rows == [
        (D(2024, 12, 1), 0, 1, 7000, 7000, 7000.0),
        (D(2024, 12, 1), 1, 1, 0, 7000, 7000.0),
        (D(2025, 1, 1), 0, 3, 6000, 6000, 2000.0),
    ]


# --------------------------------------------------------------------------- snapshot


def test_snapshot(seeded: Database) -> None:
    with seeded.read() as s:
        snap = metrics.kpi_snapshot(s, JAN, FEB)
    assert json.loads(json.dumps(snap)) == snap  # JSON-ready as it is
    assert snap["period"] == {"from": "2025-01-01T00:00:00", "to": "2025-02-01T00:00:00"}
    assert snap["as_of"] == "2025-02-01T00:00:00"
    assert snap["participation_rate"] == {"numerator": 3, "denominator": 5, "value": 0.6}
    assert snap["active_member_rate"]["value"] == 0.6
    assert snap["redemption_rate"] == {"numerator": 60, "denominator": 360, "value": 0.1667}
    assert snap["breakage_rate"]["value"] == 0.4
    assert snap["points_liability"]["amount_minor"] == 91500
    assert snap["referral_conversion"]["value"] == 0.3333
    assert snap["repeat_purchase_rate"]["value"] == 0.75
    assert snap["purchase_frequency"]["members"]["value"] == 2.0
    assert snap["average_check_minor"]["guests"] == {
        "numerator": 13000,
        "denominator": 3,
        "value": 4333,
    }
    assert snap["points"]["issued_net"] == 360
    assert snap["orders"]["paid_revenue_minor"] == 49000


def test_snapshot_on_empty_database(any_db: Database) -> None:
    with any_db.read() as s:
        snap = metrics.kpi_snapshot(s, JAN, FEB)
    json.dumps(snap)
    for key in (
        "participation_rate",
        "active_member_rate",
        "redemption_rate",
        "breakage_rate",
        "referral_conversion",
        "repeat_purchase_rate",
    ):
        assert snap[key]["value"] is None, key
        assert snap[key]["denominator"] == 0, key
    for group in ("all", "members", "guests"):
        assert snap["average_check_minor"][group]["value"] is None
        assert snap["purchase_frequency"][group]["value"] is None
    assert snap["points_liability"]["points"] == 0
    assert snap["points_liability"]["amount_minor"] == 0
    assert set(snap["points"].values()) == {0}


def test_empty_ltv_and_timeseries(any_db: Database) -> None:
    with any_db.read() as s:
        assert metrics.ltv_cohorts(s, JAN, FEB).empty
        ts = metrics.kpi_timeseries(s, JAN, MAR)
    assert len(ts) == 2
    assert ts["points_issued"].tolist() == [0, 0]
    assert ts["participation_rate"].isna().all()


# --------------------------------------------------------------------------- timeseries


def test_timeseries_by_month(seeded: Database) -> None:
    with seeded.read() as s:
        ts = metrics.kpi_timeseries(s, D(2024, 12, 1), MAR)
    assert [p.to_pydatetime() for p in ts["period"]] == [D(2024, 12, 1), JAN, FEB]
    assert ts["points_issued"].tolist() == [70, 360, 999]
    assert ts["points_redeemed"].tolist() == [0, 60, 0]
    assert ts["points_expired"].tolist() == [0, 40, 0]
    assert ts["paid_orders_members"].tolist() == [1, 4, 2]
    assert ts["paid_orders_guests"].tolist() == [0, 3, 1]
    assert ts["customers"].tolist() == [1, 5, 3]
    assert ts["participation_rate"].tolist() == approx([1.0, 0.6, 2 / 3])


def test_timeseries_by_week_and_day(seeded: Database) -> None:
    with seeded.read() as s:
        weeks = metrics.kpi_timeseries(s, D(2025, 1, 6), D(2025, 1, 20), freq="week")
        days = metrics.kpi_timeseries(s, D(2025, 1, 10), D(2025, 1, 11), freq="day")
    # Monday Jan 6 and Jan 13: order 3 (Jan 10) and 2 (Jan 15)
    assert [p.to_pydatetime() for p in weeks["period"]] == [D(2025, 1, 6), D(2025, 1, 13)]
    assert weeks["paid_orders_members"].tolist() == [1, 1]
    assert weeks["points_issued"].tolist() == [60, 200]
    assert days["points_issued"].tolist() == [60]


def test_timeseries_weekly_bucket_of_a_mid_week_start(seeded: Database) -> None:
    # Jan 1 2025 is a Wednesday: its bucket starts on Monday Dec 30
    with seeded.read() as s:
        ts = metrics.kpi_timeseries(s, JAN, D(2025, 1, 6), freq="week")
    assert [p.to_pydatetime() for p in ts["period"]] == [D(2024, 12, 30)]
    assert ts["points_issued"].tolist() == [100]  # only what is inside the period


# --------------------------------------------------------------------------- edges


def test_bad_period_is_refused(db: Database) -> None:
    with db.read() as s, pytest.raises(ValidationError):
        metrics.kpi_snapshot(s, FEB, JAN)
    with db.read() as s, pytest.raises(ValidationError):
        metrics.participation_rate(s, JAN, JAN)
    with db.read() as s, pytest.raises(ValidationError):
        metrics.kpi_timeseries(s, JAN, FEB, freq="fortnight")


def test_aware_datetimes_and_dates_are_accepted(seeded: Database) -> None:
    msk = dt.timezone(dt.timedelta(hours=3))
    with seeded.read() as s:
        a = metrics.participation_rate(
            s, D(2025, 1, 1, 3, tzinfo=msk), D(2025, 2, 1, 3, tzinfo=msk)
        )
        b = metrics.participation_rate(s, dt.date(2025, 1, 1), dt.date(2025, 2, 1))
    assert a == b == metrics.Ratio(3, 5, 0.6)


def test_ratio_never_divides_by_zero() -> None:
    assert metrics.ratio(5, 0).value is None
    assert metrics.ratio(5, -3).value is None  # reversals outweighing issuance
    assert metrics.ratio(0, 4).value == 0
    assert not math.isnan(metrics.ratio(1, 3).value or math.nan)


# --------------------------------------------------------------------------- property


order_rows = st.lists(
    st.tuples(
        st.integers(0, 5),  # customer: 0..2 are members 1..3, 3..5 guests
        st.integers(0, 59 * 24),  # hours after Dec 15
        st.integers(0, 10_000),  # amount
        st.booleans(),  # refunded
    ),
    max_size=25,
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(rows=order_rows)
def test_order_kpis_match_a_plain_python_reference(
    sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory, rows: list
) -> None:
    path = tmp_path_factory.mktemp("prop") / "db.sqlite3"
    shutil.copy(sqlite_template, path)
    d = Database(f"sqlite:///{path}")
    start = D(2024, 12, 15)
    orders = [
        (f"C{c}", c + 1 if c < 3 else None, start + dt.timedelta(hours=h), amount, refunded)
        for c, h, amount, refunded in rows
    ]
    with d.begin() as s:
        s.execute(
            insert(Member),
            [{"id": i, "external_id": f"C{i - 1}", "joined_at": start} for i in (1, 2, 3)],
        )
        if orders:
            s.execute(
                insert(Order),
                [
                    {
                        "order_ref": f"O{i}",
                        "customer_ref": ref,
                        "member_id": m,
                        "paid_at": at,
                        "amount_minor": amount,
                        "status": "refunded" if refunded else "paid",
                        "refunded_at": at if refunded else None,
                        "payload_hash": "x",
                    }
                    for i, (ref, m, at, amount, refunded) in enumerate(orders)
                ],
            )
    inside = [o for o in orders if JAN <= o[2] < FEB]
    paid = [o for o in inside if not o[4]]
    with d.read() as s:
        part = metrics.participation_rate(s, JAN, FEB)
        aov = average_check(s, JAN, FEB)
        rep = repeat_purchase_rate(s, JAN, FEB)
        freq = purchase_frequency(s, JAN, FEB)
    d.dispose()

    customers = {o[0] for o in inside}
    assert (part.numerator, part.denominator) == (
        len({o[0] for o in inside if o[1]}),
        len(customers),
    )
    member_paid = [o for o in paid if o[1]]
    assert (aov.members.numerator, aov.members.denominator) == (
        sum(o[3] for o in member_paid),
        len(member_paid),
    )
    assert (aov.all.numerator, aov.all.denominator) == (sum(o[3] for o in paid), len(paid))
    counts = Counter(o[0] for o in paid)
    assert (rep.numerator, rep.denominator) == (
        sum(1 for n in counts.values() if n >= 2),
        len(counts),
    )
    assert freq.split.all.value == (len(paid) / len(counts) if counts else None)


# --------------------------------------------------------------------------- breakage bounds

ENTRY_KINDS = ("accrual", "referral_bonus", "redemption", "expiry", "adjustment", "transfer",
               "reversal")
REVERSIBLE = ("accrual", "referral_bonus", "redemption", "expiry")
ledger_rows = st.lists(
    st.tuples(
        st.sampled_from(ENTRY_KINDS),
        st.integers(1, 3),  # member
        st.integers(1, 10_000),  # points
        st.integers(0, 40 * 24 - 1),  # hours after Jan 1
        st.integers(0, 10**6),  # which earlier entry a reversal reverses, and how much
    ),
    max_size=30,
)


def write_ledger(d: Database, rows: list) -> None:
    """Any ledger of the program's entry kinds: credits, debits, expiries at any
    time and reversals of any earlier entry (each at most once, by up to its amount)."""
    entries: list[dict] = []
    reversed_ids: set[int] = set()
    for kind, m, amount, hours, pick in rows:
        at = JAN + dt.timedelta(hours=hours)
        other = m % 3 + 1
        deb, cred, rev = {
            "accrual": (ISS, acc(m)), "referral_bonus": (ISS, acc(m)),
            "redemption": (acc(m), RED), "expiry": (acc(m), BRK),
            "adjustment": (ADJ, acc(m)), "transfer": (acc(m), acc(other)),
        }.get(kind, (None, None)) + (None,)
        if kind == "reversal":
            targets = [e for e in entries if e["kind"] in REVERSIBLE
                       and e["id"] not in reversed_ids]
            if not targets:
                continue
            target = targets[pick % len(targets)]
            reversed_ids.add(target["id"])
            deb, cred, rev = target["credit_account_id"], target["debit_account_id"], target["id"]
            amount = 1 + pick % target["amount"]
        entries.append({"id": len(entries) + 1, "tx_id": len(entries) + 1, "kind": kind,
                        "debit_account_id": deb, "credit_account_id": cred, "amount": amount,
                        "effective_at": at, "reverses_entry_id": rev})
    with d.begin() as s:
        s.execute(insert(Member), [{"id": i, "external_id": f"C{i}", "joined_at": D(2024, 1, 1)}
                                   for i in (1, 2, 3)])
        s.execute(insert(Account), [{"id": acc(i), "kind": "member", "member_id": i,
                                     "balance": 0} for i in (1, 2, 3)])
        if entries:
            s.execute(insert(LedgerTransaction), [
                {"id": e["id"], "kind": e["kind"], "idempotency_key": f"k{e['id']}",
                 "payload_hash": "x", "effective_at": e["effective_at"]} for e in entries])
            s.execute(insert(LedgerEntry), entries)


def assert_a_share(b: metrics.Breakage) -> None:
    r = b.ratio
    assert 0 <= r.numerator <= r.denominator
    assert (r.value is None) == (r.denominator == 0)
    assert r.value is None or 0.0 <= r.value <= 1.0


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(rows=ledger_rows, first_day=st.integers(0, 39), days=st.integers(1, 40),
       hours=st.integers(0, 23), expiry_days=st.one_of(st.none(), st.integers(1, 40)))
def test_breakage_stays_between_0_and_100_percent_for_any_ledger(
    sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory, rows: list,
    first_day: int, days: int, hours: int, expiry_days: int | None,
) -> None:
    path = tmp_path_factory.mktemp("breakage") / "db.sqlite3"
    shutil.copy(sqlite_template, path)
    d = Database(f"sqlite:///{path}")
    try:
        write_ledger(d, rows)
        with d.begin() as s:
            s.query(ProgramSettings).update({"expiry_days": expiry_days})
        f = JAN + dt.timedelta(days=first_day)
        t = f + dt.timedelta(days=days)
        odd = (f + dt.timedelta(hours=hours), t + dt.timedelta(hours=hours))
        with d.read() as s:
            raw = breakage_rate(s, f, t)
            for b in (raw, breakage_rate(s, *odd),
                      breakage_rate(s, JAN, JAN + dt.timedelta(days=40))):
                assert_a_share(b)
        rollups.rebuild_rollups(d)
        with d.read() as s:  # the same figure from the rollups, and in the KPI snapshot
            assert rollups.is_fresh(s)
            assert breakage_rate(s, f, t) == raw
            assert metrics.kpi_snapshot(s, f, t)["breakage_rate"] == raw.as_dict()
    finally:
        d.dispose()


def test_live_page_and_kpi_command_agree_on_a_week_with_a_months_expiry(
    sqlite_template: Path, tmp_path: Path
) -> None:
    """A monthly expiry run lands in the live page's 7-day window: the rate
    stays a share, and ``loyalty kpis`` gives the same figure for that window."""
    from click.testing import CliRunner

    from dashboard.cli import main

    path = tmp_path / "db.sqlite3"
    shutil.copy(sqlite_template, path)
    d = Database(f"sqlite:///{path}")
    hours = [24 * day + 10 for day in range(31)]
    rows = [("accrual", 1 + day % 3, 300, h, 0) for day, h in enumerate(hours)]
    rows += [("redemption", 2, 200, 24 * 33, 0),
             ("expiry", 1, 2_500, 24 * 34, 0), ("expiry", 3, 2_400, 24 * 34, 0)]
    try:
        write_ledger(d, rows)
        with d.begin() as s:
            s.query(ProgramSettings).update({"expiry_days": 30})
        rollups.refresh_rollups(d)
        now = JAN + dt.timedelta(days=36, hours=12)
        today = now.replace(hour=0)
        start, tomorrow = today - dt.timedelta(days=6), today + dt.timedelta(days=1)
        with d.read() as s:
            live = live_snapshot(s, days=7, now=now).values["breakage_rate"]
    finally:
        d.dispose()
    res = CliRunner().invoke(main, ["--database-url", f"sqlite:///{path}", "kpis", "--json",
                                    "--from", start.isoformat(), "--to", tomorrow.isoformat()])
    assert res.exit_code == 0, res.output
    cli = json.loads(res.output)["breakage_rate"]
    assert cli == live
    assert (live["numerator"], live["denominator"]) == (2_500 + 2_400, 2_500 + 2_400 + 200)
    assert 0 <= live["value"] <= 1
