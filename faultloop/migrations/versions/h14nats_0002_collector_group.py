"""Devices name their collector group (remote-site collectors poll and receive for their group).

Revision ID: h14nats_0002_collector_group
Revises: h14nats_0001_broker_inbox
"""

import sqlalchemy as sa
from alembic import op

revision = "h14nats_0002_collector_group"
down_revision = "h14nats_0001_broker_inbox"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("devices", schema=None) as batch_op:
        batch_op.add_column(sa.Column("collector_group", sa.String(length=64), server_default="default", nullable=False))
        batch_op.create_index(batch_op.f("ix_devices_collector_group"), ["collector_group"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("devices", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_devices_collector_group"))
        batch_op.drop_column("collector_group")
