"""The Procfile's three processes for real, as a platform runs them.

``release:`` migrates a database; ``web:`` (gunicorn) and ``worker:`` (Celery)
then run side by side on it with REDIS_URL set, so login rate limits live in
Redis and background callbacks travel through Redis to the worker process.
Headless Chromium signs in and opens the executive overview, whose figures
are computed by a background job: they appear only if the worker picked the
job up, ran it and sent the result back - and the worker's log must say so.

Needs Redis on 127.0.0.1:6379 (its database 15 is flushed) and Debian's
Chromium; skips with the reason when either is missing.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks.small_program import PASSWORD, STAFF
from tests.support.browser import (  # noqa: F401 - the browser fixture
    SCREENSHOTS,
    TIMEOUT,
    browser,
    severe,
    sign_in,
    wait_for,
)

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
REDIS_URL = "redis://127.0.0.1:6379/15"
SECRET = "procfile-stack-secret-0123456789"


def procfile() -> dict[str, str]:
    entries = {}
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, command = line.partition(":")
            entries[name.strip()] = command.strip()
    return entries


@pytest.fixture(scope="module")
def redis_db() -> Iterator[None]:
    import redis

    r = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1)
    try:
        r.ping()
    except redis.exceptions.ConnectionError:
        pytest.skip("Redis is not running on 127.0.0.1:6379 (the Celery worker needs it)")
    r.flushdb()
    yield
    r.flushdb()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def stack(redis_db, sqlite_template, tmp_path_factory) -> Iterator[dict]:
    from benchmarks.small_program import seed_small
    from db.session import Database

    folder = tmp_path_factory.mktemp("procfile")
    path = folder / "stack.sqlite3"
    shutil.copy(sqlite_template, path)
    d = Database(f"sqlite:///{path}")
    seed_small(d)
    d.dispose()
    port = free_port()
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "DATABASE_URL": f"sqlite:///{path}",
        "REDIS_URL": REDIS_URL,
        "SECRET_KEY": SECRET,
        "LOYALTY_ENV": "production",
        "PORT": str(port),
        "WEB_CONCURRENCY": "1",
        "CELERY_CONCURRENCY": "1",
    }
    commands = procfile()
    release = subprocess.run(["bash", "-c", commands["release"]], env=env, cwd=folder,
                             capture_output=True, text=True, timeout=120)
    assert release.returncode == 0, release.stderr
    procs, logs = {}, {}
    for name in ("web", "worker"):
        logs[name] = folder / f"{name}.log"
        procs[name] = subprocess.Popen(
            ["bash", "-c", f"exec {commands[name]}"], env=env, cwd=folder,
            stdout=logs[name].open("w"), stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            for name, p in procs.items():
                assert p.poll() is None, f"{name} exited:\n{logs[name].read_text()}"
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, logs["web"].read_text()
                time.sleep(0.3)
        yield {"url": f"http://127.0.0.1:{port}", "logs": logs}
    finally:
        for p in procs.values():
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in procs.values():
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)


def test_overview_job_runs_on_the_celery_worker(browser, stack):  # noqa: F811
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    sign_in(browser, stack["url"], STAFF["executive"][0], PASSWORD)
    wait_for(browser, "#shell-user-name")
    browser.get(stack["url"] + "/overview")
    wait_for(browser, "#overview-orders-figure .main-svg")
    WebDriverWait(browser, TIMEOUT).until(
        lambda d: not d.find_elements(By.CSS_SELECTOR, "[data-dash-is-loading='true']")
    )
    browser.save_screenshot(str(SCREENSHOTS / "procfile-stack-overview.png"))
    assert severe(browser) == []
    worker_log = stack["logs"]["worker"].read_text()
    assert "succeeded" in worker_log, worker_log


def test_login_limits_are_kept_in_redis(browser, stack):  # noqa: F811
    import redis

    sign_in(browser, stack["url"], STAFF["support"][0], "wrong-password")
    wait_for(browser, "#login-error")
    keys = redis.Redis.from_url(REDIS_URL).keys("*")
    assert any(b"LIMIT" in k.upper() for k in keys), keys
