"""Manual point adjustments with four-eyes approval.

Support requests, a supervisor other than the requester approves. Approval
writes exactly one ledger entry in the same transaction that marks the
request approved: the request row is locked first, so a second approval
(another supervisor, or a double click) finds it already decided.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from db import audit, clock, form_tokens
from db.actor import Actor
from db.errors import (
    Forbidden,
    FormErrors,
    InsufficientPoints,
    InvalidState,
    NotFound,
    ValidationError,
    too_large,
)
from db.i18n import N_, Number
from db.ledger import MAX_POINTS, account_of, balance, post_adjustment
from db.models import (
    ADJUSTMENT_REASONS,
    ADJUSTMENT_STATUSES,
    Account,
    AdjustmentRequest,
    LedgerEntry,
    Member,
    ProgramSettings,
    StaffUser,
)
from db.session import Database, transactional
from db.text import MAX_COMMENT, MAX_REASON, check_length, length_problem


@dataclass(frozen=True)
class AdjustmentInfo:
    id: int
    member_id: int
    points: int
    reason_code: str
    status: str
    approvals_required: int
    tx_id: int | None
    replayed: bool = False  # the same form sent again: this is the request it filed


def _info(r: AdjustmentRequest, *, replayed: bool = False) -> AdjustmentInfo:
    return AdjustmentInfo(
        r.id, r.member_id, r.points, r.reason_code, r.status, r.approvals_required, r.tx_id,
        replayed,
    )


def _snapshot(r: AdjustmentRequest) -> dict:
    return {
        "member_id": r.member_id,
        "points": r.points,
        "reason_code": r.reason_code,
        "status": r.status,
        "approvals_required": r.approvals_required,
        "first_approver_id": r.first_approver_id,
        "decided_by_id": r.decided_by_id,
        "tx_id": r.tx_id,
    }


MAX_TICKET = 64
# a request that is no longer pending, by what it became
ALREADY = {
    "pending": N_("request %(id)s is already pending"),
    "approved": N_("request %(id)s is already approved"),
    "rejected": N_("request %(id)s is already rejected"),
    "cancelled": N_("request %(id)s is already cancelled"),
}


def request_problems(points: object, reason_code: str | None, comment: str | None,
                     ticket_ref: str | None) -> dict[str, str]:
    """Every problem of a request's fields at once, by field (empty: none)."""
    out: dict[str, str] = {}
    if not isinstance(points, int) or isinstance(points, bool) or points == 0:
        out["points"] = N_("must be a non-zero whole number (+ adds, - removes)")
    elif abs(points) > MAX_POINTS:
        out["points"] = too_large(N_("%(n)s points either way", n=Number(MAX_POINTS)))
    if reason_code not in ADJUSTMENT_REASONS:
        out["reason_code"] = N_("choose a reason from the list")
    if not (comment or "").strip():
        out["comment"] = N_("is required: say why the balance is wrong")
    elif (problem := length_problem(comment, MAX_COMMENT)):
        out["comment"] = problem
    if len(ticket_ref or "") > MAX_TICKET:
        out["ticket_ref"] = N_("too long: at most %(n)s characters", n=MAX_TICKET)
    return out


