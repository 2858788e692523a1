"""``loyalty simulate-live``'s stream: a seeded run can be repeated on the same
database (its keys do not collide with the first run's), and every event it
writes goes through the engine (the integrity check stays clean)."""

from __future__ import annotations

from db.integrity import run_check
from db.live_stream import LiveStream
from db.session import Database
from tests.support.factories import member, publish


def test_seeded_stream_runs_twice_on_one_database(db: Database) -> None:
    with db.begin() as s:
        publish(s)
        for i in range(5):
            member(s, f"C{i}")
    runs = []
    for _ in range(2):
        stream = LiveStream(db, rate=1000, seed=3, expiry_every=10**9)
        for _ in range(150):
            stream.step()
        runs.append(dict(stream.stats.counts))
    second = runs[1]
    assert second.get("refused", 0) == 0, second
    assert second.get("signup", 0) > 0 and second.get("member_order", 0) > 0, second
    with db.read() as s:
        report = run_check(s)
    assert report.ok, report.summary
