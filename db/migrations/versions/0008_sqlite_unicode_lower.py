"""Rebuild the SQLite member search indexes with a Unicode lower()

Revision ID: 0008_unicode_lower
Revises: 0007_orders_paid_cover
Create Date: 2026-11-23

SQLite's built-in lower() folds ASCII letters only, so the expression
indexes on lower(name) and lower(email) of migration 0002 held "Иванов"
unchanged and a search for "иван" missed it. Every connection the
application opens now replaces lower() with a Unicode-aware one
(db.session.unicode_lower); REINDEX recomputes the entries already written
with the old function. PostgreSQL's lower() already follows the database's
locale: nothing to do there.
"""
from alembic import op

revision = "0008_unicode_lower"
down_revision = "0007_orders_paid_cover"
branch_labels = None
depends_on = None

INDEXES = ("ix_members_search_name", "ix_members_search_email")


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for name in INDEXES:
            op.execute(f"REINDEX {name}")


def downgrade() -> None:
    # the entries stay valid for the Unicode function; nothing to undo
    pass
