"""Config backups encrypted at rest: ``text_encrypted`` (a vault token) and ``digest`` (an HMAC
keyed from the vault) replace the plaintext ``text`` and its plain ``sha256``.

A migration has no key, so existing rows are carried over as they are: ``text`` keeps their
plaintext (now nullable) until `faultloop db upgrade` (right after this migration), the
service's start or `faultloop secrets rotate` encrypts them (``collectors.backup.seal_backups``).
Until then readers decrypt what is sealed and read the rest as stored.

Revision ID: h15backup_0001_sealed_backups
Revises: 0003_config_backup
Create Date: 2026-12-07 00:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "h15backup_0001_sealed_backups"
down_revision = "0003_config_backup"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("config_backups", schema=None) as batch_op:
        batch_op.add_column(sa.Column("text_encrypted", sa.LargeBinary(), nullable=True))
        batch_op.add_column(sa.Column("digest", sa.String(length=64), nullable=True))
        batch_op.alter_column("text", existing_type=sa.Text(), nullable=True)
        batch_op.drop_column("sha256")


def downgrade() -> None:
    sealed = op.get_bind().execute(sa.text("SELECT count(*) FROM config_backups WHERE text_encrypted IS NOT NULL"))
    if sealed.scalar_one():
        # the plaintext of those rows needs the key, which a migration does not have
        raise RuntimeError(
            "config_backups holds encrypted configurations: delete them (or restore a database "
            "backup from before h15backup_0001) before downgrading"
        )
    with op.batch_alter_table("config_backups", schema=None) as batch_op:
        # an empty sha256 only costs one extra version at the next capture of each device
        batch_op.add_column(sa.Column("sha256", sa.String(length=64), nullable=False, server_default=""))
        batch_op.alter_column("text", existing_type=sa.Text(), nullable=False)
        batch_op.drop_column("digest")
        batch_op.drop_column("text_encrypted")
