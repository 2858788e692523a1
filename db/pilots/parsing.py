"""Pilot inputs: the population filter, pilot share, minimum effect and an
uploaded member list, parsed with a clear message per bad field; the labels
and limits the pilot pages and services share."""

from __future__ import annotations

import csv
import datetime as dt
import io
import math
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.errors import ValidationError, too_large
from db.i18n import N_
from db.models import SEGMENTS, Member

BP = 10_000
MAX_CSV_ROWS = 1_000_000
MAX_CSV_PROBLEMS = 50
MAX_PILOT_DAYS = 366
ADVISORY_LOCK_KEY = 70_007  # PostgreSQL advisory lock serialising pilot assignment
NO_TIER = "(no tier)"

SEGMENT_LABELS = {
    "regular": N_("Regular"), "student": N_("Students"), "pensioner": N_("Pensioners"),
    "large_family": N_("Large families"), "corporate": N_("Corporate"),
}
METRIC_LABELS = {
    "spend_per_member": N_("Spend per member"),
    "orders_per_member": N_("Orders per member"),
    "average_check": N_("Average check"),
    "active_rate": N_("Active rate"),
}
# the same, inside a sentence ("no clear effect on spend per member")
METRIC_NAMES = {
    "spend_per_member": N_("spend per member"),
    "orders_per_member": N_("orders per member"),
    "average_check": N_("average check"),
    "active_rate": N_("active rate"),
}
# what one unit of each metric is ("money" = the program currency)
METRIC_UNITS = {
    "spend_per_member": "money",
    "orders_per_member": "orders",
    "average_check": "money",
    "active_rate": "share of members",
}


def metric_text(metric: str, x: float | None, currency: str, *, signed: bool = False) -> str:
    """A metric value (or lift) in its unit: money with the program currency
    ("+1,234.50 RUB"), orders ("0.125 orders"), a share in percent (points
    when signed: a lift is "+2.0 pp")."""
    if x is None or not math.isfinite(x):
        return "–"
    sign = "+" if signed else ""
    unit = METRIC_UNITS[metric]
    if unit == "money":
        return f"{x:{sign},.2f} {currency}".strip()
    if unit == "orders":
        return f"{x:{sign},.3f} orders"
    return f"{x * 100:{sign},.1f} pp" if signed else f"{x * 100:,.1f} %"


def min_effect_text(metric: str, min_effect: Decimal | str | float, currency: str) -> str:
    """The minimum effect in the metric's unit (a share's is in points)."""
    try:
        x = float(min_effect)
    except (TypeError, ValueError):
        return N_("not set")
    if not x:
        return N_("not set")
    if METRIC_UNITS[metric] == "share of members":
        return f"{x * 100:,.1f} pp"
    return metric_text(metric, x, currency)


class Figure(str):
    """A number inside a message (a param of ``N_``): the English text, plus
    what the web layer needs to show it in the user's language - ``value``
    with a format ``spec`` (",d", "+,.2f", ".1%", ".3g"), or, with ``metric``,
    a value in that metric's unit (``currency``; ``signed`` for a lift;
    ``effect`` for a minimum effect, a share's in percentage points)."""

    value: float
    spec: str
    metric: str | None
    currency: str
    signed: bool
    effect: bool

    def __new__(cls, value: float, spec: str = "", *, metric: str | None = None,
                currency: str = "", signed: bool = False, effect: bool = False) -> Figure:
        if metric is None:
            text = format(value, spec)
        elif effect:
            text = min_effect_text(metric, value, currency)
        else:
            text = metric_text(metric, value, currency, signed=signed)
        obj = super().__new__(cls, text)
        obj.value, obj.spec, obj.metric = value, spec, metric
        obj.currency, obj.signed, obj.effect = currency, signed, effect
        return obj

    def __reduce__(self) -> tuple[Any, ...]:
        return (_figure, (self.value, self.spec, self.metric, self.currency, self.signed,
                          self.effect))


def _figure(value: float, spec: str, metric: str | None, currency: str, signed: bool,
            effect: bool) -> Figure:
    return Figure(value, spec, metric=metric, currency=currency, signed=signed, effect=effect)



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

    def describe(self, label: Callable[[Any], str] = str) -> str:
        """Who the filter takes, in words; ``label`` shows each marked part
        (``N_``) in the reader's language (the web layer passes one), by
        default in English."""
        parts = []
        if self.segments:
            parts.append(label(N_("segments %(list)s", list=", ".join(
                label(SEGMENT_LABELS.get(x, x)).lower() for x in self.segments))))
        if self.tiers:
            parts.append(label(N_("tiers %(list)s", list=", ".join(self.tiers))))
        if self.joined_from or self.joined_to:
            parts.append(label(N_("joined %(start)s to %(end)s", start=self.joined_from or "…",
                                  end=self.joined_to or "…")))
        if self.active_within_days:
            parts.append(label(N_("ordered in the last %(n)s days", n=self.active_within_days)))
        return "; ".join(parts) or label(N_("all active members"))


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
        raise ValidationError(fld, N_("must be a date like %(example)s",
                                      example="2025-01-31")) from None


