"""The demo seeder: a clean ledger, a realistic spread, the same program for the same seed."""

from __future__ import annotations

import datetime as dt
import shutil

import pytest
from sqlalchemy import func, select

from db import demo
from db.demo.program import member_name
from db.errors import InvalidState
from db.integrity import run_check
from db.migrate import upgrade
from db.models import LedgerEntry, Member, Order, RuleSet, StaffUser, Transfer
from db.session import Database

START = dt.datetime(2025, 1, 1)


def fingerprint(d) -> dict:
    with d.read() as s:
        return {
            "orders": tuple(s.execute(
                select(func.count(), func.sum(Order.amount_minor), func.sum(Order.points_redeemed))
            ).one()),
            "entries": sorted(
                s.execute(
                    select(LedgerEntry.kind, func.count(), func.sum(LedgerEntry.amount))
                    .group_by(LedgerEntry.kind)
                ).all()
            ),
            "tiers": sorted(
                (t or "", c)
                for t, c in s.execute(select(Member.tier, func.count()).group_by(Member.tier))
            ),
        }


@pytest.fixture(scope="module")
def seeded(sqlite_template, tmp_path_factory):
    """One seeded database for the read-only tests of this module."""
    path = tmp_path_factory.mktemp("demo") / "demo.sqlite3"
    shutil.copy(sqlite_template, path)
    d = Database(f"sqlite:///{path}")
    report = demo.seed(d, members=600, seed=7, start=START, progress=False)
    yield d, report
    d.dispose()


def test_seeded_program_is_clean_and_spread(seeded):
    d, r = seeded
    with d.read() as s:
        check = run_check(s)
        assert check.ok, "\n".join(map(str, check.violations))
        assert s.scalar(select(func.count()).select_from(Member)) == 600
        published = s.scalars(
            select(RuleSet.name).where(RuleSet.status == "published")
        ).all()
        assert len(published) >= 2
        statuses = set(s.scalars(select(RuleSet.status)))
        assert {"published", "rejected", "draft"} <= statuses
        tiers = set(s.scalars(select(Member.tier).where(Member.tier.is_not(None))))
        assert len(tiers) >= 3, tiers
        kinds = dict(
            s.execute(select(LedgerEntry.kind, func.count()).group_by(LedgerEntry.kind)).all()
        )
        for kind in ("accrual", "redemption", "referral_bonus", "expiry", "transfer", "reversal"):
            assert kinds.get(kind, 0) > 0, (kind, kinds)
        assert s.scalar(select(func.count()).select_from(Transfer)) == r.transfers > 0
        guests = s.scalar(select(func.count()).where(Order.member_id.is_(None)))
        orders = s.scalar(select(func.count()).select_from(Order))
        assert 0.2 < guests / orders < 0.4
        assert s.scalar(select(func.count()).where(Order.status == "refunded")) == r.refunds > 0
        referred = select(Member.id).where(Member.referrer_id.is_not(None))
        assert s.scalar(select(func.count()).select_from(referred.subquery())) > 0
        chains = s.scalar(
            select(func.count()).where(
                Member.referrer_id.in_(select(Member.id).where(Member.referrer_id.is_not(None)))
            )
        )
        assert chains > 0  # some referrers were referred themselves
        assert s.scalar(select(func.min(Member.joined_at))) < START  # some joined before
        segments = set(s.scalars(select(Member.segment)))
        assert len(segments) == 5
        avg_check = s.scalar(select(func.avg(Order.amount_minor + 100 * Order.points_redeemed)))
        assert 70_000 < avg_check < 110_000  # 700-1100 RUB
        repeaters = s.scalar(
            select(func.count()).select_from(
                select(Order.member_id).where(Order.member_id.is_not(None))
                .group_by(Order.member_id).having(func.count() > 1).subquery()
            )
        )
        buyers = s.scalar(select(func.count(func.distinct(Order.member_id))))
        assert 0.15 < repeaters / buyers < 0.6
    assert r.expiry_runs > 0 and r.points_expired > 0
    assert r.referral_bonus > 0 and r.checkout_redemptions > 0 and r.vouchers > 0
    assert r.entries == sum(kinds.values())
    assert r.orders_per_second > 0 and r.entries_per_second > 0


def test_same_seed_same_program(seeded, tmp_path):
    d1, r1 = seeded
    d2 = Database(f"sqlite:///{tmp_path / 'again.sqlite3'}")
    upgrade(d2.engine)
    r2 = demo.seed(d2, members=600, seed=7, start=START, progress=False)
    assert fingerprint(d1) == fingerprint(d2)
    for f in ("orders", "entries", "refunds", "transfers", "points_expired", "referral_bonus"):
        assert getattr(r1, f) == getattr(r2, f)
    d3 = Database(f"sqlite:///{tmp_path / 'other.sqlite3'}")
    upgrade(d3.engine)
    demo.seed(d3, members=600, seed=8, start=START, progress=False)
    assert fingerprint(d3) != fingerprint(d1)
    d2.dispose()
    d3.dispose()


def test_refuses_a_database_with_members(seeded):
    d, _ = seeded
    with pytest.raises(InvalidState):
        demo.seed(d, members=10, start=START, progress=False)


