"""Time the pilots page's work for a pilot of 100,000 members.

Builds (or reuses, when ``--db`` already holds the benchmark pilot) a program
database with ``--members`` members in the pilot's population plus 20 %
outside it, a published rule version, a draft tried by the pilot, and
synthetic paid orders (about ``--orders-per-month`` per member) over a
60-day pre period and a 60-day pilot period; pilot-group orders in the
pilot period carry the pilot's id and an accrual entry at the pilot's rate
(what the engine would have written; bulk-inserted for speed, so this
database is for timing, not for ``loyalty check``). Then it times the
stratified assignment (``create_pilot``), the power preview, and
``pilot_results`` (per-member SQL aggregate, Welch + bootstrap + CUPED for
four metrics, SRM, points cost, daily series) plus the CSV export, and the
page's pure builders.

    .venv/bin/python benchmarks/bench_pilot_results.py                   # SQLite in /tmp
    .venv/bin/python benchmarks/bench_pilot_results.py --members 20000 --n-boot 2000
    .venv/bin/python benchmarks/bench_pilot_results.py --db postgresql+psycopg://postgres@127.0.0.1/benchpilot
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import subprocess
import sys
import time
import types
from pathlib import Path

import numpy as np
from sqlalchemy import func, insert, select

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from db import pilots, rule_review, rules, users  # noqa: E402
from db.actor import Actor  # noqa: E402
from db.migrate import upgrade  # noqa: E402
from db.models import (  # noqa: E402
    Account,
    LedgerEntry,
    LedgerTransaction,
    Member,
    Order,
    Pilot,
    PilotMember,
)
from db.pilots import power as power_parts  # noqa: E402
from db.pilots import results as pilot_parts  # noqa: E402
from db.session import Database  # noqa: E402

START = dt.datetime(2026, 9, 1)
DAYS = 60
NAME = "bench pilot"
TIERS = [
    {"name": "Bronze", "threshold": "0", "accrual_rate": "3", "referral_rate": "1"},
    {"name": "Silver", "threshold": "10000", "accrual_rate": "5", "referral_rate": "2"},
    {"name": "Gold", "threshold": "30000", "accrual_rate": "7", "referral_rate": "3"},
]
PILOT_TIERS = [dict(t, accrual_rate=str(int(t["accrual_rate"]) + 2)) for t in TIERS]
CHUNK = 50_000


def timed(label: str, fn, *args, **kwargs):
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    print(f"  {label:<52} {time.perf_counter() - t0:8.2f} s", flush=True)
    return out


def build(d: Database, n: int, per_month: float, seed: int) -> int:
    rng = np.random.default_rng(seed)
    total = int(n * 1.25)
    with d.begin() as s:
        author = users.create_user(s, "bench-author", "bench-password-1", "supervisor")
        approver = users.create_user(s, "bench-approver", "bench-password-1", "supervisor")
        a, b = Actor(author.username, author.id), Actor(approver.username, approver.id)
        pub = rules.create_draft(s, a, "Bench published", TIERS)
        rule_review.submit(s, a, pub)
        rules.approve(s, b, pub, START - dt.timedelta(days=400), allow_past=True)
        draft = rules.create_draft(s, a, "Bench pilot rules", PILOT_TIERS)
    print(f"building {total:,} members ...", flush=True)
    segments = np.where(np.arange(total) < n, "regular", "corporate")
    tiers = rng.choice(["Bronze", "Silver", "Gold"], total, p=[0.6, 0.3, 0.1])
    with d.begin() as s:
        for i in range(0, total, CHUNK):
            rows = [{"external_id": f"B{k:08d}", "joined_at": START - dt.timedelta(days=500),
                     "name": "", "segment": str(segments[k]), "status": "active",
                     "tier": str(tiers[k])} for k in range(i, min(total, i + CHUNK))]
            ids = s.execute(insert(Member).returning(Member.id, sort_by_parameter_order=True),
                            rows).scalars().all()
            s.execute(insert(Account), [{"kind": "member", "member_id": m, "balance": 0}
                                        for m in ids])
    with d.begin() as s:
        t0 = time.perf_counter()
        made = pilots.create_pilot(
            s, a, NAME, draft, population={"segments": ["regular"]}, pilot_share=50, seed=seed,
            start_at=START, planned_end_at=START + dt.timedelta(days=DAYS),
            primary_metric="spend_per_member", min_effect="50", now=START,
        )
        print(f"  create_pilot (eligible query, stratified draw, bulk insert of {n:,}) "
              f"{time.perf_counter() - t0:.2f} s", flush=True)
        pilots.request_start(s, a, made.pilot_id, now=START, allow_past=True)
        pilots.start_pilot(s, b, made.pilot_id, now=START, allow_past=True)
        grp = dict(s.execute(select(PilotMember.member_id, PilotMember.grp)
                             .where(PilotMember.pilot_id == made.pilot_id)).all())
        ids = np.array(sorted(s.scalars(select(Member.id))), dtype=np.int64)
    # orders: Poisson per member over pre + pilot periods; the pilot group buys 5 % more
    # in the pilot period
    lam = per_month * 2 * DAYS / 30
    is_pilot = np.array([grp.get(int(m)) == "pilot" for m in ids])
    counts = rng.poisson(lam, len(ids))
    extra = rng.poisson(lam / 2 * 0.05 * is_pilot)  # only in the pilot period
    who = np.concatenate([np.repeat(ids, counts), np.repeat(ids, extra)])
    t = np.concatenate([rng.integers(0, 2 * DAYS * 86_400, counts.sum()),
                        rng.integers(DAYS * 86_400, 2 * DAYS * 86_400, extra.sum())])
    amount = np.maximum(100, rng.lognormal(np.log(80_000), 0.55, len(who))).astype(np.int64)
    order = np.argsort(t, kind="stable")
    who, t, amount = who[order], t[order], amount[order]
    pilot_member = np.isin(who, ids[is_pilot])
    print(f"inserting {len(who):,} orders ...", flush=True)
    base = START - dt.timedelta(days=DAYS)
    with d.begin() as s:
        tx = s.execute(insert(LedgerTransaction).values(
            kind="bench", idempotency_key="bench", payload_hash="x", effective_at=START,
            actor="bench").returning(LedgerTransaction.id)).scalar_one()
        accs = dict(s.execute(select(Account.member_id, Account.id)
                              .where(Account.member_id.is_not(None))).all())
        pilot_rs = s.scalar(select(Pilot.rule_set_id).where(Pilot.id == made.pilot_id))
        next_id = (s.scalar(select(func.max(Order.id))) or 0) + 1
        for i in range(0, len(who), CHUNK):
            sl = slice(i, i + CHUNK)
            rows, entries = [], []
            for k, (m, sec, amt, pm) in enumerate(zip(who[sl].tolist(), t[sl].tolist(),
                                                      amount[sl].tolist(),
                                                      pilot_member[sl].tolist(), strict=True)):
                at = base + dt.timedelta(seconds=sec)
                in_pilot = pm and at >= START
                oid = next_id + i + k
                rows.append({"id": oid, "order_ref": f"BO{i + k:09d}", "customer_ref": "",
                             "member_id": m, "paid_at": at, "amount_minor": amt,
                             "points_redeemed": 0, "status": "paid",
                             "rule_set_id": pilot_rs if in_pilot else None, "tier": "Bronze",
                             "pilot_id": made.pilot_id if in_pilot else None,
                             "payload_hash": "x", "created_at": at})
                if in_pilot:
                    entries.append({"tx_id": tx, "kind": "accrual", "debit_account_id": 1,
                                    "credit_account_id": accs[m],
                                    "amount": max(1, amt * 500 // 1_000_000), "effective_at": at,
                                    "order_id": oid, "rule_set_id": pilot_rs, "rate_bp": 500,
                                    "memo": ""})
            # plain executemany (no RETURNING): the drivers' fast path
            s.connection().execute(Order.__table__.insert(), rows)
            if entries:
                s.connection().execute(LedgerEntry.__table__.insert(), entries)
    return made.pilot_id


def load_at(ref: str) -> types.ModuleType:
    """The pilot results code as it was at a git commit, as a module of its own:
    db/pilots.py before the package split, db/pilots/results.py after it (its
    imports of the other db.pilots modules take today's)."""
    root = Path(__file__).resolve().parents[1]
    for path in ("db/pilots/results.py", "db/pilots.py"):
        done = subprocess.run(["git", "show", f"{ref}:{path}"], cwd=root,
                              capture_output=True, text=True)
        if done.returncode == 0:
            break
    else:
        sys.exit(f"no pilot results code at {ref}")
    mod = types.ModuleType(f"pilots_at_{ref}")
    sys.modules[mod.__name__] = mod  # dataclasses look their module up
    exec(compile(done.stdout, f"{ref}:{path}", "exec"), mod.__dict__)
    return mod


def compare(d: Database, before: Database, pid: int, ref: str, rounds: int,
            n_boot: int | None) -> None:
    """Old and new pilot_results alternately on the same data, same process:
    on a shared, loaded machine the ratio means more than either figure."""
    old = load_at(ref)
    as_of = START + dt.timedelta(days=DAYS)
    times: dict[str, list[float]] = {"before": [], "after": []}
    results = {}
    print(f"\npilot_results at {ref} (before) vs the working tree (after), "
          f"{rounds} round(s), alternating:")
    for k in range(rounds):
        runs = (("before", old, before), ("after", pilots, d))
        for label, mod, db in runs[:: 1 if k % 2 == 0 else -1]:
            with db.read() as s:
                t0 = time.perf_counter()
                results[label] = mod.pilot_results(s, pid, as_of, n_boot=n_boot)
                took = time.perf_counter() - t0
            times[label].append(took)
            print(f"  round {k + 1} {label:<6} {took:8.2f} s", flush=True)
    b, a = min(times["before"]), min(times["after"])
    print(f"  best of {rounds}: before {b:.2f} s, after {a:.2f} s, ratio {b / a:.2f}x")
    rb, ra = results["before"], results["after"]

    def daily(r) -> list:
        x = r.daily.assign(date=r.daily["date"].dt.strftime("%Y-%m-%d"))
        return sorted(map(tuple, x.astype(str).to_numpy().tolist()))

    checks = {
        "verdict": rb.verdict_code == ra.verdict_code,
        "Welch of every metric": all(
            np.allclose([x.welch.lift, x.welch.ci_low, x.welch.ci_high],
                        [y.welch.lift, y.welch.ci_low, y.welch.ci_high], rtol=1e-9)
            for x, y in zip(rb.metrics, ra.metrics, strict=True)),
        "daily series": daily(rb) == daily(ra),
        # the two runs' PointsCost are classes of two modules: compare the values
        "points cost": dataclasses.astuple(rb.cost) == dataclasses.astuple(ra.cost),
    }
    print("  same results: " + ", ".join(f"{k} {v}" for k, v in checks.items()))
    if not checks["points cost"]:
        print(f"  points cost before: {rb.cost}\n  points cost after:  {ra.cost}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db", default="sqlite:////tmp/bench_pilot_results.sqlite3")
    ap.add_argument("--members", type=int, default=100_000, help="members in the pilot")
    ap.add_argument("--orders-per-month", type=float, default=1.5)
    ap.add_argument("--n-boot", type=int, default=None,
                    help="bootstrap resamples (default: the service's choice by group size)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--compare", metavar="GIT_REF", default=None,
                    help="also time pilot_results as it was at this git commit, "
                         "alternating with the current one in the same run")
    ap.add_argument("--rounds", type=int, default=2, help="rounds of the --compare timing")
    ap.add_argument("--before-db", default=None,
                    help="database for the --compare 'before' runs (e.g. a copy without "
                         "the indexes added since); default: --db")
    args = ap.parse_args()
    d = Database(args.db)
    upgrade(d.engine)
    with d.read() as s:
        pid = s.scalar(select(Pilot.id).where(Pilot.name == NAME))
    if pid is None:
        t0 = time.perf_counter()
        pid = build(d, args.members, args.orders_per_month, args.seed)
        print(f"built in {time.perf_counter() - t0:.1f} s", flush=True)
    with d.read() as s:
        n_orders = s.scalar(select(func.count()).select_from(Order))
        info = pilots.pilot_info(s, pid)
    print(f"\n{d.dialect}: pilot #{pid}: {info.n_pilot:,} pilot + {info.n_control:,} control "
          f"members, {n_orders:,} orders in the database; bootstrap "
          f"{args.n_boot or pilots.bootstrap_resamples(info.n_pilot, info.n_control)} resamples")
    with d.read() as s:
        timed("pilot_power (pre-period sd, sample size, power)", pilots.pilot_power, s, pid,
              now=START)
        r = timed("pilot_results (all metrics, 3 methods, cost, daily)", pilots.pilot_results,
                  s, pid, START + dt.timedelta(days=DAYS), n_boot=args.n_boot)
        timed("pilot_results without bootstrap (n_boot=2)", pilots.pilot_results, s, pid,
              START + dt.timedelta(days=DAYS), n_boot=2)
        timed("results_csv", pilots.results_csv, r)
    if args.compare:
        before = Database(args.before_db) if args.before_db else d
        compare(d, before, pid, args.compare, args.rounds, args.n_boot)
    from pages import pilots as pv

    timed("results_view (pure builders: table, tiles, 2 figures)", pv.results_view, r)
    print(f"\nverdict: {r.verdict}")
    print(f"extra points {r.cost.extra_points:,} on {r.cost.pilot_orders:,} pilot orders")
    # the parts of pilot_results, for where the time goes
    with d.read() as s:
        p = s.get(Pilot, pid)
        end = START + dt.timedelta(days=DAYS)
        pre_start = START - dt.timedelta(days=DAYS)
        groups = power_parts.pilot_groups(s, pid)
        po = timed("  part: the pilot's orders + accrual (pilot index)", pilot_parts._pilot_orders,
                   s, p, START, end)
        back = po.lookback_days
        t0 = pre_start if back is None else min(pre_start, START - dt.timedelta(days=back))
        w = timed("  part: both groups' window orders (one read)", pilot_parts._window_orders, s,
                  pid, groups, t0, pre_start, START, end)
        timed("  part: per-member totals from the arrays", pilot_parts._member_arrays,
              groups[["member_id", "grp"]], w)
        timed("  part: points cost (published-rules recompute)", pilot_parts._points_cost, s, pid,
              po, w, t0)
        timed("  part: daily series from the arrays", pilot_parts._daily_arrays, w, pre_start, end,
              START, {"pilot": info.n_pilot, "control": info.n_control})
    m = r.metric("spend_per_member")
    from db import stats

    pre = np.zeros(info.n_pilot)
    timed("  part: one did_bootstrap at this size", stats.did_bootstrap, pre, pre,
          np.zeros(info.n_control), np.zeros(info.n_control),
          n_boot=args.n_boot or pilots.bootstrap_resamples(info.n_pilot, info.n_control))
    print(f"spend lift {m.welch.lift:+.2f} (Welch), {m.bootstrap.lift:+.2f} (bootstrap), "
          f"{m.cuped.lift:+.2f} (CUPED)")
    d.dispose()


if __name__ == "__main__":
    main()
