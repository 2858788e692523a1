"""The PostgreSQL test database: where it is, whether it answers, and how
to empty it between tests.

PostgreSQL is found through ``TEST_POSTGRES_URL`` (default
``postgresql://postgres@127.0.0.1:5432/test``, the CI service).
"""

from __future__ import annotations

import os

from sqlalchemy import create_engine, text

from db.session import Database

ADMIN_PG_URL = os.environ.get(
    "TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def pg_admin_url() -> str:
    url = ADMIN_PG_URL
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


def pg_reachable() -> str | None:
    """None when reachable, else the reason."""
    try:
        eng = create_engine(pg_admin_url(), connect_args={"connect_timeout": 3})
        with eng.connect() as c:
            c.execute(text("SELECT 1"))
        eng.dispose()
        return None
    except Exception as exc:  # noqa: BLE001 - any failure means "not here"
        return f"PostgreSQL not reachable at {ADMIN_PG_URL}: {type(exc).__name__}"


def reset_postgres(d: Database) -> None:
    """Empty every table and restore the rows the first migration inserts.

    The ledger and the audit log refuse TRUNCATE by trigger; the owner of
    the tables switches those triggers off inside this one transaction."""
    from db.models import Base

    tables = ", ".join(t.name for t in Base.metadata.sorted_tables)
    guarded = ("ledger_entries", "ledger_transactions", "audit_log", "order_refunds")
    with d.engine.begin() as c:
        for t in guarded:
            c.execute(text(f"ALTER TABLE {t} DISABLE TRIGGER {t}_no_truncate"))
        c.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
        for t in guarded:
            c.execute(text(f"ALTER TABLE {t} ENABLE TRIGGER {t}_no_truncate"))
        c.execute(
            text(
                "INSERT INTO accounts (id, kind) VALUES (1, 'issuance'), (2, 'redemption'), "
                "(3, 'breakage'), (4, 'adjustment')"
            )
        )
        c.execute(text("SELECT setval(pg_get_serial_sequence('accounts', 'id'), 99)"))
        c.execute(
            text(
                "INSERT INTO program_settings (id, currency, expiry_days, "
                "adjustment_second_approval_points, adjustment_supervisor_request_points, "
                "active_days, updated_at) VALUES (1, 'RUB', 365, 5000, 50000, 30, now())"
            )
        )