def test_demo_staff_created_once_with_printed_passwords(seeded):
    d, r = seeded
    assert {st.username for st in r.staff} == {"supervisor", "supervisor2", "executive",
                                               "support"}
    assert all(st.created and len(st.password) >= 12 for st in r.staff)
    assert "password" in str(r)
    with d.begin() as s:
        again = demo.ensure_demo_staff(s)
        assert s.scalar(select(func.count()).select_from(StaffUser)) == 4
    for _username, password, role in again:
        assert password == demo.UNCHANGED and role in ("supervisor", "executive", "support")


def test_default_start_ends_today_and_works_on_postgres(any_db):
    r = demo.seed(any_db, members=150, months=2, seed=1, progress=False)
    today = dt.datetime.now(dt.UTC).replace(tzinfo=None, hour=0, minute=0, second=0,
                                            microsecond=0)
    assert r.end == today and r.start == demo.add_months(today, -2)
    with any_db.read() as s:
        check = run_check(s)
        assert check.ok, "\n".join(map(str, check.violations))
        assert s.scalar(select(func.max(Order.paid_at))) < today


def test_demo_with_a_pilot_keeps_members_joining_up_to_the_end(sqlite_template, tmp_path):
    """After the pilot period the demo goes on with sign-ups (some referred, most
    ordering soon after), in neither pilot group, all through the engine."""
    from db.ledger import decide_accrual, qualifying_spend
    from db.models import PilotMember
    from db.rules import load_rulebook

    path = tmp_path / "tail.sqlite3"
    shutil.copy(sqlite_template, path)
    d = Database(f"sqlite:///{path}")
    r = demo.seed(d, members=800, seed=5, start=START, months=4, progress=False, pilot=True)
    assert r.pilot is not None and r.recent_signups > 0
    with d.read() as s:
        assert run_check(s).ok
        since = r.pilot.start_at
        late = select(Member.id).where(Member.joined_at >= since)
        assert s.scalar(select(func.count()).select_from(late.subquery())) == r.recent_signups
        assert s.scalar(select(func.max(Member.joined_at))) < r.pilot.data_until + dt.timedelta(
            days=2)
        assert s.scalar(select(func.count()).select_from(Member).where(
            Member.joined_at >= since, Member.referrer_id.is_not(None))) > 0
        buyers = s.scalar(select(func.count(func.distinct(Order.member_id))).where(
            Order.member_id.in_(late), Order.status == "paid"))
        assert buyers > r.recent_signups // 2
        assert s.scalar(select(func.count()).select_from(PilotMember).where(
            PilotMember.member_id.in_(late))) == 0
        assert r.members == s.scalar(select(func.count()).select_from(Member))
        # the bulk path gave each of their orders what the single-order path
        # derives from the database now (tier and referrer's tier at payment time)
        late_orders = s.execute(
            select(Order.id, Order.member_id, Order.paid_at, Order.amount_minor,
                   Member.referrer_id)
            .join(Member, Member.id == Order.member_id).where(Member.joined_at >= since)
        ).all()
        assert late_orders
        book = load_rulebook(s)
        bonus_seen = 0
        for oid, mid, at, amount, ref in late_orders:
            rules_now, _ = book.for_member(mid, at)
            spend = qualifying_spend(s, mid, at, rules_now.tier_window_days)
            ref_spend = None
            if ref is not None:
                ref_rules, _ = book.for_member(ref, at)
                ref_spend = qualifying_spend(s, ref, at, ref_rules.tier_window_days)
            a = decide_accrual(book, mid, at, amount, spend, ref, ref_spend)
            got = dict(s.execute(select(LedgerEntry.kind, func.sum(LedgerEntry.amount))
                                 .where(LedgerEntry.order_id == oid)
                                 .group_by(LedgerEntry.kind)).all())
            assert got.get("accrual", 0) == a.points, (oid, got, a)
            assert got.get("referral_bonus", 0) == a.referral_points, (oid, got, a)
            bonus_seen += a.referral_points > 0
        assert bonus_seen > 0
    d.dispose()


def test_a_share_of_demo_members_have_cyrillic_names(seeded):
    d, _ = seeded
    with d.read() as s:
        names = s.scalars(select(Member.name)).all()
    cyrillic = [n for n in names if any("\u0400" <= ch <= "\u04ff" for ch in n)]
    assert 0.1 < len(cyrillic) / len(names) < 0.4, len(cyrillic)
    # a woman's surname in its feminine form
    assert any(n.startswith(("Анна ", "Елена ", "Ольга ")) and n.endswith("а")
               for n in cyrillic)
    assert member_name("Anna", "Ivanov", 3) == "Анна Иванова"
    assert member_name("Anna", "Ivanov", 4) == "Anna Ivanov"
    assert member_name("Omar", "Ivanov", 3) == "Omar Ivanov"


def test_demo_members_found_by_a_cyrillic_prefix_in_any_case(any_db):
    """On SQLite (a Unicode lower() on every connection) and PostgreSQL alike."""
    from db import members

    demo.seed(any_db, members=150, months=2, seed=1, progress=False)
    with any_db.read() as s:
        name = s.scalars(select(Member.name).where(Member.name.like("И%"))
                         .order_by(Member.id)).first()
        assert name, "no demo member whose name starts with И"
        prefix = name.split()[0][:3]
        want = sorted(n for n in s.scalars(select(Member.name)) if n.lower().startswith(
            prefix.lower()))
        for query in (prefix.lower(), prefix.upper(), prefix):
            page = members.search_members(s, query, limit=500)
            assert page.field == "name", query
            assert sorted(h.name for h in page.rows) == want, query
