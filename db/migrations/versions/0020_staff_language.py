"""Staff users' language

Revision ID: 0020_staff_language
Revises: 0019_form_tokens
Create Date: 2026-12-03

``staff_users.language``: the language a staff user chose for the web app
('en' or 'ru'); NULL means the configured default (DEFAULT_LANGUAGE).
"""
import sqlalchemy as sa
from alembic import op

revision = "0020_staff_language"
down_revision = "0019_form_tokens"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("staff_users") as b:
        b.add_column(sa.Column("language", sa.String(8), nullable=True))
        b.create_check_constraint(op.f("ck_staff_users_language_known"), "language IN ('en', 'ru')")


def downgrade() -> None:
    with op.batch_alter_table("staff_users") as b:
        b.drop_constraint(op.f("ck_staff_users_language_known"), type_="check")
        b.drop_column("language")
