"""Engine and transactions for SQLite (embedded default) and PostgreSQL.

Write transactions go through :func:`write_tx`:
- SQLite: ``BEGIN IMMEDIATE`` takes the write lock up front, and a busy
  timeout makes concurrent writers wait for it instead of failing; WAL lets
  readers go on meanwhile; foreign keys are switched on per connection.
- PostgreSQL: READ COMMITTED with ``SELECT ... FOR UPDATE`` row locks taken
  by the services in a fixed order; serialization failures and deadlocks
  (40001 / 40P01) are retried with backoff, as are SQLite "database is
  locked" errors that escape the busy timeout.

No wait is unbounded (:class:`Timeouts`): every PostgreSQL connection opens
with a statement, lock and idle-in-transaction timeout, SQLite with a busy
timeout, and retries stop once the lock wait is spent. A read or write that
runs out of time raises :class:`~db.errors.DatabaseBusy` (a refusal with a
message; nothing was changed). The web app uses the short defaults, its
background jobs a longer statement timeout, the command line's bulk work
(import, seed, rebuild) none.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import random
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.exc import DBAPIError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

from db.errors import DatabaseBusy

DEFAULT_SQLITE_PATH = Path("instance") / "loyalty.sqlite3"
SQLITE_BUSY_TIMEOUT_MS = 30_000
LOCK_WAIT_SQLSTATES = ("55P03",)  # lock_not_available: lock_timeout (or NOWAIT)
CANCELLED_SQLSTATES = ("57014",)  # query_canceled: statement_timeout


@dataclass(frozen=True)
class Timeouts:
    """How long one connection may wait, in milliseconds (0: no limit).

    ``statement_ms``, ``lock_ms`` and ``idle_in_transaction_ms`` are
    PostgreSQL's ``statement_timeout``, ``lock_timeout`` and
    ``idle_in_transaction_session_timeout``, set when the connection opens;
    ``connect_s`` bounds opening it; ``sqlite_busy_ms`` is SQLite's busy
    timeout (how long a writer waits for the write lock).
    """

    statement_ms: int = 30_000
    lock_ms: int = 5_000
    idle_in_transaction_ms: int = 60_000
    connect_s: int = 10
    sqlite_busy_ms: int = SQLITE_BUSY_TIMEOUT_MS
    # background jobs (simulation, tier pass) and command-line bulk work
    job_statement_ms: int = 300_000
    batch_statement_ms: int = 0

    ENV = {
        "statement_ms": "DB_STATEMENT_TIMEOUT_MS",
        "lock_ms": "DB_LOCK_TIMEOUT_MS",
        "idle_in_transaction_ms": "DB_IDLE_IN_TRANSACTION_TIMEOUT_MS",
        "connect_s": "DB_CONNECT_TIMEOUT_S",
        "sqlite_busy_ms": "DB_SQLITE_BUSY_TIMEOUT_MS",
        "job_statement_ms": "DB_JOB_STATEMENT_TIMEOUT_MS",
        "batch_statement_ms": "DB_BATCH_STATEMENT_TIMEOUT_MS",
    }

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Timeouts:
        """The defaults, overridden by the ``DB_*_TIMEOUT_*`` variables."""
        env = os.environ if env is None else env
        values = {}
        for field, var in cls.ENV.items():
            value = env.get(var)
            raw = "" if value is None else str(value).strip()
            if not raw:
                continue
            if not raw.isdigit():
                raise ValueError(f"{var} must be a whole number of "
                                 f"{'seconds' if var.endswith('_S') else 'milliseconds'} "
                                 f"(0: no limit), not {raw!r}")
            values[field] = int(raw)
        return cls(**values)

    def for_jobs(self) -> Timeouts:
        """Background jobs: the longer statement timeout, the same lock wait."""
        return dataclasses.replace(self, statement_ms=self.job_statement_ms)

    def for_batch(self) -> Timeouts:
        """Command-line bulk work (import, seed, rebuild): statements may run
        as long as they need (``DB_BATCH_STATEMENT_TIMEOUT_MS``, default none)
        and a transaction may stay open while Python prepares the next batch."""
        return dataclasses.replace(
            self, statement_ms=self.batch_statement_ms, idle_in_transaction_ms=0
        )

    def postgres_options(self) -> str:
        """The libpq ``options`` string that sets the server-side timeouts."""
        return " ".join((
            f"-c statement_timeout={int(self.statement_ms)}",
            f"-c lock_timeout={int(self.lock_ms)}",
            f"-c idle_in_transaction_session_timeout={int(self.idle_in_transaction_ms)}",
        ))

    def lock_wait_s(self, dialect: str) -> float:
        """How long one attempt may wait for a lock (bounds the retries too)."""
        if dialect == "sqlite":
            return self.sqlite_busy_ms / 1000
        return (self.lock_ms or self.statement_ms or 30_000) / 1000


# the health probe: an answer within about two seconds, whatever the load
PROBE_TIMEOUTS = Timeouts(statement_ms=1000, lock_ms=500, idle_in_transaction_ms=2000,
                          connect_s=2, sqlite_busy_ms=1000)

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


def make_engine(url: str | None = None, *, timeouts: Timeouts | None = None,
                **kwargs) -> Engine:
    """An engine whose connections open with ``timeouts`` (default: the
    ``DB_*`` variables, else :class:`Timeouts`' defaults)."""
    url = database_url(url)
    timeouts = timeouts or Timeouts.from_env()
    connect_args = dict(kwargs.pop("connect_args", None) or {})
    if url.startswith("sqlite"):
        db_path = url.split("///", 1)[-1]
        if db_path and db_path != ":memory:":
            Path(db_path).parent.mkdir(parents=True, exist_ok=True)
        connect_args.setdefault("timeout", timeouts.sqlite_busy_ms / 1000)
        connect_args.setdefault("check_same_thread", False)
        engine = create_engine(url, connect_args=connect_args, **kwargs)
        _configure_sqlite(engine, timeouts.sqlite_busy_ms)
        return engine
    if kwargs.get("poolclass") is not NullPool:
        kwargs.setdefault("pool_pre_ping", True)
        kwargs.setdefault("pool_size", 10)
        kwargs.setdefault("max_overflow", 20)
    if timeouts.connect_s:
        connect_args.setdefault("connect_timeout", timeouts.connect_s)
    options = timeouts.postgres_options()
    if connect_args.get("options"):
        options = f"{options} {connect_args['options']}"
    connect_args["options"] = options
    return create_engine(url, connect_args=connect_args, **kwargs)


def unicode_lower(value: object) -> object:
    """SQL lower() on SQLite connections: Unicode-aware, NULL stays NULL."""
    return value.lower() if isinstance(value, str) else value


def _configure_sqlite(engine: Engine, busy_timeout_ms: int = SQLITE_BUSY_TIMEOUT_MS) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):  # pragma: no cover - exercised by every test
        # let SQLAlchemy emit BEGIN itself (pysqlite's own handling defers it)
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA foreign_keys = ON")
        cur.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
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

    def __init__(self, url: str | None = None, engine: Engine | None = None, *,
                 timeouts: Timeouts | None = None, **kwargs) -> None:
        self.timeouts = timeouts or Timeouts.from_env()
        self.engine = engine or make_engine(url, timeouts=self.timeouts, **kwargs)
        self.url = self.engine.url
        self._kwargs = kwargs
        self._read = sessionmaker(self.engine, expire_on_commit=False)
        self._write = sessionmaker(
            self.engine.execution_options(loyalty_write=True), expire_on_commit=False
        )
        self._siblings: dict[Timeouts, Database] = {}
        self._probe: Engine | None = None

    def with_timeouts(self, timeouts: Timeouts) -> Database:
        """The same database through connections with other timeouts (kept,
        so its pool is reused)."""
        if timeouts == self.timeouts:
            return self
        if timeouts not in self._siblings:
            self._siblings[timeouts] = Database(
                self.url.render_as_string(hide_password=False), timeouts=timeouts,
                **self._kwargs,
            )
        return self._siblings[timeouts]

    def for_jobs(self) -> Database:
        """For background jobs: a longer statement timeout."""
        return self.with_timeouts(self.timeouts.for_jobs())

    def for_batch(self) -> Database:
        """For command-line bulk work: no statement timeout."""
        return self.with_timeouts(self.timeouts.for_batch())

    def probe(self) -> str | None:
        """None when the database answers at once, else what is wrong.

        Opens its own connection (no pool: the health check must not queue
        behind requests holding the pooled ones) with a 2 s connect and 1 s
        statement timeout, and reads nothing a writer can lock: ``SELECT 1``
        on PostgreSQL, the schema (a WAL snapshot) on SQLite.
        """
        if self._probe is None:
            connect_args = dict(self._kwargs.get("connect_args") or {})
            connect_args.pop("connect_timeout", None)
            self._probe = make_engine(
                self.url.render_as_string(hide_password=False), timeouts=PROBE_TIMEOUTS,
                poolclass=NullPool, connect_args=connect_args,
            )
        sql = "SELECT count(*) FROM sqlite_master" if self.dialect == "sqlite" else "SELECT 1"
        started = time.monotonic()
        try:
            with self._probe.connect() as c:
                c.execute(text(sql))
        except (SQLAlchemyError, OSError) as exc:
            slow = is_timeout(exc) if isinstance(exc, DBAPIError) else False
            if slow or time.monotonic() - started >= PROBE_TIMEOUTS.connect_s:
                return "database slow: no answer within a second or two"
            return "database unreachable"
        return None

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A read-only session (rolled back at the end)."""
        with self._read() as s:
            try:
                yield s
            except DBAPIError as exc:
                busy = busy_error(exc, self.timeouts)
                if busy is None:
                    raise
                raise busy from exc
            finally:
                s.rollback()

    @contextmanager
    def begin(self) -> Iterator[Session]:
        """One write transaction: committed on success, rolled back on error."""
        try:
            with self._write.begin() as s:
                yield s
        except DBAPIError as exc:
            busy = busy_error(exc, self.timeouts)
            if busy is None:
                raise
            raise busy from exc

    def write_tx(self, fn: Callable[[Session], T], *, retries: int = 8) -> T:
        """Run ``fn(session)`` in one write transaction, retrying transient conflicts.

        ``fn`` must be safe to re-run from the start (it is, when all it does is
        read and write through the session). Retries stop once the lock wait
        of one attempt is spent: a lock held that long is not a passing
        conflict, and the caller gets :class:`DatabaseBusy` instead of a
        request held for minutes.
        """
        attempt = 0
        deadline = time.monotonic() + self.timeouts.lock_wait_s(self.dialect)
        while True:
            try:
                with self._write.begin() as s:
                    return fn(s)
            except DBAPIError as exc:
                attempt += 1
                if attempt > retries or not is_transient(exc) or time.monotonic() >= deadline:
                    busy = busy_error(exc, self.timeouts)
                    if busy is None:
                        raise
                    raise busy from exc
                time.sleep(min(0.5, 0.005 * 2**attempt) * (0.5 + random.random()))

    def dispose(self, close: bool = True) -> None:
        self.engine.dispose(close=close)
        for sibling in self._siblings.values():
            sibling.dispose(close=close)
        if self._probe is not None:
            self._probe.dispose(close=close)


def is_transient(exc: DBAPIError) -> bool:
    """Serialization failure, deadlock, or SQLite lock contention."""
    code = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
    if code in ("40001", "40P01", "55P03"):
        return True
    if isinstance(exc, OperationalError):
        msg = str(exc.orig).lower()
        return "database is locked" in msg or "database is busy" in msg
    return False


def _sqlstate(exc: DBAPIError) -> str | None:
    return getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)


def is_timeout(exc: DBAPIError) -> bool:
    """A lock wait or statement that ran out of time (not a broken connection)."""
    if _sqlstate(exc) in LOCK_WAIT_SQLSTATES + CANCELLED_SQLSTATES:
        return True
    if isinstance(exc, OperationalError):
        msg = str(exc.orig).lower()
        return "database is locked" in msg or "database is busy" in msg
    return False


def busy_error(exc: DBAPIError, timeouts: Timeouts) -> DatabaseBusy | None:
    """The refusal to raise for a timed-out statement, or None for other errors."""
    if not is_timeout(exc):
        return None
    if _sqlstate(exc) in CANCELLED_SQLSTATES:
        limit = f" within {timeouts.statement_ms / 1000:g} s" if timeouts.statement_ms else ""
        return DatabaseBusy(
            f"The database did not answer{limit}: it is overloaded or the question is too "
            "large. Nothing was changed; try again later or ask for less."
        )
    return DatabaseBusy(
        "The database is busy: another operation holds a lock on the data this needs. "
        "Nothing was changed; try again in a minute."
    )


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
