"""Accounts: what kind of token a row is (an API token or a dashboard session) and which
token made it, so a session cannot mint tokens and revoking a token revokes what it made.

Revision ID: h15auth_token_origin
Revises: 0001
Create Date: 2026-12-06 23:50:00
"""

import sqlalchemy as sa
from alembic import op

revision = "h15auth_token_origin"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.add_column(sa.Column("kind", sa.String(length=10), server_default="api", nullable=False))
        batch_op.add_column(sa.Column("created_by_token_id", sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f("ix_api_tokens_created_by_token_id"), ["created_by_token_id"], unique=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_api_tokens_created_by_token_id_api_tokens"),
            "api_tokens",
            ["created_by_token_id"],
            ["id"],
            ondelete="SET NULL",
        )
    # sessions made before this revision: the dashboard named every one of them so
    op.execute("UPDATE api_tokens SET kind = 'session' WHERE name = 'dashboard session'")


def downgrade() -> None:
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_api_tokens_created_by_token_id_api_tokens"), type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_api_tokens_created_by_token_id"))
        batch_op.drop_column("created_by_token_id")
        batch_op.drop_column("kind")
