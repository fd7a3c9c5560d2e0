"""Ticketing: the ticket notification outbox, and where a technician is told of a dispatch.

Revision ID: h16notify_0001_ticket_outbox
Revises: 0005_tickets
"""

import sqlalchemy as sa
from alembic import op

revision = "h16notify_0001_ticket_outbox"
down_revision = "0005_tickets"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ticket_notifications",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=100), nullable=False),
        sa.Column("route", sa.String(length=100), nullable=False),
        sa.Column("recipient_id", sa.Integer(), nullable=True),
        sa.Column("reason", sa.String(length=20), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.Column("gave_up_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["ticket_id"], ["tickets.id"], name=op.f("fk_ticket_notifications_ticket_id_tickets"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ticket_notifications")),
    )
    with op.batch_alter_table("ticket_notifications", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_ticket_notifications_ticket_id"), ["ticket_id"], unique=False)
        batch_op.create_index("ix_ticket_notifications_due", ["delivered_at", "next_attempt_at"], unique=False)
    with op.batch_alter_table("technicians", schema=None) as batch_op:
        batch_op.add_column(sa.Column("notify_to", sa.String(length=1000), server_default="", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("technicians", schema=None) as batch_op:
        batch_op.drop_column("notify_to")
    with op.batch_alter_table("ticket_notifications", schema=None) as batch_op:
        batch_op.drop_index("ix_ticket_notifications_due")
        batch_op.drop_index(batch_op.f("ix_ticket_notifications_ticket_id"))
    op.drop_table("ticket_notifications")
