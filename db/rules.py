"""Tier rule sets: validation, the version in force, and the approval workflow.

A rule set is a version: draft -> pending -> published (with an effective
time) or rejected. Published versions are never edited; a change is a new
draft (``based_on_id`` names its origin, which is also how rollback works).
The version in force at time ``t`` is the published one with the latest
``effective_at <= t``; pilots override it for their pilot-group members.
"""

from __future__ import annotations

import bisect
import datetime as dt
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from sqlalchemy import select
from sqlalchemy.orm import Session

from db import audit, clock
from db.actor import Actor
from db.errors import Forbidden, InvalidState, NotFound, ValidationError, too_large
from db.i18n import N_
from db.models import Order, Pilot, PilotMember, RuleSet, Tier
from db.text import MAX_COMMENT, MAX_REASON, check_length, length_problem

MAX_TIERS = 12
MAX_THRESHOLD_MINOR = 10**15  # 10 trillion units: beyond any real spend
MAX_POINT_VALUE_MINOR = 10**9
MAX_WINDOW_DAYS = 3660
BP = 10_000  # basis points in 100 %


@dataclass(frozen=True)
class TierRule:
    name: str
    threshold_minor: int
    accrual_rate_bp: int
    referral_rate_bp: int


@dataclass(frozen=True)
class Rules:
    """One rule version, as the engine applies it."""

    rule_set_id: int
    name: str
    point_value_minor: int
    tier_window_days: int | None
    tiers: tuple[TierRule, ...]
    _thresholds: tuple[int, ...] = field(default=(), compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_thresholds", tuple(t.threshold_minor for t in self.tiers))

    def tier_for(self, spend_minor: int) -> TierRule:
        """The highest tier whose threshold the qualifying spend reaches."""
        i = bisect.bisect_right(self._thresholds, spend_minor) - 1
        return self.tiers[max(i, 0)]

    def points_for(self, amount_minor: int, rate_bp: int) -> int:
        """floor(amount x rate / point value), in exact integer arithmetic."""
        return (amount_minor * rate_bp) // (BP * self.point_value_minor)


def rules_from_rows(rs: RuleSet) -> Rules:
    return Rules(
        rule_set_id=rs.id,
        name=rs.name,
        point_value_minor=rs.point_value_minor,
        tier_window_days=rs.tier_window_days,
        tiers=tuple(
            TierRule(t.name, t.threshold_minor, t.accrual_rate_bp, t.referral_rate_bp)
            for t in sorted(rs.tiers, key=lambda t: t.position)
        ),
    )


@dataclass
class PilotWindow:
    pilot_id: int
    start_at: dt.datetime
    end_at: dt.datetime  # exclusive: ended_at, else planned end
    rules: Rules


@dataclass
class RuleBook:
    """Every published version plus the pilots' overrides, loaded once.

    Resolution is pure and in memory, so the bulk poster and the single-order
    path make the same choice.
    """

    published: list[tuple[dt.datetime, int, Rules]]
    pilot_of_member: dict[int, list[PilotWindow]]

    def published_at(self, at: dt.datetime) -> Rules | None:
        i = bisect.bisect_right(self.published, (at, math.inf)) - 1
        return self.published[i][2] if i >= 0 else None

    def for_member(self, member_id: int | None, at: dt.datetime) -> tuple[Rules | None, int | None]:
        """(rules, pilot_id) that apply to this member's order paid at ``at``."""
        for w in self.pilot_of_member.get(member_id, ()) if member_id is not None else ():
            if w.start_at <= at < w.end_at:
                return w.rules, w.pilot_id
        return self.published_at(at), None

    @property
    def max_window_days(self) -> int | None:
        days = [r.tier_window_days for _, _, r in self.published if r.tier_window_days]
        days += [
            w.rules.tier_window_days
            for ws in self.pilot_of_member.values()
            for w in ws
            if w.rules.tier_window_days
        ]
        return max(days) if days else None


RULEBOOK_CACHE = "loyalty_rulebook_cache"


def cache_rulebook(s: Session) -> Session:
    """Let ``load_rulebook`` read the published versions and pilots once for
    the whole of ``s`` (many orders posted in one transaction that changes no
    rules: the API's batch)."""
    s.info[RULEBOOK_CACHE] = {}
    return s


def load_rulebook(s: Session, member_ids: Iterable[int] | None = None) -> RuleBook:
    """Load published versions and the pilot windows (for ``member_ids``, or all)."""
    cache = s.info.get(RULEBOOK_CACHE)
    if cache:
        published, pilots = cache["published"], cache["pilots"]
    else:
        published = []
        for rs in s.scalars(
            select(RuleSet).where(RuleSet.status == "published").order_by(RuleSet.effective_at)
        ):
            published.append((rs.effective_at, rs.id, rules_from_rows(rs)))
        published.sort(key=lambda x: (x[0], x[1]))
        pilots = {
            p.id: p
            for p in s.scalars(select(Pilot).where(Pilot.status.in_(("running", "ended"))))
        }
        if cache is not None:
            cache.update(published=published, pilots=pilots)
    pilot_of_member: dict[int, list[PilotWindow]] = {}
    if pilots:
        rules_cache: dict[int, Rules] = {}
        q = select(PilotMember.pilot_id, PilotMember.member_id).where(
            PilotMember.pilot_id.in_(pilots), PilotMember.grp == "pilot"
        )
        if member_ids is not None:
            ids = list(member_ids)
            q = q.where(PilotMember.member_id.in_(ids)) if len(ids) < 30_000 else q
        for pilot_id, member_id in s.execute(q):
            p = pilots[pilot_id]
            if p.rule_set_id not in rules_cache:
                rules_cache[p.rule_set_id] = rules_from_rows(s.get(RuleSet, p.rule_set_id))
            end = min(p.planned_end_at, p.ended_at) if p.ended_at else p.planned_end_at
            pilot_of_member.setdefault(member_id, []).append(
                PilotWindow(pilot_id, p.start_at, end, rules_cache[p.rule_set_id])
            )
    return RuleBook(published, pilot_of_member)


# --------------------------------------------------------------------------
# validation


@dataclass(frozen=True)
class Problem:
    row: int | None  # 0-based tier row, None for the rule set itself
    field: str
    message: str

    def __str__(self) -> str:
        where = f"tier {self.row + 1}, " if self.row is not None else ""
        return f"{where}{FIELD_LABELS.get(self.field, self.field)}: {self.message}"


# how each field is named to a user (never the internal name)
FIELD_LABELS = {
    "name": "name", "threshold": "from spend", "accrual_rate": "accrual %",
    "referral_rate": "referral %", "tiers": "tiers", "point_value": "point value",
    "tier_window_days": "tier window", "note": "note", "effective_at": "effective from",
}


def _decimal(value) -> Decimal:
    """A finite Decimal from user input ('1 500,5' style commas accepted)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        raise ValueError(N_("is required"))
    if isinstance(value, bool):
        raise ValueError(N_("must be a number"))
    try:
        d = Decimal(str(value).strip().replace(",", "."))
    except InvalidOperation:
        raise ValueError(N_("must be a number")) from None
    if not d.is_finite():
        raise ValueError(N_("must be a finite number"))
    return d


def _hundredths(d: Decimal) -> int:
    if d != d.quantize(Decimal("0.01")):
        raise ValueError(N_("at most 2 decimals"))
    return int(d * 100)


def parse_rate_bp(value) -> int:
    """'5.25' / 5.25 / Decimal -> 525 basis points; at most 2 decimals, 0..100."""
    d = _decimal(value)
    if d < 0:
        raise ValueError(N_("must be between 0 and 100 %"))
    if d > 100:
        raise ValueError(too_large("100 %"))
    return _hundredths(d)


def parse_money_minor(value, *, max_minor: int = MAX_THRESHOLD_MINOR) -> int:
    """'1500.50' -> 150050 minor units; non-negative, at most 2 decimals."""
    d = _decimal(value)
    if d < 0:
        raise ValueError(N_("must not be negative"))
    # bound first: quantize() of a huge value such as 1e308 raises InvalidOperation
    if d * 100 > max_minor:
        raise ValueError(too_large(f"{max_minor // 100:,}"))
    return _hundredths(d)


def validate_tiers(rows: Sequence[dict]) -> tuple[list[TierRule], list[Problem]]:
    """Parse editor rows ({name, threshold, accrual_rate, referral_rate} in
    currency units and percent) into tier rules; every problem is reported."""
    problems: list[Problem] = []
    tiers: list[TierRule] = []
    if not 1 <= len(rows) <= MAX_TIERS:
        problems.append(Problem(None, "tiers", N_("need 1 to %(most)s tiers, got %(n)s",
                                                   most=MAX_TIERS, n=len(rows))))
    seen: dict[str, int] = {}
    prev_threshold: int | None = None
    for i, row in enumerate(rows):
        name = str(row.get("name") or "").strip()
        ok = True
        if not name:
            problems.append(Problem(i, "name", N_("is required")))
            ok = False
        elif len(name) > 64:
            problems.append(Problem(i, "name", N_("at most %(n)s characters", n=64)))
            ok = False
        elif name.lower() in seen:
            problems.append(
                Problem(i, "name", N_("'%(name)s' is already used by tier %(n)s", name=name,
                                      n=seen[name.lower()] + 1))
            )
            ok = False
        else:
            seen[name.lower()] = i
        values = {}
        for fld in ("threshold", "accrual_rate", "referral_rate"):
            try:
                if fld == "threshold":
                    values[fld] = parse_money_minor(row.get(fld))
                else:
                    values[fld] = parse_rate_bp(row.get(fld))
            except ValueError as exc:
                problems.append(Problem(i, fld, exc.args[0]))
                ok = False
        thr = values.get("threshold")
        if thr is not None:
            if i == 0 and thr != 0:
                problems.append(Problem(i, "threshold", N_("the first tier must start at 0")))
                ok = False
            elif prev_threshold is not None and thr <= prev_threshold:
                problems.append(
                    Problem(
                        i,
                        "threshold",
                        N_("must be greater than the previous tier's %(amount)s",
                           amount=f"{prev_threshold / 100:,.2f}"),
                    )
                )
                ok = False
            prev_threshold = thr
        if ok:
            tiers.append(
                TierRule(name, values["threshold"], values["accrual_rate"], values["referral_rate"])
            )
    return tiers, problems


def validate_settings(point_value_minor, tier_window_days) -> list[Problem]:
    problems = []
    if (
        not isinstance(point_value_minor, int)
        or isinstance(point_value_minor, bool)
        or not 1 <= point_value_minor <= MAX_POINT_VALUE_MINOR
    ):
        problems.append(Problem(None, "point_value", N_("must be a positive amount")))
    if (isinstance(tier_window_days, int) and not isinstance(tier_window_days, bool)
            and tier_window_days > MAX_WINDOW_DAYS):
        problems.append(Problem(None, "tier_window_days",
                                too_large(N_("%(n)s days", n=MAX_WINDOW_DAYS))))
    elif tier_window_days is not None and (
        not isinstance(tier_window_days, int)
        or isinstance(tier_window_days, bool)
        or not 1 <= tier_window_days <= MAX_WINDOW_DAYS
    ):
        problems.append(
            Problem(None, "tier_window_days",
                    N_("must be 1 to %(most)s days, or lifetime", most=MAX_WINDOW_DAYS))
        )
    return problems


class RuleValidationError(ValidationError):
    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("tiers", "; ".join(str(p) for p in problems))
        self.problems = problems


# --------------------------------------------------------------------------
# workflow



def _snapshot(rs: RuleSet) -> dict:
    return {
        "name": rs.name,
        "status": rs.status,
        "point_value_minor": rs.point_value_minor,
        "tier_window_days": rs.tier_window_days,
        "effective_at": rs.effective_at,
        "tiers": [
            {
                "name": t.name,
                "threshold_minor": t.threshold_minor,
                "accrual_rate_bp": t.accrual_rate_bp,
                "referral_rate_bp": t.referral_rate_bp,
            }
            for t in sorted(rs.tiers, key=lambda t: t.position)
        ],
    }


def create_draft(
    s: Session,
    actor: Actor,
    name: str,
    tier_rows: Sequence[dict],
    *,
    point_value_minor: int = 100,
    tier_window_days: int | None = None,
    note: str = "",
    based_on_id: int | None = None,
) -> int:
    """Validate and save a new draft; an invalid draft is never saved."""
    tiers, problems = validate_tiers(tier_rows)
    problems += validate_settings(point_value_minor, tier_window_days)
    if not (name or "").strip():
        problems.append(Problem(None, "name", N_("is required")))
    if problems:
        raise RuleValidationError(problems)
    rs = RuleSet(
        name=name.strip(),
        note=note,
        status="draft",
        point_value_minor=point_value_minor,
        tier_window_days=tier_window_days,
        based_on_id=based_on_id,
        created_by_id=actor.id,
        tiers=[
            Tier(
                position=i,
                name=t.name,
                threshold_minor=t.threshold_minor,
                accrual_rate_bp=t.accrual_rate_bp,
                referral_rate_bp=t.referral_rate_bp,
            )
            for i, t in enumerate(tiers)
        ],
    )
    s.add(rs)
    s.flush()
    audit.record(
        s, actor.name, "rules.draft", actor_id=actor.id, object_type="rule_set",
        object_id=rs.id, after=_snapshot(rs),
    )
    return rs.id


def load_for_update(s: Session, rule_set_id: int) -> RuleSet:
    """The version's row, locked for the change about to be made."""
    rs = s.get(RuleSet, rule_set_id, with_for_update=True)
    if rs is None:
        raise NotFound(N_("rule set %(id)s does not exist", id=rule_set_id))
    return rs


def approve(
    s: Session,
    actor: Actor,
    rule_set_id: int,
    effective_at: dt.datetime,
    *,
    now: dt.datetime | None = None,
    allow_past: bool = False,
    note: str = "",
) -> None:
    """Publish a pending version from ``effective_at`` on (four-eyes).

    The row lock (or SQLite's write lock) makes two concurrent approvals
    publish once: the second finds the version no longer pending.
    """
    check_length("reason", note, MAX_REASON)
    rs = load_for_update(s, rule_set_id)
    if rs.status != "pending":
        raise InvalidState(N_(
            "rule set %(id)s is %(status)s; only a submitted version can be approved",
            id=rule_set_id, status=rs.status))
    if actor.id is not None and rs.created_by_id == actor.id:
        raise Forbidden(N_("the author of a rule set cannot approve it: another supervisor must"))
    now = now or clock.utcnow()
    if effective_at < now - dt.timedelta(seconds=60) and not allow_past:
        raise ValidationError("effective_at", N_("must not be in the past"))
    late = s.scalar(
        select(Order.paid_at)
        .where(Order.member_id.is_not(None), Order.paid_at >= effective_at)
        .order_by(Order.paid_at.desc())
        .limit(1)
    )
    if late is not None:
        # those orders accrued under the old version: publishing "before" them
        # would make their recorded version wrong
        raise ValidationError(
            "effective_at",
            N_("orders paid up to %(when)s are already recorded; choose a later time",
               when=f"{late:%Y-%m-%d %H:%M:%S}"),
        )
    clash = s.scalar(
        select(RuleSet.id).where(
            RuleSet.status == "published", RuleSet.effective_at == effective_at
        )
    )
    if clash:
        raise ValidationError(
            "effective_at", N_("version %(id)s already takes effect at that exact time", id=clash)
        )
    rs.status = "published"
    rs.effective_at = effective_at
    rs.approved_by_id = actor.id
    rs.decided_at = now
    rs.decision_note = note
    audit.record(
        s, actor.name, "rules.publish", actor_id=actor.id, object_type="rule_set",
        object_id=rs.id, before={"status": "pending"},
        after={"status": "published", "effective_at": effective_at},
    )


def reject(s: Session, actor: Actor, rule_set_id: int, reason: str) -> None:
    if not (reason or "").strip():
        raise ValidationError("reason", N_("say why the version is rejected"))
    check_length("reason", reason, MAX_REASON)
    rs = load_for_update(s, rule_set_id)
    if rs.status != "pending":
        raise InvalidState(N_("rule set %(id)s is %(status)s; only a submitted one",
                              id=rule_set_id, status=rs.status))
    if actor.id is not None and rs.created_by_id == actor.id:
        raise Forbidden(N_(
            "the author of a rule set cannot decide on it: another supervisor must"))
    rs.status = "rejected"
    rs.approved_by_id = actor.id
    rs.decided_at = clock.utcnow()
    rs.decision_note = reason.strip()
    audit.record(
        s, actor.name, "rules.reject", actor_id=actor.id, object_type="rule_set",
        object_id=rs.id, before={"status": "pending"}, after={"status": "rejected"},
        detail=reason.strip(),
    )


def rules_in_force(s: Session, at: dt.datetime | None = None) -> Rules | None:
    """The published version in force at ``at`` (default now)."""
    at = at or clock.utcnow()
    rs = s.scalar(
        select(RuleSet)
        .where(RuleSet.status == "published", RuleSet.effective_at <= at)
        .order_by(RuleSet.effective_at.desc(), RuleSet.id.desc())
        .limit(1)
    )
    return rules_from_rows(rs) if rs else None


def get_rules(s: Session, rule_set_id: int) -> Rules:
    rs = s.get(RuleSet, rule_set_id)
    if rs is None:
        raise NotFound(N_("rule set %(id)s does not exist", id=rule_set_id))
    return rules_from_rows(rs)


# --------------------------------------------------------------------------
# editing drafts, copies (rollback) and differences


def _check_draft(
    name: str, tier_rows: Sequence[dict], point_value_minor: int, tier_window_days: int | None,
    note: str = "",
) -> list[TierRule]:
    tiers, problems = validate_tiers(tier_rows)
    if (problem := length_problem(note, MAX_COMMENT)):
        problems.append(Problem(None, "note", problem))
    problems += validate_settings(point_value_minor, tier_window_days)
    if not (name or "").strip():
        problems.append(Problem(None, "name", N_("is required")))
    elif len(name.strip()) > 200:
        problems.append(Problem(None, "name", N_("at most %(n)s characters", n=200)))
    if problems:
        raise RuleValidationError(problems)
    return tiers


def frozen_by_pilot(s: Session, rule_set_id: int) -> str | None:
    """Why a rule set cannot change: a pilot (not cancelled) uses it, so pilot
    members' orders in its window accrue under exactly this content."""
    pilot = s.execute(
        select(Pilot.id, Pilot.name, Pilot.status)
        .where(Pilot.rule_set_id == rule_set_id, Pilot.status != "cancelled")
        .limit(1)
    ).first()
    if pilot is None:
        return None
    return N_("rule set %(id)s is frozen: %(status)s pilot #%(pilot)s '%(name)s' uses it "
              "(orders in its window accrue under it). Copy it into a new draft to change it",
              id=rule_set_id, status=pilot.status, pilot=pilot.id, name=pilot.name)


def update_draft(
    s: Session,
    actor: Actor,
    rule_set_id: int,
    name: str,
    tier_rows: Sequence[dict],
    *,
    point_value_minor: int,
    tier_window_days: int | None,
    note: str = "",
) -> None:
    """Replace a draft's content. A draft is editable until it is submitted,
    and only by its author: an edit by the approver-to-be would let one
    person write and approve the same rules (four-eyes). Invalid -> nothing saved."""
    tiers = _check_draft(name, tier_rows, point_value_minor, tier_window_days, note)
    rs = load_for_update(s, rule_set_id)
    if rs.status != "draft":
        raise InvalidState(N_(
            "rule set %(id)s is %(status)s; only a draft can be edited - "
            "copy it into a new draft instead", id=rule_set_id, status=rs.status))
    if actor.id is not None and rs.created_by_id is not None and rs.created_by_id != actor.id:
        raise Forbidden(N_("only the author can edit this draft: copy it into your own draft"))
    if why := frozen_by_pilot(s, rule_set_id):
        raise InvalidState(why)
    before = _snapshot(rs)
    rs.tiers.clear()
    s.flush()  # the old tiers go first: (rule_set, position/name) are unique
    rs.name = name.strip()
    rs.note = note or ""
    rs.point_value_minor = point_value_minor
    rs.tier_window_days = tier_window_days
    rs.tiers.extend(
        Tier(position=i, name=t.name, threshold_minor=t.threshold_minor,
             accrual_rate_bp=t.accrual_rate_bp, referral_rate_bp=t.referral_rate_bp)
        for i, t in enumerate(tiers)
    )
    s.flush()
    audit.record(
        s, actor.name, "rules.update", actor_id=actor.id, object_type="rule_set",
        object_id=rs.id, before=before, after=_snapshot(rs),
    )


def tier_rows(rules: Rules) -> list[dict]:
    """A version's tiers as editor rows (currency units and percent, as text)."""
    return [
        {
            "name": t.name,
            "threshold": f"{t.threshold_minor // 100}.{t.threshold_minor % 100:02d}",
            "accrual_rate": f"{t.accrual_rate_bp // 100}.{t.accrual_rate_bp % 100:02d}",
            "referral_rate": f"{t.referral_rate_bp // 100}.{t.referral_rate_bp % 100:02d}",
        }
        for t in rules.tiers
    ]


def copy_to_draft(
    s: Session, actor: Actor, source_id: int, *, name: str | None = None, note: str = "",
    rollback: bool = False,
) -> int:
    """A new draft with the content of version ``source_id`` (``based_on_id``
    names it). Rollback is exactly this: the old content goes through the same
    submit/approve path as any change, and history keeps every step."""
    src = s.get(RuleSet, source_id)
    if src is None:
        raise NotFound(N_("rule set %(id)s does not exist", id=source_id))
    rules = rules_from_rows(src)
    label = "Rollback to" if rollback else "Copy of"
    new_name = (name or f"{label} #{src.id} {src.name}").strip()[:200]
    new_id = create_draft(
        s, actor, new_name, tier_rows(rules), point_value_minor=src.point_value_minor,
        tier_window_days=src.tier_window_days, note=note, based_on_id=src.id,
    )
    audit.record(
        s, actor.name, "rules.rollback" if rollback else "rules.copy", actor_id=actor.id,
        object_type="rule_set", object_id=new_id, before={"source_id": src.id},
        after={"draft_id": new_id}, detail=note,
    )
    return new_id


@dataclass(frozen=True)
class TierChange:
    name: str
    kind: str  # "added", "removed", "changed", "same"
    before: TierRule | None
    after: TierRule | None
    fields: tuple[str, ...] = ()  # the fields that differ, for "changed"


@dataclass(frozen=True)
class RulesDiff:
    settings: tuple[tuple[str, object, object], ...]  # (field, a, b) that differ
    tiers: tuple[TierChange, ...]

    @property
    def changed(self) -> bool:
        return bool(self.settings) or any(t.kind != "same" for t in self.tiers)


def diff(a: Rules, b: Rules) -> RulesDiff:
    """What changes from version ``a`` to version ``b``. Tiers are matched by
    name (case-insensitive): a renamed tier is one removed and one added,
    which is how a member would see it."""
    settings = tuple(
        (f, getattr(a, f), getattr(b, f))
        for f in ("name", "point_value_minor", "tier_window_days")
        if getattr(a, f) != getattr(b, f)
    )
    old = {t.name.lower(): t for t in a.tiers}
    new = {t.name.lower(): t for t in b.tiers}
    changes: list[TierChange] = []
    for t in b.tiers:
        prev = old.get(t.name.lower())
        if prev is None:
            changes.append(TierChange(t.name, "added", None, t))
            continue
        fields = tuple(
            f for f in ("name", "threshold_minor", "accrual_rate_bp", "referral_rate_bp")
            if getattr(prev, f) != getattr(t, f)
        )
        changes.append(TierChange(t.name, "changed" if fields else "same", prev, t, fields))
    changes += [TierChange(t.name, "removed", t, None) for t in a.tiers
                if t.name.lower() not in new]
    return RulesDiff(settings, tuple(changes))
