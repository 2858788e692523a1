"""Alembic environment: the URL comes from the config or DATABASE_URL."""

from __future__ import annotations

from alembic import context

from db.migrate import migrating
from db.models import Base
from db.session import Timeouts, make_engine

config = context.config
target_metadata = Base.metadata


def run_migrations_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connectable = config.attributes.get("connection")
    if connectable is not None:
        _run(connectable)
        return
    # a migration may rewrite a large table: no statement timeout
    engine = make_engine(config.get_main_option("sqlalchemy.url") or None,
                         timeouts=Timeouts.from_env().for_batch())
    try:
        with engine.connect() as connection, migrating(connection):
            _run(connection)
    finally:
        engine.dispose()


def _run(connection) -> None:
    """Run the migrations in the caller's transaction (db.migrate.migrating)."""
    context.configure(
        connection=connection, target_metadata=target_metadata, render_as_batch=True
    )
    with context.begin_transaction():  # joins the caller's
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
