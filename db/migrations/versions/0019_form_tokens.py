"""Form tokens: a form sent twice takes effect once

Revision ID: 0019_form_tokens
Revises: 0018_refunds_referrals
Create Date: 2026-12-03

- ``adjustment_requests.form_token``: the random token of the form that filed
  the request, unique per requester: the same form sent again (a double
  click) returns the request already filed.
- ``form_submissions``: every other form's last submission (a hash of what
  was sent) and its answer, by staff user and page token.
"""
import sqlalchemy as sa
from alembic import op

revision = "0019_form_tokens"
down_revision = "0018_refunds_referrals"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.add_column("adjustment_requests", sa.Column("form_token", sa.String(64), nullable=True))
    op.create_index("uq_adjustment_requests_form_token", "adjustment_requests",
                    ["requested_by_id", "form_token"], unique=True)
    op.create_table(
        "form_submissions",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("staff_user_id", BigId, sa.ForeignKey("staff_users.id"), nullable=False),
        sa.Column("token", sa.String(64), nullable=False),
        sa.Column("form", sa.String(64), nullable=False),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("result", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.UniqueConstraint("staff_user_id", "token", name="uq_form_submissions_token"),
    )
    op.create_index("ix_form_submissions_created", "form_submissions", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_form_submissions_created", table_name="form_submissions")
    op.drop_table("form_submissions")
    op.drop_index("uq_adjustment_requests_form_token", table_name="adjustment_requests")
    with op.batch_alter_table("adjustment_requests") as b:
        b.drop_column("form_token")
