"""Order import from a shop's CSV export: all or nothing, in short batches.

File format (UTF-8, comma separated, header on line 1)::

    customer_id,order_id,paid_at,amount[,referrer_id][,points_redeemed]

- ``amount``: money actually paid (after points), in currency units with at
  most 2 decimals (``1234.50``; a decimal comma is accepted); parsed exactly
  into integer minor units - never through a float.
- ``paid_at``: ISO 8601 date or date-time; naive means UTC, an offset is
  converted to UTC.
- ``referrer_id``: the customer id of the member who referred this customer
  (a customer in the file or an existing member); used when the customer
  becomes a member, i.e. taken from their first order that names one.
- ``points_redeemed``: whole points spent on the order (default 0).

Why validate everything first: a half-imported file is the worst outcome for
whoever has to fix it, so one bad row means nothing is imported and the
error lists every bad row (line, column, reason). Only "not enough points" is
found while posting (it depends on the balance at that moment); it refuses
the whole import too.

Re-importing the same file changes nothing: an order id already in the
database with the same details is skipped and counted, with other details
it is a bad row.

How a big file goes in without holding the database (SQLite has one
writer): the file is read as a stream, ``batch_rows`` rows at a time, and
nothing below keeps all its rows in memory.

1. Each batch of rows that pass the row checks goes to the ``import_rows``
   staging table under a fresh import id, in its own short transaction
   (repeated order ids and orders already in the database are sorted out
   there, against the rows staged before).
2. The checks across rows (referrers, cycles, redemptions) are queries on
   the staged rows.
3. The orders are posted in payment order by :class:`db.bulk.BulkPoster` in
   staged mode, a batch per short transaction, into the ``import_*``
   mirrors of the program tables.
4. One final transaction copies the staged rows into the program tables
   (numbering them on SQLite) and applies the balance changes; only then is
   anything of the import visible. Then the staged rows are deleted, in
   batches.

Between two transactions any other writer (a login, an adjustment) gets the
database. A failure at any step, or a crash, changes no program data; what a
crash leaves staged is deleted by the next import once the import has been
idle for :data:`ABANDONED_AFTER` (or by :func:`discard_abandoned`).
What the import decided from the state it read at step 3 (balances, spend)
is applied as changes at step 4, so writers in between are not lost; if they
spent points the import counted on, the balance check refuses the whole
import at step 4 with a message to run it again.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import logging
import os
import re
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Literal

from sqlalchemy import (
    String,
    and_,
    any_,
    bindparam,
    case,
    delete,
    func,
    insert,
    or_,
    select,
    tuple_,
    union,
    update,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from db import clock
from db.actor import SYSTEM, Actor
from db.errors import InsufficientPoints, InvalidState, ValidationError
from db.ledger import MAX_AMOUNT_MINOR, MAX_POINTS, OrderIn, future_problem
from db.models import (
    STAGED,
    STAGED_BALANCES,
    STAGED_TIERS,
    Account,
    Base,
    ImportRow,
    ImportRun,
    Member,
    Order,
)
from db.session import Database

log = logging.getLogger(__name__)

REQUIRED_COLUMNS = ("customer_id", "order_id", "paid_at", "amount")
OPTIONAL_COLUMNS = ("referrer_id", "points_redeemed")
MAX_ID_LEN = 64
# any plausible past date: a shop may load history from the 1990s; an earlier
# year is a typo (0202 for 2020) or a zero date
EARLIEST = dt.datetime(1970, 1, 1)
QUERY_CHUNK = 5000
PG_QUERY_CHUNK = 50_000
MAX_PROBLEMS_IN_MESSAGE = 20
# rows per batch: per staging transaction, per posting transaction
BATCH_ROWS = int(os.environ.get("LOYALTY_IMPORT_BATCH_ROWS", "20000"))
ABANDONED_AFTER = dt.timedelta(hours=1)  # an import idle this long has crashed

_MONEY = re.compile(r"([+-]?)(\d+)(?:[.,](\d*))?")
_WHOLE = re.compile(r"([+-]?)(\d+)")


@dataclass(frozen=True)
class RowProblem:
    line: int  # as in the file: the header is line 1
    column: str
    message: str

    def __str__(self) -> str:
        return f"line {self.line}, {self.column}: {self.message}"


class OrderImportError(ValidationError):
    """The file was refused; ``problems`` lists every bad row. Nothing was imported."""

    def __init__(self, problems: list[RowProblem]) -> None:
        problems = sorted(problems, key=lambda p: (p.line, p.column))
        shown = "; ".join(map(str, problems[:MAX_PROBLEMS_IN_MESSAGE]))
        more = len(problems) - MAX_PROBLEMS_IN_MESSAGE
        if more > 0:
            shown += f"; ... and {more} more"
        lines = len({p.line for p in problems})
        super().__init__(
            "file", f"{lines} bad row{'s' if lines != 1 else ''}, nothing was imported: {shown}"
        )
        self.problems = problems


ImportRejected = OrderImportError  # the name the CLI catches


@dataclass
class ImportReport:
    rows: int = 0  # data rows read (blank lines not counted)
    imported: int = 0  # orders posted now
    skipped_existing: int = 0  # already in the database with the same details
    duplicates_in_file: int = 0  # repeated rows with the same details (posted once)
    members_created: int = 0
    member_orders: int = 0
    guest_orders: int = 0
    points_accrued: int = 0
    points_redeemed: int = 0
    referral_bonus: int = 0
    seconds: float = 0.0
    final_seconds: float = 0.0  # the one transaction that made the import visible
    warnings: list[str] = field(default_factory=list)

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0

    def __str__(self) -> str:
        text = (
            f"{self.rows:,} rows: {self.imported:,} orders imported ({self.member_orders:,} "
            f"member, {self.guest_orders:,} guest), {self.skipped_existing:,} already there, "
            f"{self.duplicates_in_file:,} repeated in the file; {self.members_created:,} new "
            f"members; {self.points_accrued:,} points accrued, {self.referral_bonus:,} referral "
            f"bonus, {self.points_redeemed:,} redeemed; {self.seconds:.1f} s "
            f"({self.rows_per_second:,.0f} rows/s)"
        )
        return "\n".join([text, *(f"warning: {w}" for w in self.warnings)])


# --------------------------------------------------------------------------
# field parsers: each returns the value or raises ValueError with the reason


def parse_amount_minor(text: str) -> int:
    """'1234.5' -> 123450; exact, non-negative, at most 2 decimals."""
    m = _MONEY.fullmatch(text)
    if m is None:
        low = text.lower().lstrip("+-")
        if low in ("nan", "inf", "infinity", "snan"):
            raise ValueError(f"{text!r} is not a finite number")
        try:
            float(text)
        except ValueError:
            raise ValueError(f"{text!r} is not a number (e.g. 1234.50)") from None
        raise ValueError(f"{text!r}: write the amount as plain digits, e.g. 1234.50")
    sign, whole, frac = m.groups()
    frac = (frac or "").rstrip("0")
    if sign == "-":
        raise ValueError("must not be negative")
    if len(frac) > 2:
        raise ValueError(f"{text!r} has more than 2 decimals")
    whole = whole.lstrip("0") or "0"
    if len(whole) > 16:
        raise ValueError(f"must be at most {MAX_AMOUNT_MINOR // 100:,}")
    minor = int(whole) * 100 + int((frac + "00")[:2])
    if minor > MAX_AMOUNT_MINOR:
        raise ValueError(f"must be at most {MAX_AMOUNT_MINOR // 100:,}")
    return minor


def parse_points(text: str) -> int:
    m = _WHOLE.fullmatch(text)
    if m is None:
        raise ValueError(f"{text!r} is not a whole number of points")
    if m.group(1) == "-":
        raise ValueError("must not be negative")
    digits = m.group(2).lstrip("0") or "0"
    if len(digits) > 13 or int(digits) > MAX_POINTS:
        raise ValueError(f"must be at most {MAX_POINTS:,}")
    return int(digits)


def parse_paid_at(text: str, now: dt.datetime) -> dt.datetime:
    """ISO date or date-time -> naive UTC."""
    try:
        t = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"{text!r} is not a date (use ISO 8601: 2025-03-01 or 2025-03-01T14:30:00+03:00)"
        ) from None
    if t.tzinfo is not None:
        t = t.astimezone(dt.UTC).replace(tzinfo=None)
    if t < EARLIEST:
        raise ValueError(f"{text!r} is before {EARLIEST:%Y-%m-%d}: check the year")
    if (why := future_problem(t, now)) is not None:
        raise ValueError(f"{text!r}: {why}")
    return t


# --------------------------------------------------------------------------
# reading


@dataclass(slots=True)
class _Row:
    line: int
    customer: str
    order_ref: str
    paid_at: dt.datetime
    amount_minor: int
    referrer: str | None
    points: int

    def order_in(self, points: int | None = None) -> OrderIn:
        return OrderIn(
            self.order_ref, self.customer, self.paid_at, self.amount_minor,
            self.points if points is None else points,
        )

    def content(self) -> tuple:
        return (self.customer, self.paid_at, self.amount_minor, self.referrer, self.points)


@contextmanager
def _open(source: str | os.PathLike | IO) -> Iterator[IO[str]]:
    if isinstance(source, str | os.PathLike):
        with open(Path(source), encoding="utf-8-sig", newline="") as f:
            yield f
        return
    if isinstance(source, io.TextIOBase) or hasattr(source, "encoding"):
        yield source
        return
    # a binary file object (an upload)
    wrapper = io.TextIOWrapper(source, encoding="utf-8-sig", newline="")
    try:
        yield wrapper
    finally:
        wrapper.detach()


def _parse_record(
    rec: list[str], line: int, cols: tuple, now: dt.datetime, problems: list[RowProblem]
) -> _Row | None:
    """One data row checked on its own: every problem of the row is recorded."""
    ic, io_, ip, ia, ir, ipr = cols
    n_before = len(problems)
    values: dict[str, str] = {}
    for idx, col in ((ic, "customer_id"), (io_, "order_id"), (ip, "paid_at"), (ia, "amount")):
        v = rec[idx].strip()
        if not v:
            problems.append(RowProblem(line, col, "is empty"))
        elif col in ("customer_id", "order_id") and len(v) > MAX_ID_LEN:
            problems.append(RowProblem(line, col, f"at most {MAX_ID_LEN} characters"))
        else:
            values[col] = v
    paid_at = amount = None
    if "paid_at" in values:
        try:
            paid_at = parse_paid_at(values["paid_at"], now)
        except ValueError as exc:
            problems.append(RowProblem(line, "paid_at", str(exc)))
    if "amount" in values:
        try:
            amount = parse_amount_minor(values["amount"])
        except ValueError as exc:
            problems.append(RowProblem(line, "amount", str(exc)))
    referrer = (rec[ir].strip() or None) if ir is not None else None
    if referrer is not None and len(referrer) > MAX_ID_LEN:
        problems.append(RowProblem(line, "referrer_id", f"at most {MAX_ID_LEN} characters"))
    points = 0
    if ipr is not None and (v := rec[ipr].strip()):
        try:
            points = parse_points(v)
        except ValueError as exc:
            problems.append(RowProblem(line, "points_redeemed", str(exc)))
    if len(problems) != n_before:
        return None
    return _Row(line, values["customer_id"], values["order_id"], paid_at, amount, referrer, points)



# --------------------------------------------------------------------------
# where the import's transactions come from


class _Target:
    """A :class:`Database`: a short transaction per batch. A caller's
    :class:`Session`: everything in that session (the caller commits)."""

    def __init__(self, target: Database | Session) -> None:
        self.db = target if isinstance(target, Database) else None
        self.session = None if self.db else target

    @contextmanager
    def write(self) -> Iterator[Session]:
        if self.db is None:
            yield self.session
            return
        with self.db.begin() as s:
            yield s

    @contextmanager
    def read(self) -> Iterator[Session]:
        if self.db is None:
            yield self.session
            return
        with self.db.read() as s:
            yield s



def _beat(s: Session, run_id: str) -> None:
    s.execute(update(ImportRun).where(ImportRun.id == run_id).values(heartbeat_at=clock.utcnow()))


# --------------------------------------------------------------------------
# 1. reading and staging


_STAGED_ROW_COLUMNS = ["import_id", "line", "state", "customer", "order_ref", "paid_at",
                       "amount_minor", "referrer", "points", "payload_hash"]
TO_POST, EXISTING, CONFLICT = 0, 1, 2


def _stage_chunk(
    tg: _Target, run_id: str, chunk: list[_Row], report: ImportReport,
    problems: list[RowProblem],
) -> None:
    """Stage rows that passed the row checks: the first row with an order id
    is kept (marked if the order is already in the database); a later one is a
    repeat (same details) or a bad row."""
    from db.bulk import write_rows

    R = ImportRow
    with tg.write() as s:
        _beat(s, run_id)
        refs = list({r.order_ref for r in chunk})
        first: dict[str, tuple[int, tuple]] = {}
        for cond in _matching(s, R.order_ref, refs):
            for line, ref, *content in s.execute(
                select(R.line, R.order_ref, R.customer, R.paid_at, R.amount_minor, R.referrer,
                       R.points).where(R.import_id == run_id, cond)
            ):
                first[ref] = (line, tuple(content))
        existing: dict[str, str] = {}
        for cond in _matching(s, Order.order_ref, [x for x in refs if x not in first]):
            q = select(Order.order_ref, Order.payload_hash).where(cond)
            existing.update((ref, h) for ref, h in s.execute(q))
        out = []
        for r in chunk:
            f = first.get(r.order_ref)
            if f is None:
                h = r.order_in().hash()
                had = existing.get(r.order_ref)
                state = TO_POST if had is None else EXISTING if had == h else CONFLICT
                if state == EXISTING:
                    report.skipped_existing += 1
                elif state == CONFLICT:
                    problems.append(RowProblem(
                        r.line, "order_id",
                        f"order {r.order_ref!r} was already imported with other details",
                    ))
                first[r.order_ref] = (r.line, r.content())
                out.append((run_id, r.line, state, r.customer, r.order_ref, r.paid_at,
                            r.amount_minor, r.referrer, r.points, h))
            elif f[1] == r.content():
                report.duplicates_in_file += 1
            else:
                problems.append(RowProblem(
                    r.line, "order_id",
                    f"order {r.order_ref!r} is already on line {f[0]} with other details",
                ))
        write_rows(s, R.__table__, _STAGED_ROW_COLUMNS, out)


def _read_and_stage(
    tg: _Target, run_id: str, source, now: dt.datetime, report: ImportReport,
    problems: list[RowProblem], batch_rows: int,
) -> None:
    """Parse and check each row on its own, streaming; stage the good ones."""
    with _open(source) as f:
        reader = csv.reader(f)
        try:
            header = next(reader, None)
        except (csv.Error, UnicodeDecodeError) as exc:
            raise OrderImportError([RowProblem(1, "header", f"unreadable: {exc}")]) from None
        if header is None:
            raise OrderImportError([RowProblem(1, "header", "the file is empty")])
        names = [h.strip().lstrip("\ufeff").lower() for h in header]
        hp: list[RowProblem] = []
        for i, n in enumerate(names):
            if not n:
                hp.append(RowProblem(1, f"column {i + 1}", "has no name"))
            elif n not in REQUIRED_COLUMNS + OPTIONAL_COLUMNS:
                hp.append(RowProblem(
                    1, n, "unknown column (expected "
                    + ", ".join(REQUIRED_COLUMNS + OPTIONAL_COLUMNS) + ")"))
            elif names.index(n) != i:
                hp.append(RowProblem(1, n, f"duplicate column (also column {names.index(n) + 1})"))
        for n in REQUIRED_COLUMNS:
            if n not in names:
                hp.append(RowProblem(1, n, "required column is missing"))
        if hp:
            raise OrderImportError(hp)
        width = len(names)
        cols = tuple(names.index(n) if n in names else None
                     for n in REQUIRED_COLUMNS + OPTIONAL_COLUMNS)

        chunk: list[_Row] = []
        last = reader.line_num
        while True:
            try:
                rec = next(reader)
            except StopIteration:
                break
            except (csv.Error, UnicodeDecodeError) as exc:
                problems.append(RowProblem(last + 1, "row", f"unreadable: {exc}"))
                break
            line, last = last + 1, reader.line_num
            if not rec or (len(rec) == 1 and not rec[0].strip()):
                continue  # blank line
            report.rows += 1
            if len(rec) != width:
                problems.append(
                    RowProblem(line, "row", f"has {len(rec)} fields, the header has {width}")
                )
                continue
            row = _parse_record(rec, line, cols, now, problems)
            if row is None:
                continue
            chunk.append(row)
            if len(chunk) >= batch_rows:
                _stage_chunk(tg, run_id, chunk, report, problems)
                chunk = []
        if chunk:
            _stage_chunk(tg, run_id, chunk, report, problems)


# --------------------------------------------------------------------------
# 2. checks across rows, on the staged rows


def _matching(s: Session, col, values: list[str]) -> Iterator:
    """``col IN values``, chunked. On PostgreSQL one array parameter per chunk:
    a list of 5,000 separate parameters is compared row by row (seconds per
    query on a big table), an array is hashed or uses the index."""
    if s.get_bind().dialect.name == "postgresql":
        for i in range(0, len(values), PG_QUERY_CHUNK):
            yield col == any_(bindparam(None, values[i : i + PG_QUERY_CHUNK],
                                        type_=postgresql.ARRAY(String)))
    else:
        for i in range(0, len(values), QUERY_CHUNK):
            yield col.in_(values[i : i + QUERY_CHUNK])


@dataclass
class _Plan:
    to_post: int  # staged rows to post
    since: dt.datetime | None  # the first payment time among them
    member_ids: dict[str, int]  # external id -> member id (existing members)
    new_layers: list[list[tuple[str, dt.datetime, str | None]]]  # referrers before referred
    prepare_ids: list[int]


def _to_post(run_id: str):
    return and_(ImportRow.import_id == run_id, ImportRow.state == TO_POST)


def _plan(
    s: Session,
    run_id: str,
    problems: list[RowProblem],
    report: ImportReport,
    unknown_customers: str,
) -> _Plan:
    R = ImportRow
    todo = _to_post(run_id)
    # members already in the database (customers and named referrers)
    names = union(
        select(R.customer).where(todo),
        select(R.referrer).where(todo, R.referrer.is_not(None)),
    ).subquery()
    members: dict[str, tuple[int, str, int | None]] = {}
    for mid, ext, status, ref in s.execute(
        select(Member.id, Member.external_id, Member.status, Member.referrer_id)
        .where(Member.external_id.in_(select(names.c[0])))
    ):
        members[ext] = (mid, status, ref)

    new: dict[str, list] = {}  # external id -> [joined_at, referrer, line naming it]
    guests = unknown_customers == "guests"
    posting_members: set[int] = set()
    n_posts, since = 0, None
    for customer, joined, n in s.execute(
        select(R.customer, func.min(R.paid_at), func.count()).where(todo).group_by(R.customer)
    ):
        n_posts += n
        since = joined if since is None or joined < since else since
        m = members.get(customer)
        if m is not None:
            posting_members.add(m[0])
        elif not guests:
            new[customer] = [joined, None, None]

    # only rows that redeem or name a referrer can be bad here; in payment order
    for line, customer, referrer, points in s.execute(
        select(R.line, R.customer, R.referrer, R.points)
        .where(todo, or_(R.points > 0, R.referrer.is_not(None)))
        .order_by(R.paid_at, R.line)
        .execution_options(yield_per=QUERY_CHUNK)
    ):
        m = members.get(customer)
        if points:
            if m is None and guests:
                problems.append(RowProblem(
                    line, "points_redeemed",
                    f"customer {customer!r} is not a member (a guest cannot redeem points)",
                ))
            elif m is not None and m[1] != "active":
                problems.append(RowProblem(
                    line, "points_redeemed",
                    f"member {customer!r} is {m[1]} and cannot redeem points",
                ))
        if referrer is None:
            continue
        if referrer == customer:
            problems.append(RowProblem(line, "referrer_id", "a customer cannot refer themselves"))
            continue
        if referrer not in members and referrer not in new:
            problems.append(RowProblem(
                line, "referrer_id",
                f"referrer {referrer!r} is neither a customer in this file "
                "nor an existing member",
            ))
            continue
        if m is None and guests:
            problems.append(RowProblem(
                line, "referrer_id",
                f"customer {customer!r} is not a member, so cannot have a referrer",
            ))
            continue
        if m is not None:
            ref = members.get(referrer)
            if ref is None or ref[0] != m[2]:
                report.warnings.append(
                    f"line {line}: {customer!r} is already a member; "
                    f"referrer {referrer!r} ignored (an import does not change referrers)"
                )
            continue
        entry = new[customer]
        if entry[1] is None:
            entry[1], entry[2] = referrer, line

    # new members in layers, referrers first; what never resolves is a cycle
    layers: list[list[tuple[str, dt.datetime, str | None]]] = []
    pending = new
    created: set[str] = set(members)
    while pending:
        layer = [
            (ext, v[0], v[1]) for ext, v in pending.items() if v[1] is None or v[1] in created
        ]
        if not layer:
            for ext, v in sorted(pending.items(), key=lambda kv: kv[1][2]):
                chain, cur = [ext], v[1]
                while cur in pending and cur not in chain:
                    chain.append(cur)
                    cur = pending[cur][1]
                chain.append(cur)
                problems.append(RowProblem(
                    v[2], "referrer_id", "referral cycle: " + " -> ".join(map(repr, chain))
                ))
            break
        layer.sort(key=lambda x: (x[1], x[0]))
        layers.append(layer)
        for ext, _, _ in layer:
            created.add(ext)
            del pending[ext]

    by_id = {v[0]: v for v in members.values()}
    prepare = posting_members | {
        by_id[m][2] for m in posting_members if by_id[m][2] is not None
    } | {members[ref][0] for layer in layers for _, _, ref in layer if ref in members}
    return _Plan(n_posts, since, {k: v[0] for k, v in members.items()}, layers, sorted(prepare))


# --------------------------------------------------------------------------
# 3. posting, into the staging mirrors


def _post(
    tg: _Target, run_id: str, plan: _Plan, report: ImportReport, actor: Actor,
    problems: list[RowProblem], batch_rows: int,
) -> None:
    from db.bulk import BulkPoster  # the bulk engine; imported late (optional at import)

    with tg.read() as s:
        poster = BulkPoster(s, actor=actor, stage=run_id)
        if plan.prepare_ids and plan.to_post:
            poster.prepare(plan.prepare_ids, plan.since)
    ids = dict(plan.member_ids)
    for layer in plan.new_layers:
        for start in range(0, len(layer), batch_rows):
            part = layer[start : start + batch_rows]
            with tg.write() as s:
                _beat(s, run_id)
                new_ids = poster.add_members([
                    {"external_id": ext, "joined_at": joined,
                     "referrer_id": ids[ref] if ref is not None else None}
                    for ext, joined, ref in part
                ], s)
            ids.update(zip((ext for ext, _, _ in part), new_ids, strict=True))
            report.members_created += len(new_ids)

    R = ImportRow
    after = None
    while True:
        q = (select(R.line, R.customer, R.order_ref, R.paid_at, R.amount_minor, R.points)
             .where(_to_post(run_id)).order_by(R.paid_at, R.line).limit(batch_rows))
        if after is not None:
            q = q.where(tuple_(R.paid_at, R.line) > tuple_(*after))
        with tg.read() as s:
            page = s.execute(q).all()
        if not page:
            break
        after = (page[-1].paid_at, page[-1].line)
        for line, customer, order_ref, paid_at, amount, points in page:
            mid = ids.get(customer)
            o = OrderIn(order_ref, customer, paid_at, amount, points)
            try:
                res = poster.post(o, mid)
            except ValidationError as exc:  # e.g. a date that became "future" for the poster
                problems.append(RowProblem(line, exc.field, exc.message))
                continue
            except InsufficientPoints:
                have = poster.balance_of(mid)
                problems.append(RowProblem(
                    line, "points_redeemed",
                    f"customer {customer!r} has {have} points at {paid_at:%Y-%m-%d %H:%M:%S}"
                    f", cannot redeem {points}",
                ))
                # go on without the redemption, to find every such row in one run
                res = poster.post(OrderIn(order_ref, customer, paid_at, amount, 0), mid)
            report.imported += 1
            if mid is None:
                report.guest_orders += 1
            else:
                report.member_orders += 1
                report.points_accrued += res.accrued
                report.points_redeemed += res.redeemed
                report.referral_bonus += res.referral_bonus
        if problems:
            poster.drop_buffered()  # refused anyway: keep looking, write nothing
            continue
        with tg.write() as s:
            _beat(s, run_id)
            poster.flush(s)
    if not problems:
        with tg.write() as s:
            poster.write_stage_state(s)


# --------------------------------------------------------------------------
# 4. the one transaction that makes the import visible

# staged column -> the program table its ids belong to
_REFERS = {
    ("members", "referrer_id"): "members",
    ("accounts", "member_id"): "members",
    ("orders", "member_id"): "members",
    ("ledger_transactions", "order_id"): "orders",
    ("ledger_entries", "tx_id"): "ledger_transactions",
    ("ledger_entries", "order_id"): "orders",
    ("ledger_entries", "debit_account_id"): "accounts",
    ("ledger_entries", "credit_account_id"): "accounts",
}


def _apply(tg: _Target, run_id: str, report: ImportReport) -> None:
    t0 = time.perf_counter()
    with tg.write() as s:
        claimed = s.execute(
            update(ImportRun)
            .where(ImportRun.id == run_id, ImportRun.status == "running")
            .values(status="applying", heartbeat_at=clock.utcnow())
        ).rowcount
        if claimed != 1:
            raise InvalidState("the import was discarded before it finished; nothing was "
                               "imported, import the file again")
        # SQLite: placeholders -1, -2, ... become max(id) + 1, + 2, ... (we hold the
        # write lock); PostgreSQL: staged ids are already sequence values
        sqlite = s.get_bind().dialect.name == "sqlite"
        base = {
            name: s.scalar(select(func.coalesce(func.max(Base.metadata.tables[name].c.id), 0)))
            if sqlite else 0
            for name in STAGED
        }

        def fix(col, table: str):
            return case((col < 0, base[table] - col), else_=col)

        try:
            for name, staged in STAGED.items():  # in foreign-key order
                cols = [c.name for c in staged.c if c.name != "import_id"]
                exprs = [
                    fix(staged.c[c], name) if c == "id"
                    else fix(staged.c[c], _REFERS[name, c]) if (name, c) in _REFERS
                    else staged.c[c]
                    for c in cols
                ]
                # in ascending final id (placeholders -1, -2, ... descend): appends
                key = staged.c.id.desc() if sqlite else staged.c.id
                s.execute(insert(Base.metadata.tables[name]).from_select(
                    cols, select(*exprs).where(staged.c.import_id == run_id).order_by(key)
                ))
            acc, b = Account.__table__, STAGED_BALANCES
            s.execute(
                update(acc)
                .where(b.c.import_id == run_id, acc.c.id == fix(b.c.account_id, "accounts"))
                .values(balance=acc.c.balance + b.c.delta)
            )
            m, t = Member.__table__, STAGED_TIERS
            s.execute(
                update(m)
                .where(t.c.import_id == run_id, m.c.id == fix(t.c.member_id, "members"))
                .values(tier=t.c.tier, tier_evaluated_at=t.c.tier_evaluated_at)
            )
            s.execute(update(ImportRun).where(ImportRun.id == run_id).values(status="applied"))
            s.flush()
        except IntegrityError as exc:
            why = str(exc.orig).strip().splitlines()[0]
            raise InvalidState(
                "the program changed while the file was being imported (another import, "
                f"or points spent meanwhile: {why}); nothing was imported, import the file "
                "again"
            ) from None
    report.final_seconds = time.perf_counter() - t0


# --------------------------------------------------------------------------
# 5. deleting staged rows


def _discard(tg: _Target, run_id: str) -> None:
    """Delete what an import staged, in short transactions (by key ranges)."""
    tables = [ImportRow.__table__, *STAGED.values(), STAGED_BALANCES, STAGED_TIERS]
    for t in tables:
        key = [c for c in t.primary_key.columns if c.name != "import_id"][0]
        mine = t.c.import_id == run_id
        while True:
            with tg.write() as s:
                if tg.db is None:
                    s.execute(delete(t).where(mine))
                    break
                cut = s.scalar(select(key).where(mine).order_by(key).offset(BATCH_ROWS).limit(1))
                s.execute(delete(t).where(mine, key < cut) if cut is not None
                          else delete(t).where(mine))
            if cut is None:
                break
    with tg.write() as s:
        s.execute(delete(ImportRun).where(ImportRun.id == run_id))


def discard_abandoned(db: Database, older_than: dt.timedelta = ABANDONED_AFTER) -> int:
    """Delete the staged rows of imports that crashed (idle ``older_than``), or
    that finished but did not get to clean up. Returns how many imports."""
    cutoff = clock.utcnow() - older_than
    gone = or_(ImportRun.status.in_(("applied", "failed", "discarding")),
               and_(ImportRun.status == "running", ImportRun.heartbeat_at < cutoff))
    with db.read() as s:
        candidates = list(s.scalars(select(ImportRun.id).where(gone)))
    done = 0
    for run_id in candidates:
        with db.begin() as s:  # claim it (an import still applying keeps it)
            claimed = s.execute(
                update(ImportRun).where(ImportRun.id == run_id, gone)
                .values(status="discarding")
            ).rowcount
        if claimed:
            _discard(_Target(db), run_id)
            done += 1
    return done


# --------------------------------------------------------------------------
# the service


def import_orders(
    db_or_session: Database | Session,
    path_or_fileobj: str | os.PathLike | IO,
    *,
    actor: Actor = SYSTEM,
    unknown_customers: Literal["members", "guests"] = "members",
    now: dt.datetime | None = None,
    batch_rows: int | None = None,
) -> ImportReport:
    """Import a CSV of paid orders; all or nothing.

    ``unknown_customers``: ``"members"`` (default) enrols a customer who is
    not yet a member, joined at their first order in the file; ``"guests"``
    posts their orders as guest (non-member) orders.
    With a :class:`Database`, the work goes in short transactions of
    ``batch_rows`` rows (default :data:`BATCH_ROWS`) and one final one; with a
    :class:`Session` it joins the caller's transaction (a failure undoes only
    the import's part).
    Raises :class:`OrderImportError` listing every bad row.
    """
    if unknown_customers not in ("members", "guests"):
        raise ValidationError("unknown_customers", "must be 'members' or 'guests'")
    batch = batch_rows or BATCH_ROWS
    if batch < 1:
        raise ValidationError("batch_rows", "must be at least 1")
    t0 = time.perf_counter()
    now = now or clock.utcnow()
    report = ImportReport()
    if isinstance(db_or_session, Session):
        with db_or_session.begin_nested():
            _run(_Target(db_or_session), path_or_fileobj, actor, unknown_customers, now,
                 report, batch)
    else:
        try:
            discard_abandoned(db_or_session)
        except Exception:  # noqa: BLE001 - tidying up must not stop an import
            log.exception("could not discard abandoned imports")
        _run(_Target(db_or_session), path_or_fileobj, actor, unknown_customers, now, report,
             batch)
    report.seconds = time.perf_counter() - t0
    return report


def _run(tg: _Target, source, actor: Actor, unknown_customers: str, now: dt.datetime,
         report: ImportReport, batch: int) -> None:
    run_id = uuid.uuid4().hex
    with tg.write() as s:
        s.execute(insert(ImportRun).values(
            id=run_id, actor=actor.name[:64], status="running", started_at=clock.utcnow(),
            heartbeat_at=clock.utcnow(),
        ))
    ok = False
    try:
        problems: list[RowProblem] = []
        _read_and_stage(tg, run_id, source, now, report, problems, batch)
        with tg.read() as s:
            plan = _plan(s, run_id, problems, report, unknown_customers)
        if problems:
            raise OrderImportError(problems)
        _post(tg, run_id, plan, report, actor, problems, batch)
        if problems:
            raise OrderImportError(problems)
        _apply(tg, run_id, report)
        ok = True
    finally:
        if tg.db is None:
            if ok:  # on failure the caller's savepoint takes it all back
                _discard(tg, run_id)
        else:
            try:
                if not ok:
                    with tg.write() as s:
                        s.execute(update(ImportRun).where(ImportRun.id == run_id)
                                  .values(status="failed"))
                _discard(tg, run_id)
            except Exception:  # noqa: BLE001 - the import's own outcome matters more
                log.exception("could not discard the staged rows of import %s", run_id)
