"""Covering indexes on orders for set-based passes

Revision ID: 0004_covering_orders
Revises: 0003_rollups
Create Date: 2026-11-23

The simulation, the tier pass and the per-customer KPIs read (member or
customer, status, time, amount) of millions of orders; with these columns in
the index those reads never touch the table. They replace the narrower
indexes that started with the same column.
"""
from alembic import op

revision = "0004_covering_orders"
down_revision = "0003_rollups"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_index("ix_orders_member_paid")
        batch_op.drop_index("ix_orders_customer_ref")
        batch_op.create_index(
            "ix_orders_member_status_paid",
            ["member_id", "status", "paid_at", "amount_minor"],
            unique=False,
        )
        batch_op.create_index(
            "ix_orders_customer_paid",
            ["customer_ref", "paid_at", "member_id", "status", "amount_minor"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_index("ix_orders_customer_paid")
        batch_op.drop_index("ix_orders_member_status_paid")
        batch_op.create_index("ix_orders_customer_ref", ["customer_ref"], unique=False)
        batch_op.create_index("ix_orders_member_paid", ["member_id", "paid_at"], unique=False)
