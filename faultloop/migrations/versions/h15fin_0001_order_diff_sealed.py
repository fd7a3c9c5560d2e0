"""Planned order diffs encrypted at rest: ``service_order_items.diff_encrypted`` (a vault token)
replaces the plaintext ``diff``, whose context lines are the device's running configuration.

A migration has no key, so existing diffs stay in ``diff`` until `faultloop db upgrade` (right
after this migration), the service's start or `faultloop secrets rotate` encrypts them
(``provisioning.service.seal_order_diffs``). Item messages written by an older release after an
incomplete rollback quoted up to five configuration lines; those quotes are cut here (no key
needed), keeping the count.

Revision ID: h15fin_0001_order_diff_sealed
Revises: 0006_provisioning
Create Date: 2026-12-07 04:30:00
"""

import re

import sqlalchemy as sa
from alembic import op

revision = "h15fin_0001_order_diff_sealed"
down_revision = "0006_provisioning"
branch_labels = None
depends_on = None

# what provisioning/executor.py wrote before this revision: "...: ['+line', '-line']" at the end
_QUOTED = re.compile(r"(rollback left \d+ line\(s\) different from the backup): \[.*\]\Z", re.DOTALL)


def upgrade() -> None:
    with op.batch_alter_table("service_order_items", schema=None) as batch_op:
        batch_op.add_column(sa.Column("diff_encrypted", sa.LargeBinary(), nullable=True))
    bind = op.get_bind()
    items = sa.table("service_order_items", sa.column("id", sa.Integer()), sa.column("message", sa.Text()))
    rows = bind.execute(sa.select(items.c.id, items.c.message).where(items.c.message.like("%rollback left %"))).all()
    for item_id, message in rows:
        cut = _QUOTED.sub(r"\1 (lines not quoted: they are configuration)", message)
        if cut != message:
            bind.execute(sa.update(items).where(items.c.id == item_id).values(message=cut))


def downgrade() -> None:
    sealed = op.get_bind().execute(sa.text("SELECT count(*) FROM service_order_items WHERE diff_encrypted IS NOT NULL"))
    if sealed.scalar_one():
        # their plaintext needs the key, which a migration does not have
        raise RuntimeError(
            "service_order_items holds encrypted planned diffs: delete those orders (or restore a "
            "database backup from before h15fin_0001) before downgrading"
        )
    with op.batch_alter_table("service_order_items", schema=None) as batch_op:
        batch_op.drop_column("diff_encrypted")
