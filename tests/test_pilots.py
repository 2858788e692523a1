"""Pilot services: upload parsing, assignment, the engine during a pilot, workflow, results."""

from __future__ import annotations

import datetime as dt
import threading

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import case, func, select, update

from db import ledger, pilots, rule_review, rules, stats
from db.errors import InvalidState, ValidationError
from db.integrity import run_check
from db.ledger import OrderIn, post_order
from db.models import AuditLog, LedgerEntry, Member, Pilot, PilotMember, RuleSet
from db.simulation import Cancelled
from tests.support.factories import member, publish, simulated, staff
from tests.support.pilots import END, PILOT_TIERS, START, _create, _orders, _program, _start

# ---------------------------------------------------------------- uploads


def test_upload_with_and_without_header(db):
    with db.begin() as s:
        _sup, _draft, ids = _program(s, 5)
        assert pilots.parse_member_csv(s, f"member_id\n{ids[0]}\n{ids[2]}\n") == [ids[0], ids[2]]
        assert pilots.parse_member_csv(s, f"{ids[1]}\r\n\r\n{ids[3]}\r\n") == [ids[1], ids[3]]
        assert pilots.parse_member_csv(s, b"\xef\xbb\xbfcustomer_id\nC0004\nC0000\n") == [
            ids[4], ids[0]]


def test_bad_upload_names_every_bad_line_and_creates_nothing(db):
    with db.begin() as s:
        sup, draft, ids = _program(s, 5)
    content = f"member_id\n{ids[0]}\nabc\n999999\n{ids[0]}\n{ids[1]},{ids[2]}\n{ids[3]}\n"
    with db.begin() as s, pytest.raises(pilots.MemberFileError) as err:
        _create(s, sup, draft, name="From file", member_file=content)
    problems = [(p.line, p.reason) for p in err.value.problems]
    assert problems == [
        (3, "not a number (expected a member id)"), (4, "unknown member"),
        (5, "duplicate of line 2"), (6, "expected one value per line")]
    assert "line 3" in str(err.value) and "4 bad line(s)" in str(err.value)
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(Pilot)) == 0
        assert s.scalar(select(func.count()).select_from(PilotMember)) == 0


def test_upload_unknown_customer_and_empty_file(db):
    with db.begin() as s:
        _program(s, 3)
        with pytest.raises(pilots.MemberFileError) as err:
            pilots.parse_member_csv(s, "customer_id\nC0001\nNOPE\n")
        assert [(p.line, p.value, p.reason) for p in err.value.problems] == [
            (3, "NOPE", "unknown member")]
        with pytest.raises(pilots.MemberFileError, match="no member ids"):
            pilots.parse_member_csv(s, "member_id\n\n")
        with pytest.raises(pilots.MemberFileError, match="not UTF-8"):
            pilots.parse_member_csv(s, b"\xff\xfe\x00")


def test_pilot_from_file_uses_only_listed_members(db):
    with db.begin() as s:
        sup, draft, ids = _program(s, 30)
        listed = ids[:20]
        made = _create(s, sup, draft, member_file="\n".join(map(str, listed)))
        got = set(s.scalars(select(PilotMember.member_id)
                            .where(PilotMember.pilot_id == made.pilot_id)))
    assert got == set(listed) and made.n_pilot + made.n_control == 20


# ---------------------------------------------------------------- assignment


