"""Config backups, latest CLI show results, SSH host keys (collectors: SSH/CLI side).

Revision ID: 0003_config_backup
Revises: 0001
Create Date: 2026-11-25 14:45:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_config_backup"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "config_backups",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("taken_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("lines_added", sa.Integer(), nullable=False),
        sa.Column("lines_removed", sa.Integer(), nullable=False),
        sa.Column("trigger", sa.String(length=20), nullable=False),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["device_id"], ["devices.id"], name=op.f("fk_config_backups_device_id_devices"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_config_backups")),
    )
    with op.batch_alter_table("config_backups", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_config_backups_device_id"), ["device_id"], unique=False)

    op.create_table(
        "cli_results",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("command", sa.String(length=200), nullable=False),
        sa.Column("taken_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("output", sa.Text(), nullable=False),
        sa.Column("parsed", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(
            ["device_id"], ["devices.id"], name=op.f("fk_cli_results_device_id_devices"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cli_results")),
        sa.UniqueConstraint("device_id", "command", name="uq_cli_results_device_command"),
    )
    with op.batch_alter_table("cli_results", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_cli_results_device_id"), ["device_id"], unique=False)

    op.create_table(
        "ssh_host_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("key_type", sa.String(length=50), nullable=True),
        sa.Column("key_base64", sa.Text(), nullable=True),
        sa.Column("fingerprint", sa.String(length=100), nullable=True),
        sa.Column("trusted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("trusted_by", sa.String(length=100), nullable=True),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("pending_key_type", sa.String(length=50), nullable=True),
        sa.Column("pending_key_base64", sa.Text(), nullable=True),
        sa.Column("pending_fingerprint", sa.String(length=100), nullable=True),
        sa.Column("pending_seen_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["device_id"], ["devices.id"], name=op.f("fk_ssh_host_keys_device_id_devices"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ssh_host_keys")),
        sa.UniqueConstraint("device_id", name=op.f("uq_ssh_host_keys_device_id")),
    )


def downgrade() -> None:
    op.drop_table("ssh_host_keys")
    with op.batch_alter_table("cli_results", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_cli_results_device_id"))
    op.drop_table("cli_results")
    with op.batch_alter_table("config_backups", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_config_backups_device_id"))
    op.drop_table("config_backups")
