"""The `loyalty` command: clear one-line failures, exit codes, no tracebacks."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from sqlalchemy import text

from dashboard.cli import EXIT_VIOLATIONS, main
from db.session import Database


@pytest.fixture
def cli(tmp_path):
    url = f"sqlite:///{tmp_path / 'cli.sqlite3'}"
    runner = CliRunner()

    def run(*args, input=None):
        return runner.invoke(main, ["--database-url", url, *args], input=input)

    assert run("init-db").exit_code == 0
    run.url = url
    return run


def test_every_command_has_help():
    runner = CliRunner()
    for cmd in main.commands:
        res = runner.invoke(main, [cmd, "--help"])
        assert res.exit_code == 0, cmd
        assert "Usage:" in res.output


def test_create_user_reads_password_from_stdin(cli):
    res = cli("create-user", "alice", "--role", "supervisor", input="long-password\n")
    assert res.exit_code == 0, res.output
    assert "created supervisor alice" in res.output
    again = cli("create-user", "alice", "--role", "support", input="long-password\n")
    assert again.exit_code == 1
    assert again.output.strip().splitlines()[-1] == "Error: username: 'alice' is already taken"


@pytest.mark.parametrize(
    "args, stdin, message",
    [
        (["bob", "--role", "admin"], "long-password\n", "Invalid value for '--role'"),
        (["bob", "--role", "support"], "short\n", "password: must be at least 8 characters"),
        (["bob", "--role", "support"], "Password123\n", "password: is one of the most commonly"),
        (["bobby", "--role", "support"], "bobby-long-pass\n", "password: must not contain the"),
        (["b b", "--role", "support"], "long-password\n", "username: use 2-64 letters"),
        (["bob", "--role", "support"], "", "no password on standard input"),
    ],
)
def test_create_user_bad_input(cli, args, stdin, message):
    res = cli("create-user", *args, input=stdin)
    assert res.exit_code != 0
    assert message in res.output
    assert "Traceback" not in res.output


def test_password_never_in_argv():
    res = CliRunner().invoke(main, ["create-user", "--help"])
    assert "--password" not in res.output


def test_check_clean_then_violation(cli):
    res = cli("check")
    assert res.exit_code == 0, res.output
    assert "all invariants hold" in res.output
    with Database(cli.url).begin() as s:
        s.execute(text(
            "INSERT INTO members (external_id, name, joined_at, segment, status) "
            "VALUES ('x', '', '2025-01-01', 'regular', 'active')"
        ))
        s.execute(text("INSERT INTO accounts (kind, member_id, balance) VALUES ('member', 1, 7)"))
    res = cli("check")
    assert res.exit_code == EXIT_VIOLATIONS
    assert "balance_mismatch: member 1: balance 7 but entries sum to 0" in res.output


def test_uninitialised_database_is_one_line(tmp_path):
    url = f"sqlite:///{tmp_path / 'empty.sqlite3'}"
    res = CliRunner().invoke(main, ["--database-url", url, "check"])
    assert res.exit_code == 1
    assert "loyalty init-db" in res.output
    assert "Traceback" not in res.output


def test_expire_and_bad_date(cli):
    assert cli("expire", "--as-of", "2025-02-01").exit_code == 0
    res = cli("expire", "--as-of", "yesterday")
    assert res.exit_code == 2 and "is not an ISO date" in res.output


def test_demo_prints_working_logins_every_time(cli):
    from db import users

    for _ in range(2):  # a second run keeps the data and gives fresh passwords
        res = cli("demo", "--no-serve", "--members", "150")
        assert res.exit_code == 0, res.output
        lines = res.output.split("log in with one of (username / password / role):\n")[1]
        creds = [line.split() for line in lines.strip().splitlines()]
        assert {c[2] for c in creds} == {"supervisor", "executive", "support"}
        with Database(cli.url).begin() as s:
            for username, password, role in creds:
                u = users.authenticate(s, username, password)
                assert u is not None and u.role == role
    assert "demo data already there" in res.output


@pytest.mark.parametrize("env", ["production", " Production "])
def test_serve_debug_is_refused_in_production(tmp_path, monkeypatch, env):
    import dash

    import dashboard.app

    started = []
    monkeypatch.setattr(dash.Dash, "run", lambda self, *a, **kw: started.append("run"))
    real_create_app = dashboard.app.create_app

    def create_app(*a, **kw):
        started.append("create_app")
        return real_create_app(*a, **kw)

    monkeypatch.setattr(dashboard.app, "create_app", create_app)
    url = f"sqlite:///{tmp_path / 'serve.sqlite3'}"
    environ = {"LOYALTY_ENV": env, "SECRET_KEY": "s" * 32}
    res = CliRunner().invoke(main, ["--database-url", url, "serve", "--debug"], env=environ)
    assert res.exit_code != 0
    assert "--debug is refused with LOYALTY_ENV=production" in res.output
    assert "Traceback" not in res.output
    assert started == []


def test_kpis_to_a_date_includes_that_day(cli):
    """`--to D` ends with day D, as people write an end date; a date and time
    is the exclusive end instant."""
    import datetime as dt
    import json

    from db import ledger
    from db.ledger import OrderIn
    from tests.support.factories import member, publish

    d = Database(cli.url)
    try:
        with d.begin() as s:
            publish(s)
            member(s, "C1")
            ledger.post_order(s, OrderIn("o-last-day", "C1", dt.datetime(2025, 3, 31, 15), 10_000))
    finally:
        d.dispose()

    def snapshot(*args):
        r = cli("kpis", "--json", "--from", "2025-03-01", *args)
        assert r.exit_code == 0, r.output
        return json.loads(r.output)

    whole_day = snapshot("--to", "2025-03-31")
    assert whole_day["period"]["to"].startswith("2025-04-01T00:00")
    assert whole_day["orders"]["paid_orders"] == 1
    instant = snapshot("--to", "2025-03-31T12:00")
    assert instant["orders"]["paid_orders"] == 0
    r = cli("kpis", "--help")
    assert "inclusive" in r.output
