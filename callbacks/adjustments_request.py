"""Adjustment requests: the form (validated by the service, messages next to
the fields) and the requester's own requests, with cancel."""

from __future__ import annotations

import re
from typing import Any

import dash_bootstrap_components as dbc
from dash import Input, Output, State, callback, ctx, html, no_update

from dashboard import format as fmt
from dashboard.access import roles_of
from dashboard.auth import require_roles
from dashboard.callback_inputs import as_id, as_text
from dashboard.context import current_actor, get_db
from dashboard.forms import busy, once
from dashboard.i18n import N_, _, current_language, error_text, ngettext, translate
from dashboard.shell import alert
from db import adjustments, members
from db.adjustments import AdjustmentFilters
from db.errors import (
    Forbidden,
    FormErrors,
    InsufficientPoints,
    InvalidState,
    LoyaltyError,
    NotFound,
    ValidationError,
    too_large,
)
from db.form_tokens import as_token, new_token
from db.ledger import MAX_POINTS
from db.numbers import NumberError, canonical
from pages import adjustments_request as page
from pages import members as members_page
from pages.adjustments_request import ids

ROLES = roles_of(page.__name__)
FIELDS = ("member", "points", "reason_code", "comment", "ticket_ref", "corrects_entry_id")
_POINTS = re.compile(r"[+-]?\d+")
LETTERS = re.compile(r"[^\d\s,.'_+\-\u2212]")


def parse_points(text: str | None) -> int:
    """"+1,500" / "-200" / "300" ("+1 500" in Russian) -> int; the service checks the rest."""
    typed = str(text or "")
    try:
        raw = canonical(typed, lang=current_language())
    except NumberError as exc:
        if LETTERS.search(typed):
            raw = typed.strip()  # not a number at all: the message below
        else:  # a number written wrongly: the parser says how
            raise ValidationError("points", exc.message) from None
    if not raw:
        raise ValidationError("points", N_("enter the points: e.g. 500 or -200"))
    if not _POINTS.fullmatch(raw):
        raise ValidationError(
            "points", N_("must be a whole number of points, e.g. 500 to add or -200 to remove"))
    if len(raw.lstrip("+-").lstrip("0")) > len(str(MAX_POINTS)):
        raise ValidationError("points", too_large(
            N_("%(n)s points either way", n=fmt.points(MAX_POINTS))))
    return int(raw)


@callback(
    Output(ids.MEMBER_INFO, "children"),
    Output(ids.ENTRY, "options"),
    Output(ids.LIMITS, "children"),
    Input(ids.MEMBER, "value"),
)
@require_roles(*ROLES)
def member_info(ref: str | None) -> tuple[Any, list[dict[str, Any]], str]:
    with get_db().read() as s:
        lim = adjustments.limits(s)
        hint = _("Over %(two)s points: two supervisors approve. Over %(supervisor)s points: "
                 "only a supervisor may request.", two=fmt.points(lim.second_approval_over),
                 supervisor=fmt.points(lim.supervisor_request_over))
        if not isinstance(ref, str) or not ref.strip():
            return "", [], hint
        try:
            mid = members.resolve_member(s, ref or "")
            p = members.get_profile(s, mid)
            choices = members.entry_choices(s, mid)
        except (ValidationError, NotFound) as exc:
            return html.Span(error_text(exc), className="text-danger"), [], hint
    info = html.Span([
        html.Strong(f"{p.name or p.external_id}"),
        " · " + _("member %(id)s · customer %(customer)s · balance", id=p.id,
                  customer=p.external_id) + " ",
        html.Strong(ngettext("%(count)s point", "%(count)s points", p.balance,
                             count=fmt.points(p.balance)), id="adjreq-balance"),
        f" · {members_page.member_status(p.status)}",
    ])
    return info, page.entry_options(choices), hint


