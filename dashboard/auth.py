"""Authentication and authorization of the web app.

- login/logout are plain Flask routes (Flask-WTF CSRF on the form, argon2 via
  ``db.users.authenticate``); failed attempts are limited per address and
  account, and more loosely per address, in the store every web process
  shares (:mod:`db.ratelimit`: Redis, else the program database); logout
  is a POST only, and it bumps the account's session version, which every
  request checks, so no copy of the cookie outlives it;
- one ``before_request`` guard stands in front of every route; the public
  routes are the short explicit list below;
- pages declare roles in ``dash.register_page(..., roles=...)``; callbacks
  declare theirs with :func:`require_roles`, which the guard checks before
  Dash runs anything, and which the decorator checks again inside.

A hidden navbar link is never the protection: the guard is.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlencode, urlsplit

import dash
import flask
from flask import Flask, redirect, render_template_string, request, session
from flask_login import LoginManager, UserMixin, current_user, login_user, logout_user
from flask_wtf.csrf import CSRFError, CSRFProtect, generate_csrf
from sqlalchemy.exc import InterfaceError, OperationalError, SQLAlchemyError

from dashboard import access, templates
from dashboard.config import Config
from dashboard.context import DB_EXTENSION, LIMITS_EXTENSION, get_db
from dashboard.i18n import N_, _, current_language, translate
from db import audit
from db import users as users_service
from db.errors import DatabaseBusy
from db.ratelimit import LimitStore, LimitStoreUnavailable, open_store, parse_rates

log = logging.getLogger("dashboard.auth")

UPDATE_COMPONENT = "/_dash-update-component"
LOGIN_PATH = "/login"
LOGOUT_PATH = "/logout"
CATCHALL_ENDPOINT = "/<path:path>"  # Dash's catch-all page route
# The only routes an anonymous visitor may reach.
PUBLIC_PATHS = frozenset({LOGIN_PATH, "/favicon.ico", "/_favicon.ico", "/healthz"})
PUBLIC_PREFIXES = ("/assets/", "/_dash-component-suites/")
WRONG_CREDENTIALS = N_("Wrong username or password.")
TOO_MANY_ATTEMPTS = N_("Too many failed sign-in attempts. Wait a minute and try again.")
LIMITS_BUSY = N_("Sign-in is busy at the moment. Try again in a minute.")
SESSION_SEEN = "seen"
SESSION_STAFF = "staff"
SESSION_VERSION = "ver"  # the account's session_version at login
SEEN_RESOLUTION_S = 10

csrf = CSRFProtect()
login_manager = LoginManager()


class StaffSession(UserMixin):
    """The logged-in staff user as flask-login sees it (reloaded every request)."""

    def __init__(
        self, id: int, username: str, full_name: str, role: str, *, db_ok: bool = True,
        language: str | None = None,
    ) -> None:
        self.id = id
        self.username = username
        self.full_name = full_name
        self.role = role
        self.language = language  # None: the configured default
        # False when the database was unreachable and the session copy was used
        self.db_ok = db_ok

    def get_id(self) -> str:
        return str(self.id)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "username": self.username,
            "full_name": self.full_name,
            "role": self.role,
            "language": self.language,
        }


def _load_user(user_id: str) -> StaffSession | None:
    """Reload the user on every request, so a disabled account or a changed
    role takes effect at once, not at the next login."""
    try:
        uid = int(user_id)
    except (TypeError, ValueError):
        return None
    try:
        with get_db().read() as s:
            info = users_service.get_user(s, uid)
    except (OperationalError, InterfaceError):
        # Database down: keep the shell usable (it shows the outage banner);
        # no data can be read anyway. The copy was signed into the session.
        cached = session.get(SESSION_STAFF)
        if cached and cached.get("id") == uid:
            log.warning("database unreachable; using the session copy of user %s", uid)
            return StaffSession(
                cached["id"], cached["username"], cached["full_name"], cached["role"],
                db_ok=False, language=cached.get("language"),
            )
        return None
    if info is None or not info.active:
        log.warning("refused session of %s account id=%s", "missing" if info is None else
                    "disabled", uid)
        return None
    if session.get(SESSION_VERSION) != info.session_version:
        # logged out, or role, password or active flag changed since this
        # session began: a copy of the cookie saved earlier is refused too
        log.warning("refused an ended session of %s", info.username)
        return None
    user = StaffSession(info.id, info.username, info.full_name, info.role,
                        language=info.language)
    if session.get(SESSION_STAFF) != user.as_dict():
        session[SESSION_STAFF] = user.as_dict()
    return user


# ---------------------------------------------------------------- callbacks


def require_roles(*roles: str, writes: bool = False) -> Callable[[Callable], Callable]:
    """Declare (and enforce) which roles may run a callback.

    Apply under ``@dash.callback``. The guard reads the declaration to refuse
    the request with 403 before Dash parses it; the check in the wrapper is
    the second line (for calls the guard did not see). A callback without
    this decorator is refused to everyone by the guard (fail closed).
    ``writes=True`` marks callbacks that change data: their refusals also go
    to the audit log. A lost database connection becomes "no update" (the
    shell banner tells the user) instead of a traceback.
    """
    allowed = access.check_roles(roles)

    def decorate(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if flask.has_request_context():
                role = current_user.role if current_user.is_authenticated else None
                if role not in allowed:
                    refuse_callback(_callback_name(fn), writes=writes)
                    flask.abort(403)
            try:
                return fn(*args, **kwargs)
            except (OperationalError, InterfaceError) as exc:
                log.warning("callback %s: database unavailable: %s", fn.__qualname__, exc)
                raise dash.exceptions.PreventUpdate from exc

        setattr(wrapper, access.ROLE_ATTR, frozenset(allowed))
        setattr(wrapper, access.WRITES_ATTR, writes)
        return wrapper

    return decorate


def _callback_name(fn: Callable) -> str:
    """"rules.copy_version": the page a callback belongs to (its module in
    callbacks/) and its name, as the audit log records a refusal."""
    module = fn.__module__
    short = module.split(".", 1)[1] if module.startswith("callbacks.") else module
    return f"{short}.{fn.__qualname__}"


def refuse_callback(what: str, *, writes: bool) -> None:
    """Log a refused callback; a refused write also goes to the audit log."""
    who = current_user.username if current_user.is_authenticated else "anonymous"
    role = current_user.role if current_user.is_authenticated else None
    log.warning("refused callback %s for %s (role %s)", what, who, role)
    if writes and current_user.is_authenticated:
        try:
            get_db().write_tx(
                lambda s: audit.record(
                    s, who, "access.refused", actor_id=current_user.id,
                    object_type="callback", object_id=what[:64],
                    detail=f"role {role} may not run {what}",
                )
            )
        except (SQLAlchemyError, DatabaseBusy):
            log.exception("could not audit the refusal of %s", what)


# ---------------------------------------------------------------- the guard


def _is_public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


def _json_error(status: int, message: str) -> flask.Response:
    resp = flask.jsonify({"error": message})
    resp.status_code = status
    return resp


def _safe_next(target: str | None) -> str:
    """Only same-site relative paths: no open redirect via ``?next=``."""
    if not target:
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return "/"
    if "\\" in target:
        return "/"
    return target


def _interval_only(body: dict[str, Any]) -> bool:
    """A callback fired by a timer is not the user being active."""
    changed = body.get("changedPropIds") or []
    return bool(changed) and all(str(c).endswith(".n_intervals") for c in changed)


def _idle_expired(config: Config) -> bool:
    seen = session.get(SESSION_SEEN)
    return seen is None or time.time() - float(seen) > config.session_idle_minutes * 60


def _anonymous_response(path: str, expired: bool) -> flask.Response:
    if path.startswith("/_dash-") or request.method != "GET":
        return _json_error(401, _("login required (session expired)") if expired
                           else _("login required"))
    query = {"next": request.full_path.rstrip("?") if request.query_string else path}
    if expired:
        query["expired"] = "1"
    return redirect(f"{LOGIN_PATH}?{urlencode(query)}")


def _check_callback(dash_app: dash.Dash) -> flask.Response | None:
    body = request.get_json(silent=True) or {}
    output = body.get("output")
    if not isinstance(output, str):
        return _json_error(400, "malformed callback request")
    if access.ROUTER_OUTPUT_MARK in output:
        return None  # the page layouts enforce their own roles
    entry = dash_app.callback_map.get(output)
    if entry is None:
        return _json_error(400, "unknown callback")
    fn = entry.get("callback")
    if fn is None:  # clientside: never posted by the renderer
        return _json_error(403, "forbidden")
    roles = access.callback_roles(fn)
    if roles is None:
        log.error("callback %s declares no roles: refused to everyone", output)
        return _json_error(403, "forbidden")
    if current_user.role not in roles:
        refuse_callback(_callback_name(access.innermost(fn)), writes=access.callback_writes(fn))
        return _json_error(403, "forbidden")
    return None


def _touch() -> None:
    """Record activity; written at most every few seconds, so that parallel
    callback requests rarely rewrite the session cookie."""
    now = time.time()
    if now - float(session.get(SESSION_SEEN) or 0) > SEEN_RESOLUTION_S:
        session[SESSION_SEEN] = now


Delegate = tuple[Callable[[str], bool], Callable[[], Any]]


def make_guard(dash_app: dash.Dash, config: Config,
               delegates: Sequence[Delegate] = ()) -> Callable[[], Any]:
    """The one ``before_request`` function in front of every route. A path
    a delegate claims (``(claims(path), its_guard)``) is guarded by it alone."""

    def guard() -> Any:
        path = request.path
        for claims, its_guard in delegates:
            if claims(path):
                return its_guard()
        if _is_public(path):
            return None
        expired = False
        if current_user.is_authenticated and _idle_expired(config):
            log.info("session of %s expired after inactivity", current_user.username)
            logout_user()
            session.clear()
            expired = True
        if not current_user.is_authenticated:
            return _anonymous_response(path, expired)

        if path == UPDATE_COMPONENT:
            body = request.get_json(silent=True) or {}
            if not _interval_only(body):
                _touch()
            return _check_callback(dash_app)

        _touch()
        if request.method == "GET" and not path.startswith("/_dash-"):
            # Put the CSRF token (for the navbar's logout form) into the session
            # now, while the page loads alone: the renderer's parallel requests
            # that follow each write the cookie session back, and one started
            # before the token existed would drop it.
            generate_csrf()
        if path == "/":
            return redirect(access.landing_path(current_user.role))
        page = access.page_for_path(path)
        if page is None and request.endpoint == CATCHALL_ENDPOINT:
            # the shell, with the 404 content rendered by Dash's router
            return flask.make_response(dash_app.index(), 404)
        if page is not None and not access.role_may_open(current_user.role, page):
            log.warning(
                "refused page %s for %s (role %s)", path, current_user.username, current_user.role
            )
            # the shell, with the 403 content rendered by the wrapped layout
            return flask.make_response(dash_app.index(), 403)
        return None

    return guard


# ---------------------------------------------------------------- routes


def _render_login(
    status: int = 200, *, error: str = "", notice: str = "", username: str = "",
    next_path: str = "/",
) -> flask.Response:
    html = render_template_string(
        templates.LOGIN, title=_("Sign in"), error=translate(error), notice=translate(notice),
        username=username, next=next_path, lang=current_language(),
    )
    return flask.make_response(html, status)


def login_claims(config: Config, username: str) -> dict[str, tuple[tuple[int, int], ...]]:
    """The limits one failed sign-in counts against: this address with this
    account (a guesser elsewhere cannot lock the owner out), and this address
    over all accounts (looser, against spraying many usernames)."""
    address = (request.remote_addr or "unknown")[:64]
    account = username.strip().lower()[:64]
    return {
        f"login:{address}|{account}": parse_rates(config.login_limit_account),
        f"login-address:{address}": parse_rates(config.login_limit_address),
    }


def session_settings(config: Config) -> dict[str, Any]:
    """Flask settings for the session cookie (Secure only in production,
    where the app sits behind HTTPS)."""
    return {
        "SECRET_KEY": config.secret_key,
        "SESSION_COOKIE_NAME": "loyalty_session",
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": config.production,
        "PERMANENT_SESSION_LIFETIME": dt.timedelta(minutes=config.session_idle_minutes),
        "SESSION_REFRESH_EACH_REQUEST": True,
        # the token lives as long as the session; the session has the idle limit
        "WTF_CSRF_TIME_LIMIT": None,
    }


def init_auth(server: Flask, dash_app: dash.Dash, config: Config,
              delegates: Sequence[Delegate] = ()) -> LimitStore:
    """Wire sessions, CSRF, login, rate limits and the guard onto ``server``."""
    server.config.update(session_settings(config))
    csrf.init_app(server)
    # Dash's callback endpoint takes JSON from the Dash renderer, not forms;
    # exempt exactly the view registered for it (its name is dash.dash.dispatch
    # on Dash 4.4) and nothing else. SameSite=Lax keeps cross-site POSTs
    # from carrying the session cookie.
    csrf.exempt(server.view_functions[UPDATE_COMPONENT])

    login_manager.init_app(server)
    login_manager.user_loader(_load_user)
    login_manager.session_protection = "basic"

    db_url = server.extensions[DB_EXTENSION].url.render_as_string(hide_password=False)
    limits = open_store(db_url, config.redis_url)
    server.extensions[LIMITS_EXTENSION] = limits

    def login() -> Any:
        next_path = _safe_next(request.values.get("next"))
        if request.method == "GET":
            if current_user.is_authenticated:
                return redirect(next_path)
            notice = (
                _("Your session ended after a period of inactivity. Please sign in again.")
                if request.args.get("expired") else ""
            )
            return _render_login(notice=notice, next_path=next_path)
        username = (request.form.get("username") or "").strip()
        password = request.form.get("password") or ""
        # counted before the password is checked (parallel guesses cannot
        # slip past the count); taken back when the password was right
        try:
            ticket = limits.acquire(login_claims(config, username))
        except LimitStoreUnavailable:
            return _render_login(503, error=LIMITS_BUSY, username=username,
                                 next_path=next_path)
        if ticket is None:
            log.warning("sign-in limit reached for %r from %s", username[:64],
                        request.remote_addr)
            return _render_login(429, error=TOO_MANY_ATTEMPTS, username=username,
                                 next_path=next_path)
        try:
            info = get_db().write_tx(
                lambda s: users_service.authenticate(s, username, password)
            )
        except DatabaseBusy:
            log.warning("login of %r waited too long for the database", username[:64])
            return _render_login(
                503, error=_("The program database is busy. Try again in a minute."),
                username=username, next_path=next_path,
            )
        except (OperationalError, InterfaceError):
            log.exception("login impossible: database unreachable")
            return _render_login(
                503, error=_("The program database is unreachable. Try again in a minute."),
                username=username, next_path=next_path,
            )
        if info is None:
            log.warning("failed login for %r from %s", username[:64], request.remote_addr)
            return _render_login(error=WRONG_CREDENTIALS, username=username, next_path=next_path)
        try:
            limits.release(ticket)
        except LimitStoreUnavailable:
            log.warning("a successful sign-in of %s stays counted as failed", info.username)
        session.clear()  # no session fixation: a fresh session for the new user
        user = StaffSession(info.id, info.username, info.full_name, info.role,
                            language=info.language)
        login_user(user)
        session.permanent = True
        session[SESSION_SEEN] = time.time()
        session[SESSION_STAFF] = user.as_dict()
        session[SESSION_VERSION] = info.session_version
        log.info("login %s (%s) from %s", info.username, info.role, request.remote_addr)
        _audit_auth("auth.login", user)
        # back to the page asked for, if it is one this role may open
        page = access.page_for_path(next_path)
        page_ok = page is not None and access.role_may_open(info.role, page)
        return redirect(next_path if page_ok else access.landing_path(info.role))

    server.add_url_rule(LOGIN_PATH, "login", login, methods=["GET", "POST"])

    def logout() -> Any:
        if request.method == "GET":
            # a link or an image on another page must not sign anyone out
            return _logout_page()
        if current_user.is_authenticated:
            user_id = current_user.id
            try:
                get_db().write_tx(lambda s: users_service.end_sessions(s, user_id))
            except (SQLAlchemyError, DatabaseBusy):
                log.exception("could not end the other sessions of %s", current_user.username)
            _audit_auth("auth.logout", current_user)
            log.info("logout %s", current_user.username)
        logout_user()
        session.clear()
        return redirect(LOGIN_PATH)

    server.add_url_rule(LOGOUT_PATH, "logout", logout, methods=["GET", "POST"])

    def favicon() -> Any:
        return dash_app._serve_default_favicon()  # noqa: SLF001 - Dash's own icon

    server.add_url_rule("/favicon.ico", "favicon", favicon)

    def healthz() -> Any:
        """200 "ok" when the database answers at once, else 503 saying why;
        within about two seconds either way: its own connection (never one
        queued behind the pool), short connect and statement timeouts, and a
        query no lock can hold up (see Database.probe)."""
        problem = get_db().probe()
        return _json_error(503 if problem else 200, problem or "ok")

    server.add_url_rule("/healthz", "healthz", healthz)

    @server.errorhandler(CSRFError)
    def _csrf_error(exc: CSRFError) -> Any:
        log.warning("CSRF refusal on %s: %s", request.path, exc.description)
        if request.path == LOGIN_PATH:
            return _render_login(
                400, error=_("The form expired or was not sent by this site. Please try again."),
                next_path=_safe_next(request.values.get("next")),
            )
        return _error_page(400, _("Bad request"), _("The form expired. Go back and try again."))

    server.before_request(make_guard(dash_app, config, delegates))

    @server.after_request
    def _security_headers(resp: flask.Response) -> flask.Response:
        resp.headers.setdefault("X-Content-Type-Options", "nosniff")
        resp.headers.setdefault("X-Frame-Options", "DENY")
        resp.headers.setdefault("Referrer-Policy", "same-origin")
        if request.path == UPDATE_COMPONENT or request.path.startswith("/_dash-layout"):
            resp.headers.setdefault("Cache-Control", "no-store")
        return resp

    return limits


def _logout_page() -> flask.Response:
    """GET /logout: a button that posts the logout form (with its CSRF token)."""
    return flask.make_response(render_template_string(
        templates.LOGOUT, title=_("Sign out"), lang=current_language()))


def _error_page(status: int, title: str, message: str) -> flask.Response:
    return flask.make_response(
        render_template_string(templates.ERROR, title=title, message=message,
                               lang=current_language()), status
    )


def _audit_auth(action: str, user: Any) -> None:
    try:
        get_db().write_tx(
            lambda s: audit.record(
                s, user.username, action, actor_id=user.id, object_type="staff_user",
                object_id=user.id, detail=request.remote_addr or "",
            )
        )
    except (SQLAlchemyError, DatabaseBusy):
        log.exception("could not audit %s of %s", action, user.username)
