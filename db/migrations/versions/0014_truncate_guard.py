"""Refuse TRUNCATE on the ledger and the audit log (PostgreSQL)

Revision ID: 0014_truncate_guard
Revises: 0013_four_eyes
Create Date: 2026-12-03

The row triggers of the first migration refuse UPDATE and DELETE on
``ledger_entries``, ``ledger_transactions`` and ``audit_log``; TRUNCATE
fires no row triggers, so a statement trigger refuses it too (also when
the table is reached by ``TRUNCATE ... CASCADE`` from another table).
SQLite has no TRUNCATE statement (its ``DELETE`` without ``WHERE`` runs the
row triggers), so nothing changes there.
"""
from alembic import op

revision = "0014_truncate_guard"
down_revision = "0013_four_eyes"
branch_labels = None
depends_on = None

APPEND_ONLY = ("ledger_entries", "ledger_transactions", "audit_log")


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in APPEND_ONLY:
        # loyalty_append_only() (first migration) raises restrict_violation
        op.execute(
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION loyalty_append_only()"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in APPEND_ONLY:
        op.execute(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")
