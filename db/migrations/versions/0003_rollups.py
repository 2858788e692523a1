"""rollups for the live and overview pages

Revision ID: 0003_rollups
Revises: 0002_member_search
Create Date: 2026-11-23

Incremental aggregates maintained by db/rollups.py from watermarks (the
highest ids already folded in), so a refresh reads only the new rows. They are
derived data: ``loyalty rebuild-rollups`` recomputes them from scratch.
"""
import sqlalchemy as sa
from alembic import op

revision = '0003_rollups'
down_revision = '0002_member_search'
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table(
        'rollup_state',
        sa.Column('name', sa.String(length=32), nullable=False),
        sa.Column('value', sa.BigInteger(), nullable=False),
        sa.Column('updated_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('name', name=op.f('pk_rollup_state')),
    )
    op.create_table(
        'rollup_daily',
        sa.Column('metric', sa.String(length=32), nullable=False),
        sa.Column('day', sa.DateTime(), nullable=False),
        sa.Column('segment', sa.String(length=32), nullable=False),
        sa.Column('tier', sa.String(length=64), nullable=False),
        sa.Column('value', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('metric', 'day', 'segment', 'tier', name=op.f('pk_rollup_daily')),
    )
    op.create_table(
        'rollup_members',
        sa.Column('member_id', BigId, nullable=False),
        sa.Column('joined_at', sa.DateTime(), nullable=False),
        sa.Column('segment', sa.String(length=32), nullable=False),
        sa.Column('referrer_id', BigId, nullable=True),
        sa.Column('first_order_at', sa.DateTime(), nullable=True),
        sa.Column('first_paid_at', sa.DateTime(), nullable=True),
        sa.Column('first_earn_at', sa.DateTime(), nullable=True),
        sa.Column('last_order_at', sa.DateTime(), nullable=True),
        sa.Column('last_activity_at', sa.DateTime(), nullable=True),
        sa.Column('paid_orders', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('member_id', name=op.f('pk_rollup_members')),
    )
    op.create_index('ix_rollup_members_joined', 'rollup_members', ['joined_at'])
    op.create_index('ix_rollup_members_activity', 'rollup_members', ['last_activity_at'])
    op.create_index('ix_rollup_members_first_paid', 'rollup_members', ['first_paid_at'])
    op.create_table(
        'rollup_customers',
        sa.Column('customer_ref', sa.String(length=64), nullable=False),
        sa.Column('last_order_at', sa.DateTime(), nullable=False),
        sa.Column('last_member_order_at', sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint('customer_ref', name=op.f('pk_rollup_customers')),
    )
    op.create_index('ix_rollup_customers_last', 'rollup_customers', ['last_order_at'])
    op.create_index(
        'ix_rollup_customers_last_member', 'rollup_customers', ['last_member_order_at']
    )
    op.create_table(
        'rollup_referrers',
        sa.Column('member_id', BigId, nullable=False),
        sa.Column('referred', sa.BigInteger(), nullable=False),
        sa.Column('bonus_points', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('member_id', name=op.f('pk_rollup_referrers')),
    )
    op.create_index('ix_rollup_referrers_bonus', 'rollup_referrers', ['bonus_points'])
    op.create_table(
        'rollup_transfers_in',
        sa.Column('day', sa.DateTime(), nullable=False),
        sa.Column('member_id', BigId, nullable=False),
        sa.Column('points', sa.BigInteger(), nullable=False),
        sa.Column('transfers', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('day', 'member_id', name=op.f('pk_rollup_transfers_in')),
    )


def downgrade() -> None:
    for table in ('rollup_transfers_in', 'rollup_referrers', 'rollup_customers',
                  'rollup_members', 'rollup_daily', 'rollup_state'):
        op.drop_table(table)
