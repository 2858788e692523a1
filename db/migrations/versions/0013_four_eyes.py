"""Four-eyes on pilot starts, supervisor grants and program settings

Revision ID: 0013_four_eyes
Revises: 0009_join_earn
Create Date: 2026-12-02

- ``pilots``: who requested the start and when, and who approved it. A
  pilot starts only when a second supervisor approves the request.
- ``staff_role_requests``: creating or promoting a supervisor waits here
  for a second supervisor.
- ``settings_changes``: a change of a program setting (points expiry) waits
  here, with its simulated effect, for a second supervisor.
"""
import sqlalchemy as sa
from alembic import op

revision = "0013_four_eyes"
down_revision = "0009_join_earn"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("pilots") as b:
        b.add_column(sa.Column("start_requested_by_id", BigId, nullable=True))
        b.add_column(sa.Column("start_requested_at", sa.DateTime(), nullable=True))
        b.add_column(sa.Column("started_by_id", BigId, nullable=True))
        b.create_foreign_key("fk_pilots_start_requested_by_id_staff_users", "staff_users",
                             ["start_requested_by_id"], ["id"])
        b.create_foreign_key("fk_pilots_started_by_id_staff_users", "staff_users", ["started_by_id"], ["id"])
    op.create_table(
        "staff_role_requests",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("user_id", BigId, sa.ForeignKey("staff_users.id"), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("requested_by_id", BigId, sa.ForeignKey("staff_users.id"), nullable=True),
        sa.Column("requested_at", sa.DateTime(), nullable=False),
        sa.Column("decided_by_id", BigId, sa.ForeignKey("staff_users.id"), nullable=True),
        sa.Column("decided_at", sa.DateTime(), nullable=True),
        sa.Column("note", sa.Text(), nullable=False, server_default=""),
        sa.CheckConstraint("kind IN ('create', 'promote')",
                           name=op.f("ck_staff_role_requests_kind_known")),
        sa.CheckConstraint("status IN ('pending', 'approved', 'rejected')",
                           name=op.f("ck_staff_role_requests_status_known")),
    )
    op.create_index("ix_staff_role_requests_status", "staff_role_requests", ["status", "id"])
    op.create_index("ix_staff_role_requests_user", "staff_role_requests", ["user_id", "id"])
    op.create_table(
        "settings_changes",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("changes", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("requested_by_id", BigId, sa.ForeignKey("staff_users.id"), nullable=True),
        sa.Column("requested_at", sa.DateTime(), nullable=False),
        sa.Column("effect", sa.Text(), nullable=False, server_default="{}"),
        sa.Column("decided_by_id", BigId, sa.ForeignKey("staff_users.id"), nullable=True),
        sa.Column("decided_at", sa.DateTime(), nullable=True),
        sa.Column("note", sa.Text(), nullable=False, server_default=""),
        sa.CheckConstraint("status IN ('pending', 'approved', 'rejected')",
                           name=op.f("ck_settings_changes_status_known")),
    )
    op.create_index("ix_settings_changes_status", "settings_changes", ["status", "id"])


def downgrade() -> None:
    op.drop_index("ix_settings_changes_status", table_name="settings_changes")
    op.drop_table("settings_changes")
    op.drop_index("ix_staff_role_requests_user", table_name="staff_role_requests")
    op.drop_index("ix_staff_role_requests_status", table_name="staff_role_requests")
    op.drop_table("staff_role_requests")
    with op.batch_alter_table("pilots") as b:
        b.drop_constraint("fk_pilots_started_by_id_staff_users", type_="foreignkey")
        b.drop_constraint("fk_pilots_start_requested_by_id_staff_users", type_="foreignkey")
        b.drop_column("started_by_id")
        b.drop_column("start_requested_at")
        b.drop_column("start_requested_by_id")
