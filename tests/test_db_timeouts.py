"""No wait on the database is unbounded: statement, lock and idle timeouts on
every connection, a refusal (503 with a message) instead of a worker held by
a lock, and a health check that answers at once whatever the load."""

from __future__ import annotations

import sqlite3
import threading
import time
from contextlib import contextmanager

import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, text

from dashboard.config import ConfigError, load_config
from dashboard.context import DB_EXTENSION
from db.errors import DatabaseBusy
from db.session import Database, Timeouts
from tests.support.web import UPDATE, callback_body, key_for, logged_in


def _show(d: Database, setting: str) -> str:
    with d.engine.connect() as c:
        return c.execute(text(f"SHOW {setting}")).scalar()


@pytest.mark.postgres
def test_app_connections_open_with_statement_lock_and_idle_timeouts(pg_url, web_app):
    cfg = load_config({"DATABASE_URL": pg_url})
    d = Database(pg_url, timeouts=cfg.db_timeouts)
    try:
        assert _show(d, "statement_timeout") == "30s"
        assert _show(d, "lock_timeout") == "5s"
        assert _show(d, "idle_in_transaction_session_timeout") == "1min"
        # background jobs may run longer statements, command-line bulk work any
        assert _show(d.for_jobs(), "statement_timeout") == "5min"
        assert _show(d.for_jobs(), "lock_timeout") == "5s"
        assert _show(d.for_batch(), "statement_timeout") == "0"
        assert _show(d.for_batch(), "idle_in_transaction_session_timeout") == "0"
    finally:
        d.dispose()
    tuned = load_config({"DATABASE_URL": pg_url, "DB_STATEMENT_TIMEOUT_MS": "12000",
                         "DB_LOCK_TIMEOUT_MS": 0})
    d = Database(pg_url, timeouts=tuned.db_timeouts)
    try:
        assert _show(d, "statement_timeout") == "12s"
        assert _show(d, "lock_timeout") == "0"  # 0: no limit, as PostgreSQL's own
    finally:
        d.dispose()


def test_a_bad_timeout_stops_start_up_with_the_variable_named():
    with pytest.raises(ConfigError, match="DB_LOCK_TIMEOUT_MS must be a whole number"):
        load_config({"DB_LOCK_TIMEOUT_MS": "5s"})


@pytest.mark.postgres
def test_command_line_work_has_no_statement_timeout(pg_url, monkeypatch):
    from dashboard import cli

    seen = {}

    @cli.main.command("show-timeout")
    @cli.click.pass_context
    def show_timeout(ctx):
        seen["statement"] = _show(cli._db(ctx), "statement_timeout")
        seen["lock"] = _show(cli._db(ctx), "lock_timeout")

    try:
        r = CliRunner().invoke(cli.main, ["--database-url", pg_url, "show-timeout"])
        assert r.exit_code == 0, r.output
    finally:
        cli.main.commands.pop("show-timeout")
    assert seen == {"statement": "0", "lock": "5s"}


