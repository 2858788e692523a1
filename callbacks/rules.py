"""Tier rules callbacks: parse -> db.rules / db.rule_history / db.simulation
-> the pure builders of pages/rules.py -> components.

Writes are supervisor-only (``writes=True``: refusals are audited); reads are
supervisor + executive. The simulation is a background callback: the guard
checks the role of every request to /_dash-update-component (the one that
starts the job and each poll), and the job checks it again from a signed
identity (dashboard.jobs), because it runs without a request.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from typing import Any

import dash_bootstrap_components as dbc
from dash import Input, Output, State, callback, ctx, no_update
from dash.exceptions import PreventUpdate

from dashboard import format as fmt
from dashboard import jobs
from dashboard.access import roles_of
from dashboard.auth import require_roles
from dashboard.callback_inputs import as_id, as_text
from dashboard.context import current_actor, get_db
from dashboard.forms import busy, once
from dashboard.i18n import N_, _, current_language, translate
from dashboard.shell import alert
from db import program, rule_history, rule_review, rules, settings_changes
from db.errors import InvalidState, LoyaltyError, NotFound, ValidationError, too_large
from db.numbers import canonical, localised
from db.rules import MAX_POINT_VALUE_MINOR, Problem, RuleValidationError, parse_money_minor
from db.simulation import Cancelled, simulate
from db.text import MAX_COMMENT, length_problem
from pages import rules as page
from pages.rules import ids

READ = roles_of(page.__name__)
WRITE = roles_of(page.__name__, "write_roles")
MAX_SIM_DAYS = page.MAX_SIM_DAYS


def _alert(message: Any, color: str = "danger", **kw: Any) -> dbc.Alert:
    return alert(message, color, className="py-2 mb-2", **kw)


def _stamp(select: int | None) -> dict[str, Any]:
    return {"select": select, "at": time.time()}


# ---------------------------------------------------------------- reads


@callback(
    output={
        "options": Output(ids.VERSION, "options"), "selected": Output(ids.VERSION, "value"),
        "actor": Output(ids.ACTOR, "data"),
        "history": Output(ids.HISTORY_GRID, "rowData"),
        "pending": Output(ids.PENDING_GRID, "rowData"),
        "diff_a_options": Output(ids.DIFF_A, "options"),
        "diff_b_options": Output(ids.DIFF_B, "options"),
        "diff_a": Output(ids.DIFF_A, "value"), "diff_b": Output(ids.DIFF_B, "value"),
        "in_force": Output(ids.IN_FORCE, "children"),
        "in_force_id": Output(ids.IN_FORCE_ID, "data"),
        "expiry": Output(ids.EXPIRY, "value"), "expiry_never": Output(ids.EXPIRY_NEVER, "value"),
        "own_draft": Output(ids.OWN_DRAFT, "children"),
        "own_draft_style": Output(ids.OWN_DRAFT, "style"),
        "own_draft_id": Output(ids.OWN_DRAFT_ID, "data"),
    },
    inputs=[Input(ids.SAVED, "data"), Input(ids.DECIDED, "data"), Input(ids.COPIED, "data"),
            State(ids.VERSION, "value")],
)
@require_roles(*READ)
def load_versions(saved: Any, decided: Any, copied: Any, current: int | None
                  ) -> dict[str, Any]:
    """Every list on the page, reloaded after each change."""
    actor = current_actor()
    with get_db().read() as s:
        versions = rule_history.versions(s)
        info = program.program_info(s)
    known = {v.id for v in versions}
    trigger = {ids.SAVED: saved, ids.DECIDED: decided, ids.COPIED: copied}.get(
        ctx.triggered_id or "")
    wanted = (trigger or {}).get("select") if isinstance(trigger, dict) else None
    selected = next((x for x in (as_id(wanted), as_id(current)) if x in known), None)
    selected = selected or page.default_selection(versions, actor.id)
    live = next((v for v in versions if v.state == "in force"), None)
    scheduled = sorted((v for v in versions if v.state == "scheduled"),
                       key=lambda v: v.effective_at)
    diff_a = live.id if live and live.id != selected else next(
        (v.id for v in versions if v.id != selected), selected)
    options = page.version_options(versions, actor.id)
    draft = page.own_draft(versions, actor.id) if actor.role in WRITE else None
    draft_label, draft_style = page.own_draft_button(draft)
    return {
        "options": options, "selected": selected, "actor": jobs.identity_token(),
        "history": page.history_rows(versions), "pending": page.pending_rows(versions),
        "diff_a_options": options, "diff_b_options": options,
        "diff_a": diff_a, "diff_b": selected,
        "in_force": page.in_force_summary(live, scheduled, info.currency),
        "in_force_id": live.id if live else None,
        "expiry": info.expiry_days, "expiry_never": info.expiry_days is None,
        "own_draft": draft_label, "own_draft_style": draft_style,
        "own_draft_id": draft.id if draft else None,
    }


@callback(
    Output(ids.VERSION, "value", allow_duplicate=True),
    Input(ids.OWN_DRAFT, "n_clicks"), State(ids.OWN_DRAFT_ID, "data"),
    prevent_initial_call=True,
)
@require_roles(*READ)
def open_own_draft(_n: int | None, draft_id: Any) -> Any:
    return as_id(draft_id) or no_update


# what show_version fills in; every one but the summary is "no update" when it fails
EDITOR_OUTPUTS = {
    "info": Output(ids.VERSION_INFO, "children"), "rows": Output(ids.GRID, "rowData"),
    "columns": Output(ids.GRID, "columnDefs"),
    "name": Output(ids.NAME, "value"), "name_locked": Output(ids.NAME, "disabled"),
    "note": Output(ids.NOTE, "value"), "note_locked": Output(ids.NOTE, "disabled"),
    "point_value": Output(ids.POINT_VALUE, "value"),
    "point_value_locked": Output(ids.POINT_VALUE, "disabled"),
    "window_mode": Output(ids.WINDOW_MODE, "value"),
    "window_modes": Output(ids.WINDOW_MODE, "options"),
    "window_days": Output(ids.WINDOW_DAYS, "value"),
    "window_days_locked": Output(ids.WINDOW_DAYS, "disabled"),
    "add_tier_locked": Output(ids.ADD_TIER, "disabled"),
    "remove_tier_locked": Output(ids.REMOVE_TIER, "disabled"),
    "save_locked": Output(ids.SAVE, "disabled"), "submit_locked": Output(ids.SUBMIT, "disabled"),
    "problems": Output(ids.PROBLEMS, "data"), "result": Output(ids.EDIT_RESULT, "children"),
}


@callback(
    output=EDITOR_OUTPUTS,
    inputs=[Input(ids.VERSION, "value"), State(ids.SAVED, "data")],
)
@require_roles(*READ)
def show_version(version_id: int | None, saved: dict | None = None) -> dict[str, Any]:
    """The selected version in the editor: editable only for its author while a draft.

    Re-run after every save (the lists reload); the message of a save of this
    very version just now stays, any other message is cleared."""
    version_id = as_id(version_id)
    if version_id is None:
        raise PreventUpdate
    actor = current_actor()
    try:
        with get_db().read() as s:
            v = rule_history.version(s, version_id)
            currency = program.program_info(s).currency
            frozen = rules.frozen_by_pilot(s, v.id) if v.status == "draft" else None
    except LoyaltyError as exc:
        return dict.fromkeys(EDITOR_OUTPUTS, no_update) | {"info": _alert(page.refusal(exc))}
    if actor.role not in WRITE:
        why = _("Read-only: executives see the rules; supervisors change them.")
    elif v.status != "draft":
        why = _("This version is %(state)s: a version is never edited once submitted. "
                "Use \u201cNew draft from this version\u201d to change it.",
                state=page.state_text(v.state))
    elif frozen:
        text = page.tr(frozen)
        why = text[:1].upper() + text[1:] + "."
    elif v.author_id is not None and v.author_id != actor.id:
        why = _("This draft belongs to %(name)s: only its author edits it. "
                "Use \u201cNew draft from this version\u201d to make your own.", name=v.author)
    else:
        why = ""
    editable = not why
    pv = v.rules.point_value_minor
    window = v.rules.tier_window_days
    modes = page.window_modes(editable=editable)
    locked = not editable
    return {
        "info": page.version_summary(v, currency, editable=editable, why_read_only=why),
        "rows": page.editor_rows(
            {k: fmt.typed(x) if k in TIER_NUMBERS else x for k, x in row.items()}
            for row in rules.tier_rows(v.rules)),
        "columns": page.tier_columns(editable, currency),
        "name": v.name, "name_locked": locked, "note": v.note, "note_locked": locked,
        "point_value": fmt.typed(f"{pv // 100}.{pv % 100:02d}"), "point_value_locked": locked,
        "window_mode": "rolling" if window else "lifetime", "window_modes": modes,
        "window_days": window, "window_days_locked": locked,
        "add_tier_locked": locked, "remove_tier_locked": locked,
        "save_locked": locked, "submit_locked": locked, "problems": {},
        "result": no_update if _just_saved(saved, version_id) else None,
    }


def _just_saved(saved: dict | None, version_id: Any) -> bool:
    return (isinstance(saved, dict) and saved.get("select") == version_id
            and time.time() - float(saved.get("at") or 0) < 15)


@callback(
    Output(ids.NAME, "invalid"), Output(ids.NAME_FB, "children"),
    Output(ids.POINT_VALUE, "invalid"), Output(ids.POINT_VALUE_FB, "children"),
    Output(ids.WINDOW_DAYS, "invalid"), Output(ids.WINDOW_FB, "children"),
    Input(ids.PROBLEMS, "data"),
)
@require_roles(*READ)
def field_feedback(problems: dict[str, str] | None) -> tuple:
    """Rule-set level messages next to their inputs."""
    p = problems if isinstance(problems, dict) else {}
    out: list[Any] = []
    for key in page.INPUT_FIELDS:
        out += [bool(p.get(key)), p.get(key, "")]
    return tuple(out)


@callback(Output(ids.DIFF, "children"), Input(ids.DIFF_A, "value"), Input(ids.DIFF_B, "value"))
@require_roles(*READ)
def show_diff(a_id: int | None, b_id: int | None) -> Any:
    a_id, b_id = as_id(a_id), as_id(b_id)
    if a_id is None or b_id is None:
        return page.empty_diff()
    with get_db().read() as s:
        try:
            a = rule_history.version(s, int(a_id))
            b = rule_history.version(s, int(b_id))
        except LoyaltyError as exc:
            return _alert(page.refusal(exc))
        currency = program.program_info(s).currency
    return page.diff_view(a, b, rules.diff(a.rules, b.rules), currency)


# ---------------------------------------------------------------- editor


@callback(
    Output(ids.GRID, "rowTransaction"),
    Input(ids.ADD_TIER, "n_clicks"), Input(ids.REMOVE_TIER, "n_clicks"),
    State(ids.GRID, "selectedRows"),
    prevent_initial_call=True,
)
@require_roles(*WRITE)
def edit_tier_rows(_add: int | None, _remove: int | None, selected: list | None) -> Any:
    """Add a blank tier at the end, or remove the selected one (nothing is
    saved until "Save draft")."""
    if ctx.triggered_id == ids.ADD_TIER:
        return {"add": [page.blank_row()]}
    if not selected:
        raise PreventUpdate
    return {"remove": [{"rid": r.get("rid")} for r in selected]}


TIER_NUMBERS = ("threshold", "accrual_rate", "referral_rate")  # typed in the grid


def parse_days(value: Any, most: int) -> int:
    """A number of days typed in a text box, with the reason when it is refused."""
    text = localised(as_text(value), lang=current_language())
    if not text:
        raise ValidationError("days", N_("enter a whole number of days from 1 to %(most)s",
                                         most=f"{most:,}"))
    if not re.fullmatch(r"[+-]?\d+", text):
        raise ValidationError("days", N_(
            "%(value)s is not a whole number of days: enter one from 1 to %(most)s",
            value=f"{value!s:.20}", most=f"{most:,}"))
    if len(text.lstrip("+-").lstrip("0")) > len(str(most)) or int(text) > most:
        raise ValidationError("days", too_large(N_("%(n)s days", n=f"{most:,}")))
    if int(text) < 1:
        raise ValidationError("days", N_("must be at least 1 day (at most %(most)s)",
                                         most=f"{most:,}"))
    return int(text)


def parse_settings(
    point_value: Any, mode: str | None, days: Any
) -> tuple[int | None, int | None, list[Problem]]:
    """(point value in minor units, window days or None, problems)."""
    problems: list[Problem] = []
    pv: int | None = None
    try:
        pv = parse_money_minor(canonical(point_value, lang=current_language()),
                               max_minor=MAX_POINT_VALUE_MINOR)
        if pv == 0:
            problems.append(Problem(None, "point_value", N_("must be more than 0")))
    except ValueError as exc:
        problems.append(Problem(None, "point_value", exc.args[0]))
    window: int | None = None
    if mode == "rolling":
        try:
            window = parse_days(days, rules.MAX_WINDOW_DAYS)
        except ValidationError as exc:
            problems.append(Problem(None, "tier_window_days", exc.message))
    return pv, window, problems


@callback(
    Output(ids.GRID, "rowData", allow_duplicate=True),
    Output(ids.PROBLEMS, "data", allow_duplicate=True),
    Output(ids.EDIT_RESULT, "children", allow_duplicate=True),
    Output(ids.SAVED, "data"),
    Input(ids.SAVE, "n_clicks"), Input(ids.SUBMIT, "n_clicks"),
    State(ids.VERSION, "value"), State(ids.GRID, "virtualRowData"), State(ids.GRID, "rowData"),
    State(ids.NAME, "value"), State(ids.NOTE, "value"), State(ids.POINT_VALUE, "value"),
    State(ids.WINDOW_MODE, "value"), State(ids.WINDOW_DAYS, "value"), State(ids.TOKEN, "data"),
    prevent_initial_call=True,
    running=busy(ids.SAVE, ids.SUBMIT),
)
@require_roles(*WRITE, writes=True)
def save_draft(_save: int | None, _submit: int | None, version_id: int | None,
               virtual_rows: list | None, rows: list | None, name: str | None,
               note: str | None, point_value: Any, mode: str | None, days: Any,
               token: Any = None) -> tuple:
    """Validate everything, then save (and submit); an invalid draft is never saved."""
    version_id = as_id(version_id)
    if version_id is None:
        raise PreventUpdate
    name, note = as_text(name), as_text(note)
    grid_rows = virtual_rows if virtual_rows is not None else rows or []
    clean = [{k: localised(v, lang=current_language()) if k in TIER_NUMBERS else v
              for k, v in row.items()} for row in page.clean_rows(grid_rows)]
    submit = ctx.triggered_id == ids.SUBMIT
    pv, window, problems = parse_settings(point_value, mode, days)
    problems = rules.validate_tiers(clean)[1] + problems
    if not (name or "").strip():
        problems.append(Problem(None, "name", N_("is required")))
    if (too_long := length_problem(note, MAX_COMMENT)):
        problems.append(Problem(None, "note", too_long))
    if problems:
        return _refused(grid_rows, problems)
    actor = current_actor()

    def tx(s: Any) -> None:
        rules.update_draft(s, actor, int(version_id), name or "", clean, point_value_minor=pv,
                           tier_window_days=window, note=(note or "").strip())

    payload = {"id": version_id, "tiers": clean, "name": name, "note": note, "pv": pv,
               "window": window}
    try:
        once("rules.submit" if submit else "rules.save", token, payload, tx)
    except RuleValidationError as exc:
        return _refused(grid_rows, exc.problems)
    except LoyaltyError as exc:
        return no_update, no_update, _alert(page.refusal(exc)), no_update
    if submit:
        # after the save: a refusal (no simulation of this content on the
        # current data) keeps the saved draft
        try:
            get_db().write_tx(lambda s: rule_review.submit(s, actor, int(version_id)))
        except LoyaltyError as exc:
            return (page.rows_with_problems(grid_rows, []), {},
                    _alert(_("Draft saved, not submitted. %(reason)s",
                             reason=page.refusal(exc)), "warning",
                           id="rules-submit-refused"),
                    _stamp(int(version_id)))
    msg = (_("Saved and submitted: another supervisor can now approve it (Approval tab).")
           if submit else _("Draft saved."))
    return (page.rows_with_problems(grid_rows, []), {}, _alert(msg, "success", duration=8000,
                                                            id="rules-saved-ok"),
            _stamp(int(version_id)))


def _refused(grid_rows: list, problems: list[Problem]) -> tuple:
    fields = page.field_problems(problems)
    # the settings' messages show next to their inputs; the others in the list
    return (page.rows_with_problems(grid_rows, problems), fields,
            page.problem_list(problems, [f for f in fields if f in page.INPUT_FIELDS]), no_update)


@callback(
    Output(ids.EXPIRY_RESULT, "children"), Output(ids.EXPIRY, "invalid"),
    Output(ids.EXPIRY_FB, "children"), Output(ids.EXPIRY_CHANGED, "data"),
    Input(ids.EXPIRY_SAVE, "n_clicks"),
    State(ids.EXPIRY, "value"), State(ids.EXPIRY_NEVER, "value"),
    State(ids.EXPIRY_CHANGED, "data"), State(ids.TOKEN, "data"),
    prevent_initial_call=True,
    running=busy(ids.EXPIRY_SAVE),
)
@require_roles(*WRITE, writes=True)
def propose_expiry(_n: int | None, days: Any, never: bool | None, changed: Any,
                   token: Any = None) -> tuple:
    """Propose a new expiry period; it applies once a second supervisor approves."""
    value: int | None = None
    if never is not True:
        try:
            value = parse_days(days, settings_changes.MAX_EXPIRY_DAYS)
        except ValidationError as exc:
            return None, True, page.tr(exc.message), no_update
    actor = current_actor()
    try:
        once("rules.expiry.propose", token, {"days": value},
             lambda s: settings_changes.propose_expiry(s, actor, value))
    except ValidationError as exc:
        return None, True, page.tr(exc.message), no_update
    except LoyaltyError as exc:
        return _alert(page.refusal(exc)), False, "", no_update
    text = (_("Proposed: points never expire. Another supervisor approves it.")
            if value is None else
            _("Proposed: points expire after %(period)s. Another supervisor approves it.",
              period=page.days_text(value)))
    return (_alert(text, "success", duration=8000), False, "",
            (changed if isinstance(changed, int) else 0) + 1)


@callback(
    Output(ids.EXPIRY_PENDING, "children"), Output(ids.EXPIRY_DECIDE_BOX, "style"),
    Input(ids.EXPIRY_CHANGED, "data"),
)
@require_roles(*READ)
def show_expiry_proposal(_changed: Any) -> tuple:
    """The proposal waiting for a second supervisor, with its simulated effect."""
    actor = current_actor()
    with get_db().read() as s:
        waiting = settings_changes.waiting(s)
        currency = program.program_info(s).currency
    if waiting is None:
        return None, {"display": "none"}
    can_decide = actor.role in WRITE
    return (page.expiry_proposal(waiting, currency, mine=waiting.requested_by_id == actor.id),
            {"display": "block"} if can_decide else {"display": "none"})


@callback(
    Output(ids.EXPIRY_DECISION, "children"), Output(ids.EXPIRY_CHANGED, "data",
                                                    allow_duplicate=True),
    Input(ids.EXPIRY_APPROVE, "n_clicks"), Input(ids.EXPIRY_REJECT, "n_clicks"),
    State(ids.EXPIRY_REASON, "value"), State(ids.EXPIRY_CHANGED, "data"),
    State(ids.TOKEN, "data"),
    prevent_initial_call=True,
    running=busy(ids.EXPIRY_APPROVE, ids.EXPIRY_REJECT),
)
@require_roles(*WRITE, writes=True)
def decide_expiry(_ok: int | None, _no: int | None, reason: Any, changed: Any,
                  token: Any = None) -> tuple:
    if ctx.triggered_id not in (ids.EXPIRY_APPROVE, ids.EXPIRY_REJECT):
        raise PreventUpdate
    actor = current_actor()

    def decide(s) -> str:
        waiting = settings_changes.waiting(s)
        if waiting is None:
            raise InvalidState(N_("no settings change is waiting"))
        if ctx.triggered_id == ids.EXPIRY_APPROVE:
            settings_changes.approve(s, actor, waiting.id)
            days = waiting.changes["expiry_days"]
            return (_("Approved: points now never expire.") if days is None
                    else _("Approved: points now expire after %(period)s.",
                           period=page.days_text(days)))
        settings_changes.reject(s, actor, waiting.id, reason if isinstance(reason, str) else "")
        return _("Refused: the expiry period stays as it was.")

    approving = ctx.triggered_id == ids.EXPIRY_APPROVE
    try:
        text, _again = once("rules.expiry.approve" if approving else "rules.expiry.refuse",
                            token, {"reason": reason}, decide)
    except LoyaltyError as exc:
        return _alert(page.refusal(exc)), no_update
    return (_alert(text, "success", duration=8000),
            (changed if isinstance(changed, int) else 0) + 1)


# ---------------------------------------------------------------- copies


def copy_name(s: Any, source_id: int, rollback: bool) -> str:
    """The name of a new draft copied from a version, in the user's language."""
    src = rules.get_rules(s, source_id)
    if rollback:
        return _("Rollback to #%(id)s %(name)s", id=source_id, name=src.name)
    return _("Copy of #%(id)s %(name)s", id=source_id, name=src.name)


