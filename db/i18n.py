"""Messages the services show to users, marked for translation.

The engine knows nothing of the web app (no Flask here), so it does not
translate: it marks. ``N_("must be at least %(n)s characters", n=8)``
returns a :class:`Message`, a ``str`` that reads as the English text (so
logs, exceptions and tests see plain English) and also carries its msgid
and parameters, from which the web layer (:func:`dashboard.i18n.translate`)
builds the text in the user's language. ``pybabel extract`` collects the
``N_`` calls of db/ like the ``_`` calls of the web app.
"""

from __future__ import annotations

from typing import Any


class Message(str):
    """English text that knows the msgid and parameters it was made from."""

    msgid: str
    params: dict[str, Any]

    def __new__(cls, msgid: str, params: dict[str, Any] | None = None) -> Message:
        params = dict(params or {})
        text = msgid % params if params else msgid
        obj = super().__new__(cls, text)
        obj.msgid = msgid
        obj.params = params
        return obj

    def __reduce__(self) -> tuple[Any, ...]:  # pickled into background jobs' results
        return (Message, (self.msgid, self.params))


class Number(int):
    """A whole number in a message's parameters: "1,000" in the English text;
    the web layer writes it the user's way ("1 000" in Russian)."""

    def __str__(self) -> str:
        return f"{int(self):,}"


def N_(msgid: str, /, **params: Any) -> Message:  # noqa: N802 - gettext's marker name
    """Mark ``msgid`` for translation; ``%(name)s`` placeholders take ``params``."""
    return Message(msgid, params)
