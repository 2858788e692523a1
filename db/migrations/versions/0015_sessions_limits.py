"""Revocable sessions; rate limits shared by every web process

Revision ID: 0015_sessions_limits
Revises: 0014_truncate_guard
Create Date: 2026-12-03

- ``staff_users.session_version``: signed into each session at login and
  checked on every request; logout and any change of role, password or
  active flag bump it, which ends every session of the account.
- ``rate_limit_hits``: failed sign-ins and member searches counted per key
  and time, so every web process sees the same limits without Redis.
"""
import sqlalchemy as sa
from alembic import op

revision = "0015_sessions_limits"
down_revision = "0014_truncate_guard"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("staff_users") as b:
        b.add_column(sa.Column("session_version", sa.Integer(), nullable=False,
                               server_default=sa.text("0")))
    op.create_table(
        "rate_limit_hits",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("at_ms", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_rate_limit_hits_key_at", "rate_limit_hits", ["key", "at_ms"])
    op.create_index("ix_rate_limit_hits_at", "rate_limit_hits", ["at_ms"])


def downgrade() -> None:
    op.drop_index("ix_rate_limit_hits_at", table_name="rate_limit_hits")
    op.drop_index("ix_rate_limit_hits_key_at", table_name="rate_limit_hits")
    op.drop_table("rate_limit_hits")
    with op.batch_alter_table("staff_users") as b:
        b.drop_column("session_version")
