"""Overview callbacks: the period's KPIs vs the previous period, from the rollups."""

from __future__ import annotations

import datetime as dt
from typing import Any

from dash import Input, Output, callback, html, no_update
from dash.exceptions import PreventUpdate

from dashboard import format as fmt
from dashboard import jobs
from dashboard.access import roles_of
from dashboard.auth import require_roles
from dashboard.context import get_db
from dashboard.i18n import N_, _, ngettext, translate
from dashboard.shell import alert, empty_state
from db import rollups
from db.errors import LoyaltyError
from db.metrics import SEGMENT_LABELS
from db.models import SEGMENTS
from db.reports import overview as report
from pages import overview as page
from pages.overview import ids

ROLES = roles_of(page.__name__)


@callback(Output(ids.ACTOR, "data"), Input(ids.LOADED, "data"))
@require_roles(*ROLES)
def identity(_loaded: int | None) -> str:
    """The signed identity the overview job re-checks (it runs without a request)."""
    return jobs.identity_token()


def overview_job(set_progress: Any, months: int | None, segment: str | None,
                 token: str | None) -> tuple[Any, ...]:
    """The body of the background overview job (see dashboard.jobs): the role is
    checked again from the signed identity, then report.overview reports its steps."""
    months = months if months in (1, 3, 6, 12) else 3
    segment = segment if segment in SEGMENTS else None
    with jobs.job_context():
        try:
            jobs.job_actor(token, ROLES, kind="overview")
        except LoyaltyError as exc:
            refused = alert(exc, color="danger", id="overview-refused")
            return (refused, *(no_update,) * 8)

        def progress(frac: float, message: str) -> None:
            pct = int(round(frac * 100))  # the step's name in the user's language
            set_progress((pct, f"{pct} % {translate(message)}"))

        db = get_db()
        progress(0.01, N_("bringing the rollups up to date"))
        rollups.refresh_rollups(db)
        with db.read() as s:
            o = report.overview(s, months=months, segment=segment, progress=progress)
        return _render(o, months, segment)


@callback(
    Output(ids.SUMMARY, "children"),
    Output(ids.KPI_GRID, "rowData"),
    Output(ids.MONTHLY_GRID, "rowData"),
    Output(ids.ORDERS_FIG, "figure"),
    Output(ids.REVENUE_FIG, "figure"),
    Output(ids.COST_FIG, "figure"),
    Output(ids.TIERS_FIG, "figure"),
    Output(ids.LTV_FIG, "figure"),
    Output(ids.RETENTION_FIG, "figure"),
    Input(ids.MONTHS, "value"),
    Input(ids.SEGMENT, "value"),
    Input(ids.ACTOR, "data"),
    **jobs.background_job(ids.PROGRESS, ids.CANCEL),
    prevent_initial_call=True,
)
@require_roles(*ROLES)
def overview(set_progress: Any, months: int | None, segment: str | None,
             token: str | None) -> tuple[Any, ...]:
    """A long history makes a period take seconds: a background job with a
    progress bar and a Stop button, never a request held past the timeout.
    Changing the period or segment while it runs replaces the job."""
    if not token:
        raise PreventUpdate
    return overview_job(set_progress, months, segment, token)


def _render(o: report.Overview, months: int, segment: str | None) -> tuple[Any, ...]:
    """The page's components from the computed overview."""
    cur = o.currency
    (f, t), (pf, pt) = o.period, o.previous
    # the compared stretches' paid orders (the monthly charts also show whole months)
    orders = sum(r["current"] + (r["previous"] or 0) for r in o.rows if r["key"] == "orders")
    day = dt.timedelta(days=1)
    if t <= f:
        summary = empty_state(
            _("No complete day in this month yet: the figures compare complete days only."),
            _("Choose a longer period, or see today's activity on the live page."),
        )
    elif orders == 0:
        summary = empty_state(
            _("No paid orders in these months yet: every figure below is zero or '–'."),
            _("Orders arrive through the order import (%(import)s), the demo data "
              "(%(demo)s) or a live stream (%(live)s). A rate shows '–' when "
              "there is nothing to divide by.", **{"import": "loyalty import-orders",
                                                  "demo": "loyalty demo",
                                                  "live": "loyalty simulate-live"}),
        )
    else:
        stretch = ngettext("%(start)s to %(end)s (%(num)s complete day)",
                           "%(start)s to %(end)s (%(num)s complete days)", (t - f).days,
                           start=fmt.day(f), end=fmt.day(t - day))
        if o.comparable:
            text = ngettext(
                "%(stretch)s against %(start)s to %(end)s, the same stretch "
                "%(num)s month earlier",
                "%(stretch)s against %(start)s to %(end)s, the same stretch "
                "%(num)s months earlier",
                months, stretch=stretch, start=fmt.day(pf), end=fmt.day(pt - day))
        else:
            why = page.no_comparison(o.history_start)
            text = ngettext(
                "%(stretch)s. %(why)s, after %(start)s, where the same stretch %(num)s month "
                "earlier would begin, so these months are not compared with it; choose a "
                "shorter period to compare",
                "%(stretch)s. %(why)s, after %(start)s, where the same stretch %(num)s months "
                "earlier would begin, so these months are not compared with it; choose a "
                "shorter period to compare",
                months, stretch=stretch, why=why[0].upper() + why[1:], start=fmt.day(pf))
        if segment:
            label = translate(SEGMENT_LABELS.get(segment, segment))
            text += _("; members of segment '%(segment)s' (guests: all)", segment=label)
        text += _(". Frequency, repeat and participation cover every customer.")
        partial = [m for m in o.monthly if m.get("partial")]
        notes = [html.Span(text, id="overview-comparison")]
        if partial:
            notes.append(html.Div(
                ngettext(
                    "Partial months, lighter and hatched in the charts: %(months)s. A partial "
                    "current month is compared day for day (the same days %(num)s month "
                    "earlier), never with a whole month.",
                    "Partial months, lighter and hatched in the charts: %(months)s. A partial "
                    "current month is compared day for day (the same days %(num)s months "
                    "earlier), never with a whole month.",
                    months,
                    months="; ".join(f"{m['month']}: {page.partial_note(m)}" for m in partial)),
                className="small text-muted", id="overview-partial"))
        summary = html.Div(notes)
    return (
        summary,
        page.kpi_rows(o.rows, cur, comparable=o.comparable, history_start=o.history_start),
        page.monthly_rows(o.monthly, cur),
        page.orders_figure(o.monthly),
        page.revenue_figure(o.monthly, cur),
        page.cost_figure(o.monthly, cur),
        page.tiers_figure(o.tiers, o.monthly),
        page.ltv_figure(o.ltv, cur),
        page.retention_figure(o.retention),
    )


@callback(Output(ids.KPI_GRID, "exportDataAsCsv"), Input(ids.KPI_CSV, "n_clicks"),
          prevent_initial_call=True)
@require_roles(*ROLES)
def kpi_csv(_n: int | None) -> bool:
    return True


@callback(Output(ids.MONTHLY_GRID, "exportDataAsCsv"), Input(ids.MONTHLY_CSV, "n_clicks"),
          prevent_initial_call=True)
@require_roles(*ROLES)
def monthly_csv(_n: int | None) -> bool:
    return True
