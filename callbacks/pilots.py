"""Pilots callbacks: list, results, the create form with its power estimate, actions.

Thin: parse the inputs -> a ``db.pilots`` service -> a pure builder from
``pages.pilots``. Reading is for supervisors and executives;
creating, starting, ending, cancelling and rolling out are supervisors' only.
The results are a background callback (progress bar, Stop), as the tier
rules simulation: the guard checks the role of the request that starts the
job and of every poll, and the job checks it again from a signed identity
(dashboard.jobs), because it runs without a request.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import re
from typing import Any

from dash import (
    ClientsideFunction,
    Input,
    Output,
    State,
    callback,
    clientside_callback,
    ctx,
    dcc,
    html,
    no_update,
)
from dash.exceptions import PreventUpdate

from dashboard import format as fmt
from dashboard import jobs
from dashboard.access import roles_of
from dashboard.auth import require_roles
from dashboard.callback_inputs import MAX_UPLOAD_BYTES, as_id
from dashboard.context import current_actor, get_db
from dashboard.forms import busy, once
from dashboard.i18n import N_, _, current_language, ngettext
from dashboard.shell import alert, empty_state, grid
from db import pilots, program, readviews
from db.errors import FormErrors, LoyaltyError, ValidationError, too_large
from db.numbers import localised
from db.pilots.parsing import Figure
from db.simulation import Cancelled
from pages import pilots as page
from pages.pilots import ids

READ = roles_of(page.__name__)
WRITE = roles_of(page.__name__, "write_roles")
ACTION_BUTTONS = (ids.START, ids.SEND_BACK, ids.CANCEL, ids.END, ids.ROLLOUT)

FIELDS = list(ids.FEEDBACK)
FEEDBACK_OUTPUTS = {f: Output(ids.FEEDBACK[f], "children") for f in FIELDS}
FORM_STATES = [
    State(ids.NAME, "value"), State(ids.RULE_SET, "value"), State(ids.SOURCE, "value"),
    State(ids.SEGMENTS, "value"), State(ids.TIERS, "value"), State(ids.JOINED_FROM, "value"),
    State(ids.JOINED_TO, "value"), State(ids.ACTIVE_DAYS, "value"), State(ids.UPLOAD, "contents"),
    State(ids.UPLOAD, "filename"), State(ids.SHARE, "value"), State(ids.SEED, "value"),
    State(ids.START_AT, "value"), State(ids.END_AT, "value"), State(ids.METRIC, "value"),
    State(ids.MIN_EFFECT, "value"),
]


def _no_feedback() -> dict[str, str]:
    return dict.fromkeys(FIELDS, "")


def _feedback(field: str, message: str) -> dict[str, str]:
    return _feedbacks({field: message})


def _feedbacks(problems: dict[str, str]) -> dict[str, str]:
    """Every message next to its field (filters' messages next to the population)."""
    out = _no_feedback()
    for field, message in problems.items():
        at = field if field in out else "population"
        out[at] = "; ".join(x for x in (out[at], page.say(message)) if x)
    return out


def _seed(value: Any) -> int:
    text = str(value if value is not None else "").strip()
    if not re.fullmatch(r"\d+", text):
        raise ValidationError("seed", N_("must be a whole number (0 or more)"))
    if len(text.lstrip("0")) > len(str(pilots.MAX_SEED)) or int(text) > pilots.MAX_SEED:
        raise ValidationError("seed", too_large(Figure(pilots.MAX_SEED, ",d")))
    return int(text)


def _when(value: Any, field: str) -> dt.datetime:
    text = str(value or "").strip()
    for fmt_ in ("%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M", "%Y-%m-%d"):
        try:
            return dt.datetime.strptime(text[:16], fmt_)
        except ValueError:
            continue
    raise ValidationError(field, N_("must look like %(date)s or %(datetime)s", date="2025-01-31",
                                   datetime="2025-01-31 09:00"))


def _file(contents: str | None) -> bytes:
    if not contents:
        raise ValidationError("member_file", N_("upload a CSV of member ids first"))
    try:
        raw = base64.b64decode(contents.split(",", 1)[1], validate=False)
    except (IndexError, ValueError):
        raise ValidationError("member_file", N_("the upload could not be read")) from None
    if len(raw) > MAX_UPLOAD_BYTES:
        raise ValidationError("member_file", N_("the file is larger than %(mb)s MB",
                                                mb=MAX_UPLOAD_BYTES // 2**20))
    return raw


def _form(name, rule_set, source, segments, tiers, joined_from, joined_to, active_days,
          contents, filename, share, seed, start_at, end_at, metric, min_effect
          ) -> dict[str, Any]:
    """The form as service arguments; every bad field at once in :class:`FormErrors`."""
    problems: dict[str, str] = {}
    lang = current_language()  # numbers as typed in the user's language
    share, seed, min_effect, active_days = (
        localised(v, lang=lang) for v in (share, seed, min_effect, active_days))
    args: dict[str, Any] = {"pilot_share": share, "primary_metric": metric,
                            "min_effect": min_effect}

    def take(key: str, parse: Any) -> None:
        try:
            args[key] = parse()
        except ValidationError as exc:
            problems.setdefault(exc.field, exc.message)

    take("seed", lambda: _seed(seed))
    take("start_at", lambda: _when(start_at, "start_at"))
    take("planned_end_at", lambda: _when(end_at, "planned_end_at"))
    if source == "file":
        take("member_file", lambda: _file(contents))
        args["_filename"] = filename or "upload.csv"
    else:
        take("population", lambda: pilots.parse_population({
            "segments": segments or [], "tiers": tiers or [], "joined_from": joined_from,
            "joined_to": joined_to, "active_within_days": active_days,
        }))
    # the form's own fields, as the service checks them
    for field, message in pilots.form_problems(
            name, as_id(rule_set), share, args.get("seed"), args.get("start_at"),
            args.get("planned_end_at"), metric, min_effect).items():
        if field not in problems and not (field == "planned_end_at" and (
                "start_at" in problems or "planned_end_at" in problems)):
            problems[field] = message
    if problems:
        raise FormErrors(problems)
    args["_name"] = name
    args["_rule_set"] = rule_set
    return args


# ---------------------------------------------------------------- list and results


@callback(Output(ids.LIST, "children"), Input(ids.STATUS, "value"), Input(ids.REFRESH, "data"))
@require_roles(*READ)
def pilots_list(status: str | None, _refresh: int) -> Any:
    with get_db().read() as s:
        items = readviews.list_pilots(s)
    if not items:
        return empty_state(
            _("No pilots yet."),
            _("A pilot tries a draft rule set on part of a chosen population while a random "
              "control group keeps the current rules; a supervisor creates one in 'New pilot'."),
        )
    shown = [p for p in items if not status or p.status == status]
    if not shown:
        return empty_state(_("No %(status)s pilots.", status=page.status_label(status or "")),
                           _("Choose another status or clear the filter."))
    return grid("pilots-grid", page.pilot_columns(), page.pilot_rows(shown), height="260px")


@callback(
    Output(ids.PICK, "options"),
    Output(ids.PICK, "value"),
    Output(ids.RULE_SET, "options"),
    Output(ids.TIERS, "options"),
    Output(ids.ACTOR, "data"),
    Input(ids.REFRESH, "data"),
    State(ids.PICK, "value"),
)
@require_roles(*READ)
def choices(_refresh: int, current: int | None) -> tuple[Any, Any, Any, Any, str]:
    """The pickers, and the signed identity the results job re-checks."""
    with get_db().read() as s:
        found = pilots.pilot_choices(s)
        trial = pilots.trial_rule_sets(s)
        tiers = pilots.tier_names(s)
    known = {i for i, _n, _st in found}
    current = as_id(current)
    value = current if current in known else next(
        (i for i, _n, st in found if st in ("running", "ended")), found[0][0] if found else None)
    return (page.pilot_options(found), value,
            page.rule_set_options(trial),
            [{"label": t, "value": t} for t in tiers], jobs.identity_token())


RESULT_OUTPUTS = {
    "results": Output(ids.RESULTS, "children"),
    "start_locked": Output(ids.START, "disabled"),
    "cancel_locked": Output(ids.CANCEL, "disabled"),
    "end_locked": Output(ids.END, "disabled"),
    "rollout_locked": Output(ids.ROLLOUT, "disabled"),
    "export_locked": Output(ids.EXPORT, "disabled"),
    "export": Output(ids.RESULTS_CSV, "data"),
    "start_label": Output(ids.START, "children"),
    "send_back_locked": Output(ids.SEND_BACK, "disabled"),
    "overdue": Output(ids.OVERDUE, "is_open"),
    "overdue_text": Output(ids.OVERDUE_TEXT, "children"),
}


def _shown(results: Any, **changes: Any) -> dict[str, Any]:
    """The results panel and the actions: by default every action off, nothing
    to export, START's own label and the past-its-planned-end prompt closed."""
    return {"results": results, "start_locked": True, "cancel_locked": True,
            "end_locked": True, "rollout_locked": True, "export_locked": True, "export": None,
            "start_label": _("Request start"), "send_back_locked": True, "overdue": False,
            "overdue_text": ""} | changes


def results_job(set_progress: Any, pilot_id: Any, token: str | None) -> dict[str, Any]:
    """The body of the background results job (no request here: see
    dashboard.jobs): the role is checked again from the signed identity."""
    with jobs.job_context():
        try:
            actor = jobs.job_actor(token, READ, kind="pilot-results")
        except LoyaltyError as exc:
            return _shown(alert(exc, color="danger", id="pilots-results-refused"))
        if pilot_id is None:
            return _shown(page.no_results())

        def progress(frac: float, message: str) -> None:
            pct = int(round(frac * 100))
            set_progress((pct, f"{pct} % {page.say(message)}"))

        try:
            with get_db().read() as s:
                info = pilots.pilot_info(s, int(pilot_id))
                currency = program.currency(s)
                if info.status == "draft":
                    progress(0.3, _("estimating power from the pre-period orders"))
                    power = pilots.pilot_power(s, int(pilot_id))
                    requested = info.start_requested_by is not None
                    return _shown(
                        html.Div([
                            page.pilot_facts(info, currency),
                            page.draft_alert(info),
                            page.power_card(power, currency,
                                            title=_("Power estimate before the start")),
                        ]),
                        start_locked=False, cancel_locked=False,
                        start_label=_("Approve start") if requested else _("Request start"),
                        send_back_locked=not requested,
                    )
                if info.status == "cancelled":
                    return _shown(html.Div([page.pilot_facts(info, currency), alert(
                        _("This pilot was cancelled before it started; it has no results."),
                        color="secondary")]))
                r = pilots.pilot_results(s, int(pilot_id), progress=progress)
        except Cancelled:
            raise PreventUpdate from None
        except LoyaltyError as exc:
            return _shown(alert(exc, color="warning"))
        running = info.status == "running"
        export = {"pilot_id": info.id, "csv": pilots.results_csv(r, label=page.say),
                  "filename": f"pilot-{info.id}-results-{r.end:%Y%m%d}.csv"}
        overdue = info.past_planned_end()
        prompt = page.overdue_text(info, actor.role in WRITE) if overdue else ""
        return _shown(page.results_view(r), end_locked=not running, rollout_locked=False,
                      export_locked=False, export=export, overdue=overdue, overdue_text=prompt)


@callback(
    output=RESULT_OUTPUTS,
    inputs=[Input(ids.PICK, "value"), Input(ids.REFRESH, "data"), State(ids.ACTOR, "data")],
    **jobs.background_job(ids.RESULTS_PROGRESS, ids.RESULTS_CANCEL, locked=[ids.PICK]),
    prevent_initial_call=True,
)
@require_roles(*READ)
def results(set_progress: Any, pilot_id: int | None, _refresh: int, token: str | None
            ) -> dict[str, Any]:
    """Results of a 100k-member pilot take seconds to tens of seconds: a
    background job with a progress bar and a Stop button, never a request
    held open past the web server's timeout."""
    return results_job(set_progress, pilot_id, token)


@callback(
    Output(ids.DOWNLOAD, "data"),
    Input(ids.EXPORT, "n_clicks"),
    State(ids.PICK, "value"),
    State(ids.RESULTS_CSV, "data"),
    prevent_initial_call=True,
)
@require_roles(*READ)
def export(_n: int, pilot_id: int | None, computed: dict | None) -> Any:
    """The CSV of the results on screen (made by the results job, so the
    export does not compute them a second time)."""
    if pilot_id is None or not isinstance(computed, dict) or computed.get("pilot_id") != pilot_id:
        return no_update
    return dcc.send_string(str(computed.get("csv") or ""), str(computed.get("filename")))


@callback(
    Output(ids.ACTION_MSG, "children"),
    Output(ids.REFRESH, "data"),
    Input(ids.START, "n_clicks"),
    Input(ids.SEND_BACK, "n_clicks"),
    Input(ids.CANCEL, "n_clicks"),
    Input(ids.END, "n_clicks"),
    Input(ids.END_NOW, "n_clicks"),
    Input(ids.ROLLOUT, "n_clicks"),
    State(ids.PICK, "value"),
    State(ids.SEND_BACK_REASON, "value"),
    State(ids.REFRESH, "data"),
    State(ids.TOKEN, "data"),
    prevent_initial_call=True,
    # the buttons stay disabled until the results show which ones apply now
    running=[(Output(b, "disabled"), True, True) for b in ACTION_BUTTONS],
)
@require_roles(*WRITE, writes=True)
def act(_s: int, _b: int, _c: int, _e: int, _n: int, _r: int, pilot_id: int | None,
        reason: str | None, refresh: int, token: Any = None) -> tuple[Any, Any]:
    if pilot_id is None:
        return alert(_("Choose a pilot first."), color="warning"), no_update
    actor = current_actor()
    what = ctx.triggered_id
    if what not in (*ACTION_BUTTONS, ids.END_NOW):
        return no_update, no_update

    def work(s: Any) -> str:
        if what == ids.START:
            if pilots.pilot_info(s, pilot_id).start_requested_by is None:
                pilots.request_start(s, actor, pilot_id)
                return _("Start requested. Another supervisor, who did not write the pilot's "
                         "rules or create it, approves it; until then nothing changes for "
                         "its members.")
            pilots.start_pilot(s, actor, pilot_id)
            return _("Pilot started: its pilot group now earns under the pilot's rules.")
        if what == ids.SEND_BACK:
            pilots.send_back_start(s, actor, pilot_id, reason or "")
            return _("Start sent back: the pilot stays a draft.")
        if what == ids.CANCEL:
            pilots.cancel_pilot(s, actor, pilot_id)
            return _("Draft pilot cancelled; its members are free for another pilot.")
        if what in (ids.END, ids.END_NOW):
            pilots.end_pilot(s, actor, pilot_id)
            return _("Pilot ended: every member is back on the published rules.")
        rid = pilots.rollout_draft(s, actor, pilot_id)
        return _("Draft rule set #%(id)s created from the pilot's rules. Submit it on the "
                 "Tier rules page; another supervisor approves it.", id=rid)

    try:
        msg, _again = once(f"pilots.{what}", token, {"id": pilot_id, "reason": reason}, work)
    except LoyaltyError as exc:
        # the results are shown again: they enable the buttons that apply
        return alert(exc, color="danger", dismissable=True), (refresh or 0) + 1
    return alert(msg, color="success", dismissable=True), (refresh or 0) + 1


# ---------------------------------------------------------------- the create form

clientside_callback(
    ClientsideFunction("pilots", "sourceBoxes"),  # assets/pilots.js
    Output(ids.FILTER_BOX, "style"),
    Output(ids.FILE_BOX, "style"),
    Input(ids.SOURCE, "value"),
)


@callback(
    Output(ids.UPLOAD_INFO, "children"),
    Output(ids.FEEDBACK["member_file"], "children", allow_duplicate=True),
    Input(ids.UPLOAD, "contents"),
    State(ids.UPLOAD, "filename"),
    prevent_initial_call=True,
)
@require_roles(*WRITE)
def check_upload(contents: str | None, filename: str | None) -> tuple[Any, Any]:
    """Read the file at once, so its bad lines show before anything is pressed."""
    try:
        raw = _file(contents)
        with get_db().read() as s:
            found = pilots.parse_member_csv(s, raw)
    except pilots.MemberFileError as exc:
        more = _(" … and %(n)s more", n=fmt.points(exc.total - len(exc.problems))) if (
            exc.total > len(exc.problems)) else ""
        return "", html.Div([
            html.Div(ngettext(
                "%(name)s: %(count)s bad line; nothing will be created until the file is fixed.",
                "%(name)s: %(count)s bad lines; nothing will be created until the file is fixed.",
                exc.total, name=filename or _("The file"), count=fmt.points(exc.total))),
            html.Ul([html.Li(page.file_problem(p)) for p in exc.problems],
                    id="pilots-upload-problems", className="mb-0"),
            html.Div(more) if more else None,
        ])
    except ValidationError as exc:
        return "", page.say(exc.message)
    return html.Span(ngettext("%(name)s: %(count)s member read.",
                              "%(name)s: %(count)s members read.",
                              len(found), name=filename, count=fmt.points(len(found))),
                     className="text-success", id="pilots-upload-ok"), ""


@callback(
    output={"estimate": Output(ids.PREVIEW_OUT, "children"), "feedback": FEEDBACK_OUTPUTS},
    inputs=[Input(ids.PREVIEW, "n_clicks"), *FORM_STATES],
    prevent_initial_call=True,
)
@require_roles(*WRITE)
def preview(_n: int, *form: Any) -> dict[str, Any]:
    try:
        try:
            args = _form(*form)
        except FormErrors as exc:
            # the estimate needs neither a name nor a rule set
            left = {k: v for k, v in exc.problems.items() if k not in ("name", "rule_set_id")}
            if left:
                raise FormErrors(left) from None
            args = _form("estimate", 1, *form[2:])
        for k in ("_name", "_rule_set", "_filename"):
            args.pop(k, None)
        with get_db().read() as s:
            p = pilots.power_preview(s, **args)
            currency = program.currency(s)
    except pilots.MemberFileError as exc:
        return {"estimate": no_update,
                "feedback": _feedback("member_file", page.file_problems(exc))}
    except FormErrors as exc:
        return {"estimate": no_update, "feedback": _feedbacks(exc.problems)}
    except ValidationError as exc:
        return {"estimate": no_update, "feedback": _feedback(exc.field, exc.message)}
    return {"estimate": page.power_card(p, currency), "feedback": _no_feedback()}


@callback(
    output={
        "message": Output(ids.CREATE_MSG, "children"),
        "refresh": Output(ids.REFRESH, "data", allow_duplicate=True),
        "pick": Output(ids.PICK, "value", allow_duplicate=True),
        "tab": Output(ids.TABS, "active_tab"),
        "estimate": Output(ids.PREVIEW_OUT, "children", allow_duplicate=True),
        "feedback": {f: Output(o.component_id, o.component_property, allow_duplicate=True)
                     for f, o in FEEDBACK_OUTPUTS.items()},
    },
    inputs=[Input(ids.CREATE, "n_clicks"), *FORM_STATES, State(ids.REFRESH, "data"),
            State(ids.TOKEN, "data")],
    prevent_initial_call=True,
    running=busy(ids.CREATE),
)
@require_roles(*WRITE, writes=True)
def create(_n: int, *form_and_refresh: Any) -> dict[str, Any]:
    *form, refresh, token = form_and_refresh

    def refused(message: Any, feedback: dict[str, str]) -> dict[str, Any]:
        return {"message": message, "refresh": no_update, "pick": no_update, "tab": no_update,
                "estimate": no_update, "feedback": feedback}
    try:
        args = _form(*form)
        name, rule_set = args.pop("_name"), args.pop("_rule_set")
        note = args.pop("_filename", "")
        if note:
            args["source_note"] = note
        actor = current_actor()

        def work(s: Any) -> dict[str, int]:
            made = pilots.create_pilot(s, actor, name, rule_set, **args)
            return {"pilot_id": made.pilot_id, "n_pilot": made.n_pilot,
                    "n_control": made.n_control, "left_out": made.left_out}

        payload = [hashlib.sha256(str(v).encode()).hexdigest() for v in form]
        made, _again = once("pilots.create", token, payload, work)
        with get_db().read() as s:
            power = pilots.pilot_power(s, made["pilot_id"])
            currency = program.currency(s)
    except pilots.MemberFileError as exc:
        return refused(alert(_("Nothing was created: the file has bad lines."),
                             color="danger"), _feedback("member_file", page.file_problems(exc)))
    except FormErrors as exc:
        n = len(exc.problems)
        return refused(alert(
            ngettext("Nothing was created: see the message next to the field.",
                     "Nothing was created: see the messages next to the %(num)s fields.", n),
            color="danger", id="pilots-create-refused"), _feedbacks(exc.problems))
    except ValidationError as exc:
        return refused(alert(_("Nothing was created: see the message next to the field."),
                             color="danger", id="pilots-create-refused"),
                       _feedback(exc.field, exc.message))
    except LoyaltyError as exc:
        return refused(alert(exc, color="danger"), _no_feedback())
    left_out = _(" (%(n)s left out: inactive or in another pilot)",
                 n=fmt.points(made["left_out"])) if made["left_out"] else ""
    msg = alert(
        _("Pilot #%(id)s created as a draft: %(pilot)s pilot and %(control)s control "
          "members%(left_out)s. Its power estimate is below; start it from 'Pilots and "
          "results'.", id=made["pilot_id"], pilot=fmt.points(made["n_pilot"]),
          control=fmt.points(made["n_control"]), left_out=left_out),
        color="success", id="pilots-created")
    return {"message": msg, "refresh": (refresh or 0) + 1, "pick": made["pilot_id"],
            "tab": no_update,
            "estimate": page.power_card(power, currency,
                                        title=_("Power estimate of the saved groups")),
            "feedback": _no_feedback()}
