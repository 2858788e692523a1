"""What a callback needs from the request: the database and who is acting.

Callbacks call these instead of importing the app, so they stay testable and
the app object stays built once.
"""

from __future__ import annotations

from flask import current_app, g
from flask_login import current_user

from dashboard.config import Config
from db.actor import Actor
from db.errors import Forbidden
from db.ratelimit import LimitStore
from db.session import Database

DB_EXTENSION = "loyalty_db"
DASH_EXTENSION = "loyalty_dash"
CONFIG_EXTENSION = "loyalty_config"
LIMITS_EXTENSION = "loyalty_limits"
JOB_DB = "loyalty_job_db"  # set by dashboard.jobs.job_context for the job's duration


def get_db() -> Database:
    """The program database of the running app (inside a background job:
    through connections with the jobs' longer statement timeout)."""
    return g.get(JOB_DB) or current_app.extensions[DB_EXTENSION]


def get_limits() -> LimitStore:
    """The rate limit store every web process shares (:mod:`db.ratelimit`)."""
    return current_app.extensions[LIMITS_EXTENSION]


def get_config() -> Config:
    return current_app.extensions[CONFIG_EXTENSION]


def current_actor() -> Actor:
    """The logged-in staff user as an :class:`Actor` to hand to services.

    Raises Forbidden when nobody is logged in (the guard should have stopped
    the request earlier; this is the second line).
    """
    if not current_user or not current_user.is_authenticated:
        raise Forbidden("not logged in")
    return Actor(name=current_user.username, id=current_user.id, role=current_user.role)
