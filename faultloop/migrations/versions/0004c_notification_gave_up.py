"""Notification outbox: a row that exhausted its attempts (or can never be sent) is given up, visibly.

Revision ID: 0004c_notification_gave_up
Revises: 0004b_alarm_notifications
"""

import sqlalchemy as sa
from alembic import op

revision = "0004c_notification_gave_up"
down_revision = "0004b_alarm_notifications"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("alarm_notifications", schema=None) as batch_op:
        batch_op.add_column(sa.Column("gave_up_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("alarm_notifications", schema=None) as batch_op:
        batch_op.drop_column("gave_up_at")
