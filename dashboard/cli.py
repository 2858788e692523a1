"""The ``loyalty`` command line.

Every command reads ``DATABASE_URL`` (default: the embedded SQLite file) and
fails with one clear line on stderr and a non-zero exit, never a traceback,
on bad input.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
import sys
from collections.abc import Callable
from functools import wraps

import click
from sqlalchemy.orm import Session

from db.actor import CLI
from db.errors import LoyaltyError
from db.models import ROLES

EXIT_VIOLATIONS = 3


def _db(ctx: click.Context):
    """The database for command-line work: imports, demo data, rebuilds and
    passes over every member may run longer than a web request is allowed
    to, so no statement timeout here (the lock timeout stays)."""
    from db.session import Database, Timeouts

    obj = ctx.ensure_object(dict)
    if "db" not in obj:
        try:
            timeouts = Timeouts.from_env().for_batch()
        except ValueError as exc:
            raise click.ClickException(str(exc)) from None
        obj["db"] = Database(obj.get("url"), timeouts=timeouts)
    return obj["db"]


def clean_errors(fn: Callable) -> Callable:
    """Turn known failures into one line on stderr and exit status 1 or 2."""

    @wraps(fn)
    def wrapper(*args, **kwargs):
        from sqlalchemy.exc import OperationalError, ProgrammingError

        try:
            return fn(*args, **kwargs)
        except LoyaltyError as exc:
            raise click.ClickException(str(exc)) from None
        except (OperationalError, ProgrammingError) as exc:
            msg = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
            if "no such table" in msg or "does not exist" in msg:
                msg += " (is the database initialised? run `loyalty init-db`)"
            raise click.ClickException(f"database error: {msg}") from None
        except FileNotFoundError as exc:
            raise click.ClickException(f"no such file: {exc.filename}") from None

    return wrapper


def _is_bare_date(value: str) -> bool:
    """True for a calendar date without a time (2026-03-31, 20260331)."""
    try:
        dt.date.fromisoformat(value.strip())
    except ValueError:
        return False
    return True


def _parse_when(value: str | None, name: str) -> dt.datetime | None:
    if value is None:
        return None
    try:
        d = dt.datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not an ISO date (YYYY-MM-DD)", param_hint=name
        ) from None
    if d.tzinfo is not None:
        d = d.astimezone(dt.UTC).replace(tzinfo=None)
    return d


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--database-url",
    envvar="DATABASE_URL",
    default=None,
    help="SQLAlchemy URL; default: the DATABASE_URL variable, else instance/loyalty.sqlite3.",
)
@click.pass_context
def main(ctx: click.Context, database_url: str | None) -> None:
    """Loyalty program back-office: database, demo data, checks and the web app."""
    ctx.ensure_object(dict)["url"] = database_url


@main.command("init-db")
@click.pass_context
@clean_errors
def init_db(ctx: click.Context) -> None:
    """Create or migrate the program database to the latest schema."""
    from db.migrate import upgrade

    d = _db(ctx)
    upgrade(d.engine)
    click.echo(f"database ready: {d.url.render_as_string(hide_password=True)}")


def _read_password(username: str) -> str:
    if sys.stdin.isatty():
        pw = click.prompt(f"password for {username}", hide_input=True)
        again = click.prompt("repeat the password", hide_input=True)
        if pw != again:
            raise click.ClickException("the two passwords differ")
        return pw
    pw = sys.stdin.readline().rstrip("\r\n")
    if not pw:
        raise click.ClickException("no password on standard input")
    return pw


@main.command("create-user")
@click.argument("username")
@click.option("--role", type=click.Choice(ROLES), required=True, help="What the user may do.")
@click.option("--full-name", default="", help="Shown in the app.")
@click.pass_context
@clean_errors
def create_user(ctx: click.Context, username: str, role: str, full_name: str) -> None:
    """Create a staff account. The password is prompted twice on a terminal,
    else read from the first line of standard input; never from arguments."""
    from db import users

    password = _read_password(username)
    u = _db(ctx).write_tx(lambda s: users.create_user(s, username, password, role,
                                                      full_name=full_name, actor="cli"))
    click.echo(f"created {u.role} {u.username} (id {u.id})")


@main.command()
@click.option("--members", default=20_000, show_default=True, type=click.IntRange(1, 5_000_000),
              help="How many members to create.")
@click.option("--seed", "seed_", default=42, show_default=True, type=int,
              help="Random seed: the same seed gives the same program.")
@click.option("--months", default=12, show_default=True, type=click.IntRange(1, 60),
              help="Months of order history.")
@click.option("--no-progress", is_flag=True, help="Hide the progress bar.")
@click.pass_context
@clean_errors
def seed(ctx: click.Context, members: int, seed_: int, months: int, no_progress: bool) -> None:
    """Fill an empty database with a realistic demo program."""
    from db import demo
    from db.migrate import upgrade

    d = _db(ctx)
    upgrade(d.engine)
    report = demo.seed(d, members=members, seed=seed_, months=months, progress=not no_progress)
    click.echo(str(report))


@main.command("import-orders")
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))
@click.pass_context
@clean_errors
def import_orders(ctx: click.Context, file: str) -> None:
    """Load a shop's order history from CSV through the engine.

    Columns: customer_id,order_id,paid_at,amount[,referrer_id][,points_redeemed].
    A file with any bad row imports nothing and every bad row is listed.
    """
    from db import importer

    d = _db(ctx)
    try:
        if file == "-":
            report = importer.import_orders(d, sys.stdin, actor=CLI)
        else:
            report = importer.import_orders(d, file, actor=CLI)
    except importer.ImportRejected as exc:
        for problem in exc.problems:
            click.echo(str(problem), err=True)
        raise click.ClickException(
            f"{file}: {len(exc.problems)} bad row(s); nothing was imported"
        ) from None
    click.echo(str(report))


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--limit", default=50, show_default=True, help="Rows shown per violated rule.")
@click.pass_context
@clean_errors
def check(ctx: click.Context, as_json: bool, limit: int) -> None:
    """Verify every ledger invariant; exit status 3 if any is violated."""
    from db.integrity import run_check

    with _db(ctx).read() as s:
        report = run_check(s, limit=limit)
    if as_json:
        click.echo(json.dumps({
            "ok": report.ok,
            "summary": report.summary,
            "counts": report.counts,
            "violations": [v.__dict__ for v in report.violations],
        }, indent=2))
    else:
        for v in report.violations:
            click.echo(str(v))
        click.echo(
            ", ".join(f"{k} {v:,}" for k, v in report.summary.items())
            + (": all invariants hold" if report.ok else
               f": {sum(report.counts.values())} violation(s)")
        )
    if not report.ok:
        ctx.exit(EXIT_VIOLATIONS)


@main.command()
@click.option("--as-of", default=None, help="Expire as of this time (ISO); default now.")
@click.pass_context
@clean_errors
def expire(ctx: click.Context, as_of: str | None) -> None:
    """Expire unused points older than the expiry period (safe to re-run)."""
    from db.ledger import expire_points

    res = expire_points(_db(ctx), _parse_when(as_of, "--as-of"), actor=CLI)
    click.echo(f"expired {res.points:,} points of {res.members:,} members as of {res.as_of}"
               + (" (already done)" if res.replayed else ""))


@main.command("reevaluate-tiers")
@click.option("--at", default=None, help="Evaluate as of this time (ISO); default now.")
@click.pass_context
@clean_errors
def reevaluate_tiers_cmd(ctx: click.Context, at: str | None) -> None:
    """Bring every member's tier up to date with the version in force (one pass)."""
    from db.tiers import reevaluate_tiers

    when = _parse_when(at, "--at")
    p = _db(ctx).write_tx(lambda s: reevaluate_tiers(s, when))
    click.echo(f"rule set {p.rule_set_id}: {p.changed:,} of {p.members:,} members changed tier; "
               + ", ".join(f"{k} {v:,}" for k, v in p.distribution.items()))


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON (the only format for now).")
@click.option("--from", "date_from", default=None, help="Period start, ISO date (inclusive).")
@click.option(
    "--to", "date_to", default=None,
    help="Period end, inclusive: --to 2026-03-31 counts the whole of 31 March "
    "(a date and time, e.g. 2026-03-31T12:00, is the exclusive end instant).",
)
@click.pass_context
@clean_errors
def kpis(ctx: click.Context, as_json: bool, date_from: str | None, date_to: str | None) -> None:
    """The KPI values of the period, as the executive page shows them.

    Default period: the last 30 days up to now.
    """
    from db import clock, metrics

    end = _parse_when(date_to, "--to") or clock.utcnow()
    if date_to is not None and _is_bare_date(date_to):
        end += dt.timedelta(days=1)  # the day written is part of the period
    start = _parse_when(date_from, "--from") or end - dt.timedelta(days=30)
    if start >= end:
        raise click.BadParameter("--from must be before --to", param_hint="--from")
    with _db(ctx).read() as s:
        snap = metrics.kpi_snapshot(s, start, end)
    click.echo(json.dumps(snap, indent=2, default=str))


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8050, show_default=True, type=click.IntRange(1, 65535))
@click.option("--debug", is_flag=True, help="Dash debug mode (development only).")
@click.pass_context
@clean_errors
def serve(ctx: click.Context, host: str, port: int, debug: bool) -> None:
    """Run the dashboard with the development server (use gunicorn in production)."""
    if debug and os.environ.get("LOYALTY_ENV", "").strip().lower() == "production":
        # debug mode serves tracebacks with local values and reloads code: never in production
        raise click.UsageError(
            "--debug is refused with LOYALTY_ENV=production (debug mode shows tracebacks "
            "and internals to anyone who can reach the server); drop --debug, or unset "
            "LOYALTY_ENV on a development machine"
        )
    from dashboard.app import create_app
    from dashboard.config import ConfigError

    url = ctx.obj.get("url")
    if url:
        os.environ["DATABASE_URL"] = url
    try:
        app = create_app()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"dashboard on http://{host}:{port}/")
    app.run(host=host, port=port, debug=debug)


