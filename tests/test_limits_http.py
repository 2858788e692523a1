"""Rate limits through the web app: sign-in limits shared by separate app
processes (SQLite without Redis, and Redis), a lockout from one address that
does not lock the owner out elsewhere, and member searches limited per user."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy import text

from benchmarks.dash_requests import UPDATE
from benchmarks.small_program import THROTTLE_USER
from callbacks import members as members_callbacks
from db.session import Database
from tests.support.web import USER, WEB_SECRET, callback_body, client_at, key_for, login

ROOT = Path(__file__).resolve().parent.parent
REDIS_URL = "redis://127.0.0.1:6379/14"

# one app process: sign in `n` times with a wrong password from `address`,
# print the answers' status codes
PROBE = """
import json, sys
from dashboard.app import create_app
from dashboard.context import LIMITS_EXTENSION
from tests.support.web import login

url, redis_url, secret, address, user, n, now = sys.argv[1:8]
config = {"DATABASE_URL": url, "SECRET_KEY": secret, "TESTING": True}
if redis_url:
    config["REDIS_URL"] = redis_url
app = create_app(config)
store = app.server.extensions[LIMITS_EXTENSION]
store.clock = lambda: float(now)  # one instant: no window slides, however slow argon2 is
# the other process holds the shared store's lock only for a count, but on a
# loaded machine (argon2 takes both cores) that can outlast the 2 s wait and
# answer 503: wait for it instead (test_ratelimit.py tests the short wait)
if hasattr(store, "lock_wait_ms"):
    store.lock_wait_ms = 60_000
c = app.server.test_client()
c.environ_base["REMOTE_ADDR"] = address
print(json.dumps([login(c, user, "not-the-password").status_code for _ in range(int(n))]))
"""


def _redis_or_skip() -> None:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except redis.exceptions.ConnectionError:
        pytest.skip("Redis is not running on 127.0.0.1:6379")


@pytest.mark.parametrize("mode", ["sqlite", "redis"])
def test_two_app_processes_share_the_sign_in_limit(web_seed, mode):
    """Default limit: 5 failed sign-ins a minute for an address and account.
    Two processes try 4 times each at once: together they get 5 tries."""
    if mode == "redis":
        _redis_or_skip()
    url, _ids = web_seed
    address = f"probe-{uuid.uuid4().hex[:12]}"
    env = {k: v for k, v in os.environ.items()
           if k not in ("REDIS_URL", "DATABASE_URL", "LOGIN_LIMIT_ACCOUNT",
                        "LOGIN_LIMIT_ADDRESS")}
    env["PYTHONPATH"] = str(ROOT)
    args = [url, REDIS_URL if mode == "redis" else "", WEB_SECRET, address, THROTTLE_USER,
            "4", str(time.time())]
    procs = [subprocess.Popen([sys.executable, "-c", PROBE, *args], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    statuses: list[int] = []
    for p in procs:
        out, err = p.communicate(timeout=180)
        assert p.returncode == 0, err[-3000:]
        statuses += json.loads(out.strip().splitlines()[-1])
    assert sorted(statuses) == [200] * 5 + [429] * 3, statuses


def test_a_lockout_from_one_address_leaves_the_owner_in_from_another(web_app, frozen_limits):
    guesser = client_at(web_app, "203.0.113.66")
    statuses = [login(guesser, USER["support"], f"guess-{i}").status_code for i in range(7)]
    assert statuses == [200] * 5 + [429] * 2
    assert login(guesser, USER["support"]).status_code == 429  # right password, wrong place
    owner = client_at(web_app, "192.0.2.10")
    assert login(owner, USER["support"]).status_code == 302
    assert owner.get("/live").status_code == 200
    # other accounts from the guesser's address are still open (until the looser limit)
    assert login(client_at(web_app, "203.0.113.66"), USER["executive"]).status_code == 302


def test_a_successful_sign_in_is_not_counted_as_a_failure(web_app, frozen_limits):
    c = client_at(web_app, "192.0.2.20")
    for _ in range(4):
        assert login(c, USER["executive"], "wrong-password").status_code == 200
    for _ in range(3):
        assert login(web_app.server.test_client(), USER["executive"]).status_code == 302
        assert login(client_at(web_app, "192.0.2.20"), USER["executive"]).status_code == 302
    assert login(c, USER["executive"], "wrong-password").status_code == 200  # the 5th failure
    assert login(c, USER["executive"]).status_code == 429


def search(web_app, client, query: str) -> dict:
    """Post the member search callback as the grid's first block request does."""
    body = callback_body(web_app, key_for(web_app, "members-grid"), {
        "members-grid.getRowsRequest": {"startRow": 0, "endRow": 100},
        "members-query.value": query, "members-field.value": "auto"})
    r = client.post(UPDATE, json=body)
    assert r.status_code == 200, r.get_data(as_text=True)[:300]
    return r.get_json()["response"]


def test_member_search_is_limited_per_user(web_app, frozen_limits, monkeypatch):
    """60 searches a minute (MEMBER_SEARCH_LIMIT): the 61st answers a message
    in the page and does not reach the database."""
    queries: list[str] = []
    real = members_callbacks.members.search_members

    def counting(s, query, *args, **kwargs):
        queries.append(query)
        return real(s, query, *args, **kwargs)

    monkeypatch.setattr(members_callbacks.members, "search_members", counting)

    sam = web_app.server.test_client()
    assert login(sam, USER["support"]).status_code == 302
    for i in range(60):
        out = search(web_app, sam, f"a{i}")
        assert out["members-query-feedback"]["children"] == ""
    assert len(queries) == 60
    out = search(web_app, sam, "anna")
    assert out["members-query-feedback"]["children"].startswith("Too many searches: wait a minute")
    assert out["members-grid"]["getRowsResponse"] == {"rowData": [], "rowCount": 0}
    assert len(queries) == 60  # no query ran
    # another user is not concerned
    sue = web_app.server.test_client()
    assert login(sue, USER["supervisor"]).status_code == 302
    rows = search(web_app, sue, "anna")["members-grid"]["getRowsResponse"]["rowData"]
    assert [r["name"] for r in rows] == ["Anna Petrova"]
    # a minute later the first user may search again
    monkeypatch.setattr(frozen_limits, "clock", lambda: time.time() + 61)
    rows = search(web_app, sam, "anna")["members-grid"]["getRowsResponse"]["rowData"]
    assert [r["name"] for r in rows] == ["Anna Petrova"]


def test_member_search_stays_available_while_an_import_holds_the_write_lock(
        web_app, web_seed, frozen_limits):
    """SQLite: the shared count cannot be written meanwhile; this process counts."""
    url, _ids = web_seed
    sam = web_app.server.test_client()
    assert login(sam, USER["support"]).status_code == 302
    importer = Database(url)
    try:
        with importer.begin() as s:  # as a long import's transaction does
            s.execute(text("INSERT INTO rate_limit_hits (key, at_ms) VALUES ('import', 1)"))
            started = time.monotonic()
            rows = search(web_app, sam, "anna")["members-grid"]["getRowsResponse"]["rowData"]
            assert [r["name"] for r in rows] == ["Anna Petrova"]
            assert time.monotonic() - started < 10
    finally:
        importer.dispose()
