"""API keys and idempotent API requests

Revision ID: 0017_api_keys
Revises: 0016_import_staging
Create Date: 2026-12-03

- ``api_keys``: keys a shop's systems call ``/api/v1`` with (SHA-256 of the
  secret, scopes, who created and revoked them).
- ``api_requests``: the first response to each Idempotency-Key of a key.
"""
import sqlalchemy as sa
from alembic import op

revision = "0017_api_keys"
down_revision = "0016_import_staging"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        sa.Column("scopes", sa.String(64), nullable=False),
        sa.Column("created_by_id", BigId, sa.ForeignKey("staff_users.id"), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("revoked_by_id", BigId, sa.ForeignKey("staff_users.id"), nullable=True),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
        sa.UniqueConstraint("name", name=op.f("uq_api_keys_name")),
        sa.UniqueConstraint("prefix", name=op.f("uq_api_keys_prefix")),
    )
    op.create_index("ix_api_keys_created", "api_keys", ["created_at"])
    op.create_table(
        "api_requests",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("api_key_id", BigId, sa.ForeignKey("api_keys.id"), nullable=False),
        sa.Column("idempotency_key", sa.String(255), nullable=False),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=False),
        sa.Column("response", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.UniqueConstraint("api_key_id", "idempotency_key", name="uq_api_requests_key"),
    )


def downgrade() -> None:
    op.drop_table("api_requests")
    op.drop_index("ix_api_keys_created", table_name="api_keys")
    op.drop_table("api_keys")
