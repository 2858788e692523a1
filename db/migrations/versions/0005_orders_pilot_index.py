"""Index on orders by pilot

Revision ID: 0005_orders_pilot
Revises: 0004_covering_orders
Create Date: 2026-11-23

The pilot results read the pilot group's orders of one pilot (and the latest
one, for "as of"): without this index both scan every order.
"""
from alembic import op

revision = "0005_orders_pilot"
down_revision = "0004_covering_orders"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.create_index("ix_orders_pilot_paid", ["pilot_id", "paid_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_index("ix_orders_pilot_paid")