@callback(
    Output(ids.COPY_RESULT, "children"), Output(ids.COPIED, "data"),
    Output(ids.TABS, "active_tab"),
    Input(ids.NEW_DRAFT, "n_clicks"), Input(ids.ROLLBACK, "n_clicks"),
    State(ids.VERSION, "value"), State(ids.HISTORY_GRID, "selectedRows"),
    State(ids.TOKEN, "data"),
    prevent_initial_call=True,
    running=busy(ids.NEW_DRAFT, ids.ROLLBACK),
)
@require_roles(*WRITE, writes=True)
def copy_version(_new: int | None, _rollback: int | None, version_id: int | None,
                 history_selected: list | None, token: Any = None) -> tuple:
    """A new draft from a version (rollback = from an old one, chosen in History)."""
    rollback = ctx.triggered_id == ids.ROLLBACK
    source = (history_selected or [{}])[0].get("id") if rollback else version_id
    if source is None:
        msg = (_("Select the version to roll back to in the history table first.") if rollback
               else _("Select a version first."))
        return _alert(msg, "warning"), no_update, no_update
    actor = current_actor()
    try:
        new_id, _again = once(
            "rules.rollback" if rollback else "rules.copy", token, {"source": source},
            lambda s: rules.copy_to_draft(s, actor, int(source), rollback=rollback,
                                          name=copy_name(s, int(source), rollback)))
    except LoyaltyError as exc:
        return _alert(page.refusal(exc)), no_update, no_update
    msg = (_("Rollback draft #%(id)s created from #%(source)s: edit it, simulate it, submit it.",
             id=new_id, source=source) if rollback else
           _("Draft #%(id)s created from #%(source)s: edit it, simulate it, submit it.",
             id=new_id, source=source))
    return (_alert(msg, "success", duration=8000),
            _stamp(new_id), "editor")


