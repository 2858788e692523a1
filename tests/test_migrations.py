"""The migrations build exactly the schema the models describe, on both databases."""

from __future__ import annotations

import warnings

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from db.models import Base


def test_models_match_migrations(any_db):
    with warnings.catch_warnings():
        # expression indexes (lower(name), COLLATE "C") are migration-only by design
        warnings.simplefilter("ignore")
        with any_db.engine.connect() as c:
            diff = compare_metadata(MigrationContext.configure(c), Base.metadata)
    # the member-search expression indexes of migration 0002 live only there
    diff = [d for d in diff if not (d[0] == "remove_index" and "_search_" in d[1].name)]
    assert diff == []


def test_downgrade_and_upgrade_again(tmp_path):
    from db.migrate import downgrade, upgrade
    from db.session import Database

    d = Database(f"sqlite:///{tmp_path / 'm.sqlite3'}")
    upgrade(d.engine)
    downgrade(d.engine, "base")
    upgrade(d.engine)
    with d.engine.connect() as c:
        assert c.exec_driver_sql("SELECT count(*) FROM accounts").scalar() == 4


def test_downgrade_and_upgrade_the_latest_on_postgres(pg_url):
    """A fresh PostgreSQL database: up, one step down, up again."""
    import uuid

    from sqlalchemy import create_engine, text

    from db.migrate import downgrade, upgrade
    from tests.support.postgres import pg_admin_url

    name = f"loyalty_mig_{uuid.uuid4().hex[:8]}"
    admin = create_engine(pg_admin_url(), isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    engine = create_engine(pg_admin_url().rsplit("/", 1)[0] + f"/{name}")
    try:
        upgrade(engine)
        downgrade(engine, "-1")
        upgrade(engine)
        with engine.connect() as c:
            assert c.exec_driver_sql("SELECT count(*) FROM accounts").scalar() == 4
    finally:
        engine.dispose()
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_the_ledger_copy_keeps_rows_pointing_at_entries(tmp_path):
    """SQLite copies ledger_entries to change its unique key (0018): an
    adjustment request that corrects an entry points at it throughout."""
    from db.migrate import upgrade
    from db.session import Database

    d = Database(f"sqlite:///{tmp_path / 'm.sqlite3'}")
    upgrade(d.engine, "0017_api_keys")
    now = "2025-01-01 00:00:00"
    with d.engine.begin() as c:
        for sql in (
            f"INSERT INTO members (id, external_id, name, joined_at, segment, status) "
            f"VALUES (1, 'C1', '', '{now}', 'regular', 'active')",
            "INSERT INTO accounts (id, kind, member_id, balance) VALUES (100, 'member', 1, 5)",
            f"INSERT INTO staff_users (id, username, full_name, password_hash, role, active, "
            f"created_at) VALUES (1, 'sup', '', 'x', 'support', 1, '{now}')",
            f"INSERT INTO ledger_transactions (id, kind, idempotency_key, payload_hash, actor, "
            f"effective_at, created_at) VALUES (1, 'order', 'order:o1', 'h', 'system', "
            f"'{now}', '{now}')",
            f"INSERT INTO ledger_entries (id, tx_id, kind, debit_account_id, credit_account_id, "
            f"amount, effective_at, memo) VALUES (1, 1, 'accrual', 1, 100, 5, '{now}', '')",
            f"INSERT INTO adjustment_requests (id, member_id, points, reason_code, comment, "
            f"ticket_ref, status, approvals_required, requested_by_id, requested_at, "
            f"decision_reason, corrects_entry_id) VALUES (1, 1, -5, 'wrong_accrual', 'c', '', "
            f"'pending', 1, 1, '{now}', '', 1)",
        ):
            c.exec_driver_sql(sql)
    upgrade(d.engine)
    with d.engine.connect() as c:
        assert c.exec_driver_sql("SELECT count(*) FROM ledger_entries").scalar() == 1
        assert c.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        names = {r[0] for r in c.exec_driver_sql(
            "SELECT name FROM sqlite_master WHERE tbl_name = 'ledger_entries'")}
    assert {"ledger_entries_no_update", "ledger_entries_no_delete",
            "uq_ledger_entries_reversal_tx", "ix_ledger_entries_tx_id"} <= names
