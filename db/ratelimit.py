"""Rate limits every web process shares: failed sign-ins, member searches.

Two stores with one behaviour:

- :class:`RedisLimitStore` (when ``REDIS_URL`` is set): a sorted set of
  event times per key; one Lua script checks every window and records the
  event atomically;
- :class:`SqlLimitStore` (otherwise): the program database, one row per
  counted event in ``rate_limit_hits``, written in its own short
  transaction on its own small connection pool. It waits at most
  ``lock_wait_s`` for a lock (SQLite's write lock during a bulk import, a
  PostgreSQL lock): then it says :class:`LimitStoreUnavailable` instead of
  hanging, and the caller refuses. Per-key PostgreSQL advisory locks (and
  SQLite's write lock) make check-and-record atomic across processes.

Limits are moving windows written as the ``limits`` library parses them
("5 per minute; 30 per hour"). :meth:`LimitStore.acquire` counts one event
under every key given, all or nothing, and refuses (``None``) when a window
of any key is full; :meth:`LimitStore.release` takes the event back (a
sign-in that succeeded was not a failed attempt). ``local_when_busy=True``
counts in this process's memory while the shared store cannot answer (a
read-only action such as a search stays available, and limited, while a
SQLite import holds the write lock); without it the caller must refuse.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, event, func, select, text
from sqlalchemy.exc import DBAPIError

from db.errors import DatabaseBusy
from db.models import RateLimitHit
from db.session import Database, make_engine

log = logging.getLogger("db.ratelimit")

Rate = tuple[int, int]  # (events allowed, window in seconds)
Claims = Mapping[str, Sequence[Rate]]
MAX_KEY = 200
LOCK_WAIT_S = 2.0
DAY_S = 86_400
PG_LOCK_CLASS = 70_015  # first half of the advisory lock key (the second: hashtext(key))
REDIS_PREFIX = "loyalty:limit:"


class LimitStoreUnavailable(RuntimeError):
    """The store did not answer in time (locked, unreachable): refuse the action."""


@functools.lru_cache(maxsize=64)
def parse_rates(spec: str) -> tuple[Rate, ...]:
    """``"5 per minute; 30 per hour"`` -> ((5, 60), (30, 3600)); ValueError if unreadable."""
    from limits import parse_many

    rates = tuple((item.amount, int(item.get_expiry())) for item in parse_many(spec))
    if not rates or any(amount < 1 or window < 1 for amount, window in rates):
        raise ValueError(f"no usable limit in {spec!r}")
    return rates


def _why(exc: Exception) -> str:
    """The driver's words for a refused statement (SQLAlchemy wraps them)."""
    cause = exc.__cause__ if isinstance(exc, DatabaseBusy) else exc
    return str(getattr(cause, "orig", None) or cause or exc)


def fit_key(key: str) -> str:
    """Keys longer than the column keep a readable head and a digest of the whole."""
    if len(key) <= MAX_KEY:
        return key
    return key[: MAX_KEY - 41] + "#" + hashlib.sha256(key.encode()).hexdigest()[:40]


@dataclass(frozen=True)
class Ticket:
    """The events one :meth:`LimitStore.acquire` recorded (to release them)."""

    entries: tuple[Any, ...]


class LimitStore(ABC):
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock  # seconds since the epoch; tests freeze it
        self._local: MemoryLimitStore | None = None

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    def acquire(self, claims: Claims, *, local_when_busy: bool = False) -> Ticket | None:
        """Count one event under every key of ``claims`` if no window of any
        key is full (then the ticket), else record nothing and return None.
        Raises :class:`LimitStoreUnavailable` unless ``local_when_busy``."""
        try:
            return self._acquire(claims)
        except LimitStoreUnavailable:
            if not local_when_busy:
                raise
            if self._local is None:
                self._local = MemoryLimitStore(lambda: self.clock())
            log.warning("rate limit store busy: counting in this process meanwhile")
            return self._local.acquire(claims)

    @abstractmethod
    def _acquire(self, claims: Claims) -> Ticket | None: ...

    @abstractmethod
    def release(self, ticket: Ticket) -> None:
        """Take back the events of ``ticket``."""

    @abstractmethod
    def reset(self) -> None:
        """Forget every event (tests, operators)."""

    def dispose(self) -> None:  # noqa: B027 - optional
        """Close connections."""