@main.command()
@click.option("--members", default=20_000, show_default=True, type=click.IntRange(100, 5_000_000))
@click.option("--seed", "seed_", default=42, show_default=True, type=int)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8050, show_default=True, type=click.IntRange(1, 65535))
@click.option("--no-serve", is_flag=True, help="Prepare the demo database but do not serve.")
@click.pass_context
@clean_errors
def demo(ctx: click.Context, members: int, seed_: int, host: str, port: int,
         no_serve: bool) -> None:
    """Initialise, fill with demo data (once), create demo staff, and serve."""
    from sqlalchemy import func, select

    from db import demo as demo_data
    from db import users
    from db.migrate import upgrade
    from db.models import Member

    d = _db(ctx)
    upgrade(d.engine)
    with d.read() as s:
        has_data = (s.scalar(select(func.count()).select_from(Member)) or 0) > 0
    known: dict[str, str] = {}
    if has_data:
        click.echo("demo data already there; keeping it")
    else:
        report = demo_data.seed(d, members=members, seed=seed_)
        click.echo(report.summary())
        known = {st.username: st.password for st in report.staff if st.created}

    def staff(s: Session) -> list[tuple[str, str, str]]:
        creds = []
        for username, password, role in demo_data.ensure_demo_staff(s):
            password = known.get(username, password)
            if password == demo_data.UNCHANGED:
                # a demo database: give the demo accounts fresh passwords to print
                password = secrets.token_urlsafe(12)
                u = users.get_user_by_name(s, username)
                users.set_password(s, u.id, password, actor="cli")
                users.set_active(s, u.id, True, actor="cli")
            creds.append((username, password, role))
        return creds

    click.echo("log in with one of (username / password / role):")
    for username, password, role in d.write_tx(staff):
        click.echo(f"  {username:<12} {password:<20} {role}")
    if no_serve:
        return
    os.environ.setdefault("SECRET_KEY", secrets.token_hex(32))
    ctx.invoke(serve, host=host, port=port, debug=False)



