"""What every form of the back-office shares: its submission token.

A form page's token (``token_store``) is made when the page is served. Each
write callback hands it to the service (``once`` -> ``db.form_tokens``): the
same submission sent twice - a double click, the second click landing after
the first answer - takes effect once and shows the first answer again.
Submit buttons also disable themselves while their request runs (``busy``,
for ``running=`` on the callback).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dash import Output, dcc
from sqlalchemy.orm import Session

from dashboard.context import current_actor, get_db
from db.form_tokens import new_token, submit_once


def token_store(store_id: str) -> dcc.Store:
    return dcc.Store(id=store_id, data=new_token())


def busy(*button_ids: str) -> list[tuple[Output, bool, bool]]:
    """``running=`` for a callback: its buttons are disabled while it runs."""
    return [(Output(b, "disabled"), True, False) for b in button_ids]


def once(form: str, token: Any, payload: Any, work: Callable[[Session], Any]
         ) -> tuple[Any, bool]:
    """``work`` in one write transaction, unless this is the page's last
    submission sent again (same form and button, same ``payload``): then the
    first answer, with ``True``. See :func:`db.form_tokens.submit_once`."""
    return submit_once(get_db(), current_actor(), form, token, payload, work)
