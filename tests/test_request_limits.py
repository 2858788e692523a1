"""What one user can make the server carry: the request size, background
jobs at once, and the processes finished jobs leave behind."""

from __future__ import annotations

import base64
import json
import socket
import subprocess
import time

import psutil
import pytest

from dashboard import jobs
from pages.overview import Overview as ov_ids
from pages.pilots import Pilots as pilot_ids
from tests.support.web import UPDATE, _overview_token, _poll, callback_body, key_of, logged_in

MB = 1024 * 1024
BUSY = "You already have an overview job running; wait for it to finish"


# ---------------------------------------------------------------- request size


def test_a_request_over_the_size_cap_is_refused_with_413(client, web_app):
    cap = web_app.server.config["MAX_CONTENT_LENGTH"]
    assert cap == 48 * MB
    logged_in(client, "supervisor")
    r = client.post(UPDATE, data=b"{" + b" " * cap + b"}",
                    content_type="application/json")
    assert r.status_code == 413
    assert "larger than 48 MB" in r.get_json()["error"]
    # a form too: the sign-in page says so instead of reading 48 MB
    r = client.post("/login", data=b"username=" + b"a" * cap,
                    content_type="application/x-www-form-urlencoded")
    assert r.status_code == 413
    assert "larger than 48 MB" in r.get_data(as_text=True)


def _upload_body(web_app, raw: bytes) -> dict:
    contents = "data:text/csv;base64," + base64.b64encode(raw).decode()
    return callback_body(web_app, key_of(web_app, pilot_ids.UPLOAD_INFO), {
        f"{pilot_ids.UPLOAD}.contents": contents, f"{pilot_ids.UPLOAD}.filename": "list.csv"})


def test_a_member_list_of_a_few_megabytes_is_read(client, web_app):
    logged_in(client, "supervisor")
    raw = b"member_id\n1\n2\n" + b"\n" * (3 * MB)  # blank lines are skipped
    r = client.post(UPDATE, json=_upload_body(web_app, raw))
    assert r.status_code == 200, r.get_data(as_text=True)[:300]
    assert "list.csv: 2 members read." in json.dumps(r.get_json()["response"])