@contextmanager
def _locked(pg_url: str, table: str, hold_s: float):
    """A transaction holding ACCESS EXCLUSIVE on ``table`` for ``hold_s``
    seconds at most (released earlier when the block ends)."""
    eng = create_engine(pg_url.replace("postgresql://", "postgresql+psycopg://", 1))
    conn = eng.connect()
    conn.execute(text(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE"))
    done = threading.Event()

    def release_later():
        done.wait(hold_s)
        conn.rollback()
        conn.close()

    t = threading.Thread(target=release_later, daemon=True)
    t.start()
    try:
        yield
    finally:
        done.set()
        t.join()
        eng.dispose()


@contextmanager
def _app_on(web_app, d: Database):
    ext = web_app.server.extensions
    real = ext[DB_EXTENSION]
    ext[DB_EXTENSION] = d
    try:
        yield
    finally:
        ext[DB_EXTENSION] = real


@pytest.fixture
def pg_app_db(pg_url, web_app):
    """The web app on a seeded PostgreSQL database with the default timeouts."""
    from benchmarks.small_program import seed_small

    d = Database(pg_url, timeouts=Timeouts(), pool_size=2, max_overflow=0)
    from tests.support.postgres import reset_postgres

    reset_postgres(d)
    seed_small(d)
    with _app_on(web_app, d):
        yield d
    d.dispose()


@pytest.mark.postgres
def test_a_locked_table_gets_a_clear_refusal_within_the_lock_timeout(client, web_app,
                                                                     pg_app_db, pg_url):
    logged_in(client, "support")
    body = callback_body(web_app, key_for(web_app, "members-count"), {
        "members-grid.getRowsRequest": {"startRow": 0, "endRow": 50},
        "members-query.value": "anna"})
    assert client.post(UPDATE, json=body).status_code == 200
    with _locked(pg_url, "members", hold_s=20):
        started = time.monotonic()
        r = client.post(UPDATE, json=body)
        waited = time.monotonic() - started
    assert r.status_code == 503, r.get_data(as_text=True)[:300]
    assert "database is busy" in r.get_json()["error"]
    assert 4 <= waited < 8  # the 5 s lock timeout, not the 20 s the lock was held


@pytest.mark.postgres
def test_a_write_waiting_on_a_lock_is_not_retried_for_minutes(pg_db, pg_url):
    from db import users

    d = Database(pg_url, timeouts=Timeouts(lock_ms=500))
    try:
        with _locked(pg_url, "staff_users", hold_s=30):
            started = time.monotonic()
            with pytest.raises(DatabaseBusy, match="Nothing was changed"):
                d.write_tx(lambda s: users.create_user(s, "newbie", "a-long-password-1",
                                                       "support"))
            assert time.monotonic() - started < 3
        with d.read() as s:
            assert users.get_user_by_name(s, "newbie") is None
    finally:
        d.dispose()


@pytest.mark.postgres
def test_healthz_answers_at_once_while_requests_wait_on_a_locked_table(client, pg_app_db,
                                                                        pg_url):
    assert client.get("/healthz").status_code == 200
    with _locked(pg_url, "members", hold_s=20):
        # two requests wait on the lock, holding both pooled connections
        def wait_on_members():
            try:
                with pg_app_db.read() as s:
                    s.execute(text("SELECT count(*) FROM members")).scalar()
            except DatabaseBusy:
                pass

        waiting = [threading.Thread(target=wait_on_members) for _ in range(2)]
        for t in waiting:
            t.start()
        time.sleep(0.5)
        started = time.monotonic()
        r = client.get("/healthz")
        assert time.monotonic() - started < 2
        assert r.status_code == 200 and r.get_json() == {"error": "ok"}
        for t in waiting:
            t.join()


def test_healthz_reports_a_locked_sqlite_database_at_once(client, tmp_path, sqlite_template,
                                                          web_app):
    import shutil

    path = tmp_path / "locked.sqlite3"
    shutil.copy(sqlite_template, path)
    d = Database(f"sqlite:///{path}", timeouts=Timeouts(sqlite_busy_ms=500))
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        with _app_on(web_app, d):
            assert client.get("/healthz").status_code == 200
            d.dispose()
            holder.execute("PRAGMA locking_mode=EXCLUSIVE")
            holder.execute("BEGIN EXCLUSIVE")
            holder.execute("CREATE TABLE holding_the_lock (x)")
            started = time.monotonic()
            r = client.get("/healthz")
            assert time.monotonic() - started < 2.5
            assert r.status_code == 503
            assert "database slow" in r.get_json()["error"]
    finally:
        holder.close()
        d.dispose()


def test_a_locked_sqlite_database_refuses_a_page_request_with_503(client, tmp_path,
                                                                  sqlite_template, web_app):
    """A request waits the busy timeout once, then a 503 page says why."""
    import shutil

    from benchmarks.small_program import seed_small

    path = tmp_path / "busy.sqlite3"
    shutil.copy(sqlite_template, path)
    d = Database(f"sqlite:///{path}", timeouts=Timeouts(sqlite_busy_ms=500))
    seed_small(d)
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        with _app_on(web_app, d):
            logged_in(client, "support")
            body = callback_body(web_app, key_for(web_app, "members-count"), {
                "members-grid.getRowsRequest": {"startRow": 0, "endRow": 50},
                "members-query.value": "anna"})
            assert client.post(UPDATE, json=body).status_code == 200
            d.dispose()
            holder.execute("PRAGMA locking_mode=EXCLUSIVE")
            holder.execute("BEGIN EXCLUSIVE")
            holder.execute("CREATE TABLE holding_the_lock (x)")
            started = time.monotonic()
            r = client.post(UPDATE, json=body)
            assert time.monotonic() - started < 3
            assert r.status_code == 503
            assert "database is busy" in r.get_json()["error"]
    finally:
        holder.close()
        d.dispose()
