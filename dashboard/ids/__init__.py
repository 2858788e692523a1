"""Component ids, ``"<page>-<thing>"``, defined once per page (one module each)
and shared by the page module (layout) and its callbacks module."""

from dashboard.ids.adjustments import AdjRequest, AdjReview
from dashboard.ids.audit import Audit
from dashboard.ids.members import Members
from dashboard.ids.pilots import Pilots
from dashboard.ids.rules import Rules
from dashboard.ids.staff import Staff

__all__ = [
    "AdjRequest", "AdjReview", "Audit", "Members", "Pilots", "Rules",
    "Staff",
]
