"""Simulate a draft rule set on the real membership before publishing it.

Set-based: the orders of the period (and, for lifetime spend, one aggregate
per member of everything before it) are read once; qualifying spend at any
moment is a prefix-sum lookup found with ``numpy.searchsorted`` over keys
``(member, time)``; tiers are ``searchsorted`` over the thresholds; points are
integer numpy arithmetic - the same ``floor(amount x rate / point value)`` as
the engine. No per-member Python loop.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sqlalchemy import BigInteger, Connection, Select, case, cast, extract, func, literal, select
from sqlalchemy.orm import Session

from db import clock
from db.errors import LoyaltyError, ValidationError
from db.i18n import N_
from db.models import LedgerEntry, Member, Order
from db.rules import BP, Rules, get_rules, rules_in_force

Progress = Callable[[float, str], None]
MS_PER_DAY = 86_400_000
# keys are member rank x 2^40 + milliseconds since the origin: 34 years of
# history for up to 8M members inside an int64
_STRIDE = np.int64(1 << 40)


class Cancelled(LoyaltyError):
    pass


@dataclass(frozen=True)
class SimulationResult:
    as_of: dt.datetime
    days: int
    current: Rules
    draft: Rules
    members: int
    orders: int
    # rows: current tier, columns: draft tier, values: member counts
    matrix: pd.DataFrame
    # by the accrual rate each member earns at today, in force vs draft: a
    # member who stays in a tier whose rate changes counts here, though the
    # matrix puts them in a tier of the same name (see tier_changes)
    moved_up: int
    moved_down: int
    unchanged: int
    # members whose tier under the draft has another name than now: the cells
    # of the matrix off its diagonal
    tier_changed: int
    points: dict  # accrual/referral: actual, current (recomputed), draft
    liability_change_minor: int  # (draft - current) points x draft point value
    by_segment: pd.DataFrame
    by_day: pd.DataFrame  # date, current_points, draft_points


_EPOCH = dt.datetime(1970, 1, 1)


def to_epoch_ms(t: dt.datetime) -> int:
    """Milliseconds since 1970 of a naive UTC datetime, rounded as SQL does below."""
    return round((t - _EPOCH) / dt.timedelta(milliseconds=1))


def epoch_ms(col, s: Session):
    """SQL: the column as integer milliseconds since 1970 (no datetime objects
    built per row in Python, which dominates reading millions of orders)."""
    if s.get_bind().dialect.name == "postgresql":
        return cast(func.round(extract("epoch", col) * 1000), BigInteger)
    return cast(func.round((func.julianday(col) - 2440587.5) * 86_400_000.0), BigInteger)


class SpendIndex:
    """Qualifying spend of any member at any time, by prefix sums.

    The loaded orders are sorted by key ``(member rank, time)``; ``prefix``
    holds running sums in that order and ``starts[r]:starts[r + 1]`` is member
    rank ``r``'s run of orders, so a member's spend between two moments is a
    difference of two prefix sums found by binary search. For the loaded
    orders themselves (:meth:`own_before`) and for "now" (:meth:`totals`) the
    upper end needs no search, and the lower end of a rolling window is
    searched with queries in key order.
    """

    def __init__(self, universe: np.ndarray, member: np.ndarray, t_ms: np.ndarray,
                 amount: np.ndarray,
                 base: dict[int, int] | tuple[np.ndarray, np.ndarray] | None) -> None:
        self.universe = np.sort(universe)  # every member id, for dense ranks
        rank = self.rank(member)
        order = np.lexsort((t_ms, rank))
        self.order = order
        self.sorted_rank = rank[order]
        self.keys = self.sorted_rank * _STRIDE + t_ms[order]
        self.prefix = np.concatenate([[0], np.cumsum(amount[order], dtype=np.int64)])
        self.starts = np.searchsorted(
            self.sorted_rank, np.arange(len(self.universe) + 1, dtype=np.int64), side="left")
        # lifetime spend before the loaded orders, by member rank
        self.base = None
        if base is not None:
            if isinstance(base, dict):
                base = (np.fromiter(base.keys(), np.int64, len(base)),
                        np.fromiter(base.values(), np.int64, len(base)))
            self.base = np.zeros(len(self.universe) + 1, dtype=np.int64)
            if len(base[0]):
                self.base[self.rank(base[0])] = base[1]

    def rank(self, member: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.universe, member).astype(np.int64)

    def before(self, member: np.ndarray, t_ms: np.ndarray, window_ms: int | None) -> np.ndarray:
        """Sum of paid orders with time in [t - window, t) (lifetime: [-inf, t) + base)."""
        return self.before_rank(self.rank(member), t_ms, window_ms)

    def before_rank(self, rank: np.ndarray, t_ms: np.ndarray, window_ms: int | None
                    ) -> np.ndarray:
        """:meth:`before` for members given by rank."""
        hi = np.searchsorted(self.keys, rank * _STRIDE + t_ms, side="left")
        return self._spend(rank, hi, t_ms, window_ms)

    def own_before(self, window_ms: int | None) -> np.ndarray:
        """For each loaded order (in the order given): its member's spend before it."""
        keys = self.keys
        n = len(keys)
        # the first position of each run of equal keys: orders of one member at
        # the same moment do not count towards each other (as with side="left")
        pos = np.arange(n, dtype=np.int64)
        if n:
            new_key = np.empty(n, dtype=bool)
            new_key[0] = True
            np.not_equal(keys[1:], keys[:-1], out=new_key[1:])
            pos = np.maximum.accumulate(np.where(new_key, pos, 0))
        t_sorted = keys - self.sorted_rank * _STRIDE
        spend_sorted = self._spend(self.sorted_rank, pos, t_sorted, window_ms)
        out = np.empty(n, dtype=np.int64)
        out[self.order] = spend_sorted
        return out

    def totals(self, now_ms: int, window_ms: int | None) -> np.ndarray:
        """Every member's spend before ``now_ms`` (later than every loaded order), by rank."""
        rank = np.arange(len(self.universe), dtype=np.int64)
        hi = self.starts[1:]
        return self._spend(rank, hi, np.full(len(rank), now_ms, dtype=np.int64), window_ms)

    def _spend(self, rank: np.ndarray, hi: np.ndarray, t_ms: np.ndarray,
               window_ms: int | None) -> np.ndarray:
        if window_ms:
            # queries in key order (own_before, totals) keep the search cache-friendly
            lo = np.searchsorted(
                self.keys, rank * _STRIDE + np.maximum(t_ms - window_ms, 0), side="left"
            )
            return self.prefix[hi] - self.prefix[lo]
        spend = self.prefix[hi] - self.prefix[self.starts[rank]]
        if self.base is not None:
            spend = spend + self.base[rank]
        return spend


