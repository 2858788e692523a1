"""The web pages' read views and pure builders, on the small seed."""

from __future__ import annotations

import datetime as dt

from benchmarks.small_program import seed_small
from dashboard import format as fmt
from db import readviews
from db.session import Database
from pages import audit as views


def test_pilot_list_counts_each_group(db):
    seed_small(db)
    with db.read() as s:
        (pilot,) = readviews.list_pilots(s)
        assert (pilot.pilot_members, pilot.control_members) == (2, 2)
        assert pilot.rule_set == "Richer gold"


def test_empty_database_gives_empty_views(db):
    with db.read() as s:
        assert readviews.list_pilots(s) == []


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
