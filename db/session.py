"""Engine and transactions for SQLite (embedded default) and PostgreSQL.

Write transactions go through :func:`write_tx`:
- SQLite: ``BEGIN IMMEDIATE`` takes the write lock up front, and a busy
  timeout makes concurrent writers wait for it instead of failing; WAL lets
  readers go on meanwhile; foreign keys are switched on per connection.
- PostgreSQL: READ COMMITTED with ``SELECT ... FOR UPDATE`` row locks taken
  by the services in a fixed order; serialization failures and deadlocks
  (40001 / 40P01) are retried with backoff, as are SQLite "database is
  locked" errors that escape the busy timeout.
"""

from __future__ import annotations

import functools
import os
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

DEFAULT_SQLITE_PATH = Path("instance") / "loyalty.sqlite3"
SQLITE_BUSY_TIMEOUT_MS = 30_000

T = TypeVar("T")


def database_url(url: str | None = None) -> str:
    """The URL to use: the argument, else ``DATABASE_URL``, else the SQLite file."""
    url = url or os.environ.get("DATABASE_URL")
    if url:
        # Heroku-style URLs and bare postgresql:// both mean psycopg 3 here
        if url.startswith("postgres://"):
            url = "postgresql://" + url[len("postgres://") :]
        if url.startswith("postgresql://"):
            url = "postgresql+psycopg://" + url[len("postgresql://") :]
        return url
    path = DEFAULT_SQLITE_PATH.resolve()
    return f"sqlite:///{path}"


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def make_engine(url: str | None = None, **kwargs) -> Engine:
    url = database_url(url)
    if url.startswith("sqlite"):
        db_path = url.split("///", 1)[-1]
        if db_path and db_path != ":memory:":
            Path(db_path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
            **kwargs,
        )
        _configure_sqlite(engine)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 20)
    return create_engine(url, **kwargs)


def unicode_lower(value: object) -> object:
    """SQL lower() on SQLite connections: Unicode-aware, NULL stays NULL."""
    return value.lower() if isinstance(value, str) else value


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):  # pragma: no cover - exercised by every test
        # let SQLAlchemy emit BEGIN itself (pysqlite's own handling defers it)
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA foreign_keys = ON")
        cur.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA journal_mode = WAL")
        cur.execute("PRAGMA synchronous = NORMAL")
        # 64 MB page cache: bulk inserts into several indexes thrash the 2 MB default
        cur.execute("PRAGMA cache_size = -65536")
        cur.close()
        # SQLite's own lower() folds ASCII only: "Иванов" would stay as is and
        # a search for "иван" would miss it. Python's folds every script, as
        # PostgreSQL's does; the member search indexes are on lower(name) and
        # lower(email), rebuilt with this function by migration 0008.
        dbapi_conn.create_function("lower", 1, unicode_lower, deterministic=True)

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        if conn.get_execution_options().get("loyalty_write"):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")


class Database:
    """An engine plus session factories for reads and writes."""

    def __init__(self, url: str | None = None, engine: Engine | None = None, **kwargs) -> None:
        self.engine = engine or make_engine(url, **kwargs)
        self.url = self.engine.url
        self._read = sessionmaker(self.engine, expire_on_commit=False)
        self._write = sessionmaker(
            self.engine.execution_options(loyalty_write=True), expire_on_commit=False
        )

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A read-only session (rolled back at the end)."""
        with self._read() as s:
            try:
                yield s
            finally:
                s.rollback()

    @contextmanager
    def begin(self) -> Iterator[Session]:
        """One write transaction: committed on success, rolled back on error."""
        with self._write.begin() as s:
            yield s

    def write_tx(self, fn: Callable[[Session], T], *, retries: int = 8) -> T:
        """Run ``fn(session)`` in one write transaction, retrying transient conflicts.

        ``fn`` must be safe to re-run from the start (it is, when all it does is
        read and write through the session).
        """
        attempt = 0
        while True:
            try:
                with self.begin() as s:
                    return fn(s)
            except DBAPIError as exc:
                attempt += 1
                if attempt > retries or not is_transient(exc):
                    raise
                time.sleep(min(0.5, 0.005 * 2**attempt) * (0.5 + random.random()))

    def dispose(self) -> None:
        self.engine.dispose()


def is_transient(exc: DBAPIError) -> bool:
    """Serialization failure, deadlock, or SQLite lock contention."""
    code = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
    if code in ("40001", "40P01", "55P03"):
        return True
    if isinstance(exc, OperationalError):
        msg = str(exc.orig).lower()
        return "database is locked" in msg or "database is busy" in msg
    return False


def transactional(fn: Callable[..., T]) -> Callable[..., T]:
    """Decorate a service ``fn(session, ...)`` so it can also be called as
    ``fn(db, ...)`` with a :class:`Database`: then it runs in its own retried
    write transaction."""

    @functools.wraps(fn)
    def wrapper(target, *args, **kwargs):
        if isinstance(target, Database):
            return target.write_tx(lambda s: fn(s, *args, **kwargs))
        return fn(target, *args, **kwargs)

    return wrapper
