"""The app factory.

``create_app()`` builds the Flask server, the Dash app on it, the pages (top
level package ``pages``), the callbacks (package ``callbacks``) and the auth
layer. Dash keeps pages and callbacks in process-global registries, so the
app is built once per process (gunicorn worker, test session).

Pages are imported as the installed package ``pages`` (``pages_folder=""``
with ``use_pages=True``) instead of letting Dash exec the files from a folder
path: Dash's folder loader would import each file a second time under a
path-derived module name, and the callbacks and tests import the same
modules by their package name.
"""

from __future__ import annotations

import importlib
import logging
import os
import pkgutil
import stat
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

import dash
import flask
from dash._callback import GLOBAL_CALLBACK_MAP
from sqlalchemy.engine import make_url
from werkzeug.middleware.proxy_fix import ProxyFix

import callbacks
import pages
from dashboard import access, jobs, shell
from dashboard.api import guard as api_guard
from dashboard.api import init_api, is_api_path
from dashboard.auth import init_auth
from dashboard.callback_inputs import init_callback_checks
from dashboard.config import Config, ConfigError, load_config
from dashboard.context import CONFIG_EXTENSION, DASH_EXTENSION, DB_EXTENSION
from dashboard.csp import init_csp
from dashboard.i18n import init_i18n
from dashboard.limits import init_limits
from db.session import DEFAULT_SQLITE_PATH, Database
from db.session import database_url as database_url_of

log = logging.getLogger("dashboard.app")
CELERY_EXTENSION = "loyalty_celery"

PROJECT_ROOT = Path(__file__).resolve().parent.parent
ASSETS = PROJECT_ROOT / "assets"
_BUILT: dict[str, dash.Dash] = {}


def _import_package_modules(package: Any) -> list[str]:
    names = []
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        name = f"{package.__name__}.{info.name}"
        importlib.import_module(name)
        names.append(name)
    return names


def _wrap_page_layouts() -> None:
    for module, page in dash.page_registry.items():
        if not access.page_roles(page):
            raise RuntimeError(f"page {module} declares no roles=(...) in register_page")
        if "layout" not in page or getattr(page["layout"], "__wrapped__", None) is None:
            layout = page.get("layout") or getattr(sys.modules[module], "layout", None)
            if not callable(layout):
                raise RuntimeError(f"page {module} has no layout() function")
            page["layout"] = shell.guard_layout(layout, page)


def check_callback_roles(callback_map: dict[str, Any]) -> None:
    """Fail at start-up when a callback declares no roles, or grants a role
    its page does not (a page-less helper callback must name its roles too)."""
    pages_by_module = {p["module"]: p for p in dash.page_registry.values()}
    problems = []
    for output, entry in callback_map.items():
        if access.ROUTER_OUTPUT_MARK in output:
            continue
        fn = entry.get("callback")
        if fn is None:  # clientside callbacks run in the browser only
            continue
        roles = access.callback_roles(fn)
        inner = access.innermost(fn)
        where = f"{inner.__module__}.{inner.__qualname__}"
        if roles is None:
            problems.append(f"{where} has no @require_roles")
            continue
        module = inner.__module__
        if module.startswith("callbacks."):
            page = pages_by_module.get("pages." + module.split(".", 1)[1])
            if page is not None and not roles <= access.page_roles(page):
                extra = sorted(roles - access.page_roles(page))
                problems.append(f"{where} grants {extra}, which page {page['path']} refuses")
    if problems:
        raise RuntimeError("callback roles misdeclared:\n  " + "\n  ".join(problems))


BACKGROUND_FOLDER = "background-jobs"


def instance_folder(database_url: str | None) -> Path:
    """The app's own folder: the SQLite file's (``instance/`` by default), or
    ``instance/`` of the working directory when the database is elsewhere."""
    url = make_url(database_url_of(database_url))
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        return Path(url.database).resolve().parent
    return DEFAULT_SQLITE_PATH.parent.resolve()


