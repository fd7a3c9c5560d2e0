"""SNMP poller: latest device poll state, short-term interface/device samples.

Revision ID: 0002_collectors
Revises: 0001
Create Date: 2026-11-25 14:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_collectors"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "device_poll_state",
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("reachable", sa.Boolean(), nullable=True),
        sa.Column("consecutive_failures", sa.Integer(), nullable=False),
        sa.Column("last_poll_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_success_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.String(length=255), nullable=False),
        sa.Column("poll_duration_s", sa.Float(), nullable=True),
        sa.Column("sys_uptime_cs", sa.BigInteger(), nullable=True),
        sa.Column("sys_descr", sa.String(length=1024), nullable=False),
        sa.Column("sys_name", sa.String(length=255), nullable=False),
        sa.Column("sys_object_id", sa.String(length=255), nullable=False),
        sa.Column("cpu_percent", sa.Float(), nullable=True),
        sa.Column("memory_percent", sa.Float(), nullable=True),
        sa.Column("poll_interval_s", sa.Float(), nullable=True),
        sa.Column("poll_timeout_s", sa.Float(), nullable=True),
        sa.Column("poll_retries", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["device_id"], ["devices.id"], name=op.f("fk_device_poll_state_device_id_devices"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("device_id", name=op.f("pk_device_poll_state")),
    )
    op.create_table(
        "interface_samples",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("interface", sa.String(length=100), nullable=False),
        sa.Column("metric", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("time", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["device_id"], ["devices.id"], name=op.f("fk_interface_samples_device_id_devices"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_interface_samples")),
    )
    with op.batch_alter_table("interface_samples", schema=None) as batch_op:
        batch_op.create_index("ix_interface_samples_lookup", ["device_id", "metric", "time"], unique=False)
        batch_op.create_index(batch_op.f("ix_interface_samples_time"), ["time"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("interface_samples", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_interface_samples_time"))
        batch_op.drop_index("ix_interface_samples_lookup")
    op.drop_table("interface_samples")
    op.drop_table("device_poll_state")