@transactional
def request_adjustment(
    s: Session,
    actor: Actor,
    member_id: int,
    points: int,
    reason_code: str,
    comment: str,
    *,
    ticket_ref: str = "",
    corrects_entry_id: int | None = None,
    at: dt.datetime | None = None,
    form_token: str | None = None,
) -> AdjustmentInfo:
    """File a request; refused if it would take the balance below zero now.

    ``form_token`` is the random token of the form that sends it: the same
    token from the same requester again files nothing and returns the request
    the first one filed (``replayed``), whatever the form holds by then."""
    if actor.id is None:
        raise Forbidden(N_("adjustments are requested by a staff user"))
    if actor.role not in ("support", "supervisor"):
        raise Forbidden(N_("only support staff and supervisors can request adjustments"))
    form_token = form_tokens.as_token(form_token)
    filed = filed_by_form(s, actor, form_token)
    if filed is not None:
        return filed
    problems = request_problems(points, reason_code, comment, ticket_ref)
    if problems:
        raise FormErrors(problems)
    if s.get(Member, member_id) is None:
        raise NotFound(N_("member %(id)s does not exist", id=member_id))
    if corrects_entry_id is not None:
        acc = account_of(s, member_id)
        e = s.get(LedgerEntry, corrects_entry_id)
        if e is None or acc not in (e.debit_account_id, e.credit_account_id):
            raise ValidationError(
                "corrects_entry_id", N_("entry %(id)s is not in this member's ledger",
                                       id=corrects_entry_id)
            )
    settings = s.get(ProgramSettings, 1)
    size = abs(points)
    if size > settings.adjustment_supervisor_request_points and actor.role != "supervisor":
        raise Forbidden(
N_("adjustments over %(n)s points must be requested by a supervisor",
               n=Number(settings.adjustment_supervisor_request_points))
        )
    bal = balance(s, member_id)
    if bal + points < 0:
        raise InsufficientPoints(
N_("the member has %(balance)s points; removing %(n)s would make the balance negative",
               balance=Number(bal), n=Number(-points))
        )
    r = AdjustmentRequest(
        member_id=member_id,
        points=points,
        reason_code=reason_code,
        comment=comment.strip(),
        ticket_ref=(ticket_ref or "").strip(),
        corrects_entry_id=corrects_entry_id,
        status="pending",
        approvals_required=2 if size > settings.adjustment_second_approval_points else 1,
        requested_by_id=actor.id,
        requested_at=at or clock.utcnow(),
        form_token=form_token,
    )
    s.add(r)
    s.flush()
    audit.record(
        s, actor.name, "adjustment.request", actor_id=actor.id, object_type="adjustment",
        object_id=r.id, after=_snapshot(r) | {"comment": r.comment, "ticket_ref": r.ticket_ref},
    )
    return _info(r)


def filed_by_form(s: Session, actor: Actor, form_token: str | None) -> AdjustmentInfo | None:
    """The request this requester's form instance already filed, if any."""
    form_token = form_tokens.as_token(form_token)
    if form_token is None or actor.id is None:
        return None
    filed = s.scalar(select(AdjustmentRequest).where(
        AdjustmentRequest.requested_by_id == actor.id,
        AdjustmentRequest.form_token == form_token))
    return _info(filed, replayed=True) if filed is not None else None


def request_adjustment_once(db: Database, actor: Actor, member_id: int, points: int,
                            reason_code: str, comment: str, *, form_token: str | None,
                            **kwargs: object) -> AdjustmentInfo:
    """:func:`request_adjustment` from a form: a twin of the same form that
    committed first (two requests at once on PostgreSQL) is answered from it."""
    def file() -> AdjustmentInfo:
        return request_adjustment(db, actor, member_id, points, reason_code, comment,
                                  form_token=form_token, **kwargs)

    try:
        return file()
    except IntegrityError:
        if form_tokens.as_token(form_token) is None:
            raise
        return file()


def _load_locked(s: Session, request_id: int) -> AdjustmentRequest:
    r = s.get(AdjustmentRequest, request_id, with_for_update=True, populate_existing=True)
    if r is None:
        raise NotFound(N_("adjustment request %(id)s does not exist", id=request_id))
    return r


