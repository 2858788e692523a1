"""Member search and profile services (db/members.py) on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import text

from db import ledger, members
from db.adjustments import request_adjustment
from db.errors import NotFound, ValidationError
from db.ledger import OrderIn
from tests.support.factories import T0, member, publish, staff


def day(n: float) -> dt.datetime:
    return T0 + dt.timedelta(days=n)


@pytest.fixture
def people(any_db):
    """Six members with names, emails and phones that share prefixes."""
    d = any_db
    with d.begin() as s:
        publish(s)
        ids = {
            "anna": member(s, "C100", name="Anna Petrova", email="Anna.P@example.com",
                           phone="+79001112233"),
            "annette": member(s, "C101", name="annette Smith", email="annette@mail.test",
                              phone="+79001119999"),
            "boris": member(s, "C200", name="Boris Ivanov", email="boris@example.com",
                            phone="+79005550000"),
            "chen": member(s, "X-7", name="Chen Wei", email=None, phone=None),
            "dewi": member(s, "C1000", name="Dewi Lestari", email="dewi@example.com",
                           phone="+628111"),
            "omar": member(s, "12", name="Omar Haddad", email="omar@example.com",
                           phone="+971500000"),
        }
    return d, ids


def names(page: members.SearchPage) -> list[str]:
    return [h.name for h in page.rows]


def test_name_prefix_is_case_insensitive_and_ordered(people):
    d, _ = people
    with d.read() as s:
        page = members.search_members(s, "ANN", reveal=True)
    assert page.field == "name"
    assert names(page) == ["Anna Petrova", "annette Smith"]
    with d.read() as s:
        assert names(members.search_members(s, "annet")) == ["annette Smith"]
        # a prefix, never a substring: "petrova" is not the start of any name
        assert names(members.search_members(s, "petrova")) == []


def test_name_prefix_ignores_case_in_every_script(people):
    """Cyrillic and other non-ASCII names fold like ASCII ones, on SQLite too."""
    d, _ = people
    with d.begin() as s:
        ivanov = member(s, "R1", name="Иванов Пётр")
        member(s, "R2", name="ЁЛКИН Иван")
        member(s, "R3", name="Straße Öz")
    with d.read() as s:
        for q in ("иванов", "ИВАНОВ", "Иван", "иВаНоВ п"):
            page = members.search_members(s, q)
            assert (page.field, names(page)) == ("name", ["Иванов Пётр"]), q
        assert names(members.search_members(s, "ёлкин")) == ["ЁЛКИН Иван"]
        assert names(members.search_members(s, "STRASSE")) == []  # lower(), not casefold
        assert names(members.search_members(s, "straße ö")) == ["Straße Öz"]
        assert [h.id for h in members.search_members(s, "Иванов П", "name").rows] == [ivanov]


def test_email_prefix_and_exact_email(people):
    d, ids = people
    with d.read() as s:
        page = members.search_members(s, "anna.p@EXAMPLE.com", reveal=True)
        assert page.field == "email" and [h.id for h in page.rows] == [ids["anna"]]
        assert names(members.search_members(s, "b", "email", reveal=True)) == ["Boris Ivanov"]
        # no "@" yet, and no name starts with it: the start of an email
        page = members.search_members(s, "anna.p", reveal=True)
        assert (page.field, [h.id for h in page.rows]) == ("email", [ids["anna"]])


def test_masked_contacts_are_found_only_by_their_whole_value(people):
    """Roles that see email and phone masked cannot spell them out by prefixes."""
    d, ids = people
    with d.read() as s:
        full = members.search_members(s, "anna.p@example.com", reveal=True).rows[0]
        phone = full.phone
        for query, field in (("anna.p", "auto"), ("anna.p@exam", "email"), ("b", "email"),
                             ("+7 900 111", "auto"), ("7900111", "phone"), (phone[:-1], "auto")):
            assert members.search_members(s, query, field).rows == [], (query, field)
        hit = members.search_members(s, "ANNA.P@example.com").rows
        assert [h.id for h in hit] == [ids["anna"]] and "***@" in hit[0].email
        assert [h.id for h in members.search_members(s, phone).rows] == [ids["anna"]]
        assert [h.id for h in members.search_members(s, phone, "phone").rows] == [ids["anna"]]
        # names are not masked: their prefixes still find members
        assert ids["anna"] in [h.id for h in members.search_members(s, "ann").rows]


def test_number_finds_member_id_customer_id_and_phone(people):
    d, ids = people
    with d.read() as s:
        # "12": member id 12 does not exist here; customer id "12" does
        assert [h.id for h in members.search_members(s, "12").rows] == [ids["omar"]]
        by_id = members.search_members(s, str(ids["boris"]))
        assert by_id.field == "number" and by_id.rows[0].id == ids["boris"]
        phone = members.search_members(s, "+7 900 111", reveal=True)
        assert [h.id for h in phone.rows] == [ids["anna"], ids["annette"]]
        assert [h.id for h in members.search_members(s, "7900111", reveal=True).rows] == [
            ids["anna"], ids["annette"]]
        assert [h.id for h in members.search_members(s, str(ids["chen"]), "member_id").rows] \
            == [ids["chen"]]


def test_exact_customer_id_comes_first_then_prefix(people):
    d, ids = people
    with d.read() as s:
        page = members.search_members(s, "C100", "external_id")
        assert [h.id for h in page.rows] == [ids["anna"], ids["dewi"]]
        # "auto" with a customer id that looks like text: the exact hit
        assert [h.id for h in members.search_members(s, "X-7").rows] == [ids["chen"]]


def test_paging_has_no_gaps_or_repeats(people):
    d, ids = people
    with d.read() as s:
        full = members.search_members(s, "C", "external_id", limit=100)
        assert len(full.rows) == 4 and not full.more
        seen = []
        offset = 0
        while True:
            page = members.search_members(s, "C", "external_id", offset=offset, limit=3)
            seen += [h.id for h in page.rows]
            offset += 3
            if not page.more:
                break
        assert seen == [h.id for h in full.rows]
        # exact hit + prefix rows across a page boundary, no duplicate
        p1 = members.search_members(s, "C100", "external_id", limit=1)
        p2 = members.search_members(s, "C100", "external_id", offset=1, limit=1)
        assert (p1.rows[0].id, p1.more, p2.rows[0].id, p2.more) == (
            ids["anna"], True, ids["dewi"], False)
        newest = members.search_members(s, "", limit=2)
        assert newest.field == "newest" and newest.more
        assert [h.id for h in newest.rows] == sorted(ids.values(), reverse=True)[:2]


def test_masking_for_roles_that_do_not_need_personal_data(people):
    d, ids = people
    assert members.pii_visible("support")
    assert not members.pii_visible("supervisor") and not members.pii_visible("executive")
    with d.read() as s:
        masked = members.search_members(s, "anna", reveal=False).rows[0]
        clear = members.search_members(s, "anna", reveal=True).rows[0]
        profile = members.get_profile(s, ids["anna"], reveal=False)
    assert (clear.email, clear.phone) == ("Anna.P@example.com", "+79001112233")
    assert (masked.email, masked.phone) == ("A***@example.com", "+7900*****33")
    assert (profile.email, profile.phone) == ("A***@example.com", "+7900*****33")
    assert members.mask_email(None) == "" and members.mask_phone("+12") == "+1*"


@pytest.mark.parametrize(
    ("query", "field", "message"),
    [
        ("abc", "member_id", "whole number"),
        ("90x", "phone", "only digits"),
        ("+79", "phone", "at least 3 digits"),
        ("x" * 101, "name", "at most 100"),
        ("a", "nope", "must be one of"),
    ],
)
def test_search_refusals(db, query, field, message):
    with db.read() as s, pytest.raises(ValidationError, match=message):
        members.search_members(s, query, field)


def test_search_uses_the_indexes(people):
    """The prefix searches read an index, never the whole table."""
    d, _ = people
    with d.read() as s:
        for field, value in (("name", "ann"), ("email", "bo"), ("phone", "7900"),
                             ("external_id", "C1")):
            stmt_log: list[str] = []
            from sqlalchemy import event

            def capture(conn, cursor, statement, params, context, executemany,
                        _log=stmt_log):
                _log.append((statement, params))

            event.listen(d.engine, "before_cursor_execute", capture)
            try:
                members.search_members(s, value, field, reveal=True)
            finally:
                event.remove(d.engine, "before_cursor_execute", capture)
            statement, params = stmt_log[-1]
            if d.dialect == "sqlite":
                plan = " ".join(str(r[-1]) for r in s.connection().exec_driver_sql(
                    "EXPLAIN QUERY PLAN " + statement, tuple(params)))
                assert "SCAN members" not in plan.replace("USING INDEX", "INDEX"), plan
                assert "INDEX" in plan, plan
            else:
                s.execute(text("SET LOCAL enable_seqscan = off"))
                plan = " ".join(r[0] for r in s.connection().exec_driver_sql(
                    "EXPLAIN " + statement, params))
                assert "ix_members_search_" in plan, plan


def test_profile_tier_progress_ledger_orders_referrals_transfers(people):
    d, ids = people
    anna, boris, annette = ids["anna"], ids["boris"], ids["annette"]
    with d.begin() as s:
        from db.models import Member

        s.get(Member, boris).referrer_id = anna
    # Bronze 0..1000 (1 %), Silver 1000..5000 (3 %), Gold 5000+ (5 %) - units
    ledger.post_order(d, OrderIn("o1", "C200", day(1), 400_00))  # boris: 4 pts, anna 2
    ledger.post_order(d, OrderIn("o2", "C200", day(2), 800_00))  # 8 pts, anna 4
    ledger.post_order(d, OrderIn("o3", "C100", day(3), 300_00))  # anna: 3 pts
    ledger.redeem(d, anna, 5, key="r1", at=day(4))
    ledger.transfer(d, boris, anna, 6, key="t1", at=day(5))
    ledger.transfer(d, anna, annette, 1, key="t2", at=day(6))
    ledger.refund_order(d, "o1", at=day(7))  # boris: -4, anna's bonus -2
    with d.begin() as s:
        sup = staff(s, "sue", "support")
    request_adjustment(d, sup, anna, 10, "goodwill", "late parcel")

    with d.read() as s:
        p = members.get_profile(s, boris, reveal=True, at=day(10))
        anna_p = members.get_profile(s, anna, reveal=True, at=day(10))
        page = members.ledger_page(s, anna)
        only_transfers = members.ledger_page(s, anna, kind="transfer")
        second = members.ledger_page(s, anna, offset=2, limit=2)
        orders, n_orders = members.member_orders(s, boris)
        refs, n_refs = members.member_referrals(s, anna)
        transfers = members.member_transfers(s, anna)
        adjustments = members.member_adjustments(s, anna)
    # boris: only o2 (800) counts after the refund of o1 -> Bronze, 80 % to Silver
    assert p.progress.qualifying_spend_minor == 800_00
    assert (p.progress.tier, p.progress.next_tier, p.progress.percent) == ("Bronze", "Silver", 80)
    assert p.progress.remaining_minor == 200_00
    assert (p.referrer_id, p.referrer_external_id) == (anna, "C100")
    # anna: +2 +4 +3 -5 +6 -1 -2 = 7
    assert anna_p.balance == 7 == page.rows[0].balance_after
    assert [r.points for r in page.rows] == [-2, -1, 6, -5, 3, 4, 2]
    assert [r.balance_after for r in page.rows] == [7, 9, 10, 4, 9, 6, 2]
    assert page.total == 7
    assert [(r.points, r.balance_after) for r in only_transfers.rows] == [(-1, 9), (6, 10)]
    assert only_transfers.total == 2
    assert [r.points for r in second.rows] == [6, -5]
    assert n_orders == 2 and [(o.order_ref, o.status, o.points_earned) for o in orders] == [
        ("o2", "paid", 8), ("o1", "refunded", 4)]
    assert n_refs == 1 and [(r.member_id, r.bonus_points) for r in refs] == [(boris, 4)]
    assert [(t.direction, t.points) for t in transfers] == [("out", -1), ("in", 6)]
    assert [(a.points, a.status) for a in adjustments] == [(10, "pending")]


def test_top_tier_and_no_rules(db):
    with db.begin() as s:
        m = member(s, "M")
    with db.read() as s:
        assert members.get_profile(s, m).progress is None
    with db.begin() as s:
        publish(s)
    ledger.post_order(db, OrderIn("big", "M", day(1), 6000_00))
    with db.read() as s:
        prog = members.tier_progress(s, m, day(2))
    assert (prog.tier, prog.next_tier, prog.percent, prog.remaining_minor) == ("Gold", None,
                                                                               100, 0)


def test_missing_member_and_bad_kind(db):
    with db.read() as s:
        with pytest.raises(NotFound):
            members.get_profile(s, 999)
        with pytest.raises(NotFound):
            members.ledger_page(s, 999)
        with pytest.raises(ValidationError, match="kind"):
            members.ledger_page(s, 1, kind="bogus")
        with pytest.raises(ValidationError, match="no member"):
            members.resolve_member(s, "nobody")
        with pytest.raises(ValidationError, match="enter the member id"):
            members.resolve_member(s, " ")


@pytest.mark.parametrize("query", [
    "' OR '1'='1", "%", "_", "a%", "\\", "'; DROP TABLE members; --", '"', "Anna' --",
])
def test_search_terms_are_data_not_sql_or_patterns(people, query):
    """Quotes, comments and LIKE wildcards are searched for literally."""
    d, _ = people
    with d.read() as s:
        before = s.execute(text("SELECT count(*) FROM members")).scalar_one()
        page = members.search_members(s, query, "name", reveal=True)
        assert names(page) == [], query
        assert s.execute(text("SELECT count(*) FROM members")).scalar_one() == before
