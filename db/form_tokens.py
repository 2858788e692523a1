"""A form sent twice takes effect once.

Every form page of the back-office carries a random token, made when the
page is served. A successful submission is kept with the token: which form
(and button), a hash of what it sent, and its answer. The same submission
sent again right after - a double click, the second click landing after the
first answer - gets that answer back and changes nothing; anything else sent
with the token (another button, another row, an edited field) runs. Manual
adjustments keep the token on the request itself
(``adjustment_requests.form_token``); the other forms keep it here.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from db import clock
from db.actor import Actor
from db.models import FormSubmission

_TOKEN = re.compile(r"[A-Za-z0-9_-]{16,64}")


def new_token() -> str:
    return secrets.token_urlsafe(18)


def as_token(value: Any) -> str | None:
    """A form token as the browser sent it, or None when it is not one."""
    return value if isinstance(value, str) and _TOKEN.fullmatch(value) else None


def request_hash(form: str, payload: Any) -> str:
    canon = json.dumps(payload, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(f"{form}\n{canon}".encode()).hexdigest()


def submit_once(db: Any, actor: Actor, form: str, token: Any, payload: Any,
                work: Callable[[Session], Any]) -> tuple[Any, bool]:
    """Run ``work(session)`` unless it is a repeat of the token's last
    submission (same ``form``, same ``payload``); its JSON-able result is
    kept with the token in the same write transaction.

    Returns (result, replayed): a repeat returns the first result and
    ``replayed`` True, without running ``work``. Without a token (a call from
    elsewhere) ``work`` simply runs. A refusal keeps nothing, so the corrected
    form can be sent again.
    """
    token = as_token(token)
    if token is None or actor.id is None:
        return db.write_tx(work), False
    digest = request_hash(form, payload)

    def tx(s: Session) -> tuple[Any, bool]:
        row = s.scalar(select(FormSubmission).where(
            FormSubmission.staff_user_id == actor.id, FormSubmission.token == token
        ).with_for_update())
        if row is not None and row.request_hash == digest:
            return json.loads(row.result), True
        if row is None:
            # claimed first: a concurrent twin waits on this row, then replays
            row = FormSubmission(staff_user_id=actor.id, token=token, form=form[:64],
                                 request_hash=digest, result="null", created_at=clock.utcnow())
            s.add(row)
            s.flush()
        result = work(s)
        row.form, row.request_hash = form[:64], digest
        row.result = json.dumps(result, default=str)
        row.created_at = clock.utcnow()
        s.flush()
        return result, False

    try:
        return db.write_tx(tx)
    except IntegrityError:
        # the twin committed first: answer from its record
        return db.write_tx(tx)
