"""Who asked for a background job, proven inside the job.

A background callback runs in another process (diskcache: a child of the web
worker; Celery: a worker on another machine) with no request and no logged-in
user. The guard checked the role when the job was requested; inside the job
the role is checked again from a token the server signed for the user
(itsdangerous, with the app's SECRET_KEY) and passed in as a ``State`` - a
browser can hand back its own token but cannot mint one for another user or
role - and the user is re-read from the database, so an account disabled or
demoted since the page was opened is refused.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import flask
from flask_login import current_user
from itsdangerous import BadSignature, URLSafeTimedSerializer

from db import users
from db.actor import Actor
from db.errors import Forbidden

SALT = "loyalty.background-job.v1"
_PID = os.getpid()  # the process that imported the app (the web worker)
MAX_AGE_S = 12 * 3600


def _serializer(app: flask.Flask) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(app.config["SECRET_KEY"], salt=SALT)


def identity_token() -> str:
    """Sign the logged-in user's id and role (call inside a request)."""
    if not current_user or not current_user.is_authenticated:
        raise Forbidden("not logged in")
    return _serializer(flask.current_app).dumps(
        {"id": current_user.id, "role": current_user.role}
    )


@contextmanager
def job_context() -> Iterator[flask.Flask]:
    """An app context for a job (``get_db()`` works inside), with a fresh
    connection pool: a forked child must not share its parent's sockets."""
    from dashboard.app import built_app
    from dashboard.context import JOB_DB, get_db

    server = flask.current_app._get_current_object() if flask.has_app_context() else None
    server = server or built_app().server
    with server.app_context():
        db = get_db()
        if os.getpid() != _PID:  # a forked child (diskcache job, Celery prefork)
            db.dispose(close=False)
        # a job may run statements longer than a request may (a tier pass
        # rewrites every member): the jobs' statement timeout, same lock wait
        setattr(flask.g, JOB_DB, db.for_jobs())
        yield server


def job_actor(token: str | None, roles: Iterable[str]) -> Actor:
    """The user a job runs for; Forbidden unless the token is genuine and the
    account, as it is now in the database, is active with one of ``roles``."""
    from dashboard.context import get_db

    try:
        data = _serializer(flask.current_app).loads(token or "", max_age=MAX_AGE_S)
        uid = int(data["id"])
    except (BadSignature, KeyError, TypeError, ValueError):
        raise Forbidden("this page is out of date or not yours: reload it") from None
    with get_db().read() as s:
        info = users.get_user(s, uid)
    if info is None or not info.active or info.role not in set(roles):
        raise Forbidden("your account may not run this")
    return Actor(info.username, info.id, info.role)