# ---------------------------------------------------------------- approval


def parse_effective_at(value: Any) -> dt.datetime:
    if not value or not str(value).strip():
        raise ValidationError("effective_at", N_("choose the date and time it takes effect"))
    try:
        return dt.datetime.fromisoformat(str(value).strip()).replace(tzinfo=None, microsecond=0)
    except ValueError:
        raise ValidationError("effective_at", N_("not a date and time")) from None


@callback(
    Output(ids.DECIDE_RESULT, "children"),
    Output(ids.EFFECTIVE_AT, "invalid"), Output(ids.EFFECTIVE_FB, "children"),
    Output(ids.DECISION_NOTE, "invalid"), Output(ids.DECISION_NOTE_FB, "children"),
    Output(ids.DECIDED, "data"),
    Input(ids.APPROVE, "n_clicks"), Input(ids.REJECT, "n_clicks"),
    State(ids.PENDING_GRID, "selectedRows"), State(ids.EFFECTIVE_AT, "value"),
    State(ids.DECISION_NOTE, "value"), State(ids.TOKEN, "data"),
    prevent_initial_call=True,
    running=busy(ids.APPROVE, ids.REJECT),
)
@require_roles(*WRITE, writes=True)
def decide(_approve: int | None, _reject: int | None, selected: list | None,
           effective_at: Any, note: str | None, token: Any = None) -> tuple:
    """Approve (publish from an effective time) or reject a submitted version;
    the four-eyes and not-in-the-past rules are the service's."""
    clear = (False, "", False, "")
    if not selected:
        return (_alert(_("Select a submitted version in the table first."), "warning"),
                *clear, no_update)
    rule_set_id = int(selected[0]["id"])
    approving = ctx.triggered_id == ids.APPROVE
    actor = current_actor()
    try:
        if approving:
            when = parse_effective_at(effective_at)
            once("rules.approve", token, {"id": rule_set_id, "at": when, "note": note},
                 lambda s: rules.approve(s, actor, rule_set_id, when,
                                         note=(note or "").strip()))
        else:
            once("rules.reject", token, {"id": rule_set_id, "note": note},
                 lambda s: rules.reject(s, actor, rule_set_id, note or ""))
    except ValidationError as exc:
        if exc.field == "effective_at":
            return None, True, page.tr(exc.message), False, "", no_update
        if exc.field == "reason":
            return None, False, "", True, page.tr(exc.message), no_update
        return _alert(page.refusal(exc)), *clear, no_update
    except LoyaltyError as exc:
        return _alert(page.refusal(exc), id="rules-decide-refused"), *clear, no_update
    if approving:
        msg = _("#%(id)s approved: it takes effect %(when)s UTC; orders paid from then on "
                "accrue under it.", id=rule_set_id, when=fmt.when(when))
    else:
        msg = _("#%(id)s rejected.", id=rule_set_id)
    return (_alert(msg, "success", duration=10_000, id="rules-decide-ok"), *clear,
            _stamp(rule_set_id))


