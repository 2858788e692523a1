"""Component ids, ``"<page>-<thing>"``, defined once per page (one module each)
and shared by the page module (layout) and its callbacks module."""

from dashboard.ids.rules import Rules

__all__ = [
    "Rules",
]