@main.command("simulate-live")
@click.option("--rate", default=5.0, show_default=True, type=click.FloatRange(0.1, 1000),
              help="Events per second.")
@click.option("--duration", default=None, type=click.FloatRange(min=0.1),
              help="Stop after this many seconds (default: until Ctrl-C).")
@click.option("--seed", "seed_", default=None, type=int, help="Random seed (reproducible mix).")
@click.pass_context
@clean_errors
def simulate_live(ctx: click.Context, rate: float, duration: float | None,
                  seed_: int | None) -> None:
    """Write a live stream of orders, redemptions, transfers, referral sign-ups
    and expiry through the engine, so the live page moves."""
    from db.live_stream import simulate

    stats = simulate(_db(ctx), rate=rate, duration=duration, seed=seed_, report=click.echo)
    click.echo(f"stopped after {stats.total:,} events")


@main.command("rebuild-rollups")
@click.pass_context
@clean_errors
def rebuild_rollups_cmd(ctx: click.Context) -> None:
    """Recompute the live/overview rollups from scratch (after a bulk load)."""
    from db.rollups import rebuild_rollups

    r = rebuild_rollups(_db(ctx))
    click.echo(f"rollups rebuilt in {r.seconds:.1f} s: {r.members:,} members, "
               f"{r.orders:,} orders, {r.entries:,} ledger entries")


if __name__ == "__main__":  # pragma: no cover
    main()
