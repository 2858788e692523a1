"""Numbers as staff type them, in English or Russian.

English: ``25000.50``, ``25,000.50``, ``25 000.50``. Russian: ``25 000``,
``25 000,50`` (with an ordinary, a no-break or a narrow no-break space
between thousands, as Russian text and babel's ru_RU format write them),
``25000,50``, and ``25000.50`` too. A leading ``+``, ``-`` or ``−`` is kept.

:func:`canonical` turns such text into the plain form ``-25000.50`` the
services parse (``Decimal(text)``, ``int(text)``), or says clearly what is
wrong with it (:class:`NumberError`, a ``ValueError`` whose message is a
:class:`db.i18n.Message`). :func:`localised` is the lenient variant for
call sites whose service has its own messages for what is not a number.
"""

from __future__ import annotations

import re
from typing import Any

from db.i18n import N_, Message

# what may stand between groups of thousands: spaces of every kind, "_"
GROUP_SPACES = " \u00a0\u202f\u2009_'"
MINUS = "-\u2212"
EXAMPLES = {"en": "25,000.50", "ru": "25 000,50"}


class NumberError(ValueError):
    """Text that is not a number in the user's language; ``message`` says why."""

    def __init__(self, message: Message) -> None:
        super().__init__(message)
        self.message = message


def _shown(text: str) -> str:
    return text if len(text) <= 20 else text[:19] + "…"


def canonical(value: Any, *, lang: str = "en") -> str:
    """``value`` typed in ``lang`` as plain ``[-]digits[.digits]`` text.

    Blank text gives ``""`` (each field says itself that it is required);
    numbers (not text) come back as ``str(value)``.
    """
    if value is None:
        return ""
    if not isinstance(value, str):
        return str(value)
    text = value.strip()
    if not text:
        return ""
    example = EXAMPLES.get(lang, EXAMPLES["en"])
    sign = ""
    if text[0] in "+" + MINUS:
        sign = "-" if text[0] in MINUS else ""
        text = text[1:].lstrip()
    body = text
    if lang == "ru":
        if "," in body and "." in body:
            raise NumberError(N_(
                "\"%(value)s\" has both a comma and a point: write the number like "
                "%(example)s (spaces between thousands, a comma before the decimals)",
                value=_shown(value.strip()), example=example))
        body = body.replace(",", ".")
        groups_sep = GROUP_SPACES
    else:
        groups_sep = GROUP_SPACES + ","
        if "," in body and "." not in body and not re.fullmatch(r"[\d\s]*\d(,\d{3})+", body):
            # "1,5": no thousands there, a decimal comma
            if body.count(",") == 1:
                body = body.replace(",", ".")
    if body.count(".") > 1:
        raise NumberError(N_(
            "\"%(value)s\" has more than one decimal mark: write the number like %(example)s",
            value=_shown(value.strip()), example=example))
    whole, _, frac = body.partition(".")
    parts = re.split(f"[{re.escape(groups_sep)}]+", whole) if whole else [""]
    digits_only = all(re.fullmatch(r"[0-9]*", p) for p in parts) and re.fullmatch(
        r"[0-9]*", frac)
    if not digits_only or not (whole or frac) or (len(parts) > 1 and "" in parts):
        raise NumberError(N_(
            "\"%(value)s\" is not a number: write it with digits, like %(example)s",
            value=_shown(value.strip()), example=example))
    if len(parts) > 1 and (not 1 <= len(parts[0]) <= 3
                           or any(len(p) != 3 for p in parts[1:])):
        raise NumberError(N_(
            "\"%(value)s\" has its digits grouped wrongly: separate thousands in threes, "
            "like %(example)s", value=_shown(value.strip()), example=example))
    number = "".join(parts) or "0"
    return f"{sign}{number}.{frac}" if frac else f"{sign}{number}"


def localised(value: Any, *, lang: str = "en") -> Any:
    """:func:`canonical` where ``value`` is a number in ``lang``, else
    ``value`` unchanged (for the service to refuse with its own message)."""
    try:
        out = canonical(value, lang=lang)
    except NumberError:
        return value
    return out if isinstance(value, str) else value
