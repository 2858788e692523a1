"""Bounds on what one request may cost the server.

- A statement that runs out of time (a lock held elsewhere, an overloaded
  database; see ``db.session.Timeouts``) raises ``DatabaseBusy``: callbacks
  that show service refusals show its message, any other request gets 503
  with it, never a worker held until the lock goes.
- A request body larger than ``MAX_REQUEST_MB`` is refused with 413 before
  it is read (the largest legitimate one carries a pilot's member list).
- One background job of a kind per user (``dashboard.jobs``), and the
  worker reaps its finished job processes after every request.
"""

from __future__ import annotations

import logging
from typing import Any

import flask
from flask import render_template_string, request
from werkzeug.exceptions import RequestEntityTooLarge

from dashboard import templates
from dashboard.callback_inputs import MAX_UPLOAD_BYTES
from dashboard.config import Config
from dashboard.i18n import _, current_language, translate
from db.errors import DatabaseBusy

log = logging.getLogger("dashboard.limits")


def _refusal(status: int, title: str, message: str) -> flask.Response:
    """JSON for the Dash renderer's requests, a page for a browser's."""
    if request.path.startswith("/_dash-"):
        resp = flask.jsonify({"error": message})
        resp.status_code = status
        return resp
    return flask.make_response(
        render_template_string(templates.ERROR, title=title, message=message,
                               lang=current_language()), status
    )


def database_busy(exc: DatabaseBusy) -> flask.Response:
    log.warning("database busy on %s: %s", request.path, exc)
    resp = _refusal(503, _("Database busy"), translate(exc.args[0] if exc.args else str(exc)))
    resp.headers["Retry-After"] = "30"
    return resp


def init_limits(server: flask.Flask, config: Config, manager: Any = None) -> None:
    server.config["MAX_CONTENT_LENGTH"] = config.max_request_mb * 1024 * 1024
    server.register_error_handler(DatabaseBusy, database_busy)

    @server.errorhandler(RequestEntityTooLarge)
    def _too_large(_exc: RequestEntityTooLarge) -> flask.Response:
        size = request.content_length
        log.warning("refused a %s-byte request to %s from %s", size if size is not None
                    else "streamed", request.path, request.remote_addr)
        return _refusal(413, _("Request too large"), _(
            "The request is larger than %(most)s MB, the most this server accepts; nothing "
            "was done. A file to upload must be smaller (a pilot's member list: at most "
            "%(upload)s MB).", most=config.max_request_mb, upload=MAX_UPLOAD_BYTES // 2**20))

    reap = getattr(manager, "reap", None)
    if reap is not None:
        @server.after_request
        def _reap_finished_jobs(resp: flask.Response) -> flask.Response:
            reap()
            return resp
