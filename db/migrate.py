"""Schema migrations (Alembic), callable from the CLI, the Procfile and tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def alembic_config(url: str | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if url:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


@contextmanager
def migrating(conn: Connection) -> Iterator[Connection]:
    """One transaction for the migrations on ``conn`` (not yet begun).

    SQLite changes a table's constraints by copying it and dropping the old
    one, which rows of other tables pointing at it refuse while foreign keys
    are enforced; and the enforcement can only be switched off outside a
    transaction. So on SQLite it is off during the migrations, and every
    reference is checked before they commit.
    """
    sqlite = conn.dialect.name == "sqlite"
    raw = conn.connection.driver_connection if sqlite else None
    if raw is not None:
        raw.execute("PRAGMA foreign_keys = OFF")
    try:
        with conn.begin():
            yield conn
            if raw is not None:
                dangling = conn.exec_driver_sql("PRAGMA foreign_key_check").all()
                if dangling:
                    raise RuntimeError(
                        f"the migration left rows pointing at nothing: {dangling[:5]}")
    finally:
        if raw is not None:
            raw.execute("PRAGMA foreign_keys = ON")


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the database at ``engine`` to ``revision``."""
    run(engine, command.upgrade, revision)


def downgrade(engine: Engine, revision: str) -> None:
    """Take the database at ``engine`` back to ``revision`` (development)."""
    run(engine, command.downgrade, revision)


def run(engine: Engine, step, revision: str) -> None:
    cfg = alembic_config()
    with engine.connect() as conn, migrating(conn):
        cfg.attributes["connection"] = conn
        step(cfg, revision)