@callback(
    Output(ids.REVIEW, "children"),
    Output(ids.DECIDE_RESULT, "children", allow_duplicate=True),
    Output(ids.EFFECTIVE_AT, "invalid", allow_duplicate=True),
    Output(ids.EFFECTIVE_FB, "children", allow_duplicate=True),
    Output(ids.DECISION_NOTE, "invalid", allow_duplicate=True),
    Output(ids.DECISION_NOTE_FB, "children", allow_duplicate=True),
    Input(ids.PENDING_GRID, "selectedRows"),
    prevent_initial_call="initial_duplicate",
)
@require_roles(*READ)
def show_review(selected: list | None) -> tuple:
    """The selected submitted version: its diff against the version in force
    and the simulation it was submitted with. Selecting another version clears
    the messages of the previous decision (a decided version leaves the table
    and the selection empties: its message stays)."""
    keep = (no_update,) * 5
    rule_set_id = as_id((selected or [{}])[0].get("id")) if isinstance(selected, list) else None
    if rule_set_id is None:
        return (page.review_hint(), *keep)
    clear = (None, False, "", False, "")
    try:
        with get_db().read() as s:
            everything = rule_history.versions(s, limit=10_000)
            pending = next((v for v in everything if v.id == rule_set_id), None)
            if pending is None:
                raise NotFound(N_("rule set %(id)s does not exist", id=rule_set_id))
            live = next((v for v in everything if v.state == "in force"), None)
            currency = program.program_info(s).currency
            rec = rule_review.latest_simulation(s, rule_set_id)
            stale = rule_review.staleness(s, rule_set_id, rec) if rec is not None else []
    except LoyaltyError as exc:
        return (_alert(page.refusal(exc)), *clear)
    d = rules.diff(live.rules, pending.rules) if live is not None else None
    return (page.review_view(pending, live, d, rec, stale, currency), *clear)


