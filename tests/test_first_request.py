"""A threaded worker's first requests arrive together: each waits for the app's
set-up instead of finding it half done."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

from tests.support.web import WEB_SECRET

THREADS = 16
ROOT = Path(__file__).resolve().parents[1]


# create_app() builds the app once per process (Dash's registries are global),
# so the first requests are sent in a process of their own
FIRST_REQUESTS = r"""
import sys, threading
from dashboard.app import create_app

url, secret, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
app = create_app({"DATABASE_URL": url, "SECRET_KEY": secret,
                  "LOYALTY_ENV": "development", "TESTING": True})
start = threading.Barrier(n)
answers, failures = [], []

def first_request(i):
    client = app.server.test_client()
    start.wait()
    try:
        answers.append(client.get("/login" if i % 2 else "/_dash-layout").status_code)
    except BaseException as exc:
        failures.append(repr(exc))

threads = [threading.Thread(target=first_request, args=(i,)) for i in range(n)]
for t in threads:
    t.start()
for t in threads:
    t.join(60)
assert failures == [] and len(answers) == n, failures
assert 500 not in answers, answers
# the set-up ran whole: the pages' router is a callback of the app
assert any("_pages_location" in k or "_pages_content" in k for k in app.callback_map)
assert app.server.before_request_funcs[None][0].__name__ == "first_request_setup"
print("ok", sorted(set(answers)))
"""


def test_simultaneous_first_requests_all_find_the_app_set_up(web_seed):
    url, _ids = web_seed
    done = subprocess.run([sys.executable, "-c", FIRST_REQUESTS, url, WEB_SECRET, str(THREADS)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.startswith("ok"), done.stderr[-3000:]


def test_a_request_arriving_during_the_set_up_waits_for_it():
    import time

    import flask

    from dashboard.app import serialise_first_request

    server = flask.Flask("setup-order")
    events: list[str] = []
    set_up: list[bool] = []

    def slow_setup() -> None:  # Dash's way: marked done first, finished later
        if set_up:
            return
        set_up.append(True)
        events.append("setup starts")
        time.sleep(0.3)
        events.append("setup ends")

    server.before_request(slow_setup)
    serialise_first_request(server)

    @server.get("/")
    def index() -> str:
        events.append("served")
        return "ok"

    def get() -> None:
        assert server.test_client().get("/").status_code == 200

    first = threading.Thread(target=get)
    first.start()
    while "setup starts" not in events:
        time.sleep(0.01)
    second = threading.Thread(target=get)
    second.start()
    first.join(10)
    second.join(10)
    assert events == ["setup starts", "setup ends", "served", "served"], events
