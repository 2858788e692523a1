"""The app shell: navbar (from ``dash.page_registry``, filtered by role), the
database outage banner, the page container; plus the 403 content and small
builders every page uses (empty states, grids)."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence
from typing import Any

import dash
import dash_ag_grid as dag
import dash_bootstrap_components as dbc
from dash import dcc, html
from flask import has_request_context
from flask_login import current_user
from flask_wtf.csrf import generate_csrf

from dashboard import access
from dashboard.i18n import (
    LANGUAGE_NAMES,
    LANGUAGES,
    N_,
    _,
    current_language,
    error_text,
    translate,
)

log = logging.getLogger("dashboard.shell")


class Shell:
    """Component ids of the shell (every page's frame)."""

    DB_BANNER = "shell-db-banner"
    DB_INTERVAL = "shell-db-interval"
    NAVBAR = "shell-navbar"
    LANGUAGE = "shell-language"  # the navbar's language switch
    LANGUAGE_SAVED = "shell-language-saved"  # set once the choice is stored: reload
    USER_MENU = "shell-user-menu"  # the navbar's menu of the signed-in user


ROLE_LABELS = {"supervisor": N_("Supervisor"), "executive": N_("Executive"),
               "support": N_("Support")}
DB_DOWN_MESSAGE = N_(
    "The program database is unreachable. Figures on this page may be out of date; "
    "the connection is retried automatically and this message goes away when it is back."
)


def _user() -> Any | None:
    if has_request_context() and current_user.is_authenticated:
        return current_user
    return None


def navbar() -> dbc.Navbar:
    """Links to the pages the current role may open, and the user's menu
    (who is signed in, their role, their language, sign-out). It stays one
    line at 1440 px for a supervisor (every page), in English and in Russian."""
    user = _user()
    role = user.role if user else None
    links = [
        dbc.NavItem(dbc.NavLink(translate(p["name"]), href=p["path"], active="exact"))
        for p in access.nav_pages(role)
    ]
    return dbc.Navbar(
        dbc.Container(
            [
                dbc.NavbarBrand(_("Loyalty back-office"), href="/"),
                dbc.Nav(links, navbar=True, className="me-auto"),
                dbc.Nav([user_menu(user)] if user else [], navbar=True),
            ],
            fluid=True,
        ),
        color="primary",
        dark=True,
        className="mb-3",
        id=Shell.NAVBAR,
    )


def user_menu(user: Any) -> dbc.DropdownMenu:
    """The signed-in user's name; its menu shows the role, the language
    switch and the sign-out button (a POST form with its CSRF token)."""
    name = user.full_name or user.username
    return dbc.DropdownMenu(
        [
            dbc.DropdownMenuItem(
                [html.Div(name, className="fw-semibold text-body text-wrap"),
                 html.Div(user.username, className="small text-muted"),
                 dbc.Badge(translate(ROLE_LABELS.get(user.role, user.role)), color="primary",
                           id="shell-user-role")],
                header=True,
            ),
            dbc.DropdownMenuItem(divider=True),
            language_switch(),
            dbc.DropdownMenuItem(divider=True),
            html.Form(
                [
                    dcc.Input(type="hidden", name="csrf_token", value=generate_csrf()),
                    html.Button(_("Log out"), type="submit", id="shell-logout",
                                className="dropdown-item"),
                ],
                method="POST",
                action="/logout",
                className="mb-0",
            ),
        ],
        label=html.Span(name, id="shell-user-name", title=name),
        id=Shell.USER_MENU,
        nav=True,
        in_navbar=True,
        align_end=True,
        toggle_class_name="shell-user-toggle",
    )


def language_switch() -> html.Div:
    """The user's language; a change is stored for the user and the page
    reloads in it (callbacks/shell.py)."""
    return html.Div(
        [
            html.Label(_("Language"), htmlFor=Shell.LANGUAGE,
                       className="form-label small text-muted mb-1"),
            dbc.Select(
                id=Shell.LANGUAGE,
                options=[{"label": LANGUAGE_NAMES[lang], "value": lang} for lang in LANGUAGES],
                value=current_language(),
                size="sm",
            ),
        ],
        className="px-3 py-1",
    )


def layout() -> html.Div:
    """The whole app layout, built per request for the logged-in user."""
    return html.Div(
        [
            navbar(),
            dbc.Container(
                [
                    dbc.Alert(translate(DB_DOWN_MESSAGE), id=Shell.DB_BANNER, color="danger",
                              is_open=False, className="mb-3"),
                    dcc.Interval(id=Shell.DB_INTERVAL, interval=_ping_ms()),
                    dcc.Store(id=Shell.LANGUAGE_SAVED),
                    dash.page_container,
                ],
                fluid=True,
                className="pb-5",
            ),
        ]
    )


def _ping_ms() -> int:
    from flask import current_app

    from dashboard.context import CONFIG_EXTENSION

    cfg = current_app.extensions.get(CONFIG_EXTENSION) if has_request_context() else None
    return cfg.db_ping_ms if cfg else 15_000


def forbidden_layout(page_name: str = "") -> dbc.Container:
    user = _user()
    role = translate(ROLE_LABELS.get(user.role, user.role)) if user else _("anonymous")
    why = (
        _("Your role (%(role)s) may not open %(page)s. "
          "If you need it, ask a supervisor to change your role.",
          role=role, page=translate(page_name)) if page_name
        else _("Your role (%(role)s) may not open this page. "
               "If you need it, ask a supervisor to change your role.", role=role)
    )
    return dbc.Container(
        [
            html.H1(_("403 — Not allowed"), className="h3", id="page-forbidden"),
            html.P(why),
            dcc.Link(_("Go to your start page"), href=access.landing_path(
                user.role if user else None), className="btn btn-primary"),
        ],
        className="py-4",
    )


def guard_layout(layout: Callable[..., Any], page: dict[str, Any]) -> Callable[..., Any]:
    """Wrap a page layout so Dash's router serves the 403 content to a role
    the page does not allow (client-side navigation never hits the guard's
    page check; the router callback does)."""

    @functools.wraps(layout)
    def guarded(**kwargs: Any) -> Any:
        user = _user()
        if user is None or not access.role_may_open(user.role, page):
            if user is not None:
                log.warning("refused page %s for %s (role %s)", page["path"], user.username,
                            user.role)
            return forbidden_layout(page.get("name", ""))
        return layout(**kwargs)

    return guarded


# ------------------------------------------------------------------ builders


def page_header(title: str, subtitle: str = "") -> html.Div:
    """A page's title and what the page is for (texts from ``_()``, or
    marked with ``N_``: shown in the user's language)."""
    return html.Div(
        [html.H1(translate(title), className="h3 mb-1"),
         html.P(translate(subtitle), className="text-muted mb-3") if subtitle else None],
    )


def alert(message: Any, color: str = "danger", **props: Any) -> dbc.Alert:
    """A callback's answer next to its button: a refusal ("danger", the
    default), a problem to fix ("warning") or a success. A service's
    exception shows its message in the user's language (:func:`error_text`),
    as does a message marked with ``N_``. ``props`` go to
    ``dbc.Alert`` (``id``, ``duration``, ``className`` to space it otherwise)."""
    props.setdefault("className", "py-2 mb-0")
    if isinstance(message, BaseException):
        message = error_text(message)
    elif isinstance(message, str):
        message = translate(message)
    return dbc.Alert(message, color=color, **props)


def empty_state(title: str, hint: str) -> dbc.Alert:
    """A clear "nothing here yet" box that says what would fill it (texts
    from ``_()``, or marked with ``N_``: shown in the user's language)."""
    return dbc.Alert([html.Strong(translate(title)), html.Div(translate(hint), className="small")],
                     color="secondary", className="empty-state")


# every grid's CSV export neutralises formula cells (assets/dashAgGridFunctions.js,
# the same rule as db/exports.py for the server's exports)
CSV_EXPORT_PARAMS: dict[str, Any] = {
    "processCellCallback": {"function": "csvSafeCell(params)"},
}


# the widest date the grids show ("2026-11-16 18:30") with the cell's padding,
# and the widest id: a window 1440 px wide shrinks columns to fit, never these
DATE_FIELDS = frozenset({"at", "created", "submitted", "decided", "effective", "start",
                         "planned_end", "requested_at", "created_at", "last_login"})
DATE_MIN_WIDTH = 165
ID_FIELDS = frozenset({"id", "based_on", "external_id"})
ID_MIN_WIDTH = 95
# a header wraps between its words, never inside one: its column is at least
# as wide as its longest word (px per letter at the grid's font), plus the
# cell's padding and the filter icon
HEADER_LETTER_PX = 9
HEADER_SPARE_PX = 52


def readable(columns: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The columns with a minimum width that keeps dates, ids and each word
    of the header whole; the grid scrolls sideways when they do not all fit."""
    out = []
    for col in columns:
        field = col.get("field", "")
        header = str(col.get("headerName", ""))
        word = max((len(w) for w in header.split()), default=0)
        least = max(DATE_MIN_WIDTH if field in DATE_FIELDS or "(UTC)" in header
                    else ID_MIN_WIDTH if field in ID_FIELDS else 0,
                    HEADER_SPARE_PX + HEADER_LETTER_PX * word if word > 3 else 0)
        if least > col.get("minWidth", 0):
            col = {**col, "minWidth": least}
            if col.get("maxWidth", least) < least:
                col["maxWidth"] = least
        out.append(col)
    return out


# AG Grid's own texts (the no-rows overlay, the column menu, the filters),
# in the user's language; English is the grid's own
GRID_TEXTS: dict[str, str] = {
    "noRowsToShow": N_("No rows to show"),
    "loadingOoo": N_("Loading…"),
    "loadingError": N_("Error"),
    "filterOoo": N_("Filter…"),
    "searchOoo": N_("Search…"),
    "selectAll": N_("(Select all)"),
    "blanks": N_("(Blanks)"),
    "noMatches": N_("No matches"),
    "equals": N_("Equals"),
    "notEqual": N_("Does not equal"),
    "blank": N_("Blank"),
    "notBlank": N_("Not blank"),
    "empty": N_("Choose one"),
    "lessThan": N_("Less than"),
    "greaterThan": N_("Greater than"),
    "lessThanOrEqual": N_("Less than or equal to"),
    "greaterThanOrEqual": N_("Greater than or equal to"),
    "inRange": N_("Between"),
    "inRangeStart": N_("From"),
    "inRangeEnd": N_("To"),
    "before": N_("Before"),
    "after": N_("After"),
    "contains": N_("Contains"),
    "notContains": N_("Does not contain"),
    "startsWith": N_("Begins with"),
    "endsWith": N_("Ends with"),
    "dateFormatOoo": N_("yyyy-mm-dd"),
    "andCondition": N_("AND"),
    "orCondition": N_("OR"),
    "applyFilter": N_("Apply"),
    "resetFilter": N_("Reset"),
    "clearFilter": N_("Clear"),
    "cancelFilter": N_("Cancel"),
    "columnFilter": N_("Column filter"),
    "columnMenu": N_("Column menu"),
    "filterOptions": N_("Filter options"),
    "pinColumn": N_("Pin column"),
    "pinLeft": N_("Pin left"),
    "pinRight": N_("Pin right"),
    "noPin": N_("No pin"),
    "autosizeThisColumn": N_("Autosize this column"),
    "autosizeAllColumns": N_("Autosize all columns"),
    "resetColumns": N_("Reset columns"),
    "sortAscending": N_("Sort ascending"),
    "sortDescending": N_("Sort descending"),
    "sortUnSort": N_("Clear sort"),
    "page": N_("Page"),
    "of": N_("of"),
    "to": N_("to"),
    "more": N_("more"),
    "firstPage": N_("First page"),
    "previousPage": N_("Previous page"),
    "nextPage": N_("Next page"),
    "lastPage": N_("Last page"),
    "pageSizeSelectorLabel": N_("Page size:"),
    "ariaFilterInput": N_("Filter input"),
    "ariaSearch": N_("Search"),
}


def grid_locale_text() -> dict[str, str]:
    """AG Grid's ``localeText`` for the user's language (empty in English,
    the grid's own). A grid built elsewhere takes it into its
    ``dashGridOptions`` too: ``{"localeText": {**grid_locale_text(), ...}}``."""
    if current_language() == "en":
        return {}
    return {key: translate(text) for key, text in GRID_TEXTS.items()}


# the dropdowns' own texts (dcc.Dropdown ``labels``), in the user's language
DROPDOWN_TEXTS: dict[str, str] = {
    "select_all": N_("Select all"),
    "deselect_all": N_("Deselect all"),
    "selected_count": N_("{num_selected} selected"),
    "search": N_("Search"),
    "clear_search": N_("Clear search"),
    "clear_selection": N_("Clear selection"),
    "no_options_found": N_("No options found"),
}


def dropdown_props() -> dict[str, dict[str, str]]:
    """``dcc.Dropdown`` keyword arguments for its own texts (search box,
    clear button, "no options") in the user's language: ``labels=``; none in
    English (the component's own: a null ``labels`` would blank them)."""
    if current_language() == "en":
        return {}
    return {"labels": {key: translate(text) for key, text in DROPDOWN_TEXTS.items()}}


def grid(
    component_id: str,
    columns: Sequence[dict[str, Any]],
    rows: Sequence[dict[str, Any]] | None = None,
    *,
    height: str = "420px",
    selectable: bool = False,
    empty: str | None = None,
) -> dag.AgGrid:
    """A read-only AG Grid with sensible defaults for back-office tables:
    headers (texts from ``_()`` or marked with ``N_``) and AG Grid's own texts
    in the user's language; ``empty`` is what it says when it has no rows."""
    options: dict[str, Any] = {"animateRows": False, "suppressCellFocus": not selectable}
    locale = grid_locale_text()
    if empty:
        locale["noRowsToShow"] = translate(empty)
    if locale:
        options["localeText"] = locale
    if selectable:
        options["rowSelection"] = {"mode": "singleRow", "enableClickSelection": True,
                                   "checkboxes": False}
    return dag.AgGrid(
        id=component_id,
        columnDefs=readable([{**c, "headerName": translate(c["headerName"])}
                              if "headerName" in c else c for c in columns]),
        rowData=list(rows or []),
        # headers wrap rather than end in "…" (Russian ones are longer)
        defaultColDef={"sortable": True, "filter": True, "resizable": True, "minWidth": 90,
                       "wrapHeaderText": True, "autoHeaderHeight": True},
        columnSize="responsiveSizeToFit",
        dashGridOptions=options,
        csvExportParams=CSV_EXPORT_PARAMS,
        style={"height": height, "width": "100%"},
    )
