"""Pilot inputs: the population filter, pilot share, minimum effect and an
uploaded member list, parsed with a clear message per bad field; the labels
and limits the pilot pages and services share."""

from __future__ import annotations

import csv
import datetime as dt
import io
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.errors import ValidationError, too_large
from db.models import SEGMENTS, Member

BP = 10_000
MAX_CSV_ROWS = 1_000_000
MAX_CSV_PROBLEMS = 50
MAX_PILOT_DAYS = 366
ADVISORY_LOCK_KEY = 70_007  # PostgreSQL advisory lock serialising pilot assignment
NO_TIER = "(no tier)"

SEGMENT_LABELS = {
    "regular": "Regular", "student": "Students", "pensioner": "Pensioners",
    "large_family": "Large families", "corporate": "Corporate",
}
METRIC_LABELS = {
    "spend_per_member": "Spend per member",
    "orders_per_member": "Orders per member",
    "average_check": "Average check",
    "active_rate": "Active rate",
}
# what one unit of each metric is ("money" = the program currency)
METRIC_UNITS = {
    "spend_per_member": "money",
    "orders_per_member": "orders",
    "average_check": "money",
    "active_rate": "share of members",
}


# --------------------------------------------------------------------------
# input parsing


@dataclass(frozen=True)
class PopulationFilter:
    """Who may take part; empty lists mean "any"."""

    segments: tuple[str, ...] = ()
    tiers: tuple[str, ...] = ()
    joined_from: dt.date | None = None
    joined_to: dt.date | None = None  # inclusive
    active_within_days: int | None = None  # a paid order in the N days before the draw

    def as_dict(self) -> dict[str, Any]:
        return {
            "segments": list(self.segments),
            "tiers": list(self.tiers),
            "joined_from": self.joined_from.isoformat() if self.joined_from else None,
            "joined_to": self.joined_to.isoformat() if self.joined_to else None,
            "active_within_days": self.active_within_days,
        }

    def describe(self) -> str:
        parts = []
        if self.segments:
            parts.append("segments " + ", ".join(
                SEGMENT_LABELS.get(x, x).lower() for x in self.segments))
        if self.tiers:
            parts.append("tiers " + ", ".join(self.tiers))
        if self.joined_from or self.joined_to:
            parts.append(f"joined {self.joined_from or '…'} to {self.joined_to or '…'}")
        if self.active_within_days:
            parts.append(f"ordered in the last {self.active_within_days} days")
        return "; ".join(parts) or "all active members"


def _date(value: Any, fld: str) -> dt.date | None:
    if value in (None, ""):
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value)[:10])
    except ValueError:
        raise ValidationError(fld, "must be a date like 2025-01-31") from None


def parse_population(raw: dict[str, Any] | PopulationFilter | None) -> PopulationFilter:
    """Validate a population filter from the form (or pass one through)."""
    if isinstance(raw, PopulationFilter):
        return raw
    raw = raw or {}
    segments = tuple(raw.get("segments") or ())
    bad = [x for x in segments if x not in SEGMENTS]
    if bad:
        raise ValidationError("segments", "choose the segments from the list")
    tiers = tuple(str(t) for t in raw.get("tiers") or ())
    jf, jt = _date(raw.get("joined_from"), "joined_from"), _date(raw.get("joined_to"), "joined_to")
    if jf and jt and jf > jt:
        raise ValidationError("joined_from", "the join date range starts after it ends")
    days = raw.get("active_within_days")
    if days in (None, ""):
        days = None
    else:
        try:
            days = int(days)
        except (TypeError, ValueError):
            raise ValidationError("active_within_days", "must be a whole number of days") from None
        if days > 3660:
            raise ValidationError("active_within_days", too_large("3,660 days"))
        if days < 1:
            raise ValidationError("active_within_days", "must be 1 to 3,660 days")
    return PopulationFilter(segments, tiers, jf, jt, days)


def parse_share_bp(value: Any) -> int:
    """'20' / 20 / '20 %' (percent of the population in the pilot group) -> 2000 bp."""
    if isinstance(value, bool):
        raise ValidationError("pilot_share", "must be a percentage such as 50")
    try:
        d = Decimal(str(value).strip().rstrip("%").strip().replace(",", "."))
    except (InvalidOperation, AttributeError):
        raise ValidationError("pilot_share", "must be a percentage such as 50") from None
    if d.is_finite() and d > 99:
        raise ValidationError("pilot_share", too_large("99 %") + " (1 to 99 %)")
    if not d.is_finite() or not Decimal("1") <= d <= Decimal("99"):
        raise ValidationError("pilot_share", "must be between 1 and 99 %")
    bp = d * 100
    if bp != bp.to_integral_value():
        raise ValidationError("pilot_share", "at most 2 decimals")
    return int(bp)