@transactional
def approve_adjustment(
    s: Session, actor: Actor, request_id: int, *, at: dt.datetime | None = None
) -> AdjustmentInfo:
    """Approve (first or final approval). The final one writes the entry."""
    if actor.role != "supervisor" or actor.id is None:
        raise Forbidden(N_("only a supervisor can approve adjustments"))
    r = _load_locked(s, request_id)
    if r.status != "pending":
        raise InvalidState(N_(ALREADY[r.status], id=request_id))
    if r.requested_by_id == actor.id:
        raise Forbidden(N_("you cannot approve your own request: another supervisor must"))
    if r.first_approver_id == actor.id:
        raise Forbidden(N_("this request needs a second approval from a different supervisor"))
    before = _snapshot(r)
    at = at or clock.utcnow()
    if r.approvals_required == 2 and r.first_approver_id is None:
        r.first_approver_id = actor.id
        r.first_approved_at = at
        s.flush()
        audit.record(
            s, actor.name, "adjustment.first_approval", actor_id=actor.id,
            object_type="adjustment", object_id=r.id, before=before, after=_snapshot(r),
        )
        return _info(r)
    try:
        tx = post_adjustment(
            s, r.member_id, r.points, key=f"request:{r.id}", at=at, actor=actor,
            memo=f"adjustment #{r.id} ({r.reason_code})",
        )
    except InsufficientPoints as exc:
        raise InsufficientPoints(
N_("cannot approve request %(id)s: %(why)s. Nothing was written; reject it or ask "
               "for a new request.", id=r.id, why=exc.args[0] if exc.args else "")
        ) from None
    r.status = "approved"
    r.decided_by_id = actor.id
    r.decided_at = at
    r.tx_id = tx
    s.flush()
    audit.record(
        s, actor.name, "adjustment.approve", actor_id=actor.id, object_type="adjustment",
        object_id=r.id, before=before, after=_snapshot(r),
    )
    return _info(r)


@transactional
def reject_adjustment(
    s: Session, actor: Actor, request_id: int, reason: str, *, at: dt.datetime | None = None
) -> AdjustmentInfo:
    if actor.role != "supervisor" or actor.id is None:
        raise Forbidden(N_("only a supervisor can reject adjustments"))
    if not (reason or "").strip():
        raise ValidationError("reason", N_("say why the request is rejected"))
    check_length("reason", reason, MAX_REASON)
    r = _load_locked(s, request_id)
    if r.status != "pending":
        raise InvalidState(N_(ALREADY[r.status], id=request_id))
    if r.requested_by_id == actor.id:
        raise Forbidden(N_("you cannot decide on your own request: another supervisor must"))
    if r.first_approver_id == actor.id:
        raise Forbidden(
            N_("you gave this request its first approval: a different supervisor must decide it")
        )
    before = _snapshot(r)
    r.status = "rejected"
    r.decided_by_id = actor.id
    r.decided_at = at or clock.utcnow()
    r.decision_reason = reason.strip()
    s.flush()
    audit.record(
        s, actor.name, "adjustment.reject", actor_id=actor.id, object_type="adjustment",
        object_id=r.id, before=before, after=_snapshot(r), detail=reason.strip(),
    )
    return _info(r)


@transactional
def cancel_adjustment(s: Session, actor: Actor, request_id: int) -> AdjustmentInfo:
    """The requester withdraws a request nobody has decided yet (a typo, a
    duplicate); it stays in the history as cancelled."""
    if actor.id is None:
        raise Forbidden(N_("adjustments are cancelled by a staff user"))
    r = _load_locked(s, request_id)
    if r.requested_by_id != actor.id:
        raise Forbidden(N_("only the requester can cancel a request"))
    if r.status != "pending":
        raise InvalidState(N_(ALREADY[r.status], id=request_id))
    before = _snapshot(r)
    r.status = "cancelled"
    r.decided_at = clock.utcnow()
    s.flush()
    audit.record(
        s, actor.name, "adjustment.cancel", actor_id=actor.id, object_type="adjustment",
        object_id=r.id, before=before, after=_snapshot(r),
    )
    return _info(r)


# --------------------------------------------------------------------------
# reading: history with filters, the approval queue


MAX_LIST = 100_000


@dataclass(frozen=True)
class AdjustmentFilters:
    """What the history page filters on; ``requested_by_id`` is also how
    support is limited to their own requests (set by the server, not the form)."""

    status: str | None = None
    requested_by_id: int | None = None
    approver_id: int | None = None  # first approver or decider
    reason_code: str | None = None
    member_id: int | None = None
    date_from: dt.date | None = None  # requested on or after
    date_to: dt.date | None = None  # requested on or before (whole day)

    def validate(self) -> None:
        if self.status and self.status not in ADJUSTMENT_STATUSES:
            raise ValidationError("status", N_("must be one of %(choices)s",
                                             choices=", ".join(ADJUSTMENT_STATUSES)))
        if self.reason_code and self.reason_code not in ADJUSTMENT_REASONS:
            raise ValidationError("reason_code", N_("choose a reason from the list"))
        if self.date_from and self.date_to and self.date_from > self.date_to:
            raise ValidationError("dates", N_("the start date is after the end date"))


