"""The 404 page (Dash's router uses the module named ``not_found_404``)."""

from __future__ import annotations

from dash import dcc, html

from dashboard.access import register_page
from dashboard.i18n import N_, _

register_page(
    __name__, path="/404", name=N_("Not found"), title=N_("Not found"), order=999,
    roles=("supervisor", "executive", "support"), hide_from_nav=True,
)


def layout(**_kwargs: object) -> html.Div:
    return html.Div(
        [
            html.H1(_("404 — Page not found"), className="h3", id="page-not-found"),
            html.P(_("There is no page at this address.")),
            dcc.Link(_("Go to your start page"), href="/", refresh=True,
                     className="btn btn-primary"),
        ],
        className="py-4",
    )
