"""Live metrics: participation, redemption, referrals and transfers, refreshed
every few seconds from the incremental rollups (db/rollups.py)."""

from __future__ import annotations

from typing import Any

import dash_bootstrap_components as dbc
from dash import dcc, html

from dashboard import charts
from dashboard import format as fmt
from dashboard.access import register_page
from dashboard.i18n import N_, _, ngettext, translate
from dashboard.shell import dropdown_props, grid, page_header
from db.metrics import DEFINITIONS

register_page(
    __name__, path="/live", name=N_("Live"), title=N_("Live metrics"), order=20,
    roles=("supervisor", "executive", "support"),
)


# ---------------------------------------------------------------- ids


class Live:
    INTERVAL = "live-interval"
    DAYS = "live-days"
    TILES = "live-tiles"
    UPDATED = "live-updated"
    LAST = "live-last"
    POINTS_FIG = "live-points-figure"
    SIGNUPS_FIG = "live-signups-figure"
    REFERRERS = "live-referrers"
    RECEIVERS = "live-receivers"
    # the enrolled-members tile keeps the id the browser tests wait for
    MEMBERS = "live-members"

    @staticmethod
    def value(key: str) -> str:
        """The id of one tile's number."""
        return "live-members" if key == "enrolled" else f"live-value-{key.replace('_', '-')}"

    @staticmethod
    def label(key: str) -> str:
        """The id of one tile's title (the tooltip's target)."""
        return f"live-label-{key.replace('_', '-')}"


ids = Live


# ---------------------------------------------------------------- builders
# (pure: engine data in, components and figures out; no queries)

# (section, [(key, title, definition key)])
SECTIONS: list[tuple[str, list[tuple[str, str, str]]]] = [
    (N_("Participation"), [
        ("enrolled", N_("Enrolled members"), "enrolled"),
        ("new_today", N_("New today"), "new_members"),
        ("new_window", N_("New in window"), "new_members"),
        ("participation_rate", N_("Participation rate"), "participation_rate"),
        ("active_member_rate", N_("Active member rate"), "active_member_rate"),
        ("earning_7", N_("Earning within 7 days"), "earning_within"),
        ("earning_30", N_("Earning within 30 days"), "earning_within"),
    ]),
    (N_("Redemption"), [
        ("issued_today", N_("Points issued today"), "points_issued"),
        ("redeemed_today", N_("Points redeemed today"), "points_redeemed"),
        ("expired_today", N_("Points expired today"), "points_expired"),
        ("redemption_rate", N_("Redemption rate (window)"), "redemption_rate"),
        ("breakage_rate", N_("Breakage (window)"), "breakage_rate"),
        ("liability_minor", N_("Outstanding liability"), "points_liability"),
    ]),
    (N_("Referrals"), [
        ("referred_total", N_("Joined through a referral"), "referred_members"),
        ("referral_conversion", N_("Referral conversion (window)"), "referral_conversion"),
        ("referral_share", N_("Referral share of new members"), "referral_share"),
        ("referral_bonus", N_("Bonus points paid (window)"), "referral_bonus"),
    ]),
    (N_("Transfers"), [
        ("transfer_points", N_("Points transferred (window)"), "transfers"),
        ("transfer_count", N_("Transfers (window)"), "transfers"),
    ]),
]
KEYS = [k for _s, items in SECTIONS for k, _t, _d in items]
MONEY_KEYS = {"liability_minor"}


def rate(value: dict[str, Any] | None) -> str:
    """A Ratio dict as "12.3 % (45 / 366)", or an explanation when undefined."""
    if not value or value.get("value") is None:
        return _("– (nothing to divide by yet)")
    return (f"{fmt.percent(value['value'])} ({fmt.points(value['numerator'])} / "
            f"{fmt.points(value['denominator'])})")


def display(key: str, value: Any, currency: str) -> str:
    """One tile's text (integers as integers, money without floats)."""
    if isinstance(value, dict):
        return rate(value)
    if key in MONEY_KEYS:
        return fmt.money(int(value), currency)
    return fmt.points(int(value or 0))


def tiles(initial: str = "…") -> html.Div:
    """The tile skeleton: the interval callback fills the numbers in."""
    sections = []
    for section, items in SECTIONS:
        cards = []
        for key, title, definition in items:
            cards.append(dbc.Col(dbc.Card(dbc.CardBody([
                html.Div(translate(title), id=ids.label(key), className="small text-muted",
                         style={"textDecoration": "underline dotted", "cursor": "help"}),
                html.Div(initial, id=ids.value(key), className="h5 mb-0"),
                dbc.Tooltip(translate(DEFINITIONS[definition]), target=ids.label(key)),
            ]), className="h-100"), xs=6, md=4, xl=3, className="mb-2"))
        sections.append(html.Div([html.H2(translate(section), className="h6 mt-2"),
                                  dbc.Row(cards)]))
    return html.Div(sections, id=ids.TILES)


def empty_figure(title: str, names: list[str], kind: str = "bar") -> dict[str, Any]:
    """The figure skeleton (traces without points): later patches fill x and y.
    ``title`` and ``names`` in the user's language."""
    return {
        "data": [{"type": kind, "name": n, "x": [], "y": []} for n in names],
        "layout": charts.layout(title, height=320, barmode="group",
                                xaxis=charts.date_axis(), annotations=[]),
    }