def reevaluate_job(in_force_id: int | None, token: str | None) -> Any:
    """The body of the background tier pass (no request here: see dashboard.jobs).

    A background job because it rewrites every member's row: on PostgreSQL at
    a million members that takes tens of seconds (benchmarks/bench_tier_pass.py).
    """
    with jobs.job_context():
        try:
            actor = jobs.job_actor(token, WRITE, kind="tier-pass")
        except LoyaltyError as exc:
            return _alert(page.refusal(exc))
        if in_force_id is None:
            return _alert(_("No version is in force: there are no tiers to evaluate."),
                          "warning")
        try:
            res = get_db().write_tx(
                lambda s: rule_history.reevaluate_now(s, actor, int(in_force_id)))
        except LoyaltyError as exc:
            return _alert(page.refusal(exc))
        dist = ", ".join(f"{k}: {fmt.points(v)}" for k, v in sorted(res.distribution.items()))
        return _alert(_("Tiers re-evaluated under #%(id)s: %(changed)s of %(members)s members "
                        "changed tier (%(tiers)s).", id=res.rule_set_id,
                        changed=fmt.points(res.changed), members=fmt.points(res.members),
                        tiers=dist), "success")


@callback(
    Output(ids.REEVALUATE_RESULT, "children"),
    Input(ids.REEVALUATE, "n_clicks"), State(ids.IN_FORCE_ID, "data"), State(ids.ACTOR, "data"),
    background=True,
    running=[
        (Output(ids.REEVALUATE, "disabled"), True, False),
        (Output(ids.REEVALUATE_RUNNING, "style"), {"display": "block"}, {"display": "none"}),
    ],
    prevent_initial_call=True,
)
@require_roles(*WRITE, writes=True)
def reevaluate(_n: int | None, in_force_id: int | None, token: str | None) -> Any:
    return reevaluate_job(in_force_id, token)


