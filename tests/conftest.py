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

ADMIN_PG_URL = os.environ.get(
    "TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def _pg_admin_url() -> str:
    url = ADMIN_PG_URL
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items) -> None:
    """Tests on a PostgreSQL database carry the postgres mark, so
    ``-m "not postgres"`` leaves them out (parametrised halves are marked
    where they are declared)."""
    for item in items:
        if "pg_url" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.postgres)


def _pg_reachable() -> str | None:
    """None when reachable, else the reason."""
    try:
        eng = create_engine(_pg_admin_url(), connect_args={"connect_timeout": 3})
        with eng.connect() as c:
            c.execute(text("SELECT 1"))
        eng.dispose()
        return None
    except Exception as exc:  # noqa: BLE001 - any failure means "not here"
        return f"PostgreSQL not reachable at {ADMIN_PG_URL}: {type(exc).__name__}"


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
    reason = _pg_reachable()
    if reason:
        pytest.skip(reason)
    name = f"loyalty_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = create_engine(_pg_admin_url(), isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    url = _pg_admin_url().rsplit("/", 1)[0] + f"/{name}"
    d = Database(url)
    upgrade(d.engine)
    d.dispose()
    yield url
    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def reset_postgres(d: Database) -> None:
    """Empty every table and restore the rows the first migration inserts.

    The ledger and the audit log refuse TRUNCATE by trigger; the owner of
    the tables switches those triggers off inside this one transaction."""
    from db.models import Base

    tables = ", ".join(t.name for t in Base.metadata.sorted_tables)
    guarded = ("ledger_entries", "ledger_transactions", "audit_log", "order_refunds")
    with d.engine.begin() as c:
        for t in guarded:
            c.execute(text(f"ALTER TABLE {t} DISABLE TRIGGER {t}_no_truncate"))
        c.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
        for t in guarded:
            c.execute(text(f"ALTER TABLE {t} ENABLE TRIGGER {t}_no_truncate"))
        c.execute(
            text(
                "INSERT INTO accounts (id, kind) VALUES (1, 'issuance'), (2, 'redemption'), "
                "(3, 'breakage'), (4, 'adjustment')"
            )
        )
        c.execute(text("SELECT setval(pg_get_serial_sequence('accounts', 'id'), 99)"))
        c.execute(
            text(
                "INSERT INTO program_settings (id, currency, expiry_days, "
                "adjustment_second_approval_points, adjustment_supervisor_request_points, "
                "active_days, updated_at) VALUES (1, 'RUB', 365, 5000, 50000, 30, now())"
            )
        )


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
# process-global) on a small seeded SQLite database; see tests/seed.py.

WEB_SECRET = "test-secret-key-not-for-production"


@pytest.fixture(scope="session")
def web_seed(sqlite_template, tmp_path_factory) -> tuple[str, dict[str, int]]:
    """(database URL, seeded ids) of the web tests' database."""
    from tests.seed import seed_small

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


def csrf_token_from(html: str) -> str:
    import re

    m = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert m, "no CSRF token in the page"
    return m.group(1)


def login(client, username: str, password: str | None = None, next_path: str = "/"):
    """Log in through the real form (GET for the CSRF token, then POST)."""
    from tests.seed import PASSWORD

    page = client.get("/login")
    return client.post(
        "/login",
        data={
            "username": username,
            "password": PASSWORD if password is None else password,
            "csrf_token": csrf_token_from(page.get_data(as_text=True)),
            "next": next_path,
        },
    )


def logout(client):
    """Sign out through the real form: GET /logout shows it, POST signs out."""
    page = client.get("/logout")
    assert page.status_code == 200, page.status_code
    r = client.post("/logout", data={"csrf_token": csrf_token_from(page.get_data(as_text=True))})
    assert r.status_code == 302, r.status_code
    return r