def _sum_by(codes: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    """Exact integer sums of ``values`` per code 0..n-1 (bincount would go through floats)."""
    sums = pd.Series(values, dtype=np.int64).groupby(codes).sum()
    return sums.reindex(range(n), fill_value=0).to_numpy(dtype=np.int64)


def tier_changes(matrix: pd.DataFrame) -> int:
    """Members the migration matrix puts in a tier of another name under the
    draft (off its diagonal; with no tier names in common, every member)."""
    return int(sum(int(matrix.iat[i, j]) for i, a in enumerate(matrix.index)
                   for j, b in enumerate(matrix.columns) if str(a) != str(b)))


def tier_ranks(rules: Rules, spend: np.ndarray) -> np.ndarray:
    """Index of the tier each spend reaches (thresholds are sorted; below the first: 0)."""
    thresholds = np.array([t.threshold_minor for t in rules.tiers], dtype=np.int64)
    return np.maximum(np.searchsorted(thresholds, spend, side="right") - 1, 0)


def rate_points(rules: Rules, amount: np.ndarray, rank: np.ndarray, referral: bool
                ) -> np.ndarray:
    """Points for each amount at its tier's rate: the engine's integer floor."""
    rates = np.array(
        [t.referral_rate_bp if referral else t.accrual_rate_bp for t in rules.tiers],
        dtype=np.int64,
    )
    return (amount * rates[rank]) // (BP * rules.point_value_minor)



def int_rows(conn: Connection, stmt: Select, columns: int) -> np.ndarray:
    """The result as an ``(n, columns)`` int64 array, read through the DBAPI
    cursor in chunks: no Row object per row, and the Python tuples of one
    chunk at a time only."""
    result = conn.execute(stmt)
    chunks = []
    try:
        while rows := result.cursor.fetchmany(100_000):
            chunks.append(np.array(rows, dtype=np.int64).reshape(len(rows), columns))
    finally:
        result.close()
    return np.concatenate(chunks) if chunks else np.zeros((0, columns), dtype=np.int64)


def simulate(
    s: Session,
    draft_id: int,
    *,
    days: int = 90,
    as_of: dt.datetime | None = None,
    progress: Progress | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> SimulationResult:
    """What the draft would have done over the last ``days`` days, and where
    it puts every member today, against the rules in force."""
    if not isinstance(days, int) or not 1 <= days <= 3660:
        raise ValidationError("days", N_("must be 1 to %(most)s days", most=3660))
    as_of = as_of or clock.utcnow()
    current = rules_in_force(s, as_of)
    if current is None:
        raise LoyaltyError(N_("no published rule version is in force yet: nothing to compare with"))
    draft = get_rules(s, draft_id)
    if not draft.tiers:
        raise ValidationError("tiers", N_("the draft has no tiers"))

    def step(frac: float, msg: str) -> None:
        if cancelled is not None and cancelled():
            raise Cancelled(N_("simulation cancelled"))
        if progress is not None:
            progress(frac, msg)

    start = as_of - dt.timedelta(days=days)
    windows = [r.tier_window_days for r in (current, draft)]
    lookback = start - dt.timedelta(days=max(w or 0 for w in windows))
    lifetime = any(w is None for w in windows)

    step(0.05, N_("reading members"))
    conn = s.connection()
    # segments travel as small integer codes: no Python string per member
    seg_names = sorted(conn.scalars(select(Member.segment).distinct()).all())
    seg_code = case({name: i for i, name in enumerate(seg_names)}, value=Member.segment,
                    else_=-1) if seg_names else literal(-1)
    # as the engine: an inactive member earns nothing, an inactive referrer no bonus
    active = case((Member.status == "active", 1), else_=0)
    m = int_rows(conn, (
        select(Member.id, seg_code, func.coalesce(Member.referrer_id, 0), active)
        .order_by(Member.id)
    ), 4)
    all_ids, member_seg, member_referrer = m[:, 0].copy(), m[:, 1].copy(), m[:, 2].copy()
    member_active = m[:, 3].astype(bool)
    del m
    if (member_seg < 0).any():  # a segment first written between the two reads
        member_seg[member_seg < 0] = len(seg_names)
        seg_names.append(N_("(new segment)"))
    step(0.2, N_("reading orders"))
    origin_ms = to_epoch_ms(lookback - dt.timedelta(days=1))
    o = int_rows(conn, (
        select(Order.member_id, epoch_ms(Order.paid_at, s), Order.amount_minor)
        .where(Order.paid_at >= lookback, Order.paid_at < as_of,
               Order.status == "paid", Order.member_id.is_not(None))
    ), 3)
    # under READ COMMITTED (PostgreSQL) each statement has its own snapshot: an
    # order of a member who joined after the members were read is left out
    at = np.minimum(np.searchsorted(all_ids, o[:, 0]), max(len(all_ids) - 1, 0))
    known = all_ids[at] == o[:, 0] if len(all_ids) else np.zeros(len(o), dtype=bool)
    if not known.all():
        o = o[known]
    m_ids, t_ms, amount = o[:, 0].copy(), o[:, 1] - origin_ms, o[:, 2].copy()
    del o, known, at
    base = None
    if lifetime:
        step(0.35, N_("summing earlier spend"))
        b = int_rows(conn, (
            select(Order.member_id, func.sum(Order.amount_minor))
            .where(Order.member_id.is_not(None), Order.status == "paid",
                   Order.paid_at < lookback)
            .group_by(Order.member_id)
        ), 2)
        base = (b[:, 0].copy(), b[:, 1].copy())
        del b
    step(0.5, N_("computing tiers"))
    idx = SpendIndex(all_ids, m_ids, t_ms, amount, base)

    def window_ms(r: Rules) -> int | None:
        return r.tier_window_days * MS_PER_DAY if r.tier_window_days else None

    # -- members today -----------------------------------------------------
    # members are read in id order, so a member's row is its rank in the index
    now_ms = to_epoch_ms(as_of) - origin_ms
    names_cur = [t.name for t in current.tiers]
    names_new = [t.name for t in draft.tiers]
    rank_cur = tier_ranks(current, idx.totals(now_ms, window_ms(current)))
    rank_new = tier_ranks(draft, idx.totals(now_ms, window_ms(draft)))
    # up/down: by the accrual rate a member earns at, the thing they feel
    rate_cur = np.array([t.accrual_rate_bp for t in current.tiers])[rank_cur]
    rate_new = np.array([t.accrual_rate_bp for t in draft.tiers])[rank_new]
    move = np.sign(rate_new - rate_cur)
    cells = np.bincount(rank_cur * len(names_new) + rank_new,
                        minlength=len(names_cur) * len(names_new))
    matrix = pd.DataFrame(
        cells.reshape(len(names_cur), len(names_new)),
        index=pd.CategoricalIndex(names_cur, categories=names_cur, name="tier_current"),
        columns=pd.CategoricalIndex(names_new, categories=names_new, name="tier_draft"),
    )

    step(0.7, N_("recomputing points"))
    # -- orders of the period ---------------------------------------------
    in_period = t_ms >= to_epoch_ms(start) - origin_ms
    p_mem = m_ids[in_period]
    p_t = t_ms[in_period]
    p_amt = amount[in_period]
    p_rank = idx.rank(p_mem)
    p_ref = member_referrer[p_rank]  # 0: no referrer
    p_active = member_active[p_rank]
    has_ref = p_ref > 0
    has_ref[has_ref] = member_active[idx.rank(p_ref[has_ref])]
    ref_rank = idx.rank(p_ref[has_ref])
    ref_t = p_t[has_ref]
    ref_amt = p_amt[has_ref]

    def points_under(r: Rules) -> tuple[np.ndarray, np.ndarray]:
        rank = tier_ranks(r, idx.own_before(window_ms(r))[in_period])
        acc = np.where(p_active, rate_points(r, p_amt, rank, referral=False), 0)
        ref = np.zeros(len(p_amt), dtype=np.int64)
        rrank = tier_ranks(r, idx.before_rank(ref_rank, ref_t, window_ms(r)))
        ref[has_ref] = rate_points(r, ref_amt, rrank, referral=True)
        return acc, ref

    acc_cur, ref_cur = points_under(current)
    acc_new, ref_new = points_under(draft)
    step(0.85, N_("comparing with the ledger"))
    actual = dict(
        s.execute(
            select(LedgerEntry.kind, func.sum(LedgerEntry.amount))
            .where(LedgerEntry.kind.in_(("accrual", "referral_bonus")),
                   LedgerEntry.effective_at >= start, LedgerEntry.effective_at < as_of)
            .group_by(LedgerEntry.kind)
        ).all()
    )
    points = {
        "accrual": {"actual": int(actual.get("accrual", 0)), "current": int(acc_cur.sum()),
                    "draft": int(acc_new.sum())},
        "referral": {"actual": int(actual.get("referral_bonus", 0)),
                     "current": int(ref_cur.sum()), "draft": int(ref_new.sum())},
    }
    delta_points = (points["accrual"]["draft"] + points["referral"]["draft"]) - (
        points["accrual"]["current"] + points["referral"]["current"]
    )

    # -- per segment ------------------------------------------------------
    n_seg = len(seg_names)
    p_seg = member_seg[p_rank]
    by_segment = pd.DataFrame({
        "segment": pd.Categorical(seg_names),
        "members": np.bincount(member_seg, minlength=n_seg),
        "moved_up": np.bincount(member_seg[move > 0], minlength=n_seg),
        "moved_down": np.bincount(member_seg[move < 0], minlength=n_seg),
        "points_current": _sum_by(p_seg, acc_cur, n_seg),
        "points_draft": _sum_by(p_seg, acc_new, n_seg),
    })
    by_segment["points_change"] = by_segment["points_draft"] - by_segment["points_current"]

    day = ((p_t + origin_ms) // MS_PER_DAY).astype("datetime64[D]")
    by_day = (
        pd.DataFrame({"date": day, "current_points": acc_cur + ref_cur,
                      "draft_points": acc_new + ref_new})
        .groupby("date", as_index=False).sum()
    )
    step(1.0, N_("done"))
    return SimulationResult(
        as_of=as_of,
        days=days,
        current=current,
        draft=draft,
        members=len(all_ids),
        orders=int(in_period.sum()),
        matrix=matrix,
        moved_up=int((move > 0).sum()),
        moved_down=int((move < 0).sum()),
        unchanged=int((move == 0).sum()),
        tier_changed=tier_changes(matrix),
        points=points,
        liability_change_minor=int(delta_points * draft.point_value_minor),
        by_segment=by_segment,
        by_day=by_day,
    )
