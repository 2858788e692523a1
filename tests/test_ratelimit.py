"""The shared rate limit store (db/ratelimit.py) on SQLite, PostgreSQL and Redis:
moving windows, all-or-nothing claims, release, and counts shared by separate
store instances (as separate web processes have) even under concurrency."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import text

from db.ratelimit import (
    LimitStore,
    LimitStoreUnavailable,
    RedisLimitStore,
    SqlLimitStore,
    fit_key,
    parse_rates,
)

REDIS_URL = "redis://127.0.0.1:6379/14"
T0 = 1_900_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def _redis_or_skip() -> None:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except redis.exceptions.ConnectionError:
        pytest.skip("Redis is not running on 127.0.0.1:6379")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres), "redis"])
def make_store(request) -> Iterator[Callable[..., LimitStore]]:
    """A factory of stores on one shared backend (one per "process")."""
    made: list[LimitStore] = []
    if request.param == "redis":
        _redis_or_skip()

        def make(**kw) -> LimitStore:
            made.append(RedisLimitStore(REDIS_URL, **kw))
            return made[-1]
    else:
        d = request.getfixturevalue("db" if request.param == "sqlite" else "pg_db")
        url = d.url.render_as_string(hide_password=False)

        def make(**kw) -> LimitStore:
            made.append(SqlLimitStore(url, **kw))
            return made[-1]
    yield make
    for s in made:
        s.dispose()


def key() -> str:
    return f"test:{uuid.uuid4().hex}"


def test_limits_are_parsed_as_the_config_writes_them():
    assert parse_rates("5 per minute; 30 per hour") == ((5, 60), (30, 3600))
    assert parse_rates("60/minute") == ((60, 60),)
    for bad in ("lots", "", "0 per minute"):
        with pytest.raises(ValueError):
            parse_rates(bad)


def test_a_long_key_is_shortened_without_collisions():
    a, b = "k" * 300 + "a", "k" * 300 + "b"
    assert len(fit_key(a)) == 200 and fit_key(a) != fit_key(b)
    assert fit_key("short") == "short"


def test_moving_window_refuses_when_full_and_forgets_old_events(make_store):
    clock = Clock()
    store, k = make_store(clock=clock), key()
    rates = ((3, 60), (5, 3600))
    assert all(store.acquire({k: rates}) for _ in range(3))
    assert store.acquire({k: rates}) is None
    clock.now += 59
    assert store.acquire({k: rates}) is None  # still inside the minute
    clock.now += 2
    assert store.acquire({k: rates}) and store.acquire({k: rates})
    assert store.acquire({k: rates}) is None  # the hour is full now: 5 events
    clock.now += 3600
    assert store.acquire({k: rates})


def test_a_claim_is_all_or_nothing(make_store):
    clock = Clock()
    store, loose, tight = make_store(clock=clock), key(), key()
    assert store.acquire({loose: ((5, 60),), tight: ((1, 60),)})
    assert store.acquire({loose: ((5, 60),), tight: ((1, 60),)}) is None
    assert store.count(loose, 60) == 1  # the refused claim counted nothing
    assert store.acquire({loose: ((5, 60),)})
    assert store.count(loose, 60) == 2


def test_release_takes_the_events_back(make_store):
    clock = Clock()
    store, k = make_store(clock=clock), key()
    for _ in range(10):
        ticket = store.acquire({k: ((2, 60),)})
        assert ticket is not None
        store.release(ticket)
    assert store.count(k, 60) == 0


def test_two_stores_share_the_counts(make_store):
    """Two stores on one backend, as two web processes have."""
    clock = Clock()
    first, second, k = make_store(clock=clock), make_store(clock=clock), key()
    got = [(first if i % 2 else second).acquire({k: ((5, 60),)}) is not None
           for i in range(10)]
    assert got == [True] * 5 + [False] * 5


def test_concurrent_claims_never_pass_the_limit(make_store):
    clock = Clock()
    stores = [make_store(clock=clock) for _ in range(3)]
    k = key()
    barrier = threading.Barrier(9)
    granted: list[bool] = []
    errors: list[BaseException] = []

    def worker(store: LimitStore) -> None:
        try:
            barrier.wait()
            for _ in range(4):
                granted.append(store.acquire({k: ((7, 60),)}) is not None)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(stores[i % 3],)) for i in range(9)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert len(granted) == 36 and sum(granted) == 7


@pytest.mark.parametrize("backend",
                         ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_a_held_lock_makes_it_answer_busy_at_once_not_hang(request, backend):
    """A bulk import holding SQLite's write lock (or a PostgreSQL lock on the
    table) makes the store refuse after its short wait instead of hanging."""
    d = request.getfixturevalue("db" if backend == "sqlite" else "pg_db")
    store = SqlLimitStore(d.url.render_as_string(hide_password=False), lock_wait_s=0.3)
    try:
        with d.begin() as holder:  # a write transaction (SQLite: BEGIN IMMEDIATE)
            if backend == "sqlite":
                holder.execute(text("INSERT INTO rate_limit_hits (key, at_ms) VALUES ('x', 1)"))
            else:
                holder.execute(text("LOCK TABLE rate_limit_hits IN ACCESS EXCLUSIVE MODE"))
            started = time.monotonic()
            with pytest.raises(LimitStoreUnavailable):
                store.acquire({key(): ((5, 60),)})
            assert time.monotonic() - started < 5
        assert store.acquire({key(): ((5, 60),)}) is not None  # and works once it is free
    finally:
        store.dispose()


def test_a_busy_store_counts_in_this_process_when_asked(db):
    clock = Clock()
    store = SqlLimitStore(db.url.render_as_string(hide_password=False), lock_wait_s=0.1,
                          clock=clock)
    k = key()
    try:
        with db.begin() as holder:
            holder.execute(text("INSERT INTO rate_limit_hits (key, at_ms) VALUES ('x', 1)"))
            with pytest.raises(LimitStoreUnavailable):
                store.acquire({k: ((3, 60),)})
            got = [store.acquire({k: ((3, 60),)}, local_when_busy=True) is not None
                   for _ in range(4)]
            assert got == [True] * 3 + [False]
            clock.now += 61
            assert store.acquire({k: ((3, 60),)}, local_when_busy=True) is not None
    finally:
        store.dispose()


def test_old_events_are_pruned(db):
    clock = Clock()
    store = SqlLimitStore(db.url.render_as_string(hide_password=False), clock=clock)
    try:
        for i in range(5):
            store.acquire({f"k{i}": ((5, 60),)})
        clock.now += 2 * 86_400
        store.acquire({"fresh": ((5, 60),)})
        with db.read() as s:
            assert s.execute(text("SELECT key FROM rate_limit_hits")).scalars().all() == ["fresh"]
    finally:
        store.dispose()


def test_an_unreachable_redis_answers_busy():
    store = RedisLimitStore("redis://127.0.0.1:1/0", timeout_s=0.5)
    with pytest.raises(LimitStoreUnavailable):
        store.acquire({key(): ((5, 60),)})
