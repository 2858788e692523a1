"""A program database served by the real app in a child process, for the
browser tests that need their own data (a demo program, a pilot)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SERVE = """
import sys
from dashboard.app import create_app
app = create_app({"DATABASE_URL": sys.argv[1], "SECRET_KEY": "browser-tests-secret",
                  "LOYALTY_ENV": "development", "TESTING": True,
                  # the tests sign in more often than a person may
                  "LOGIN_LIMIT_ACCOUNT": "1000 per minute",
                  "LOGIN_LIMIT_ADDRESS": "1000 per minute"})
app.server.run(host="127.0.0.1", port=int(sys.argv[2]), threaded=True, use_reloader=False)
"""

STARTUP_S = 300


@contextmanager
def served(database_url: str) -> Iterator[str]:
    """The app on ``database_url`` at a free loopback port; yields its base URL."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    # the server's log goes to a file: a pipe nobody reads fills up and stops it
    log_path = Path(tempfile.mkdtemp(prefix="loyalty-browser-")) / "server.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen([sys.executable, "-c", SERVE, database_url, str(port)],
                                cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log)
        url = f"http://127.0.0.1:{port}"
        try:
            # the app takes a minute to start on two busy cores: wait for it,
            # and say so rather than hand the tests a server that is not up
            deadline = time.monotonic() + STARTUP_S
            while True:
                try:
                    urllib.request.urlopen(url + "/login", timeout=5)
                    break
                except OSError:
                    if proc.poll() is not None:
                        raise RuntimeError(log_path.read_text()[-2000:]) from None
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"the app did not answer within {STARTUP_S} s: "
                                           + log_path.read_text()[-2000:]) from None
                    time.sleep(0.5)
            yield url
        finally:
            proc.terminate()
            proc.wait(10)
