"""Import staging tables

Revision ID: 0016_import_staging
Revises: 0015_sessions_limits
Create Date: 2026-12-10

An order import stages the file's rows and the rows it computes for the
program tables here, in short committed batches, and copies them into the
program tables in one final transaction (see db/importer.py). Nothing here
is program data.
"""
import sqlalchemy as sa
from alembic import op

revision = "0016_import_staging"
down_revision = "0015_sessions_limits"
branch_labels = None
depends_on = None

S = sa.String
B = sa.BigInteger
DT = sa.DateTime

MIRRORS = {
    "import_members": ("id", [
        ("external_id", S(64)), ("name", S(200)), ("email", S(200)), ("phone", S(32)),
        ("joined_at", DT()), ("segment", S(32)), ("referrer_id", B()), ("status", S(16)),
    ]),
    "import_accounts": ("id", [("kind", S(16)), ("member_id", B()), ("balance", B())]),
    "import_orders": ("id", [
        ("order_ref", S(64)), ("customer_ref", S(64)), ("member_id", B()), ("paid_at", DT()),
        ("amount_minor", B()), ("points_redeemed", B()), ("status", S(16)),
        ("refunded_at", DT()), ("rule_set_id", B()), ("tier", S(64)), ("pilot_id", B()),
        ("payload_hash", S(64)), ("created_at", DT()),
    ]),
    "import_ledger_transactions": ("id", [
        ("kind", S(32)), ("idempotency_key", S(128)), ("payload_hash", S(64)),
        ("order_id", B()), ("actor", S(64)), ("effective_at", DT()), ("created_at", DT()),
    ]),
    "import_ledger_entries": ("id", [
        ("tx_id", B()), ("kind", S(16)), ("debit_account_id", B()),
        ("credit_account_id", B()), ("amount", B()), ("effective_at", DT()),
        ("order_id", B()), ("rule_set_id", B()), ("rate_bp", sa.Integer()),
        ("reverses_entry_id", B()), ("memo", S(255)),
    ]),
    "import_balances": ("account_id", [("delta", B())]),
    "import_tiers": ("member_id", [("tier", S(64)), ("tier_evaluated_at", DT())]),
}


def upgrade() -> None:
    op.create_table(
        "import_runs",
        sa.Column("id", S(32), primary_key=True),
        sa.Column("actor", S(64), nullable=False),
        sa.Column("status", S(16), nullable=False),
        sa.Column("started_at", DT(), nullable=False),
        sa.Column("heartbeat_at", DT(), nullable=False),
        sa.CheckConstraint(
            "status IN ('running', 'applying', 'applied', 'failed', 'discarding')",
            name=op.f("ck_import_runs_status_known"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_import_runs")),
    )
    op.create_table(
        "import_rows",
        sa.Column("import_id", S(32), nullable=False),
        sa.Column("line", B(), nullable=False, autoincrement=False),
        sa.Column("state", sa.Integer(), nullable=False),
        sa.Column("customer", S(64), nullable=False),
        sa.Column("order_ref", S(64), nullable=False),
        sa.Column("paid_at", DT(), nullable=False),
        sa.Column("amount_minor", B(), nullable=False),
        sa.Column("referrer", S(64), nullable=True),
        sa.Column("points", B(), nullable=False),
        sa.Column("payload_hash", S(64), nullable=False),
        sa.PrimaryKeyConstraint("import_id", "line", name=op.f("pk_import_rows")),
    )
    op.create_index("ix_import_rows_ref", "import_rows", ["import_id", "order_ref"])
    op.create_index("ix_import_rows_post", "import_rows",
                    ["import_id", "state", "paid_at", "line"])
    for name, (key, cols) in MIRRORS.items():
        op.create_table(
            name,
            sa.Column("import_id", S(32), nullable=False),
            sa.Column(key, B(), nullable=False, autoincrement=False),
            *(sa.Column(c, t, nullable=True) for c, t in cols),
            sa.PrimaryKeyConstraint("import_id", key, name=op.f(f"pk_{name}")),
        )


def downgrade() -> None:
    for name in reversed(MIRRORS):
        op.drop_table(name)
    op.drop_index("ix_import_rows_post", table_name="import_rows")
    op.drop_index("ix_import_rows_ref", table_name="import_rows")
    op.drop_table("import_rows")
    op.drop_table("import_runs")
