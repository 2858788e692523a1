"""Bounds on what one request may cost the server.

- A statement that runs out of time (a lock held elsewhere, an overloaded
  database; see ``db.session.Timeouts``) raises ``DatabaseBusy``: callbacks
  that show service refusals show its message, any other request gets 503
  with it, never a worker held until the lock goes.
"""

from __future__ import annotations

import logging

import flask
from flask import render_template_string, request

from dashboard import templates
from db.errors import DatabaseBusy

log = logging.getLogger("dashboard.limits")


def _refusal(status: int, title: str, message: str) -> flask.Response:
    """JSON for the Dash renderer's requests, a page for a browser's."""
    if request.path.startswith("/_dash-"):
        resp = flask.jsonify({"error": message})
        resp.status_code = status
        return resp
    return flask.make_response(
        render_template_string(templates.ERROR, title=title, message=message), status
    )


def database_busy(exc: DatabaseBusy) -> flask.Response:
    log.warning("database busy on %s: %s", request.path, exc)
    resp = _refusal(503, "Database busy", str(exc))
    resp.headers["Retry-After"] = "30"
    return resp


def init_limits(server: flask.Flask) -> None:
    server.register_error_handler(DatabaseBusy, database_busy)
