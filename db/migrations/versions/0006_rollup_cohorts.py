"""Cohort rollups: per member-month activity and per cohort-month sums

Revision ID: 0006_rollup_cohorts
Revises: 0005_orders_pilot
Create Date: 2026-11-23

LTV by join cohort and the retention heatmap read these instead of every
member order. Derived data: db/rollups.py fills them from the orders already
folded in on the first refresh after this migration (state key
``cohorts_v1``), then incrementally like the other rollups.
"""
import sqlalchemy as sa
from alembic import op

revision = "0006_rollup_cohorts"
down_revision = "0005_orders_pilot"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "rollup_member_months",
        sa.Column("member_id", BigId, nullable=False),
        sa.Column("month", sa.Integer(), nullable=False),
        sa.Column("cohort", sa.Integer(), nullable=False),
        sa.Column("segment", sa.String(length=32), nullable=False),
        sa.Column("paid_orders", sa.BigInteger(), nullable=False),
        sa.Column("revenue", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("member_id", "month", name=op.f("pk_rollup_member_months")),
    )
    op.create_table(
        "rollup_cohort_months",
        sa.Column("cohort", sa.Integer(), nullable=False),
        sa.Column("month", sa.Integer(), nullable=False),
        sa.Column("segment", sa.String(length=32), nullable=False),
        sa.Column("members", sa.BigInteger(), nullable=False),
        sa.Column("paid_orders", sa.BigInteger(), nullable=False),
        sa.Column("revenue", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("cohort", "month", "segment",
                                name=op.f("pk_rollup_cohort_months")),
    )


def downgrade() -> None:
    op.drop_table("rollup_cohort_months")
    op.drop_table("rollup_member_months")