POINT_SERIES = ["issued", "redeemed", "expired"]
SIGNUP_SERIES = ["new_members", "new_referred"]
# the legend's names of the series
SERIES_LABELS = {"issued": N_("issued"), "redeemed": N_("redeemed"), "expired": N_("expired"),
                 "new_members": N_("all new members"), "new_referred": N_("through a referral")}


def series_names(keys: list[str]) -> list[str]:
    """The series' names as the legend shows them, in the user's language."""
    return [translate(SERIES_LABELS.get(k, k)) for k in keys]


def series(daily: list[dict[str, Any]], names: list[str]) -> list[tuple[list[str], list[int]]]:
    xs = [d["day"] for d in daily]
    return [(xs, [int(d[n]) for d in daily]) for n in names]


def outlier_layout(pairs: list[tuple[list[str], list[int]]], names: list[str]
                   ) -> dict[str, Any]:
    """The value axis of a bar chart whose few tall bars (the night an expiry
    run takes months of points at once) would flatten every other day: cut at
    the ordinary days' height, each cut bar labelled with its real value."""
    top = charts.clip_tall([ys for _xs, ys in pairs])
    xs = pairs[0][0] if pairs else []
    return {
        "range": None if top is None else [0, top],
        "autorange": top is None,
        "annotations": charts.clipped_notes(
            xs, [(n, ys) for n, (_xs, ys) in zip(series_names(names), pairs, strict=True)],
            top),
    }


REFERRER_COLUMNS = [
    {"field": "customer", "headerName": N_("Referrer")},
    {"field": "name", "headerName": N_("Name")},
    {"field": "referred", "headerName": N_("Referred members"), **charts.NUMBER_COLUMN},
    {"field": "bonus_points", "headerName": N_("Bonus points"), **charts.NUMBER_COLUMN},
]
RECEIVER_COLUMNS = [
    {"field": "customer", "headerName": N_("Receiver")},
    {"field": "name", "headerName": N_("Name")},
    {"field": "points", "headerName": N_("Points received"), **charts.NUMBER_COLUMN},
    {"field": "transfers", "headerName": N_("Transfers"), **charts.NUMBER_COLUMN},
    {"field": "senders", "headerName": N_("Distinct senders"), **charts.NUMBER_COLUMN},
]


# ---------------------------------------------------------------- layout


REFRESH_MS = 5_000


def _grid(cid: str, defs: list[dict[str, Any]], height: str) -> Any:
    """A grid of the page, its headers and its no-rows text in the user's language."""
    return grid(cid, defs, height=height, empty=_("No rows yet"))


def _window_label(n: int) -> str:
    return _("Today") if n == 1 else ngettext("Last %(num)s day", "Last %(num)s days", n)


def layout(**_kwargs: object) -> html.Div:
    return html.Div(
        [
            page_header(
                _("Live metrics"),
                _("Participation, redemption, referrals and transfers, refreshed every 5 "
                  "seconds from rollups kept up to date with each new order and ledger entry. "
                  "Hover a title for its definition."),
            ),
            dbc.Row(
                [
                    dbc.Col(
                        [
                            dbc.Label(_("Window"), html_for=ids.DAYS),
                            dcc.Dropdown(
                                id=ids.DAYS, clearable=False, value=7,
                                **dropdown_props(),
                                options=[{"label": _window_label(n), "value": n}
                                         for n in (1, 7, 30, 90)],
                            ),
                        ],
                        md=3,
                    ),
                    dbc.Col(html.Div(id=ids.UPDATED, className="text-muted small pt-4"), md=9),
                ],
                className="mb-3",
            ),
            tiles(),
            dbc.Row(
                [
                    dbc.Col(dcc.Graph(
                        id=ids.POINTS_FIG, config=charts.config(),
                        figure=empty_figure(_("Points per day (net of refunds)"),
                                            series_names(POINT_SERIES))), lg=6),
                    dbc.Col(dcc.Graph(
                        id=ids.SIGNUPS_FIG, config=charts.config(),
                        figure=empty_figure(_("Sign-ups per day"),
                                            series_names(SIGNUP_SERIES))),
                        lg=6),
                ],
                className="mt-3",
            ),
            dbc.Row(
                [
                    dbc.Col([html.H2(_("Top referrers (all time)"), className="h6"),
                             _grid(ids.REFERRERS, REFERRER_COLUMNS, "300px")],
                            lg=6),
                    dbc.Col([html.H2(_("Top transfer receivers (window) — fraud signal"),
                                     className="h6", id="live-receivers-title"),
                             dbc.Tooltip(translate(DEFINITIONS["top_receivers"]),
                                         target="live-receivers-title"),
                             _grid(ids.RECEIVERS, RECEIVER_COLUMNS, "300px")],
                            lg=6),
                ],
                className="mt-3",
            ),
            dcc.Store(id=ids.LAST),
            dcc.Interval(id=ids.INTERVAL, interval=REFRESH_MS),
        ]
    )