def private_folder(path: Path) -> Path:
    """``path`` as a directory only this process's user may enter (0700).

    Created with mode 0700; an existing one must be a real directory owned by
    this user. Read or search bits for others are taken away; one that others
    could write to is refused, since what it holds may have been planted (the
    background-job cache unpickles what it finds)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        path.mkdir(mode=0o700)
    except FileExistsError:
        pass
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode):
        raise ConfigError(f"{path} must be a directory (not a link or a file): remove it")
    if not hasattr(os, "geteuid"):  # no POSIX owners and modes (Windows)
        return path
    if st.st_uid != os.geteuid():
        raise ConfigError(
            f"{path} belongs to user id {st.st_uid}, not to the user running the app "
            f"({os.geteuid()}): remove it, or run the app as its owner"
        )
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o022:
        raise ConfigError(
            f"{path} is writable by other users (mode {mode:o}), so its contents cannot be "
            "trusted: remove the folder (it is recreated, private, at start-up)"
        )
    if mode != 0o700:
        os.chmod(path, 0o700)
        log.warning("%s had mode %o; set to 700", path, mode)
    return path


def background_manager(cfg: Config) -> tuple[Any, Any]:
    """(manager, celery app or None) for background callbacks.

    Celery + Redis when REDIS_URL is set (run the Procfile's ``worker:``);
    otherwise diskcache, whose jobs are child processes of the web worker and
    whose cache (pickles) the workers of this instance share in a private
    folder of the instance folder. Tests get a private temporary folder.
    """
    if cfg.redis_url:
        from celery import Celery

        celery_app = Celery("loyalty", broker=cfg.redis_url, backend=cfg.redis_url)
        return dash.CeleryManager(celery_app), celery_app
    import diskcache

    if cfg.testing:
        folder = Path(tempfile.mkdtemp(prefix="loyalty-background-"))  # mode 0700
    else:
        folder = private_folder(instance_folder(cfg.database_url) / BACKGROUND_FOLDER)
    return jobs.DiskcacheJobs(diskcache.Cache(str(folder)), expire=3600), None


def declare_cancel_roles(callback_map: dict[str, Any]) -> int:
    """Give Dash's own cancel callbacks the roles of the background callbacks
    they cancel.

    Dash registers one ``cancel_call`` per ``cancel=`` input when it sets the
    server up (first request). Undeclared, the guard refuses it to everyone
    (fail closed) and Cancel would never work; declared, only a role that may
    run the job may cancel it (and Dash only kills jobs whose signed handle
    this page load received). Returns the number of callbacks declared.
    """
    by_input: dict[str, set[str]] = {}
    for entry in callback_map.values():
        background = entry.get("background") or {}
        roles = access.callback_roles(entry.get("callback")) if entry.get("callback") else None
        for c in background.get("cancel") or ():
            if roles:
                by_input.setdefault(str(c.get("id")), set()).update(roles)
    declared = 0
    for key, entry in callback_map.items():
        fn = entry.get("callback")
        if fn is None or access.innermost(fn).__name__ != "cancel_call" or not key.endswith(".id"):
            continue
        roles = by_input.get(key[: -len(".id")])
        if roles and access.callback_roles(fn) is None:
            setattr(fn, access.ROLE_ATTR, frozenset(roles))
            setattr(fn, access.WRITES_ATTR, False)
            declared += 1
    return declared


def serialise_first_request(server: flask.Flask) -> None:
    """Run the set-up hooks registered so far (Dash's and the cancel-roles
    declaration) once, under a lock, before any request goes on.

    Dash finishes its set-up on the first request (callbacks copied into the
    map, the pages' router registered) and marks it done when it starts: in a
    threaded worker a second request found the callback map still changing
    ("dictionary changed size during iteration") or half set up. Afterwards the
    hooks are no-ops, so they are not called again."""
    hooks = list(server.before_request_funcs.get(None, []))
    lock = threading.Lock()
    done: list[bool] = []

    def first_request_setup() -> Any:
        if done:
            return None
        with lock:
            if not done:
                for hook in hooks:
                    answer = hook()
                    if answer is not None:  # pragma: no cover - Dash's hooks answer nothing
                        return answer
                done.append(True)
        return None

    server.before_request_funcs[None] = [first_request_setup]


def create_app(config: dict[str, Any] | None = None) -> dash.Dash:
    """Build the Dash app; ``config`` overrides env vars (tests).

    Raises ConfigError (clear message) when production lacks a SECRET_KEY.
    """
    cfg: Config = load_config(config)
    if "app" in _BUILT:
        raise RuntimeError(
            "create_app() already built the app in this process: Dash keeps pages and "
            "callbacks in process-global registries, build it once and reuse it"
        )
    db = Database(cfg.database_url, timeouts=cfg.db_timeouts)

    server = flask.Flask("dashboard")
    server.config["TESTING"] = cfg.testing
    server.extensions[DB_EXTENSION] = db
    server.extensions[CONFIG_EXTENSION] = cfg
    manager, celery_app = background_manager(cfg)
    if celery_app is not None:
        server.extensions[CELERY_EXTENSION] = celery_app
    server.extensions[jobs.LEASES_EXTENSION] = jobs.lease_store(manager, cfg.redis_url)

    app = dash.Dash(
        __name__,
        server=server,
        use_pages=True,
        pages_folder="",
        assets_folder=str(ASSETS),
        suppress_callback_exceptions=True,
        title="Loyalty back-office",
        update_title=None,
        background_callback_manager=manager,
    )
    server.extensions[DASH_EXTENSION] = app

    _import_package_modules(pages)
    access.register_declared_pages()
    _wrap_page_layouts()
    init_i18n(server, app, cfg.default_language)
    app.layout = shell.layout
    _import_package_modules(callbacks)
    check_callback_roles(GLOBAL_CALLBACK_MAP | app.callback_map)

    # after Dash's own first-request setup (which adds the cancel callbacks),
    # before the guard (registered by init_auth) reads the declarations
    cancel_roles_done: list[bool] = []

    def _declare_cancel_roles() -> None:
        if not cancel_roles_done:
            declare_cancel_roles(app.callback_map)
            cancel_roles_done.append(True)

    server.before_request(_declare_cancel_roles)
    serialise_first_request(server)
    # API paths are authenticated by key, not by the staff session
    init_auth(server, app, cfg, delegates=[(is_api_path, api_guard)])
    init_api(server)
    # after the guard: a stranger gets 401/403, a signed-in user's malformed request 400
    init_callback_checks(server)
    init_csp(server, app)
    init_limits(server, cfg, manager)
    if cfg.proxy_hops:
        server.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            server.wsgi_app, x_for=cfg.proxy_hops, x_proto=cfg.proxy_hops
        )
    _BUILT["app"] = app
    jobs.use_server(server)  # jobs started without a request run in this app
    log.info("app built (%s, database %s)", cfg.env, db.url.render_as_string(hide_password=True))
    return app
