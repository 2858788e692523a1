"""Who may open which page and run which callback.

Pages declare their roles in ``dash.register_page(..., roles=(...))`` (Dash
keeps extra kwargs in ``dash.page_registry``); callbacks declare theirs with
:func:`dashboard.auth.require_roles`. This module only reads those
declarations, so the guard, the navbar and the tests agree on one source.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import dash

from db.models import ROLES

ROLES_KEY = "roles"
ROLE_ATTR = "loyalty_roles"
WRITES_ATTR = "loyalty_writes"
# the output of Dash's own pages router; the page layouts it serves are
# wrapped by the app factory so they enforce the page roles themselves
ROUTER_OUTPUT_MARK = "_pages_content.children"


def normalize_path(path: str) -> str:
    path = (path or "/").split("?", 1)[0]
    if len(path) > 1:
        path = path.rstrip("/")
    return path or "/"


def registered_pages() -> list[dict[str, Any]]:
    """Every registered page, navbar order."""
    pages = list(dash.page_registry.values())
    return sorted(pages, key=lambda p: (p.get("order") is None, p.get("order") or 0, p["path"]))


def page_for_path(path: str) -> dict[str, Any] | None:
    """The registered page served at ``path`` (exact match), or None."""
    path = normalize_path(path)
    for page in dash.page_registry.values():
        if normalize_path(page["path"]) == path:
            return page
    return None


def page_roles(page: dict[str, Any]) -> frozenset[str]:
    """The roles a page allows; a page that forgot to declare allows nobody."""
    return frozenset(page.get(ROLES_KEY) or ())


def role_may_open(role: str | None, page: dict[str, Any]) -> bool:
    return role is not None and role in page_roles(page)


def nav_pages(role: str | None) -> list[dict[str, Any]]:
    """Pages for the navbar: the ones this role may open, minus error pages."""
    return [
        p
        for p in registered_pages()
        if role_may_open(role, p) and not p.get("hide_from_nav")
    ]


def landing_path(role: str | None) -> str:
    """Where a user lands after login or on ``/``: their first page."""
    pages = nav_pages(role)
    return pages[0]["path"] if pages else "/404"


def callback_roles(fn: Callable[..., Any]) -> frozenset[str] | None:
    """Roles declared on a callback (looking through Dash's wrappers), or None."""
    seen = 0
    while fn is not None and seen < 10:
        roles = getattr(fn, ROLE_ATTR, None)
        if roles is not None:
            return frozenset(roles)
        fn = getattr(fn, "__wrapped__", None)
        seen += 1
    return None


def callback_writes(fn: Callable[..., Any]) -> bool:
    seen = 0
    while fn is not None and seen < 10:
        if getattr(fn, ROLE_ATTR, None) is not None:
            return bool(getattr(fn, WRITES_ATTR, False))
        fn = getattr(fn, "__wrapped__", None)
        seen += 1
    return False


def innermost(fn: Callable[..., Any]) -> Callable[..., Any]:
    while getattr(fn, "__wrapped__", None) is not None:
        fn = fn.__wrapped__
    return fn


def check_roles(roles: Iterable[str]) -> tuple[str, ...]:
    """Fail at import time on a typo such as ``"supervisr"``."""
    roles = tuple(roles)
    unknown = set(roles) - set(ROLES)
    if unknown or not roles:
        raise ValueError(f"unknown or missing roles {sorted(unknown)}; known: {ROLES}")
    return roles
