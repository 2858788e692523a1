"""Order import from a shop's CSV export: validate everything, then post all in one transaction.

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
found while posting (it depends on the balance at that moment); it rolls the
whole import back too.

Re-importing the same file changes nothing: an order id already in the
database with the same details is skipped and counted, with other details
it is a bad row.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Literal

from sqlalchemy import String, any_, bindparam, select
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session

from db.actor import SYSTEM, Actor
from db.errors import InsufficientPoints, ValidationError
from db.ledger import MAX_AMOUNT_MINOR, MAX_POINTS, OrderIn, future_problem
from db.models import Member, Order
from db.session import Database

REQUIRED_COLUMNS = ("customer_id", "order_id", "paid_at", "amount")
OPTIONAL_COLUMNS = ("referrer_id", "points_redeemed")
MAX_ID_LEN = 64
EARLIEST = dt.datetime(2000, 1, 1)
QUERY_CHUNK = 5000
PG_QUERY_CHUNK = 50_000
MAX_PROBLEMS_IN_MESSAGE = 20

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
        raise ValueError(f"{text!r} is before {EARLIEST:%Y-%m-%d}")
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


def _read(
    source, now: dt.datetime, report: ImportReport
) -> tuple[list[_Row], list[RowProblem]]:
    """Parse and check each row on its own, and order ids across the file."""
    problems: list[RowProblem] = []
    rows: list[_Row] = []
    seen: dict[str, _Row] = {}
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
            first = seen.get(row.order_ref)
            if first is None:
                seen[row.order_ref] = row
                rows.append(row)
            elif first.content() == row.content():
                report.duplicates_in_file += 1
            else:
                problems.append(RowProblem(
                    line, "order_id",
                    f"order {row.order_ref!r} is already on line {first.line} with other details",
                ))
    return rows, problems


# --------------------------------------------------------------------------
# checks against the database


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
    to_post: list[_Row]
    member_ids: dict[str, int]  # external id -> member id (existing members)
    new_layers: list[list[tuple[str, dt.datetime, str | None]]]  # referrers before referred
    prepare_ids: list[int]


def _plan(
    s: Session,
    rows: list[_Row],
    problems: list[RowProblem],
    report: ImportReport,
    unknown_customers: str,
) -> _Plan:
    # orders already in the database
    existing_hash: dict[str, str] = {}
    for cond in _matching(s, Order.order_ref, [r.order_ref for r in rows]):
        q = select(Order.order_ref, Order.payload_hash).where(cond)
        existing_hash.update((ref, h) for ref, h in s.execute(q))
    to_post: list[_Row] = []
    for r in rows:
        h = existing_hash.get(r.order_ref)
        if h is None:
            to_post.append(r)
        elif h == r.order_in().hash():
            report.skipped_existing += 1
        else:
            problems.append(RowProblem(
                r.line, "order_id",
                f"order {r.order_ref!r} was already imported with other details",
            ))

    # members already in the database (customers and named referrers)
    names = sorted({r.customer for r in to_post} | {r.referrer for r in to_post if r.referrer})
    members: dict[str, tuple[int, str, int | None]] = {}
    for cond in _matching(s, Member.external_id, names):
        for mid, ext, status, ref in s.execute(
            select(Member.id, Member.external_id, Member.status, Member.referrer_id).where(cond)
        ):
            members[ext] = (mid, status, ref)

    to_post.sort(key=lambda r: (r.paid_at, r.line))
    new: dict[str, list] = {}  # external id -> [joined_at, referrer, line naming it]
    guests = unknown_customers == "guests"
    for r in to_post:
        if r.customer not in members and not guests and r.customer not in new:
            new[r.customer] = [r.paid_at, None, None]
    for r in to_post:
        m = members.get(r.customer)
        if r.points:
            if m is None and guests:
                problems.append(RowProblem(
                    r.line, "points_redeemed",
                    f"customer {r.customer!r} is not a member (a guest cannot redeem points)",
                ))
            elif m is not None and m[1] != "active":
                problems.append(RowProblem(
                    r.line, "points_redeemed",
                    f"member {r.customer!r} is {m[1]} and cannot redeem points",
                ))
        if r.referrer is None:
            continue
        if r.referrer == r.customer:
            problems.append(RowProblem(r.line, "referrer_id", "a customer cannot refer themselves"))
            continue
        if r.referrer not in members and r.referrer not in new:
            problems.append(RowProblem(
                r.line, "referrer_id",
                f"referrer {r.referrer!r} is neither a customer in this file "
                "nor an existing member",
            ))
            continue
        if m is None and guests:
            problems.append(RowProblem(
                r.line, "referrer_id",
                f"customer {r.customer!r} is not a member, so cannot have a referrer",
            ))
            continue
        if m is not None:
            ref = members.get(r.referrer)
            if ref is None or ref[0] != m[2]:
                report.warnings.append(
                    f"line {r.line}: {r.customer!r} is already a member; "
                    f"referrer {r.referrer!r} ignored (an import does not change referrers)"
                )
            continue
        entry = new[r.customer]
        if entry[1] is None:
            entry[1], entry[2] = r.referrer, r.line

    # new members in layers, referrers first; what never resolves is a cycle
    layers: list[list[tuple[str, dt.datetime, str | None]]] = []
    pending = dict(new)
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

    posting_members = {members[r.customer][0] for r in to_post if r.customer in members}
    prepare = posting_members | {
        v[2] for ext, v in members.items() if v[0] in posting_members and v[2] is not None
    } | {members[v[1]][0] for v in new.values() if v[1] in members}
    return _Plan(to_post, {k: v[0] for k, v in members.items()}, layers, sorted(prepare))


# --------------------------------------------------------------------------
# the service


@contextmanager
def _transaction(target: Database | Session) -> Iterator[Session]:
    if isinstance(target, Database):
        with target.begin() as s:
            yield s
    else:  # join the caller's transaction; a failure undoes only our part
        with target.begin_nested():
            yield target


def import_orders(
    db_or_session: Database | Session,
    path_or_fileobj: str | os.PathLike | IO,
    *,
    actor: Actor = SYSTEM,
    unknown_customers: Literal["members", "guests"] = "members",
    now: dt.datetime | None = None,
) -> ImportReport:
    """Import a CSV of paid orders; all or nothing.

    ``unknown_customers``: ``"members"`` (default) enrols a customer who is
    not yet a member, joined at their first order in the file; ``"guests"``
    posts their orders as guest (non-member) orders.
    Raises :class:`OrderImportError` listing every bad row.
    """
    from db.bulk import BulkPoster  # the lead's bulk engine; imported late (optional at import)

    if unknown_customers not in ("members", "guests"):
        raise ValidationError("unknown_customers", "must be 'members' or 'guests'")
    t0 = time.perf_counter()
    now = now or dt.datetime.now(dt.UTC).replace(tzinfo=None)
    report = ImportReport()
    rows, problems = _read(path_or_fileobj, now, report)
    bad_lines = {p.line for p in problems}
    if bad_lines:
        # a row can't be checked against others whose order id clashed with a bad row
        rows = [r for r in rows if r.line not in bad_lines]
    with _transaction(db_or_session) as s:
        plan = _plan(s, rows, problems, report, unknown_customers)
        if problems:
            raise OrderImportError(problems)
        poster = BulkPoster(s, actor=actor)
        ids = dict(plan.member_ids)
        for layer in plan.new_layers:
            new_ids = poster.add_members([
                {"external_id": ext, "joined_at": joined,
                 "referrer_id": ids[ref] if ref is not None else None}
                for ext, joined, ref in layer
            ])
            ids.update(zip((ext for ext, _, _ in layer), new_ids, strict=True))
            report.members_created += len(new_ids)
        if plan.prepare_ids and plan.to_post:
            poster.prepare(plan.prepare_ids, plan.to_post[0].paid_at)
        for r in plan.to_post:
            mid = ids.get(r.customer)
            try:
                res = poster.post(r.order_in(), mid)
            except ValidationError as exc:  # e.g. a date that became "future" for the poster
                problems.append(RowProblem(r.line, exc.field, exc.message))
                continue
            except InsufficientPoints:
                have = poster.balance_of(mid)
                problems.append(RowProblem(
                    r.line, "points_redeemed",
                    f"customer {r.customer!r} has {have} points at {r.paid_at:%Y-%m-%d %H:%M:%S}"
                    f", cannot redeem {r.points}",
                ))
                # go on without the redemption, to find every such row in one run
                res = poster.post(r.order_in(points=0), mid)
            report.imported += 1
            if mid is None:
                report.guest_orders += 1
            else:
                report.member_orders += 1
                report.points_accrued += res.accrued
                report.points_redeemed += res.redeemed
                report.referral_bonus += res.referral_bonus
        if problems:
            raise OrderImportError(problems)
        poster.flush()
    report.seconds = time.perf_counter() - t0
    return report
