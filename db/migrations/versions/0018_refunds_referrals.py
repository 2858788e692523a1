"""Part refunds and referral codes

Revision ID: 0018_refunds_referrals
Revises: 0017_api_keys
Create Date: 2026-12-03

A downgrade drops what part refunds recorded (``refunded_minor``,
``order_refunds``): for a development database only.

- ``orders.refunded_minor``: money taken back by part refunds (``amount_minor``
  keeps what remains paid).
- ``order_refunds``: one row per refund, whole or part, append-only like the
  ledger; filled for the refunds made before this migration.
- ``members.referral_code``: a member's code for inviting others.
- a ledger entry may be reversed by several part refunds, each transaction
  at most once: the unique key on ``reverses_entry_id`` becomes one on
  (``reverses_entry_id``, ``tx_id``). SQLite keeps that key inside the table,
  so there the table is copied (and its append-only triggers made again).
"""
import warnings

import sqlalchemy as sa
from alembic import op

revision = "0018_refunds_referrals"
down_revision = "0017_api_keys"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

BACKFILL = """
INSERT INTO order_refunds (order_id, tx_id, refund_ref, amount_minor, partial,
                           unrecovered, remaining_minor, refunded_at)
SELECT t.order_id, t.id, '', o.amount_minor, {false},
       COALESCE((SELECT SUM(e.amount) FROM ledger_entries e
                 WHERE e.order_id = o.id AND e.kind IN ('accrual', 'referral_bonus')), 0)
     - COALESCE((SELECT SUM(r.amount) FROM ledger_entries r
                 JOIN ledger_entries e ON e.id = r.reverses_entry_id
                 WHERE r.tx_id = t.id AND e.kind IN ('accrual', 'referral_bonus')), 0),
       0, COALESCE(o.refunded_at, t.effective_at)
FROM ledger_transactions t JOIN orders o ON o.id = t.order_id
WHERE t.kind = 'refund'
"""


def _sqlite_ledger_triggers() -> None:
    for action in ("UPDATE", "DELETE"):
        op.execute(f"CREATE TRIGGER ledger_entries_no_{action.lower()} BEFORE {action} "
                   "ON ledger_entries BEGIN SELECT RAISE(ABORT, "
                   "'ledger_entries is append-only'); END")


def _reversal_key(per_tx: bool) -> None:
    pg = op.get_bind().dialect.name == "postgresql"
    if pg and per_tx:
        op.drop_constraint("uq_ledger_entries_reverses_entry_id", "ledger_entries",
                           type_="unique")
        op.create_index("uq_ledger_entries_reversal_tx", "ledger_entries",
                        ["reverses_entry_id", "tx_id"], unique=True)
    elif pg:
        op.drop_index("uq_ledger_entries_reversal_tx", table_name="ledger_entries")
        op.create_unique_constraint("uq_ledger_entries_reverses_entry_id", "ledger_entries",
                                    ["reverses_entry_id"])
    else:
        with warnings.catch_warnings(), \
                op.batch_alter_table("ledger_entries", recreate="always") as b:
            # reflection skips the members' expression indexes: not this table's
            warnings.filterwarnings("ignore", "Skipped unsupported reflection")
            if per_tx:
                b.drop_constraint("uq_ledger_entries_reverses_entry_id", type_="unique")
                b.create_index("uq_ledger_entries_reversal_tx",
                               ["reverses_entry_id", "tx_id"], unique=True)
            else:
                b.drop_index("uq_ledger_entries_reversal_tx")
                b.create_unique_constraint("uq_ledger_entries_reverses_entry_id",
                                           ["reverses_entry_id"])
        _sqlite_ledger_triggers()


def upgrade() -> None:
    pg = op.get_bind().dialect.name == "postgresql"
    _reversal_key(per_tx=True)
    op.add_column("orders", sa.Column("refunded_minor", sa.BigInteger(), nullable=False,
                                      server_default="0"))
    if pg:  # SQLite cannot add a CHECK without copying the table
        op.create_check_constraint("refunded_nonneg", "orders", "refunded_minor >= 0")
    op.add_column("members", sa.Column("referral_code", sa.String(16), nullable=True))
    op.create_index("uq_members_referral_code", "members", ["referral_code"], unique=True)
    op.create_table(
        "order_refunds",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("order_id", BigId, sa.ForeignKey("orders.id"), nullable=False),
        sa.Column("tx_id", BigId, sa.ForeignKey("ledger_transactions.id"), nullable=False),
        sa.Column("refund_ref", sa.String(64), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("partial", sa.Boolean(), nullable=False),
        sa.Column("unrecovered", sa.BigInteger(), nullable=False),
        sa.Column("remaining_minor", sa.BigInteger(), nullable=False),
        sa.Column("refunded_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint("amount_minor >= 0", name="amount_nonneg"),
        sa.CheckConstraint("unrecovered >= 0", name="unrecovered_nonneg"),
        sa.UniqueConstraint("tx_id", name=op.f("uq_order_refunds_tx_id")),
    )
    op.create_index("ix_order_refunds_order_id", "order_refunds", ["order_id"])
    op.execute(BACKFILL.format(false="false" if pg else "0"))
    if pg:
        # loyalty_append_only() comes from the first migration
        op.execute("CREATE TRIGGER order_refunds_append_only BEFORE UPDATE OR DELETE ON "
                   "order_refunds FOR EACH ROW EXECUTE FUNCTION loyalty_append_only()")
        op.execute("CREATE TRIGGER order_refunds_no_truncate BEFORE TRUNCATE ON "
                   "order_refunds FOR EACH STATEMENT EXECUTE FUNCTION loyalty_append_only()")
    else:
        for action in ("UPDATE", "DELETE"):
            op.execute(f"CREATE TRIGGER order_refunds_no_{action.lower()} BEFORE {action} "
                       "ON order_refunds BEGIN SELECT RAISE(ABORT, "
                       "'order_refunds is append-only'); END")


def downgrade() -> None:
    pg = op.get_bind().dialect.name == "postgresql"
    _reversal_key(per_tx=False)
    if not pg:
        for action in ("update", "delete"):
            op.execute(f"DROP TRIGGER IF EXISTS order_refunds_no_{action}")
    op.drop_index("ix_order_refunds_order_id", table_name="order_refunds")
    op.drop_table("order_refunds")
    op.drop_index("uq_members_referral_code", table_name="members")
    # SQLite 3.35+ drops a column in place (a batch copy would lose the
    # expression indexes of migration 0008)
    op.drop_column("members", "referral_code")
    if pg:
        op.drop_constraint(op.f("ck_orders_refunded_nonneg"), "orders", type_="check")
    op.drop_column("orders", "refunded_minor")