# the message next to each field of the form, by service field name
FEEDBACK_OUTPUTS = {
    "member": Output(ids.MEMBER_FEEDBACK, "children"),
    "points": Output(ids.POINTS_FEEDBACK, "children"),
    "reason_code": Output(ids.REASON_FEEDBACK, "children"),
    "comment": Output(ids.COMMENT_FEEDBACK, "children"),
    "ticket_ref": Output(ids.TICKET_FEEDBACK, "children"),
    "corrects_entry_id": Output(ids.ENTRY_FEEDBACK, "children"),
}
# what a filed request empties (the member stays) and the form's new token
FORM_OUTPUTS = {
    "points": Output(ids.POINTS, "value"), "comment": Output(ids.COMMENT, "value"),
    "reason": Output(ids.REASON, "value"), "ticket": Output(ids.TICKET, "value"),
    "entry": Output(ids.ENTRY, "value"), "token": Output(ids.TOKEN, "data"),
    "last_token": Output(ids.LAST_TOKEN, "data"),
}
KEEP_FORM = dict.fromkeys(FORM_OUTPUTS, no_update)


def _answer(feedback: dict[str, Any], result: Any, version: Any = no_update,
            form: dict[str, Any] = KEEP_FORM) -> dict[str, Any]:
    return {"feedback": dict(feedback), "result": result, "version": version, "form": form}


@callback(
    output={"feedback": FEEDBACK_OUTPUTS, "result": Output(ids.RESULT, "children"),
            "version": Output(ids.VERSION, "data"), "form": FORM_OUTPUTS},
    inputs=[
        Input(ids.SUBMIT, "n_clicks"),
        State(ids.MEMBER, "value"),
        State(ids.POINTS, "value"),
        State(ids.REASON, "value"),
        State(ids.COMMENT, "value"),
        State(ids.TICKET, "value"),
        State(ids.ENTRY, "value"),
        State(ids.VERSION, "data"),
        State(ids.TOKEN, "data"),
        State(ids.LAST_TOKEN, "data"),
    ],
    prevent_initial_call=True,
    running=busy(ids.SUBMIT),
)
@require_roles(*ROLES, writes=True)
def submit(n: int | None, member_ref: str | None, points: str | None, reason: str | None,
           comment: str | None, ticket: str | None, entry: int | None, version: int | None,
           token: Any = None, last_token: Any = None) -> dict[str, Any]:
    """File the request once per form instance.

    The form's token is stored with the request and a new one comes back with
    the success. The same form sent again - two clicks in flight with one
    token, or a second click landing after the first answer emptied the form -
    shows the request already filed and files nothing."""
    if not n:
        return _answer(dict.fromkeys(FIELDS, no_update), no_update)
    member_ref, comment, ticket = as_text(member_ref), as_text(comment), as_text(ticket)
    reason = as_text(reason)
    feedback = dict.fromkeys(FIELDS, "")
    actor = current_actor()
    problems: dict[str, str] = {}
    mid = pts = None
    with get_db().read() as s:
        # sent again (a double click): the answer is the request already filed,
        # whatever the form holds by now
        info = adjustments.filed_by_form(s, actor, as_token(token))
        if info is None and not as_text(points).strip() and not comment.strip():
            # nothing typed since the last request was filed: the same click again
            info = adjustments.filed_by_form(s, actor, as_token(last_token))
        if info is not None:
            return _answer(feedback, _filed(info))
        try:
            mid = members.resolve_member(s, member_ref or "")
        except (ValidationError, NotFound) as exc:
            problems["member"] = error_text(exc)
    try:
        pts = parse_points(points)
    except ValidationError as exc:
        problems["points"] = exc.message
    entry_id = as_id(entry)
    if entry not in (None, "") and entry_id is None:
        problems["corrects_entry_id"] = N_("choose the entry to correct from the list")
    # every problem of the form at once, each next to its field
    problems = adjustments.request_problems(pts if pts is not None else 1, reason, comment,
                                            ticket) | problems
    if problems:
        return _marked(feedback, problems)
    try:
        info_token = as_token(token)
        info = adjustments.request_adjustment_once(
            get_db(), actor, mid, pts, reason or "", comment or "", ticket_ref=ticket or "",
            corrects_entry_id=entry_id, form_token=info_token,
        )
    except FormErrors as exc:
        return _marked(feedback, exc.problems)
    except ValidationError as exc:
        return _marked(feedback, {exc.field: exc.message})
    except InsufficientPoints as exc:
        feedback["points"] = error_text(exc)
        return _answer(feedback, _alert(_("Nothing was filed."), "warning"))
    except (Forbidden, NotFound, InvalidState, LoyaltyError) as exc:
        return _answer(feedback, _alert(_("Nothing was filed: %(why)s", why=error_text(exc)),
                                        "danger"))
    if info.replayed:
        return _answer(feedback, _filed(info))
    # the whole request part of the form is emptied (the member stays): a new request
    return _answer(feedback, _filed(info), (version or 0) + 1,
                   {"points": "", "comment": "", "reason": "", "ticket": "", "entry": None,
                    "token": new_token(), "last_token": info_token})