# ---------------------------------------------------------------- simulation


def simulation_job(set_progress: Any, version_id: Any, days: Any, token: str | None) -> Any:
    """The body of the background simulation (no request here: see dashboard.jobs)."""
    with jobs.job_context():
        try:
            actor = jobs.job_actor(token, READ, kind="simulation")
        except LoyaltyError as exc:
            return _alert(page.refusal(exc), id="rules-sim-refused")
        if version_id is None:
            return _alert(_("Select a version to simulate first."), "warning")
        try:
            n_days = parse_days(days, MAX_SIM_DAYS)
        except ValidationError as exc:
            return _alert(_("Days of orders: %(problem)s.", problem=page.tr(exc.message)),
                          "warning", id="rules-sim-days-refused")

        def progress(frac: float, message: str) -> None:
            pct = int(round(frac * 100))
            set_progress((pct, f"{pct} % {translate(message)}"))

        try:
            with get_db().read() as s:
                currency = program.program_info(s).currency
                # taken before the simulation reads: a change during the run
                # makes the record out of date, never the other way round
                data = rule_review.data_fingerprint(s)
                result = simulate(s, int(version_id), days=n_days, progress=progress)
        except Cancelled:
            raise PreventUpdate from None
        except LoyaltyError as exc:
            return _alert(page.refusal(exc), "warning")
        get_db().write_tx(lambda s: rule_review.record_simulation(s, actor, result, data))
        return page.simulation_view(result, currency)


@callback(
    Output(ids.SIM_RESULT, "children"),
    Input(ids.SIM_RUN, "n_clicks"),
    State(ids.VERSION, "value"), State(ids.SIM_DAYS, "value"), State(ids.ACTOR, "data"),
    **jobs.background_job(ids.SIM_PROGRESS, ids.SIM_CANCEL, locked=[ids.SIM_RUN]),
    prevent_initial_call=True,
)
@require_roles(*READ)
def run_simulation(set_progress: Any, _n: int | None, version_id: Any, days: Any,
                   token: str | None) -> Any:
    return simulation_job(set_progress, version_id, days, token)