class MemoryLimitStore(LimitStore):
    """This process only: the stand-in while the shared store is busy."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        super().__init__(clock)
        self._events: dict[str, deque[int]] = {}
        self._lock = threading.Lock()

    def _acquire(self, claims: Claims) -> Ticket | None:
        items = _claims(claims)
        now = self.now_ms()
        with self._lock:
            for key, rates in items:
                events = self._events.setdefault(key, deque())
                longest = max(window for _n, window in rates) * 1000
                while events and events[0] <= now - longest:
                    events.popleft()
                for amount, window in rates:
                    if sum(1 for at in events if at > now - window * 1000) >= amount:
                        return None
            for key, _rates in items:
                self._events[key].append(now)
        return Ticket(())

    def release(self, ticket: Ticket) -> None:
        return None

    def reset(self) -> None:
        with self._lock:
            self._events.clear()


def _claims(claims: Claims) -> list[tuple[str, tuple[Rate, ...]]]:
    out = []
    for key, rates in sorted(claims.items()):
        rates = tuple(rates)
        if not rates:
            raise ValueError(f"no limit given for {key!r}")
        out.append((fit_key(key), rates))
    return out


class SqlLimitStore(LimitStore):
    """Events in the program database's ``rate_limit_hits`` table."""

    def __init__(self, url: str, *, lock_wait_s: float = LOCK_WAIT_S,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__(clock)
        self.lock_wait_ms = max(1, int(lock_wait_s * 1000))
        sqlite = url.startswith("sqlite")
        engine = make_engine(url, **({} if sqlite else {"pool_size": 2, "max_overflow": 8}))
        if sqlite:
            # after the engine's own connect hook (30 s busy timeout): wait less
            @event.listens_for(engine, "connect")
            def _short_wait(dbapi_conn, _record):  # pragma: no cover - every connection
                cur = dbapi_conn.cursor()
                cur.execute(f"PRAGMA busy_timeout = {self.lock_wait_ms}")
                cur.close()

        self.db = Database(engine=engine)
        self.retention_s = DAY_S
        self._pruned_ms = 0

    def _acquire(self, claims: Claims) -> Ticket | None:
        items = _claims(claims)
        now = self.now_ms()
        try:
            with self.db.begin() as s:
                if self.db.dialect == "postgresql":
                    s.execute(text(f"SET LOCAL lock_timeout = {self.lock_wait_ms}"))
                    for key, _rates in items:  # sorted: no deadlock between processes
                        s.execute(text("SELECT pg_advisory_xact_lock(:c, hashtext(:k))"),
                                  {"c": PG_LOCK_CLASS, "k": key})
                for key, rates in items:
                    longest = max(window for _n, window in rates)
                    self.retention_s = max(self.retention_s, longest)
                    s.execute(delete(RateLimitHit).where(
                        RateLimitHit.key == key, RateLimitHit.at_ms <= now - longest * 1000))
                    for amount, window in rates:
                        used = s.scalar(select(func.count()).where(
                            RateLimitHit.key == key, RateLimitHit.at_ms > now - window * 1000))
                        if used >= amount:
                            return None
                hits = [RateLimitHit(key=key, at_ms=now) for key, _rates in items]
                s.add_all(hits)
                s.flush()
                ticket = Ticket(tuple(h.id for h in hits))
        except (DBAPIError, DatabaseBusy) as exc:
            log.warning("rate limit store unavailable: %s", exc)
            raise LimitStoreUnavailable(_why(exc)) from exc
        self._prune(now)
        return ticket

    def _prune(self, now: int) -> None:
        """Drop events older than any window, at most once a minute per process."""
        if now - self._pruned_ms < 60_000:
            return
        self._pruned_ms = now
        try:
            with self.db.begin() as s:
                if self.db.dialect == "postgresql":
                    s.execute(text(f"SET LOCAL lock_timeout = {self.lock_wait_ms}"))
                s.execute(delete(RateLimitHit).where(
                    RateLimitHit.at_ms < now - self.retention_s * 1000))
        except (DBAPIError, DatabaseBusy) as exc:  # the next prune catches up
            log.info("rate limit prune skipped: %s", exc)

    def release(self, ticket: Ticket) -> None:
        if not ticket.entries:
            return
        try:
            with self.db.begin() as s:
                s.execute(delete(RateLimitHit).where(RateLimitHit.id.in_(ticket.entries)))
        except (DBAPIError, DatabaseBusy) as exc:
            raise LimitStoreUnavailable(_why(exc)) from exc

    def count(self, key: str, window_s: int) -> int:
        """Events under ``key`` in the last ``window_s`` seconds."""
        with self.db.read() as s:
            return s.scalar(select(func.count()).where(
                RateLimitHit.key == fit_key(key),
                RateLimitHit.at_ms > self.now_ms() - window_s * 1000)) or 0

    def reset(self) -> None:
        self._local = None
        with self.db.begin() as s:
            s.execute(delete(RateLimitHit))

    def dispose(self) -> None:
        self.db.dispose()


# KEYS: the limit keys. ARGV: now (ms), the event's member name, then per key
# its number of windows followed by (allowed, window ms) pairs.
_REDIS_ACQUIRE = """
local now = tonumber(ARGV[1])
local pos = 3
local longest = {}
for i = 1, #KEYS do
  local windows = tonumber(ARGV[pos]); pos = pos + 1
  longest[i] = 0
  for _ = 1, windows do
    local allowed = tonumber(ARGV[pos]); local window = tonumber(ARGV[pos + 1]); pos = pos + 2
    if window > longest[i] then longest[i] = window end
    if redis.call('ZCOUNT', KEYS[i], '(' .. (now - window), '+inf') >= allowed then
      return 0
    end
  end
end
for i = 1, #KEYS do
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now - longest[i])
  redis.call('ZADD', KEYS[i], now, ARGV[2])
  redis.call('PEXPIRE', KEYS[i], longest[i])
end
return 1
"""


class RedisLimitStore(LimitStore):
    """Events in Redis sorted sets (``loyalty:limit:<key>``)."""

    def __init__(self, url: str, *, timeout_s: float = LOCK_WAIT_S,
                 clock: Callable[[], float] = time.time) -> None:
        import redis

        super().__init__(clock)
        self._errors = (redis.exceptions.RedisError,)
        self.redis = redis.Redis.from_url(url, socket_timeout=timeout_s,
                                          socket_connect_timeout=timeout_s)
        self._script = self.redis.register_script(_REDIS_ACQUIRE)

    def _acquire(self, claims: Claims) -> Ticket | None:
        items = _claims(claims)
        now = self.now_ms()
        member = f"{now}:{uuid.uuid4().hex}"
        args: list[Any] = [now, member]
        for _key, rates in items:
            args.append(len(rates))
            for amount, window in rates:
                args += [amount, window * 1000]
        keys = [REDIS_PREFIX + key for key, _rates in items]
        try:
            ok = self._script(keys=keys, args=args)
        except self._errors as exc:
            log.warning("rate limit store unavailable: %s", exc)
            raise LimitStoreUnavailable(str(exc)) from exc
        return Ticket(tuple((k, member) for k in keys)) if ok else None

    def release(self, ticket: Ticket) -> None:
        try:
            with self.redis.pipeline() as p:
                for key, member in ticket.entries:
                    p.zrem(key, member)
                p.execute()
        except self._errors as exc:
            raise LimitStoreUnavailable(str(exc)) from exc

    def count(self, key: str, window_s: int) -> int:
        now = self.now_ms()
        return int(self.redis.zcount(REDIS_PREFIX + fit_key(key), f"({now - window_s * 1000}",
                                     "+inf"))

    def reset(self) -> None:
        self._local = None
        for key in self.redis.scan_iter(match=REDIS_PREFIX + "*", count=500):
            self.redis.delete(key)

    def dispose(self) -> None:
        self.redis.close()


def open_store(database_url: str, redis_url: str | None = None, **kwargs: Any) -> LimitStore:
    """Redis when its URL is given, else the program database."""
    if redis_url:
        return RedisLimitStore(redis_url, **kwargs)
    return SqlLimitStore(database_url, **kwargs)