def _population(n: int, strata: dict[str, float], seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    names = list(strata)
    return pd.DataFrame({
        "member_id": rng.permutation(np.arange(1, n + 1) * 3),
        "stratum": rng.choice(names, size=n, p=list(strata.values())),
    })


@pytest.mark.parametrize("n,share_bp", [(1, 5000), (7, 3333), (101, 2000), (1000, 5000),
                                        (2501, 9000)])
def test_assignment_is_stratified_within_one_member(n, share_bp):
    pop = _population(n, {"Bronze": 0.6, "Silver": 0.3, "Gold": 0.1})
    g = pilots.assign_groups(pop, share_bp, seed=11)
    assert sorted(g["member_id"]) == sorted(pop["member_id"])  # control = the rest of it
    for _stratum, part in g.groupby("stratum"):
        n_pilot = (part["grp"] == "pilot").sum()
        assert abs(n_pilot - len(part) * share_bp / 10_000) <= 1


def test_assignment_is_reproducible_from_the_seed_and_order_free():
    pop = _population(500, {"Bronze": 0.5, "Silver": 0.5})
    a = pilots.assign_groups(pop, 3000, seed=5)
    b = pilots.assign_groups(pop.sample(frac=1, random_state=3), 3000, seed=5)
    c = pilots.assign_groups(pop, 3000, seed=6)
    key = ["member_id", "grp"]
    assert a.sort_values("member_id")[key].values.tolist() == (
        b.sort_values("member_id")[key].values.tolist())
    assert a.sort_values("member_id")["grp"].tolist() != c.sort_values("member_id")["grp"].tolist()


def test_stored_groups_are_the_seeded_draw_of_the_population(db):
    with db.begin() as s:
        sup, draft, ids = _program(s, 60, segment_every=4)
        made = _create(s, sup, draft, pilot_share=30, seed=1234,
                       population={"segments": ["regular"]})
        stored = pd.DataFrame(s.execute(select(PilotMember.member_id, PilotMember.stratum,
                                               PilotMember.grp)
                                        .where(PilotMember.pilot_id == made.pilot_id)).all(),
                              columns=["member_id", "stratum", "grp"])
        p = s.get(Pilot, made.pilot_id)
        seg = dict(s.execute(select(Member.id, Member.segment)).all())
    assert {seg[m] for m in stored["member_id"]} == {"regular"}
    redraw = pilots.assign_groups(stored[["member_id", "stratum"]], p.pilot_share_bp,
                                  p.random_seed)
    assert dict(zip(redraw["member_id"], redraw["grp"], strict=True)) == dict(
        zip(stored["member_id"], stored["grp"], strict=True))
    for _t, part in stored.groupby("stratum"):
        assert abs((part["grp"] == "pilot").sum() - 0.3 * len(part)) <= 1


def test_population_filter_by_tier_join_date_and_activity(db):
    with db.begin() as s:
        sup, draft, ids = _program(s, 30)
        s.execute(update(Member).where(Member.id.in_(ids[:10]))
                  .values(joined_at=dt.datetime(2025, 3, 1)))
        for i in range(12):
            post_order(s, OrderIn(f"O{i}", f"C{i:04d}", dt.datetime(2025, 5, 20), 50_000))
        gold = pilots.eligible_population(
            s, population=pilots.parse_population({"tiers": ["Gold"]}), at=START)[0]
        assert set(gold["stratum"]) == {"Gold"}
        recent = pilots.eligible_population(s, population=pilots.parse_population(
            {"active_within_days": 30}), at=START)[0]
        assert set(recent["member_id"]) == set(ids[:12])
        joined = pilots.eligible_population(s, population=pilots.parse_population(
            {"joined_from": "2025-02-01", "joined_to": "2025-03-01"}), at=START)[0]
        assert set(joined["member_id"]) == set(ids[:10])
    with pytest.raises(ValidationError, match="segment"):
        pilots.parse_population({"segments": ["martians"]})
    with pytest.raises(ValidationError, match="starts after"):
        pilots.parse_population({"joined_from": "2025-03-01", "joined_to": "2025-01-01"})


def test_no_member_in_two_pilots(db):
    with db.begin() as s:
        sup, draft, ids = _program(s, 40)
        first = _create(s, sup, draft, name="First", population={"tiers": ["Bronze"]})
        second = _create(s, sup, draft, name="Second", seed=8)
        a = set(s.scalars(select(PilotMember.member_id).where(PilotMember.pilot_id
                                                              == first.pilot_id)))
        b = set(s.scalars(select(PilotMember.member_id).where(PilotMember.pilot_id
                                                              == second.pilot_id)))
        assert a and b and not a & b and a | b == set(ids)
        assert second.left_out == len(a)
        # everyone is taken now: a third pilot finds nobody
        with pytest.raises(ValidationError, match="too few"):
            _create(s, sup, draft, name="Third")


def test_start_refuses_a_member_already_in_a_running_pilot(db):
    with db.begin() as s:
        sup, draft, ids = _program(s, 10)
        first = _create(s, sup, draft, name="First", member_ids=ids[:4])
        second = _create(s, sup, draft, name="Second", member_ids=ids[4:8])
        _start(s, sup, first.pilot_id, now=START)
        # a member slipped into both (e.g. written by hand): the start refuses
        s.execute(update(PilotMember).where(PilotMember.pilot_id == second.pilot_id,
                                            PilotMember.member_id == ids[4])
                  .values(member_id=ids[0]))
        with pytest.raises(InvalidState, match="already in another running pilot"):
            _start(s, sup, second.pilot_id, now=START)


def test_concurrent_creations_draw_disjoint_groups(pg_db):
    with pg_db.begin() as s:
        sup, draft, ids = _program(s, 60)
    barrier = threading.Barrier(2)
    made: list[int] = []
    errors: list[Exception] = []

    def create(k: int) -> None:
        try:
            barrier.wait()
            with pg_db.begin() as s:
                made.append(_create(s, sup, draft, name=f"Race {k}", seed=k,
                                    member_ids=ids).pilot_id)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=create, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    # the second one, serialised behind the first, finds nobody left
    assert len(made) == 1 and len(errors) == 1 and "too few" in str(errors[0])
    with pg_db.read() as s:
        dup = s.execute(select(PilotMember.member_id).group_by(PilotMember.member_id)
                        .having(func.count() > 1)).all()
    assert dup == []


def test_create_validates_inputs_next_to_the_fields(db):
    with db.begin() as s:
        sup, draft, ids = _program(s, 10)
        published = s.scalar(select(RuleSet.id).where(RuleSet.status == "published"))
        cases = [
            (dict(name=" "), "name"),
            (dict(pilot_share="0"), "pilot_share"),
            (dict(pilot_share="abc"), "pilot_share"),
            (dict(min_effect="-1"), "min_effect"),
            (dict(primary_metric="happiness"), "primary_metric"),
            (dict(planned_end_at=START), "planned_end_at"),
        ]
        for kw, fld in cases:
            name = kw.pop("name", "Bad")
            with pytest.raises(ValidationError) as err:
                pilots.create_pilot(s, sup, name, draft, **{
                    **dict(pilot_share=50, seed=1, start_at=START, planned_end_at=END,
                           primary_metric="spend_per_member", min_effect="10"), **kw})
            assert err.value.field == fld, kw
        with pytest.raises(ValidationError, match="published"):
            _create(s, sup, published)
        assert s.scalar(select(func.count()).select_from(Pilot)) == 0


# ---------------------------------------------------------------- the engine


def test_engine_uses_pilot_rules_only_for_pilot_members_during_the_pilot(db):
    with db.begin() as s:
        sup, draft, ids = _program(s, 2)
        s.execute(update(Member).values(tier="Bronze"))  # one stratum: one of each group
        made = _create(s, sup, draft, member_ids=ids, pilot_share=50, seed=3)
        grp = dict(s.execute(select(PilotMember.member_id, PilotMember.grp)).all())
        pilot_m = next(m for m in ids if grp[m] == "pilot")
        control_m = next(m for m in ids if grp[m] == "control")
        ext = dict(s.execute(select(Member.id, Member.external_id)).all())
        _start(s, sup, made.pilot_id, now=START - dt.timedelta(days=1))

    def accrue(ref: str, mid: int, at: dt.datetime) -> tuple[int, int | None]:
        r = post_order(db, OrderIn(ref, ext[mid], at, 10_000))  # 100.00: Bronze
        return r.accrued, r.rule_set_id

    before = START - dt.timedelta(hours=1)
    during = START + dt.timedelta(days=3)
    assert accrue("b-p", pilot_m, before)[0] == 1  # published Bronze 1 %
    assert accrue("b-c", control_m, before)[0] == 1
    assert accrue("d-p", pilot_m, during) == (4, draft)  # pilot Bronze 4 %
    assert accrue("d-c", control_m, during)[0] == 1
    with db.begin() as s:
        pilots.end_pilot(s, sup, made.pilot_id, now=START + dt.timedelta(days=10))
        assert s.get(Pilot, made.pilot_id).ended_at == START + dt.timedelta(days=10)
    after = START + dt.timedelta(days=11)
    assert accrue("a-p", pilot_m, after)[0] == 1  # back on the published rules
    assert accrue("a-c", control_m, after)[0] == 1
    # a late order inside the (now ended) window still gets the pilot rules
    assert accrue("late-p", pilot_m, START + dt.timedelta(days=5))[0] == 4
    with db.read() as s:
        assert run_check(s).ok


def test_start_rules_and_states(db):
    with db.begin() as s:
        sup, draft, ids = _program(s, 6)
        made = _create(s, sup, draft, member_ids=ids)
        with pytest.raises(ValidationError, match="in the past"):
            _start(s, sup, made.pilot_id, now=START + dt.timedelta(days=2))
        with pytest.raises(InvalidState, match="only a running"):
            pilots.end_pilot(s, sup, made.pilot_id)
        _start(s, sup, made.pilot_id, now=START + dt.timedelta(days=2),
                           allow_past=True)
        with pytest.raises(InvalidState, match="only a draft"):
            _start(s, sup, made.pilot_id, now=START)
        with pytest.raises(InvalidState, match="only a draft"):
            pilots.cancel_pilot(s, sup, made.pilot_id)
        actions = list(s.scalars(select(AuditLog.action).where(
            AuditLog.action.like("pilot.%")).order_by(AuditLog.id)))
    assert actions == ["pilot.create", "pilot.start_request", "pilot.start"]


def test_start_refuses_when_orders_already_sit_in_the_window(db):
    with db.begin() as s:
        sup, draft, ids = _program(s, 4)
        made = _create(s, sup, draft, member_ids=ids, pilot_share=50)
        for i in range(4):
            post_order(s, OrderIn(f"x{i}", f"C{i:04d}", START + dt.timedelta(hours=2), 5000))
        with pytest.raises(InvalidState, match="already recorded"):
            _start(s, sup, made.pilot_id, now=START, allow_past=True)


# ---------------------------------------------------------------- roll-out


def test_rollout_creates_a_normal_draft_from_the_pilot_rules(db):
    with db.begin() as s:
        sup, draft, ids = _program(s, 6)
        sid = staff(s, "sid", "supervisor")
        made = _create(s, sup, draft, member_ids=ids)
        with pytest.raises(InvalidState, match="only a run pilot"):
            pilots.rollout_draft(s, sup, made.pilot_id)
        _start(s, sup, made.pilot_id, now=START)
        in_force = rules.rules_in_force(s, START).rule_set_id
        rid = pilots.rollout_draft(s, sup, made.pilot_id, now=START)
        new = s.get(RuleSet, rid)
        assert new.status == "draft" and new.based_on_id == in_force
        assert "P1" in new.note and f"#{made.pilot_id}" in new.note
        assert rules.get_rules(s, rid).tiers == rules.get_rules(s, draft).tiers
        simulated(s, sup, rid)
        rule_review.submit(s, sup, rid)
        rules.approve(s, sid, rid, END, allow_past=True)
        assert s.get(RuleSet, rid).status == "published"


# ---------------------------------------------------------------- results


def test_results_hand_checked_small_pilot(db):
    """Two members per group: means, DiD and the points cost by hand."""
    with db.begin() as s:
        sup, draft, ids = _program(s, 4)
        s.execute(update(Member).values(tier="Bronze"))
        made = _create(s, sup, draft, member_ids=ids, pilot_share=50, seed=2,
                       start_at=START, planned_end_at=START + dt.timedelta(days=10))
        _start(s, sup, made.pilot_id, now=START)
        grp = dict(s.execute(select(PilotMember.member_id, PilotMember.grp)).all())
        ext = dict(s.execute(select(Member.id, Member.external_id)).all())
        p1, p2 = sorted(m for m in ids if grp[m] == "pilot")
        c1, c2 = sorted(m for m in ids if grp[m] == "control")
        pre = START - dt.timedelta(days=5)
        dur = START + dt.timedelta(days=5)
        _orders(s, ext, [
            (p1, pre, 10_000), (p2, pre, 20_000), (c1, pre, 10_000), (c2, pre, 30_000),
            (p1, dur, 30_000), (p1, dur + dt.timedelta(hours=1), 10_000), (p2, dur, 20_000),
            (c1, dur, 10_000),
        ])
    with db.read() as s:
        r = pilots.pilot_results(s, made.pilot_id, START + dt.timedelta(days=10), n_boot=200)
    assert r.pre_start == START - dt.timedelta(days=10)
    spend = r.metric("spend_per_member")
    # pilot: (100 -> 400, 200 -> 200), control: (100 -> 100, 300 -> 0) in currency units
    assert (spend.pilot_pre, spend.pilot_during) == (150, 300)
    assert (spend.control_pre, spend.control_during) == (200, 50)
    assert spend.welch.lift == pytest.approx(300)
    orders = r.metric("orders_per_member")
    assert orders.welch.lift == pytest.approx((2 + 1) / 2 - 1 - ((1 + 0) / 2 - 1))
    check = r.metric("average_check")  # members who ordered in both periods only
    assert (check.n_pilot, check.n_control) == (2, 1)
    assert r.verdict_code == "too_little_data"
    # points: published Bronze 1 %, the pilot's Bronze 4 % - but p1's 300.00 order makes
    # the Silver threshold (1000.00) out of reach, so every pilot order is Bronze
    assert r.cost.pilot_orders == 3
    assert r.cost.points_actual == (30_000 + 10_000 + 20_000) * 4 // 10_000
    assert r.cost.points_published == 30_000 // 10_000 + 10_000 // 10_000 + 20_000 // 10_000
    assert r.cost.extra_points == 24 - 6
    assert r.cost.incremental_revenue_minor == 300 * 100 * 2
    daily = r.daily
    assert set(daily["group"]) == {"pilot", "control"}
    assert daily["spend_minor"].sum() == 140_000
    csv_text = pilots.results_csv(r)
    assert "spend_per_member,welch,300" in csv_text and "extra_points,18" in csv_text


def test_results_read_spend_history_of_a_rolling_window_before_the_pre_period(db):
    """Published tiers over a 60-day window, a 10-day pilot: the points cost
    needs the pilot group's orders from 60 days back, which the metrics (pre
    window of 10 days) must not count."""
    with db.begin() as s:
        publish(s, tier_window_days=60)
        sup = staff(s, "sue", "supervisor")
        draft = rules.create_draft(s, sup, "Richer", PILOT_TIERS)
        ids = [member(s, f"C{i:04d}") for i in range(4)]
        made = _create(s, sup, draft, member_ids=ids, seed=2,
                       planned_end_at=START + dt.timedelta(days=10))
        _start(s, sup, made.pilot_id, now=START)
        grp = dict(s.execute(select(PilotMember.member_id, PilotMember.grp)).all())
        ext = dict(s.execute(select(Member.id, Member.external_id)).all())
        p1, p2 = sorted(m for m in ids if grp[m] == "pilot")
        c1, _c2 = sorted(m for m in ids if grp[m] == "control")
        early, pre, dur = (START - dt.timedelta(days=30), START - dt.timedelta(days=5),
                           START + dt.timedelta(days=5))
        _orders(s, ext, [(p1, early, 150_000), (c1, early, 150_000), (c1, pre, 10_000),
                         (p1, dur, 10_000), (p2, dur, 10_000)])
    with db.read() as s:
        r = pilots.pilot_results(s, made.pilot_id, START + dt.timedelta(days=10), n_boot=50)
    spend = r.metric("spend_per_member")
    assert (spend.pilot_pre, spend.control_pre) == (0, 50)  # the day -30 orders are not "pre"
    assert (spend.pilot_during, spend.control_during) == (100, 0)
    # published: p1 is Silver (1500.00 in the last 60 days) -> 3 %, p2 Bronze 1 %
    assert r.cost.points_published == 3 + 1
    # the pilot's rules (lifetime): p1 Silver 6 %, p2 Bronze 4 %
    assert r.cost.points_actual == 6 + 4 and r.cost.pilot_orders == 2
    assert r.daily["spend_minor"].sum() == 30_000


def test_points_cost_keeps_each_members_earlier_spend_to_themselves(db):
    """Lifetime tiers: a pilot-group member with spend only before the window
    (no order in it) must not lend it to the next member by id."""
    with db.begin() as s:
        sup, draft, ids = _program(s, 4)
        s.execute(update(Member).values(tier="Bronze"))
        made = _create(s, sup, draft, member_ids=ids, seed=2,
                       planned_end_at=START + dt.timedelta(days=10))
        _start(s, sup, made.pilot_id, now=START)
        grp = dict(s.execute(select(PilotMember.member_id, PilotMember.grp)).all())
        ext = dict(s.execute(select(Member.id, Member.external_id)).all())
        p1, p2 = sorted(m for m in ids if grp[m] == "pilot")
        _orders(s, ext, [(p1, START - dt.timedelta(days=30), 150_000),
                         (p2, START + dt.timedelta(days=5), 10_000)])
    with db.read() as s:
        r = pilots.pilot_results(s, made.pilot_id, START + dt.timedelta(days=10), n_boot=20)
    # p2 has no earlier spend: Bronze under the published rules (1 %) and the pilot's (4 %)
    assert (r.cost.pilot_orders, r.cost.points_published, r.cost.points_actual) == (1, 1, 4)


def test_results_report_progress_and_stop_when_cancelled(db):
    with db.begin() as s:
        sup, draft, ids = _program(s, 20)
        made = _create(s, sup, draft, member_ids=ids)
        _start(s, sup, made.pilot_id, now=START)
    seen: list[tuple[float, str]] = []
    with db.read() as s:
        pilots.pilot_results(s, made.pilot_id, START + dt.timedelta(days=5), n_boot=20,
                             progress=lambda f, m: seen.append((f, m)))
    fracs = [f for f, _ in seen]
    assert fracs == sorted(fracs) and fracs[0] < 0.1 and fracs[-1] == 1.0
    assert any("bootstrap" in m for _, m in seen) and len(seen) >= 6
    calls = []

    def cancelled() -> bool:
        calls.append(1)
        return len(calls) >= 3

    with db.read() as s, pytest.raises(Cancelled):
        pilots.pilot_results(s, made.pilot_id, START + dt.timedelta(days=5), n_boot=20,
                             progress=lambda f, m: seen.append((f, m)), cancelled=cancelled)
    assert len(calls) == 3


def test_results_warn_on_sample_ratio_mismatch(db):
    with db.begin() as s:
        sup, draft, ids = _program(s, 200)
        made = _create(s, sup, draft, member_ids=ids, pilot_share=50)
        _start(s, sup, made.pilot_id, now=START)
        # a broken assignment: most of the control group moved to the pilot group
        ctrl = list(s.scalars(select(PilotMember.member_id).where(PilotMember.grp == "control")))
        s.execute(update(PilotMember).where(PilotMember.member_id.in_(ctrl[:70]))
                  .values(grp="pilot"))
    with db.read() as s:
        r = pilots.pilot_results(s, made.pilot_id, START + dt.timedelta(days=20), n_boot=100)
    assert r.srm.mismatch and r.verdict_code == "srm"


def test_no_results_before_the_pilot_runs(db):
    with db.begin() as s:
        sup, draft, ids = _program(s, 6)
        made = _create(s, sup, draft, member_ids=ids)
        with pytest.raises(InvalidState, match="never ran"):
            pilots.pilot_results(s, made.pilot_id)


def test_power_preview_matches_the_formula(db):
    """Pre-period orders with a known spread: the preview is stats.required_sample
    and stats.power on the sd of the change between two pre windows."""
    with db.begin() as s:
        sup, draft, ids = _program(s, 40)
        ext = dict(s.execute(select(Member.id, Member.external_id)).all())
        plan = []
        for i, mid in enumerate(ids):
            plan.append((mid, START - dt.timedelta(days=45), 10_000 * (1 + i % 5)))
            plan.append((mid, START - dt.timedelta(days=15), 10_000 * (1 + (i * 3) % 5)))
        _orders(s, ext, plan)
        prev = pilots.power_preview(s, member_ids=ids, pilot_share=25, seed=1, start_at=START,
                                    planned_end_at=START + dt.timedelta(days=30),
                                    primary_metric="spend_per_member", min_effect="50",
                                    now=START)
    later = np.array([100 * (1 + (i * 3) % 5) for i in range(40)], dtype=float)
    earlier = np.array([100 * (1 + i % 5) for i in range(40)], dtype=float)
    sd_change = float(np.std(later - earlier, ddof=1))
    assert prev.sd == pytest.approx(float(np.std(later, ddof=1)))
    assert prev.sd_change == pytest.approx(sd_change)
    assert (prev.n_pilot, prev.n_control) == (10, 30)
    assert prev.required_total == stats.required_sample(sd_change, 50, 0.25)
    assert prev.power == pytest.approx(stats.power(sd_change, 50, 10, 30))
    assert "members are needed" in prev.sentence()


# ---------------------------------------------------------------- the demo pilot


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory, sqlite_template):
    """A demo program with a demo pilot that has a real effect (+40 % orders)."""
    import shutil

    from db import demo
    from db.session import Database

    path = tmp_path_factory.mktemp("demo") / "demo.sqlite3"
    shutil.copy(sqlite_template, path)
    d = Database(f"sqlite:///{path}")
    demo.seed(d, members=1500, seed=3, start=dt.datetime(2024, 1, 1), months=8, progress=False)
    report = demo.seed_demo_pilot(d, seed=3, effect=0.4, share_percent=40)
    yield d, report
    d.dispose()