def _marked(feedback: dict[str, str], problems: dict[str, str]) -> dict[str, Any]:
    """The feedback next to each field and the summary above the button."""
    for field, message in problems.items():
        feedback[field if field in feedback else "member"] = translate(message)
    n = len(problems)
    text = ngettext("Nothing was filed: fix the field marked.",
                    "Nothing was filed: fix the %(num)s fields marked.", n)
    return _answer(feedback, _alert(text, "warning"))


def _filed(info: adjustments.AdjustmentInfo) -> dbc.Alert:
    text = (_("Request #%(id)s filed: %(points)s points, waiting for two approvals from a "
              "supervisor other than you.", id=info.id, points=fmt.signed_points(info.points))
            if info.approvals_required == 2 else
            _("Request #%(id)s filed: %(points)s points, waiting for one approval from a "
              "supervisor other than you.", id=info.id, points=fmt.signed_points(info.points)))
    if info.replayed:
        text += " " + _("This form was sent again: nothing more was filed.")
    return _alert(text, "success", "adjreq-filed")


def _alert(text: str, color: str, alert_id: str | None = None) -> dbc.Alert:
    return alert(text, color, **({"id": alert_id} if alert_id else {}))


@callback(
    Output(ids.TABLE, "rowData"),
    Output(ids.SUMMARY, "children"),
    Input(ids.STATUS, "value"),
    Input(ids.VERSION, "data"),
    Input(ids.CANCEL_VERSION, "data"),
)
@require_roles(*ROLES)
def my_requests(status: str | None, _v: int | None, _c: int | None) -> tuple[Any, Any]:
    actor = current_actor()
    with get_db().read() as s:
        items = adjustments.list_adjustments(
            s, AdjustmentFilters(status=status or None, requested_by_id=actor.id), limit=500)
    if not items:
        text = (_("You have no adjustment requests with status %(status)s.",
                  status=page.status_label(status)) if status
                else _("You have no adjustment requests yet."))
        return [], html.Span(text, id="adjreq-summary-text")
    summary = page.adjustment_summary(items, capped=len(items) == 500)
    return page.adjustment_rows(items), html.Span(summary, id="adjreq-summary-text")


@callback(
    Output(ids.CANCEL_RESULT, "children"),
    Output(ids.CANCEL_VERSION, "data"),
    Input(ids.CANCEL, "n_clicks"),
    State(ids.TABLE, "selectedRows"),
    State(ids.CANCEL_VERSION, "data"),
    State(ids.TOKEN, "data"),
    prevent_initial_call=True,
    running=busy(ids.CANCEL),
)
@require_roles(*ROLES, writes=True)
def cancel(n: int | None, selected: list[dict[str, Any]] | None, version: int | None,
           token: Any = None) -> tuple[Any, Any]:
    if not n or ctx.triggered_id != ids.CANCEL:
        return no_update, no_update
    if not selected:
        return _alert(_("Select one of your pending requests first."), "warning"), no_update
    actor = current_actor()
    try:
        rid = int(selected[0]["id"])
        rid, _again = once("adjreq.cancel", token, {"id": rid},
                           lambda s: adjustments.cancel_adjustment(s, actor, rid).id)
    except (LoyaltyError, KeyError, TypeError, ValueError) as exc:
        return _alert(_("Not cancelled: %(why)s", why=error_text(exc)), "danger"), no_update
    return _alert(_("Request #%(id)s cancelled.", id=rid), "secondary"), (version or 0) + 1
