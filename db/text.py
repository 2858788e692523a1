"""Limits on the free text staff type into forms (comments, reasons, notes),
stated next to each field and enforced here, in the services."""

from __future__ import annotations

from db.errors import ValidationError
from db.i18n import N_, Number

MAX_COMMENT = 1000  # an adjustment request's comment, a rule version's note
MAX_REASON = 500  # why something is rejected, refused or sent back


def length_problem(text: str | None, limit: int) -> str | None:
    """What is wrong with ``text``'s length, or None."""
    n = len((text or "").strip())
    if n > limit:
        return N_("too long: at most %(limit)s characters (this has %(n)s)",
                  limit=Number(limit), n=Number(n))
    return None


def check_length(field: str, text: str | None, limit: int) -> None:
    problem = length_problem(text, limit)
    if problem:
        raise ValidationError(field, problem)
