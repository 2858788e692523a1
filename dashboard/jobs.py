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

import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import dash
import flask
import flask_babel
import multiprocess
import psutil
from dash import Input, Output
from flask_login import current_user
from itsdangerous import BadSignature, URLSafeTimedSerializer

from db import users
from db.actor import Actor
from db.errors import Forbidden, LoyaltyError
from db.i18n import N_

log = logging.getLogger("dashboard.jobs")
SALT = "loyalty.background-job.v1"
_EXIT = "loyalty_job_exit"
_PID = os.getpid()  # the process that imported the app (the web worker)
# the Flask server create_app() built in this process (use_server)
_SERVER: dict[str, flask.Flask] = {}


def use_server(server: flask.Flask) -> None:
    """Jobs started without a request (a forked child, a Celery worker) run in
    an app context of this server; create_app() registers it."""
    _SERVER["server"] = server
MAX_AGE_S = 12 * 3600


def _serializer(app: flask.Flask) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(app.config["SECRET_KEY"], salt=SALT)


def identity_token() -> str:
    """Sign the logged-in user's id and role (call inside a request)."""
    if not current_user or not current_user.is_authenticated:
        raise Forbidden(N_("not logged in"))
    from dashboard.auth import SESSION_VERSION

    return _serializer(flask.current_app).dumps(
        {"id": current_user.id, "role": current_user.role,
         "ver": flask.session.get(SESSION_VERSION)}
    )


@contextmanager
def job_context() -> Iterator[flask.Flask]:
    """An app context for a job (``get_db()`` works inside), with a fresh
    connection pool: a forked child must not share its parent's sockets."""
    from dashboard.context import JOB_DB, get_db

    server = flask.current_app._get_current_object() if flask.has_app_context() else None
    server = server or _SERVER.get("server")
    if server is None:
        raise RuntimeError("create_app() has not run in this process")
    with server.app_context():
        db = get_db()
        if os.getpid() != _PID:  # a forked child (diskcache job, Celery prefork)
            db.dispose(close=False)
        # a job may run statements longer than a request may (a tier pass
        # rewrites every member): the jobs' statement timeout, same lock wait
        setattr(flask.g, JOB_DB, db.for_jobs())
        with ExitStack() as on_exit:  # releases the job's lease (job_actor)
            setattr(flask.g, _EXIT, on_exit)
            yield server


def job_actor(token: str | None, roles: Iterable[str], *, kind: str | None = None) -> Actor:
    """The user a job runs for; Forbidden unless the token is genuine and the
    account, as it is now in the database, is active with one of ``roles``.

    With ``kind`` (inside :func:`job_context`), the job also takes the
    user's lease for that kind until the context ends: JobRunning (a
    refusal with its message) while another job of the kind runs for them.
    """
    from dashboard.context import get_db

    try:
        data = _serializer(flask.current_app).loads(token or "", max_age=MAX_AGE_S)
        uid, version = int(data["id"]), data.get("ver")
    except (BadSignature, KeyError, TypeError, ValueError):
        raise Forbidden(N_("this page is out of date or not yours: reload it")) from None
    with get_db().read() as s:
        info = users.get_user(s, uid)
    on_exit = flask.g.get(_EXIT)
    if on_exit is not None and info is not None:
        # the job's texts (a refusal below too) in its user's language
        from dashboard.context import get_config

        on_exit.enter_context(flask_babel.force_locale(
            info.language or get_config().default_language))
    if info is None or not info.active or info.role not in set(roles):
        raise Forbidden(N_("your account may not run this"))
    if version != info.session_version:
        # the session that asked has ended (logout, new password or role)
        raise Forbidden(N_("your session has ended: sign in again"))
    if kind is not None:
        store: LeaseStore = flask.current_app.extensions[LEASES_EXTENSION]
        lease = acquire_lease(store, kind, info.id)
        flask.g.get(_EXIT).callback(release_lease, store, kind, info.id, lease)
    return Actor(info.username, info.id, info.role)


# ---------------------------------------------------------------- one job of a kind per user
# A user may run one job of each kind at a time: a second simulation started
# from another tab (or by a script) while the first runs is refused, so one
# person cannot fill the machine with jobs. The marker is a lease in the
# background manager's own store (the diskcache directory every worker of
# the machine shares, or Redis under Celery), written atomically when the
# job starts and removed when it ends. A job killed before it could remove it
# (Stop, a crash) does not block its user: the lease names the process, and
# a lease whose process is gone is taken over; in any case it expires.

LEASES_EXTENSION = "loyalty_job_leases"
LEASE_S = 15 * 60  # no job of ours runs this long
LEASE_WAIT_S = 3.0  # a job just stopped or replaced may take a moment to go
JOB_KINDS = {
    "simulation": N_("a simulation"),
    "tier-pass": N_("a tier re-evaluation"),
    "pilot-results": N_("a pilot results job"),
    "overview": N_("an overview job"),
}


class JobRunning(LoyaltyError):
    """The user already runs a job of this kind."""


class LeaseStore:
    """Atomic add-if-absent, read and compare-and-delete of short strings."""

    def add(self, key: str, value: str, ttl_s: float) -> bool:
        raise NotImplementedError

    def get(self, key: str) -> str | None:
        raise NotImplementedError

    def delete_if(self, key: str, value: str) -> bool:
        raise NotImplementedError