def parse_min_effect(value: Any, metric: str) -> Decimal:
    """The smallest lift worth detecting, in the metric's unit (> 0)."""
    try:
        d = Decimal(str(value).strip().replace(",", "."))
    except (InvalidOperation, AttributeError):
        raise ValidationError("min_effect", "must be a positive number") from None
    if not d.is_finite() or d <= 0:
        raise ValidationError("min_effect", "must be a positive number")
    if metric == "active_rate" and d >= 1:
        raise ValidationError("min_effect", "the active rate is a share: give e.g. 0.02 for 2 pp")
    if d > Decimal(10) ** 9:
        raise ValidationError("min_effect", too_large("1,000,000,000"))
    return d


@dataclass(frozen=True)
class CsvProblem:
    line: int  # 1-based line in the file
    value: str
    reason: str

    def __str__(self) -> str:
        shown = self.value if len(self.value) <= 40 else self.value[:37] + "..."
        return f"line {self.line}: {shown!r}: {self.reason}"


class MemberFileError(ValidationError):
    """An uploaded member list with bad lines; nothing is created."""

    def __init__(self, problems: list[CsvProblem], total: int | None = None) -> None:
        total = len(problems) if total is None else total
        more = f" (and {total - len(problems)} more)" if total > len(problems) else ""
        super().__init__(
            "member_file",
            f"{total} bad line(s){more}: " + "; ".join(str(p) for p in problems[:5]),
        )
        self.problems = problems
        self.total = total


def parse_member_csv(s: Session, content: str | bytes) -> list[int]:
    """Member ids from an uploaded file: one column ``member_id`` (numbers) or
    ``customer_id`` (the shop's ids); the header is optional (without one,
    the values are member ids). Every bad line is named; any bad line means
    the whole file is refused."""
    if isinstance(content, bytes):
        try:
            content = content.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise MemberFileError([CsvProblem(1, "", "the file is not UTF-8 text")]) from None
    content = content.lstrip("\ufeff")
    rows = list(csv.reader(io.StringIO(content)))
    problems: list[CsvProblem] = []
    total_bad = 0

    def bad(line: int, value: str, reason: str) -> None:
        nonlocal total_bad
        total_bad += 1
        if len(problems) < MAX_CSV_PROBLEMS:
            problems.append(CsvProblem(line, value, reason))

    lines = [(i + 1, r) for i, r in enumerate(rows) if any(c.strip() for c in r)]
    if not lines:
        raise MemberFileError([CsvProblem(1, "", "the file has no member ids")])
    kind = "member_id"
    first_line, first = lines[0]
    head = first[0].strip().lower() if first else ""
    if head in ("member_id", "customer_id"):
        kind = head
        if len([c for c in first if c.strip()]) > 1:
            bad(first_line, ",".join(first), "expected one column (member_id or customer_id)")
        lines = lines[1:]
    if not lines:
        raise MemberFileError([CsvProblem(first_line, head, "the file has no member ids")])
    if len(lines) > MAX_CSV_ROWS:
        raise MemberFileError(
            [CsvProblem(lines[MAX_CSV_ROWS][0], "", f"more than {MAX_CSV_ROWS:,} lines")]
        )
    values: list[tuple[int, str]] = []
    for line, row in lines:
        cells = [c.strip() for c in row]
        if len([c for c in cells if c]) > 1:
            bad(line, ",".join(row), "expected one value per line")
            continue
        values.append((line, next(c for c in cells if c)))
    wanted: list[tuple[int, str, Any]] = []
    for line, v in values:
        if kind == "member_id":
            if not v.isdigit() or len(v) > 18:
                bad(line, v, "not a number (expected a member id)")
                continue
            wanted.append((line, v, int(v)))
        else:
            if len(v) > 64:
                bad(line, v, "customer id longer than 64 characters")
                continue
            wanted.append((line, v, v))
    keys = sorted({k for _, _, k in wanted})
    found: dict[Any, int] = {}
    col = Member.id if kind == "member_id" else Member.external_id
    for start in range(0, len(keys), 5000):
        chunk = keys[start : start + 5000]
        for mid, key in s.execute(select(Member.id, col).where(col.in_(chunk))):
            found[key] = mid
    seen: dict[int, int] = {}
    ids: list[int] = []
    for line, v, k in wanted:
        mid = found.get(k)
        if mid is None:
            bad(line, v, "unknown member")
        elif mid in seen:
            bad(line, v, f"duplicate of line {seen[mid]}")
        else:
            seen[mid] = line
            ids.append(mid)
    if total_bad:
        raise MemberFileError(sorted(problems, key=lambda p: p.line), total_bad)
    return ids
