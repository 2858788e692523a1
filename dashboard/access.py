"""Who may open which page and run which callback.

Pages declare their roles once, in :func:`register_page` (``roles=(...)``;
a page whose actions are narrower names those too, e.g. ``write_roles=``),
which the app factory hands to ``dash.register_page`` (Dash keeps the extra
kwargs in ``dash.page_registry``). The page's callbacks take their roles from
that declaration (:func:`roles_of`) into :func:`dashboard.auth.require_roles`.
This module only reads those declarations, so the guard, the navbar and the
tests agree on one source.
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
# page declarations (module -> register_page kwargs), written once at import
_DECLARED: dict[str, dict[str, Any]] = {}


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


def register_page(module: str, **kwargs: Any) -> None:
    """Declare a page: what ``dash.register_page`` takes, its ``roles=`` included.

    A page module also holds its ids and pure builders, which tests and its
    callbacks import with or without an app, so the declaration is kept here
    and handed to Dash by the app factory (:func:`register_declared_pages`)
    once the app exists (Dash refuses a page registered before)."""
    kwargs[ROLES_KEY] = check_roles(kwargs.get(ROLES_KEY) or ())
    _DECLARED[module] = kwargs


def register_declared_pages() -> list[str]:
    """Register every declared page with Dash (the app factory, after Dash())."""
    for module, kwargs in _DECLARED.items():
        if module not in dash.page_registry:
            dash.register_page(module, **kwargs)
    return list(_DECLARED)


def roles_of(page_module: str, key: str = ROLES_KEY) -> tuple[str, ...]:
    """The roles page ``page_module`` declares under ``key`` (``roles`` to
    open it, or a narrower set for some of its actions, e.g.
    ``write_roles``), for its callbacks' ``@require_roles``."""
    page = _DECLARED.get(page_module)
    if page is None:
        raise LookupError(f"page {page_module} is not declared: import it first")
    roles = check_roles(page.get(key) or ())
    if not set(roles) <= set(page[ROLES_KEY]):
        raise ValueError(f"page {page_module}: {key} {roles} exceed its roles")
    return roles


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
