"""Revocable sessions

Revision ID: 0015_sessions_limits
Revises: 0013_four_eyes
Create Date: 2026-12-03

- ``staff_users.session_version``: signed into each session at login and
  checked on every request; logout and any change of role, password or
  active flag bump it, which ends every session of the account.
"""
import sqlalchemy as sa
from alembic import op

revision = "0015_sessions_limits"
down_revision = "0013_four_eyes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("staff_users") as b:
        b.add_column(sa.Column("session_version", sa.Integer(), nullable=False,
                               server_default=sa.text("0")))


def downgrade() -> None:
    with op.batch_alter_table("staff_users") as b:
        b.drop_column("session_version")