def test_a_member_list_over_the_upload_limit_gets_the_forms_message(client, web_app):
    """The size cap leaves room for the largest file the form accepts, so a
    larger one reaches the form and is refused there, in words."""
    logged_in(client, "supervisor")
    raw = b"member_id\n" + b"1\n" * (31 * MB // 2)
    r = client.post(UPDATE, json=_upload_body(web_app, raw))
    assert r.status_code == 200, r.get_data(as_text=True)[:300]
    assert "the file is larger than 30 MB" in json.dumps(r.get_json()["response"])


# ---------------------------------------------------------------- one job of a kind per user


def _pid(handles: dict) -> int:
    """The job process of a background callback's (signed) handles."""
    return int(str(handles["job"]).split("~", 1)[0])


def _start_overview(client, web_app, months: int = 3) -> tuple[dict, dict]:
    token = _overview_token(client, web_app)
    b = callback_body(web_app, key_of(web_app, ov_ids.SUMMARY), {
        f"{ov_ids.MONTHS}.value": months, f"{ov_ids.SEGMENT}.value": "",
        f"{ov_ids.ACTOR}.data": token})
    r = client.post(UPDATE, json=b)
    assert r.status_code == 200, r.get_data(as_text=True)[:300]
    handles = r.get_json()
    assert set(handles) >= {"cacheKey", "job"}
    return b, handles


def _ran(response: dict) -> bool:
    """The overview job computed the page (a refused one updates the summary only)."""
    return BUSY not in json.dumps(response) and bool(
        (response.get(ov_ids.KPI_GRID) or {}).get("rowData"))


@pytest.fixture
def slow_overview(monkeypatch):
    """Overview jobs take 6 s (the job processes are forks of this one, so
    they run the patched function)."""
    from db.reports import overview as report

    real = report.overview

    def slow(*args, **kwargs):
        time.sleep(6)
        return real(*args, **kwargs)

    monkeypatch.setattr(report, "overview", slow)


def test_a_second_job_of_the_same_kind_is_refused_to_the_same_user_only(
        client, web_app, slow_overview):
    logged_in(client, "supervisor")
    other = web_app.server.test_client()
    logged_in(other, "executive")

    first = _start_overview(client, web_app)
    time.sleep(1)  # the first job has taken its lease
    second = _start_overview(client, web_app, months=6)
    elsewhere = _start_overview(other, web_app)

    refused = _poll(client, *second)
    assert BUSY in json.dumps(refused[ov_ids.SUMMARY]) and not _ran(refused)
    # another user's job runs meanwhile, and the first one ends normally
    assert _ran(_poll(other, *elsewhere))
    assert _ran(_poll(client, *first))
    # once it has ended, the same user may start another
    assert _ran(_poll(client, *_start_overview(client, web_app)))


def test_a_stopped_job_does_not_block_its_user(client, web_app, slow_overview):
    logged_in(client, "supervisor")
    b, handles = _start_overview(client, web_app)
    time.sleep(1)
    # Stop: Dash kills the job process, which never releases its lease
    web_app._background_manager.terminate_job(_pid(handles))
    assert _ran(_poll(client, *_start_overview(client, web_app)))


@pytest.fixture
def store(web_app):
    return web_app.server.extensions[jobs.LEASES_EXTENSION]


def _held_by(pid: int, host: str | None = None) -> str:
    return json.dumps({"pid": pid, "host": host or socket.gethostname(), "at": time.time(),
                       "id": "x"})


def test_a_lease_of_a_crashed_job_is_taken_over_and_any_lease_expires(store):
    user = 900_001
    # a live job holds it: refused (after a short wait for it to go)
    assert store.add(jobs.lease_key("simulation", user), _held_by(psutil.Process().pid), 60)
    started = time.monotonic()
    with pytest.raises(jobs.JobRunning, match="You already have a simulation running"):
        jobs.acquire_lease(store, "simulation", user, wait_s=0.5)
    assert time.monotonic() - started < 2
    # other kinds and other users are free
    lease = jobs.acquire_lease(store, "overview", user, wait_s=0)
    jobs.release_lease(store, "overview", user, lease)
    lease = jobs.acquire_lease(store, "simulation", user + 1, wait_s=0)
    jobs.release_lease(store, "simulation", user + 1, lease)

    # its process died without releasing it: taken over at once
    gone = subprocess.Popen(["true"])
    gone.wait()
    store.cache.delete(jobs.lease_key("simulation", user))
    assert store.add(jobs.lease_key("simulation", user), _held_by(gone.pid), 60)
    lease = jobs.acquire_lease(store, "simulation", user, wait_s=0)
    jobs.release_lease(store, "simulation", user, lease)
    assert store.get(jobs.lease_key("simulation", user)) is None

    # held on another machine (whose processes we cannot see): until it expires
    assert store.add(jobs.lease_key("simulation", user), _held_by(1, "elsewhere"), 1)
    with pytest.raises(jobs.JobRunning):
        jobs.acquire_lease(store, "simulation", user, wait_s=0)
    time.sleep(1.2)
    lease = jobs.acquire_lease(store, "simulation", user, wait_s=0)
    jobs.release_lease(store, "simulation", user, lease)


def test_leases_in_redis_for_celery_workers():
    redis = pytest.importorskip("redis")
    client = redis.Redis.from_url("redis://127.0.0.1:6379/0", socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.skip(f"Redis not reachable at 127.0.0.1:6379: {exc}")
    store = jobs.RedisLeases(client)
    user = 900_000 + (int(time.time() * 1000) % 90_000)
    key = jobs.lease_key("tier-pass", user)
    try:
        lease = jobs.acquire_lease(store, "tier-pass", user, wait_s=0)
        with pytest.raises(jobs.JobRunning, match="You already have a tier re-evaluation"):
            jobs.acquire_lease(store, "tier-pass", user, wait_s=0)
        assert client.pttl(key) > (jobs.LEASE_S - 5) * 1000  # it expires
        jobs.release_lease(store, "tier-pass", user, "not mine")
        assert store.get(key) == lease
        jobs.release_lease(store, "tier-pass", user, lease)
        assert store.get(key) is None
    finally:
        client.delete(key)


# ---------------------------------------------------------------- finished jobs are reaped


def _job_processes(pids: set[int]) -> dict[int, str]:
    """The status of each of ``pids`` still a child of this process."""
    return {c.pid: c.status() for c in psutil.Process().children() if c.pid in pids}


def test_finished_jobs_leave_no_zombie_processes(client, web_app):
    logged_in(client, "supervisor")
    other = web_app.server.test_client()
    logged_in(other, "executive")
    started = [_start_overview(c, web_app, months=m)
               for c, m in ((client, 1), (other, 1), (client, 3))]
    pids = {_pid(h) for _b, h in started}
    deadline = time.time() + 60
    while time.time() < deadline:  # every job has ended
        if all(s == psutil.STATUS_ZOMBIE for s in _job_processes(pids).values()):
            break
        time.sleep(0.2)
    else:
        raise AssertionError(f"jobs still running: {_job_processes(pids)}")
    # nobody asked for their results (the page was closed): the next request
    # the worker serves reaps them
    assert client.get("/healthz").status_code == 200
    assert _job_processes(pids) == {}


def test_jobs_whose_results_were_read_release_their_process_and_pipes(client, web_app):
    import multiprocess

    logged_in(client, "supervisor")
    client.get("/healthz")
    before = psutil.Process().num_fds()
    for months in (1, 3, 6, 12):
        b, handles = _start_overview(client, web_app, months=months)
        _poll(client, b, handles)
    client.get("/healthz")
    assert multiprocess.active_children() == []
    assert psutil.Process().num_fds() <= before
