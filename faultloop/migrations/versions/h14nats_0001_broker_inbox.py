"""Broker inbox: message ids already stored from NATS (exactly-once storage of at-least-once delivery).

Revision ID: h14nats_0001_broker_inbox
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "h14nats_0001_broker_inbox"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "broker_inbox",
        sa.Column("msg_id", sa.String(length=200), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("msg_id", name=op.f("pk_broker_inbox")),
    )
    op.create_index(op.f("ix_broker_inbox_received_at"), "broker_inbox", ["received_at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_broker_inbox_received_at"), table_name="broker_inbox")
    op.drop_table("broker_inbox")
