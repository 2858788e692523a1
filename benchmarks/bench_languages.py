"""What Russian costs a page: each page of the app rendered for a supervisor
who chose English and for one who chose Russian, side by side in one run
(the two alternate, so a busy machine slows both alike), on the small seeded
program; median milliseconds per page render and the ratio ru / en.

    .venv/bin/python benchmarks/bench_languages.py              # 30 renders a page a language
    .venv/bin/python benchmarks/bench_languages.py --rounds 100

The render is Dash's page router callback over HTTP (Flask test client): the
page's layout built in the user's language, its texts looked up in the
catalog, its numbers and dates formatted for the language.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.dash_requests import UPDATE, request_body  # noqa: E402
from benchmarks.small_program import seed_small  # noqa: E402
from db import users  # noqa: E402
from db.migrate import upgrade  # noqa: E402
from db.session import Database  # noqa: E402

PASSWORD = "bench-languages-pass-1"


def login(client, username: str) -> None:
    import re

    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    r = client.post("/login", data={"username": username, "password": PASSWORD,
                                     "csrf_token": token, "next": "/"})
    assert r.status_code == 302, r.status_code


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=30, help="renders of a page in each language")
    args = ap.parse_args()

    from dashboard import access
    from dashboard.app import create_app

    folder = Path(tempfile.mkdtemp(prefix="bench-languages-"))
    url = f"sqlite:///{folder / 'program.sqlite3'}"
    d = Database(url)
    upgrade(d.engine)
    seed_small(d)
    with d.begin() as s:
        for lang in ("en", "ru"):
            u = users.create_user(s, f"bench{lang}", PASSWORD, "supervisor", full_name="Bench")
            users.set_language(s, u.id, lang, actor=f"bench{lang}")
    d.dispose()

    app = create_app({"DATABASE_URL": url, "SECRET_KEY": "bench-languages-secret",
                      "LOYALTY_ENV": "development", "TESTING": True})
    clients = {}
    for lang in ("en", "ru"):
        clients[lang] = app.server.test_client()
        login(clients[lang], f"bench{lang}")
    key = next(k for k in app.callback_map if access.ROUTER_OUTPUT_MARK in k)

    def render(lang: str, path: str) -> float:
        body = request_body(key, app.callback_map[key],
                            {"_pages_location.pathname": path, "_pages_location.search": ""})
        t0 = time.perf_counter()
        r = clients[lang].post(UPDATE, json=body)
        elapsed = time.perf_counter() - t0
        assert r.status_code == 200, (path, lang, r.status_code)
        return elapsed * 1000

    pages = [p["path"] for p in access.registered_pages() if p["path"] != "/404"]
    print(f"small program (5 members), {args.rounds} renders a page a language, alternating")
    print(f"{'page':<22}{'en ms':>9}{'ru ms':>9}{'ru/en':>8}")
    ratios = []
    for path in pages:
        render("en", path), render("ru", path)  # warm: first renders build caches
        times: dict[str, list[float]] = {"en": [], "ru": []}
        for _round in range(args.rounds):
            for lang in ("en", "ru"):
                times[lang].append(render(lang, path))
        en, ru = statistics.median(times["en"]), statistics.median(times["ru"])
        ratios.append(ru / en)
        print(f"{path:<22}{en:>9.1f}{ru:>9.1f}{ru / en:>8.2f}")
    print(f"{'median ratio':<40}{statistics.median(ratios):>8.2f}")


if __name__ == "__main__":
    main()
