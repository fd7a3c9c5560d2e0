"""SNMP poller: sysLocation in the latest device poll state.

Revision ID: 0002b_sys_location
Revises: 0002_collectors
Create Date: 2026-11-25 20:50:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0002b_sys_location"
down_revision = "0002_collectors"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("device_poll_state", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sys_location", sa.String(length=255), server_default="", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("device_poll_state", schema=None) as batch_op:
        batch_op.drop_column("sys_location")