@dataclass(frozen=True)
class AdjustmentRow:
    id: int
    member_id: int
    member_external_id: str
    member_name: str
    member_balance: int
    points: int
    reason_code: str
    comment: str
    ticket_ref: str
    corrects_entry_id: int | None
    status: str
    approvals_required: int
    requested_by_id: int
    requested_by: str
    requested_at: dt.datetime
    first_approver: str
    first_approved_at: dt.datetime | None
    decided_by: str
    decided_at: dt.datetime | None
    decision_reason: str
    tx_id: int | None


def list_adjustments(
    s: Session,
    filters: AdjustmentFilters | None = None,
    *,
    limit: int = 500,
    offset: int = 0,
    request_id: int | None = None,
) -> list[AdjustmentRow]:
    """Requests matching ``filters``, newest first, with the member's current balance."""
    f = filters or AdjustmentFilters()
    f.validate()
    req, first, dec = aliased(StaffUser), aliased(StaffUser), aliased(StaffUser)
    a = AdjustmentRequest
    stmt = (
        select(a, Member.external_id, Member.name, Account.balance, req.username,
               first.username, dec.username)
        .join(Member, Member.id == a.member_id)
        .outerjoin(Account, Account.member_id == a.member_id)
        .join(req, req.id == a.requested_by_id)
        .outerjoin(first, first.id == a.first_approver_id)
        .outerjoin(dec, dec.id == a.decided_by_id)
    )
    if request_id is not None:
        stmt = stmt.where(a.id == request_id)
    if f.status:
        stmt = stmt.where(a.status == f.status)
    if f.requested_by_id is not None:
        stmt = stmt.where(a.requested_by_id == f.requested_by_id)
    if f.approver_id is not None:
        # a cancelled request has no approver even though decided_at is set
        stmt = stmt.where(or_(a.first_approver_id == f.approver_id,
                              a.decided_by_id == f.approver_id))
    if f.reason_code:
        stmt = stmt.where(a.reason_code == f.reason_code)
    if f.member_id is not None:
        stmt = stmt.where(a.member_id == f.member_id)
    if f.date_from:
        stmt = stmt.where(a.requested_at >= dt.datetime.combine(f.date_from, dt.time.min))
    if f.date_to:
        stmt = stmt.where(
            a.requested_at < dt.datetime.combine(f.date_to + dt.timedelta(days=1), dt.time.min)
        )
    rows = s.execute(
        stmt.order_by(a.requested_at.desc(), a.id.desc())
        .offset(max(0, offset)).limit(max(1, min(limit, MAX_LIST)))
    ).all()
    return [
        AdjustmentRow(
            r.id, r.member_id, ext, name or "", int(bal or 0), r.points, r.reason_code,
            r.comment or "", r.ticket_ref or "", r.corrects_entry_id, r.status,
            r.approvals_required, r.requested_by_id, rq or "", r.requested_at, fa or "",
            r.first_approved_at, dc or "", r.decided_at, r.decision_reason or "", r.tx_id,
        )
        for r, ext, name, bal, rq, fa, dc in rows
    ]


def get_adjustment(s: Session, request_id: int) -> AdjustmentRow:
    rows = list_adjustments(s, request_id=request_id, limit=1)
    if not rows:
        raise NotFound(N_("adjustment request %(id)s does not exist", id=request_id))
    return rows[0]


@dataclass(frozen=True)
class Limits:
    second_approval_over: int  # points (absolute) above which two approvals are needed
    supervisor_request_over: int  # points above which only a supervisor may request


def limits(s: Session) -> Limits:
    st = s.get(ProgramSettings, 1)
    return Limits(st.adjustment_second_approval_points, st.adjustment_supervisor_request_points)
