"""member search indexes

Revision ID: 0002_member_search
Revises: 0001
Create Date: 2026-11-23

Prefix search on members (db/members.py) compares a range on a search key
and orders by (key, id), so one index serves both the filter and the order
and a page stops after LIMIT rows even on a million members:

- SQLite: expression indexes on lower(name) / lower(email) (BINARY order is
  byte order, so a prefix is one contiguous range; rowid = id is the tie);
  phone and external_id already have plain BINARY indexes.
- PostgreSQL: the default collation's order is linguistic (a prefix is not a
  contiguous range in it), so the keys are indexed with COLLATE "C" (byte
  order), each with id for the tie.
"""
from alembic import op


revision = '0002_member_search'
down_revision = '0001'
branch_labels = None
depends_on = None

PG = {
    'ix_members_search_name': '(lower(name) COLLATE "C"), id',
    'ix_members_search_email': '(lower(email) COLLATE "C"), id',
    'ix_members_search_phone': '(phone COLLATE "C"), id',
    'ix_members_search_external': '(external_id COLLATE "C"), id',
}
SQLITE = {
    'ix_members_search_name': 'lower(name)',
    'ix_members_search_email': 'lower(email)',
}


def upgrade() -> None:
    indexes = PG if op.get_bind().dialect.name == 'postgresql' else SQLITE
    for name, expr in indexes.items():
        op.execute(f'CREATE INDEX {name} ON members ({expr})')


def downgrade() -> None:
    indexes = PG if op.get_bind().dialect.name == 'postgresql' else SQLITE
    for name in indexes:
        op.execute(f'DROP INDEX {name}')