class DiskcacheLeases(LeaseStore):
    def __init__(self, cache: Any) -> None:
        self.cache = cache

    def add(self, key: str, value: str, ttl_s: float) -> bool:
        return bool(self.cache.add(key, value, expire=ttl_s))

    def get(self, key: str) -> str | None:
        return self.cache.get(key)

    def delete_if(self, key: str, value: str) -> bool:
        with self.cache.transact():
            if self.cache.get(key) == value:
                return bool(self.cache.delete(key))
        return False


class RedisLeases(LeaseStore):
    _DELETE_IF = ("if redis.call('get', KEYS[1]) == ARGV[1] then "
                  "return redis.call('del', KEYS[1]) else return 0 end")

    def __init__(self, client: Any) -> None:
        self.client = client

    def add(self, key: str, value: str, ttl_s: float) -> bool:
        return bool(self.client.set(key, value, nx=True, px=max(1, int(ttl_s * 1000))))

    def get(self, key: str) -> str | None:
        raw = self.client.get(key)
        return raw.decode() if isinstance(raw, bytes) else raw

    def delete_if(self, key: str, value: str) -> bool:
        return bool(self.client.eval(self._DELETE_IF, 1, key, value))


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, psutil.AccessDenied, ValueError):
        return False


def _stale(held: str) -> bool:
    """A lease whose job process (on this machine) is gone."""
    try:
        data = json.loads(held)
        return data["host"] == socket.gethostname() and not _alive(int(data["pid"]))
    except (ValueError, KeyError, TypeError):
        return True


def lease_key(kind: str, user_id: int) -> str:
    return f"loyalty:job:{kind}:{user_id}"


def acquire_lease(store: LeaseStore, kind: str, user_id: int, *,
                  wait_s: float | None = None) -> str:
    """Take the (kind, user) lease for this process; JobRunning when a live
    job holds it (after waiting ``wait_s`` for it to go). Returns the lease
    value, to hand to :func:`release_lease`."""
    key = lease_key(kind, user_id)
    mine = json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                       "at": time.time(), "id": uuid.uuid4().hex})
    deadline = time.monotonic() + (LEASE_WAIT_S if wait_s is None else wait_s)
    while True:
        if store.add(key, mine, LEASE_S):
            return mine
        held = store.get(key)
        if held is not None and _stale(held):
            log.warning("job lease %s of a process that is gone: taken over", key)
            store.delete_if(key, held)
            continue
        if held is not None and time.monotonic() >= deadline:
            what = JOB_KINDS.get(kind, N_("a job of this kind"))
            raise JobRunning(N_("You already have %(what)s running; wait for it to finish "
                                "(or stop it) before starting another.", what=what))
        time.sleep(0.2)


def release_lease(store: LeaseStore, kind: str, user_id: int, value: str) -> None:
    store.delete_if(lease_key(kind, user_id), value)


def lease_store(manager: Any, redis_url: str | None) -> LeaseStore:
    """The store of the background manager: its diskcache, or Redis."""
    if redis_url:
        import redis

        return RedisLeases(redis.Redis.from_url(redis_url))
    return DiskcacheLeases(manager.handle)


# ---------------------------------------------------------------- reaping finished jobs


class DiskcacheJobs(dash.DiskcacheManager):
    """Dash's diskcache manager, with its finished job processes reaped.

    Each job is a child process of the web worker that started it; a child
    that ends stays a zombie until its parent waits for it. Dash waits only
    when the same worker serves the result (through psutil, which leaves the
    process object and its two pipes in ``multiprocess``'s list of children
    for good), so finished jobs piled up as zombies and open files. Here the
    worker reaps its children through ``multiprocess`` itself (which closes
    the pipes) before a job starts, before one is stopped, and after every
    request.
    """

    @staticmethod
    def reap() -> list[Any]:
        """Wait for this process's finished jobs; returns those still running."""
        return multiprocess.active_children()

    def call_job_fn(self, key, job_fn, args, context):
        self.reap()
        return super().call_job_fn(key, job_fn, args, context)

    def terminate_job(self, job):
        if job is None:
            return
        pid = int(job)
        mine = next((p for p in self.reap() if p.pid == pid), None)
        if mine is not None:
            try:
                for child in psutil.Process(pid).children(recursive=True):
                    child.kill()
            except psutil.NoSuchProcess:
                pass
            mine.kill()
            mine.join(1)  # reaps it and closes its pipes
            return
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return  # ended; another worker's child, which reaps it
        except psutil.NoSuchProcess:
            return
        super().terminate_job(job)


_BAR_SHOWN = {"visibility": "visible", "height": "1.4rem"}
_BAR_HIDDEN = {"visibility": "hidden", "height": "1.4rem"}


def background_job(progress: str, cancel: str, *, locked: Iterable[str] = ()) -> dict[str, Any]:
    """The ``@callback`` arguments of a page's background job: a progress bar
    (id ``progress``: value and label, shown while it runs), a Stop button
    (id ``cancel``, enabled while it runs) and the controls in ``locked``
    disabled while it runs."""
    return {
        "background": True,
        "progress": [Output(progress, "value"), Output(progress, "label")],
        "progress_default": [0, ""],
        "running": [
            *[(Output(cid, "disabled"), True, False) for cid in locked],
            (Output(cancel, "disabled"), False, True),
            (Output(progress, "style"), _BAR_SHOWN, _BAR_HIDDEN),
        ],
        "cancel": [Input(cancel, "n_clicks")],
    }
