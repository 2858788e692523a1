"""Live metrics callbacks.

The interval is the only trigger of the refresh callback (the auth layer does
not count interval requests as user activity): it folds new rows into the
rollups, reads them, and sends only what changed — ``no_update`` for tiles
whose text is the same as the browser's, ``Patch()`` replacing just the
series of a chart whose numbers moved. Changing the window resets the
interval, which triggers a refresh at once.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from dash import Input, Output, Patch, State, callback, html, no_update

from dashboard import format as fmt
from dashboard.access import roles_of
from dashboard.auth import require_roles
from dashboard.callback_inputs import as_dict
from dashboard.context import get_db
from dashboard.i18n import N_, _, ngettext, translate
from db import rollups
from db.reports.live import live_snapshot
from pages import live as page
from pages.live import ids

ROLES = roles_of(page.__name__)
WINDOWS = (1, 7, 30, 90)
# why db.rollups.refresh_rollups skipped a refresh (its reasons, as it says them)
SKIP_REASONS = {
    "another refresh is running": N_("another refresh is running"),
    "writers hold the tables": N_("writers hold the tables"),
}


def _signature(value: Any) -> str:
    return hashlib.sha1(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def _patch_figure(pairs: list[tuple[list[str], list[int]]],
                  names: list[str] | None = None) -> Patch:
    """The new series; with ``names``, the value axis too (tall bars cut and labelled)."""
    p = Patch()
    for i, (xs, ys) in enumerate(pairs):
        p["data"][i]["x"] = xs
        p["data"][i]["y"] = ys
    if names is not None:
        axis = page.outlier_layout(pairs, names)
        p["layout"]["yaxis"]["range"] = axis["range"]
        p["layout"]["yaxis"]["autorange"] = axis["autorange"]
        p["layout"]["annotations"] = axis["annotations"]
    return p


@callback(
    output={
        "tiles": {k: Output(ids.value(k), "children") for k in page.KEYS},
        "updated": Output(ids.UPDATED, "children"),
        "points": Output(ids.POINTS_FIG, "figure"),
        "signups": Output(ids.SIGNUPS_FIG, "figure"),
        "referrers": Output(ids.REFERRERS, "rowData"),
        "receivers": Output(ids.RECEIVERS, "rowData"),
        "sent": Output(ids.LAST, "data"),
    },
    inputs=[
        Input(ids.INTERVAL, "n_intervals"),
        State(ids.DAYS, "value"),
        State(ids.LAST, "data"),
        *[State(ids.value(k), "children") for k in page.KEYS],
    ],
)
@require_roles(*ROLES)
def refresh(_n: int | None, days: int | None, last: dict | None, *shown: Any
            ) -> dict[str, Any]:
    days = days if days in WINDOWS else 7
    db = get_db()
    result = rollups.refresh_rollups(db)
    with db.read() as s:
        snap = live_snapshot(s, days=days)
    texts = [page.display(k, snap.values[k], snap.currency) for k in page.KEYS]
    tiles = {k: t if t != old else no_update
             for k, t, old in zip(page.KEYS, texts, shown, strict=True)}
    last = as_dict(last)
    sent: dict[str, str] = {}
    outs: dict[str, Any] = {}
    parts = {
        "points": page.series(snap.daily, page.POINT_SERIES),
        "signups": page.series(snap.daily, page.SIGNUP_SERIES),
        "referrers": snap.top_referrers,
        "receivers": snap.top_receivers,
    }
    for name, data in parts.items():
        sig = _signature(data)
        sent[name] = sig
        if last.get(name) == sig:
            outs[name] = no_update
        elif name == "points":
            outs[name] = _patch_figure(data, page.POINT_SERIES)
        elif name == "signups":
            outs[name] = _patch_figure(data)
        else:
            outs[name] = data
    when = fmt.clock_time(snap.refreshed_at or snap.at)
    if result.skipped:
        text = _("updated %(time)s UTC (refresh skipped: %(reason)s)", time=when,
                 reason=translate(SKIP_REASONS.get(result.reason, result.reason)))
    else:
        text = _("updated %(time)s UTC", time=when)
    updated = html.Span(
        text, className="live-updated-at",
        title=ngettext("%(num)s new event folded in, %(ms)s ms",
                       "%(num)s new events folded in, %(ms)s ms", result.events,
                       ms=fmt.points(round(1000 * result.seconds))),
    )
    return {"tiles": tiles, "updated": updated, **outs, "sent": sent}


@callback(
    Output(ids.INTERVAL, "n_intervals"),
    Output(ids.LAST, "data", allow_duplicate=True),
    Input(ids.DAYS, "value"),
    prevent_initial_call=True,
)
@require_roles(*ROLES)
def window_changed(_days: int | None) -> tuple[int, None]:
    """A new window: refresh now and resend every chart and table."""
    return 0, None