def parse_population(raw: dict[str, Any] | PopulationFilter | None) -> PopulationFilter:
    """Validate a population filter from the form (or pass one through)."""
    if isinstance(raw, PopulationFilter):
        return raw
    raw = raw or {}
    segments = tuple(raw.get("segments") or ())
    bad = [x for x in segments if x not in SEGMENTS]
    if bad:
        raise ValidationError("segments", N_("choose the segments from the list"))
    tiers = tuple(str(t) for t in raw.get("tiers") or ())
    jf, jt = _date(raw.get("joined_from"), "joined_from"), _date(raw.get("joined_to"), "joined_to")
    if jf and jt and jf > jt:
        raise ValidationError("joined_from", N_("the join date range starts after it ends"))
    days = raw.get("active_within_days")
    if days in (None, ""):
        days = None
    else:
        try:
            days = int(days)
        except (TypeError, ValueError):
            raise ValidationError("active_within_days",
                                  N_("must be a whole number of days")) from None
        if days > 3660:
            raise ValidationError("active_within_days", too_large(N_("3,660 days")))
        if days < 1:
            raise ValidationError("active_within_days", N_("must be 1 to 3,660 days"))
    return PopulationFilter(segments, tiers, jf, jt, days)


def parse_share_bp(value: Any) -> int:
    """'20' / 20 / '20 %' (percent of the population in the pilot group) -> 2000 bp."""
    if isinstance(value, bool):
        raise ValidationError("pilot_share", N_("must be a percentage such as 50"))
    try:
        d = Decimal(str(value).strip().rstrip("%").strip().replace(",", "."))
    except (InvalidOperation, AttributeError):
        raise ValidationError("pilot_share", N_("must be a percentage such as 50")) from None
    if d.is_finite() and d > 99:
        raise ValidationError("pilot_share",
                              N_("%(problem)s (1 to 99 %%)", problem=too_large("99 %")))
    if not d.is_finite() or not Decimal("1") <= d <= Decimal("99"):
        raise ValidationError("pilot_share", N_("must be between 1 and 99 %"))
    bp = d * 100
    if bp != bp.to_integral_value():
        raise ValidationError("pilot_share", N_("at most 2 decimals"))
    return int(bp)


def parse_min_effect(value: Any, metric: str) -> Decimal:
    """The smallest lift worth detecting, in the metric's unit (> 0)."""
    try:
        d = Decimal(str(value).strip().replace(",", "."))
    except (InvalidOperation, AttributeError):
        raise ValidationError("min_effect", N_("must be a positive number")) from None
    if not d.is_finite() or d <= 0:
        raise ValidationError("min_effect", N_("must be a positive number"))
    if metric == "active_rate" and d >= 1:
        raise ValidationError("min_effect",
                              N_("the active rate is a share: give e.g. 0.02 for 2 pp"))
    if d > Decimal(10) ** 9:
        raise ValidationError("min_effect", too_large("1,000,000,000"))
    return d


@dataclass(frozen=True)
class CsvProblem:
    line: int  # 1-based line in the file
    value: str
    reason: str  # marked with N_: the web layer shows it in the user's language

    @property
    def shown(self) -> str:
        """The line's value as the message shows it (long values cut)."""
        return self.value if len(self.value) <= 40 else self.value[:37] + "..."

    def __str__(self) -> str:
        return f"line {self.line}: {self.shown!r}: {self.reason}"


class MemberFileError(ValidationError):
    """An uploaded member list with bad lines; nothing is created."""

    def __init__(self, problems: list[CsvProblem], total: int | None = None) -> None:
        total = len(problems) if total is None else total
        more = N_(" (and %(n)s more)", n=total - len(problems)) if total > len(problems) else ""
        super().__init__(
            "member_file",
            N_("%(total)s bad line(s)%(more)s: %(lines)s", total=total, more=more,
               lines="; ".join(str(p) for p in problems[:5])),
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
            raise MemberFileError([CsvProblem(1, "", N_("the file is not UTF-8 text"))]) from None
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
        raise MemberFileError([CsvProblem(1, "", N_("the file has no member ids"))])
    kind = "member_id"
    first_line, first = lines[0]
    head = first[0].strip().lower() if first else ""
    if head in ("member_id", "customer_id"):
        kind = head
        if len([c for c in first if c.strip()]) > 1:
            bad(first_line, ",".join(first), N_("expected one column (member_id or customer_id)"))
        lines = lines[1:]
    if not lines:
        raise MemberFileError([CsvProblem(first_line, head, N_("the file has no member ids"))])
    if len(lines) > MAX_CSV_ROWS:
        raise MemberFileError(
            [CsvProblem(lines[MAX_CSV_ROWS][0], "", N_("more than %(n)s lines", n=MAX_CSV_ROWS))]
        )
    values: list[tuple[int, str]] = []
    for line, row in lines:
        cells = [c.strip() for c in row]
        if len([c for c in cells if c]) > 1:
            bad(line, ",".join(row), N_("expected one value per line"))
            continue
        values.append((line, next(c for c in cells if c)))
    wanted: list[tuple[int, str, Any]] = []
    for line, v in values:
        if kind == "member_id":
            if not v.isdigit() or len(v) > 18:
                bad(line, v, N_("not a number (expected a member id)"))
                continue
            wanted.append((line, v, int(v)))
        else:
            if len(v) > 64:
                bad(line, v, N_("customer id longer than 64 characters"))
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
            bad(line, v, N_("unknown member"))
        elif mid in seen:
            bad(line, v, N_("duplicate of line %(line)s", line=seen[mid]))
        else:
            seen[mid] = line
            ids.append(mid)
    if total_bad:
        raise MemberFileError(sorted(problems, key=lambda p: p.line), total_bad)
    return ids
