"""Shared fixtures: fresh program databases on SQLite and PostgreSQL.

- ``db``: a fresh SQLite database file per test (migrated once per session
  into a template file, then copied).
- ``pg_db``: a fresh PostgreSQL database per test (one database per test
  session, created from the admin URL, emptied between tests); skipped with
  the reason when no PostgreSQL answers.
- ``any_db``: the same test on both.

PostgreSQL is found through ``TEST_POSTGRES_URL`` (default
``postgresql://postgres@127.0.0.1:5432/test``, the CI service).
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from db.migrate import upgrade
from db.session import Database
from tests.support.postgres import pg_admin_url, pg_reachable, reset_postgres
from tests.support.web import WEB_SECRET


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items) -> None:
    """Tests on a PostgreSQL database carry the postgres mark, so
    ``-m "not postgres"`` leaves them out (parametrised halves are marked
    where they are declared)."""
    for item in items:
        if "pg_url" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.postgres)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.sqlite3"
    d = Database(f"sqlite:///{path}")
    upgrade(d.engine)
    with d.engine.connect() as c:
        c.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    d.dispose()
    return path


@pytest.fixture
def db(sqlite_template, tmp_path) -> Database:
    path = tmp_path / "loyalty.sqlite3"
    shutil.copy(sqlite_template, path)
    d = Database(f"sqlite:///{path}")
    yield d
    d.dispose()


@pytest.fixture(scope="session")
def pg_url() -> str:
    reason = pg_reachable()
    if reason:
        pytest.skip(reason)
    name = f"loyalty_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = create_engine(pg_admin_url(), isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    url = pg_admin_url().rsplit("/", 1)[0] + f"/{name}"
    d = Database(url)
    upgrade(d.engine)
    d.dispose()
    yield url
    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def pg_db(pg_url) -> Database:
    d = Database(pg_url)
    reset_postgres(d)
    yield d
    d.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def any_db(request) -> Database:
    if request.param == "sqlite":
        return request.getfixturevalue("db")
    return request.getfixturevalue("pg_db")


# ---------------------------------------------------------------- web app
# The Dash app is built once per test session (Dash registries are
# process-global) on a small seeded SQLite database; see benchmarks/small_program.py.

@pytest.fixture(scope="session")
def web_seed(sqlite_template, tmp_path_factory) -> tuple[str, dict[str, int]]:
    """(database URL, seeded ids) of the web tests' database."""
    from benchmarks.small_program import seed_small

    path = tmp_path_factory.mktemp("web") / "web.sqlite3"
    shutil.copy(sqlite_template, path)
    url = f"sqlite:///{path}"
    d = Database(url)
    ids = seed_small(d)
    d.dispose()
    return url, ids


@pytest.fixture(scope="session")
def web_app(web_seed):
    from dashboard.app import create_app

    url, _ids = web_seed
    app = create_app(
        {
            "DATABASE_URL": url,
            "SECRET_KEY": WEB_SECRET,
            "LOYALTY_ENV": "development",
            "TESTING": True,
            "SESSION_IDLE_MINUTES": 30,
            "DB_PING_MS": 3000,
        }
    )
    # the first request makes Dash register its pages router callback
    app.server.test_client().get("/login")
    return app


@pytest.fixture
def client(web_app):
    """A fresh test client (no cookies) with the rate limits reset."""
    from dashboard.context import LIMITS_EXTENSION

    web_app.server.extensions[LIMITS_EXTENSION].reset()
    return web_app.server.test_client()


@pytest.fixture
def frozen_limits(web_app, monkeypatch):
    """The web app's rate limit store, emptied, its clock stopped: windows do
    not slide during the test, however slow argon2 is on this machine."""
    import time

    from dashboard.context import LIMITS_EXTENSION

    store = web_app.server.extensions[LIMITS_EXTENSION]
    now = time.time()
    monkeypatch.setattr(store, "clock", lambda: now)
    store.reset()
    return store


# ------------------------------------------------------------------ pages in Russian


@pytest.fixture(scope="module")
def russian_users(web_app, web_seed) -> dict[str, str]:
    """A user of each role who chose Russian, on the web tests' database."""
    from tests.support.i18n_scan import russian_staff

    return russian_staff(web_seed[0])


@pytest.fixture(scope="module")
def russian_clients(web_app, russian_users) -> dict[str, object]:
    """A test client signed in as the Russian user of each role (the sign-in
    limits emptied first: the whole suite signs in from one address)."""
    from dashboard.context import LIMITS_EXTENSION
    from tests.support.i18n_scan import RUSSIAN_PASSWORD
    from tests.support.web import login

    web_app.server.extensions[LIMITS_EXTENSION].reset()
    clients = {}
    for role, username in russian_users.items():
        clients[role] = web_app.server.test_client()
        r = login(clients[role], username, RUSSIAN_PASSWORD)
        assert r.status_code == 302, r.status_code
    return clients


@pytest.fixture
def data_words(web_seed) -> set[str]:
    """Words of the program's own data (names, what staff typed), which pages
    show as they are: read for each test, as tests of other modules running
    in between on the same database add their own."""
    from tests.support.i18n_scan import data_words as program_words

    return program_words(web_seed[0])