def test_demo_pilot_is_consistent_and_finds_its_effect(demo_db):
    d, report = demo_db
    with d.read() as s:
        assert run_check(s).ok
        p = s.get(Pilot, report.pilot_id)
        assert p.status == "running"
        assert report.pilot_orders > 0
        # nothing of the pilot group inside the window was accrued under published rules
        stray = s.scalar(select(func.count()).select_from(ledger.Order).join(
            PilotMember, (PilotMember.member_id == ledger.Order.member_id)
            & (PilotMember.pilot_id == p.id) & (PilotMember.grp == "pilot"))
            .where(ledger.Order.paid_at >= p.start_at, ledger.Order.pilot_id.is_(None)))
        assert stray == 0
        r = pilots.pilot_results(s, report.pilot_id, n_boot=500)
    assert (r.start, r.end) == (report.start_at, report.data_until)
    orders = r.metric("orders_per_member")
    assert orders.welch.ci_low > 0 and orders.bootstrap.ci_low > 0 and orders.cuped.ci_low > 0
    assert r.verdict_code == "lift", r.verdict
    assert r.cost.extra_points > 0 and r.cost.revenue_per_point_minor is not None
    assert not r.srm.mismatch


def test_demo_results_match_plain_sql_and_the_ledger(demo_db):
    """The array program against the plain SQL definitions: per-member means
    (GROUP BY), the daily series (GROUP BY date), and the published-rules
    points - the demo's pilot rules are the published ones + 2 pp on every
    tier with the same thresholds, so each pilot order's published points
    follow from the rate its accrual entry recorded."""
    d, report = demo_db
    with d.read() as s:
        r = pilots.pilot_results(s, report.pilot_id, n_boot=50)
        pid = report.pilot_id
        paid = (ledger.Order.status == "paid", ledger.Order.paid_at >= r.pre_start,
                ledger.Order.paid_at < r.end)
        join = ((PilotMember.member_id == ledger.Order.member_id)
                & (PilotMember.pilot_id == pid))
        period = case((ledger.Order.paid_at < r.start, "pre"), else_="during")
        per = pd.DataFrame(s.execute(
            select(PilotMember.grp, period, func.sum(ledger.Order.amount_minor),
                   func.count()).join(PilotMember, join).where(*paid)
            .group_by(PilotMember.grp, period)).all(),
            columns=["grp", "period", "spend", "orders"]).set_index(["grp", "period"])
        day = pd.DataFrame(s.execute(
            select(PilotMember.grp, func.date(ledger.Order.paid_at), func.count(),
                   func.sum(ledger.Order.amount_minor)).join(PilotMember, join).where(*paid)
            .group_by(PilotMember.grp, func.date(ledger.Order.paid_at))).all(),
            columns=["group", "date", "orders", "spend_minor"])
        pv = r.cost.point_value_minor
        entries = s.execute(
            select(ledger.Order.amount_minor, LedgerEntry.rate_bp, LedgerEntry.amount)
            .join(LedgerEntry, (LedgerEntry.order_id == ledger.Order.id)
                  & (LedgerEntry.kind == "accrual"))
            .where(ledger.Order.pilot_id == pid, ledger.Order.status == "paid",
                   ledger.Order.paid_at >= r.start, ledger.Order.paid_at < r.end)).all()
    sizes = {"pilot": r.pilot.n_pilot, "control": r.pilot.n_control}
    spend = r.metric("spend_per_member")
    orders = r.metric("orders_per_member")
    for g, attr in (("pilot", "pilot"), ("control", "control")):
        for period in ("pre", "during"):
            want_spend = per.loc[(g, period), "spend"] / 100 / sizes[g]
            want_orders = per.loc[(g, period), "orders"] / sizes[g]
            assert getattr(spend, f"{attr}_{period}") == pytest.approx(want_spend)
            assert getattr(orders, f"{attr}_{period}") == pytest.approx(want_orders)
    got = r.daily[r.daily["orders"] > 0].assign(date=lambda x: x["date"].dt.strftime("%Y-%m-%d"))
    merged = got.merge(day, on=["group", "date"], how="outer", suffixes=("", "_sql"))
    assert len(merged) == len(day) and merged.notna().all().all()
    assert (merged["orders"] == merged["orders_sql"]).all()
    assert (merged["spend_minor"] == merged["spend_minor_sql"]).all()
    assert r.cost.pilot_orders == len(entries) > 0
    assert r.cost.points_actual == sum(a for _, _, a in entries)
    assert r.cost.points_published == sum(amt * (bp - 200) // (10_000 * pv)
                                          for amt, bp, _ in entries)


def test_no_effect_pilot_says_no_detectable_effect(tmp_path, sqlite_template):
    import shutil

    from db import demo
    from db.session import Database

    path = tmp_path / "noeffect.sqlite3"
    shutil.copy(sqlite_template, path)
    d = Database(f"sqlite:///{path}")
    try:
        demo.seed(d, members=800, seed=5, start=dt.datetime(2024, 1, 1), months=6,
                  progress=False)
        report = demo.seed_demo_pilot(d, seed=5, effect=0.0, share_percent=50)
        with d.read() as s:
            r = pilots.pilot_results(s, report.pilot_id, n_boot=500)
    finally:
        d.dispose()
    assert r.verdict_code in ("no_effect", "too_little_data"), r.verdict
