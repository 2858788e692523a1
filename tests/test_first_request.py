"""A threaded worker's first requests arrive together: each waits for the app's
set-up instead of finding it half done."""

from __future__ import annotations

import threading

from tests.support.web import WEB_SECRET

THREADS = 16


def test_simultaneous_first_requests_all_find_the_app_set_up(web_seed):
    from dashboard.app import create_app

    url, _ids = web_seed
    app = create_app({"DATABASE_URL": url, "SECRET_KEY": WEB_SECRET,
                      "LOYALTY_ENV": "development", "TESTING": True})
    start = threading.Barrier(THREADS)
    answers: list[int] = []
    failures: list[BaseException] = []

    def first_request(n: int) -> None:
        client = app.server.test_client()
        start.wait()
        try:
            answers.append(client.get("/login" if n % 2 else "/_dash-layout").status_code)
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(exc)

    threads = [threading.Thread(target=first_request, args=(n,)) for n in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert failures == [] and len(answers) == THREADS, failures
    assert 500 not in answers, answers
    # the set-up ran whole: the pages' router is a callback of the app
    assert any("_pages_location" in key or "_pages_content" in key for key in app.callback_map)
    assert app.server.before_request_funcs[None][0].__name__ == "first_request_setup"


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
