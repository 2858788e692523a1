"""The web pages' read views and pure builders, on the small seed."""

from __future__ import annotations

import datetime as dt

from benchmarks.small_program import MEMBER_NAMES, seed_small
from dashboard import format as fmt
from dashboard import views
from db import readviews
from db.session import Database


def test_search_members_matches_fields_with_balance_and_limit(db):
    seed_small(db)
    with db.read() as s:
        assert [m.name for m in readviews.search_members(s, "anna")] == ["Anna Petrova"]
        exact = readviews.search_members(s, "C1002")
        assert exact[0].external_id == "C1002"
        by_phone = readviews.search_members(s, "+79000000004")
        assert [m.name for m in by_phone] == ["Omar Haddad"]
        assert readviews.search_members(s, "anna")[0].balance == 4500
        assert len(readviews.search_members(s, "", limit=2)) == 2
        assert len(readviews.search_members(s, "")) == len(MEMBER_NAMES)
        assert readviews.search_members(s, "zzz-nobody") == []
        dewi = readviews.search_members(s, "dewi")[0]
        assert dewi.referrer_external_id == "C1000"


def test_member_ledger_is_signed_from_the_members_side(db):
    ids = seed_small(db)
    with db.read() as s:
        lines = readviews.member_ledger(s, ids["member"])
        assert [(e.kind, e.points) for e in lines] == [("accrual", 4500)]
        assert readviews.get_member(s, ids["member"]).balance == 4500
        assert readviews.get_member(s, 999_999) is None


def test_rule_sets_pilots_and_adjustments(db):
    seed_small(db)
    with db.read() as s:
        versions = readviews.list_rule_sets(s)
        assert [v.status for v in versions] == ["draft", "published"]
        assert [t.name for t in versions[1].tiers] == ["Bronze", "Silver", "Gold"]
        assert [v.in_force(versions) for v in versions] == [False, True]
        (pilot,) = readviews.list_pilots(s)
        assert (pilot.pilot_members, pilot.control_members) == (2, 2)
        assert pilot.rule_set == "Richer gold"
        (adj,) = readviews.list_adjustments(s)
        assert (adj.status, adj.requested_by, adj.points) == ("pending", "sam", 250)
        assert readviews.list_adjustments(s, status="approved") == []


def test_live_counts_and_monthly_sales_match_the_seed(db):
    seed_small(db)
    with db.read() as s:
        c = readviews.live_counts(s, days=30)
        # members' orders 5..9 days ago (one each) + guest orders 3 and 23 days ago
        assert (c.members, c.orders_paid, c.member_orders_paid) == (5, 7, 5)
        assert (c.customers_ordered, c.members_ordered) == (7, 5)
        assert (c.points_issued, c.points_redeemed, c.outstanding_points) == (4500, 0, 4500)
        assert (c.referred_members, c.referred_members_ordered) == (1, 1)
        df = readviews.monthly_sales(s, months=12)
        assert int(df["orders"].sum()) == 19
        assert set(df["buyer"]) == {"member", "guest"}


def test_empty_database_gives_empty_views(db):
    with db.read() as s:
        assert readviews.list_rule_sets(s) == []
        assert readviews.list_pilots(s) == []
        assert readviews.monthly_sales(s).empty
        assert readviews.live_counts(s).members == 0
        orders, revenue = views.sales_figures(readviews.monthly_sales(s), "RUB")
    assert orders["data"][0]["x"] == [] and revenue["data"][1]["y"] == []


def test_ping_tells_reachable_from_unreachable(db):
    assert readviews.ping(db)
    down = Database("postgresql+psycopg://nobody@127.0.0.1:1/none",
                    connect_args={"connect_timeout": 2})
    assert readviews.ping(down) is False


def test_formatting_is_integer_exact():
    assert fmt.money(12345678, "RUB") == "123,456.78 RUB"
    assert fmt.money(-5) == "-0.05"
    assert fmt.rate_bp(525) == "5.25 %"
    assert fmt.signed_points(-250) == "-250"
    assert fmt.when(dt.datetime(2025, 1, 2, 3, 4, 5)) == "2025-01-02 03:04"


def test_audit_csv_neutralises_formulas():
    row = readviews.AuditRow(1, dt.datetime(2025, 1, 1), "=HYPERLINK(1)", "staff.create",
                             "staff_user", "1", "", "", "@cmd")
    text = views.audit_csv([row])
    assert "'=HYPERLINK(1)" in text and "'@cmd" in text
