"""Alarm notification outbox (at-least-once delivery of webhook and e-mail notifications).

Revision ID: 0004b_alarm_notifications
Revises: 0004_alarms
"""

import sqlalchemy as sa
from alembic import op

revision = "0004b_alarm_notifications"
down_revision = "0004_alarms"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alarm_notifications",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("alarm_id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=100), nullable=False),
        sa.Column("route", sa.String(length=100), nullable=False),
        sa.Column("reason", sa.String(length=20), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.ForeignKeyConstraint(
            ["alarm_id"], ["alarms.id"], name=op.f("fk_alarm_notifications_alarm_id_alarms"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alarm_notifications")),
    )
    with op.batch_alter_table("alarm_notifications", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_alarm_notifications_alarm_id"), ["alarm_id"], unique=False)
        batch_op.create_index("ix_alarm_notifications_due", ["delivered_at", "next_attempt_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("alarm_notifications", schema=None) as batch_op:
        batch_op.drop_index("ix_alarm_notifications_due")
        batch_op.drop_index(batch_op.f("ix_alarm_notifications_alarm_id"))
    op.drop_table("alarm_notifications")
