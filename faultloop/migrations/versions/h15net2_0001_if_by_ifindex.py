"""Inventory: interfaces identified by ifIndex (one row per device and ifIndex; names may repeat
on the device, the stored name is a unique display name), and the device's ifAlias kept per poll.

Rows that already share a device and ifIndex (an import could write that) keep the ifIndex on the
oldest row; the others lose it (the next poll matches them by name or leaves them unpolled).

Revision ID: h15net2_0001_if_by_ifindex
Revises: h15net_0001_inventory_revision
Create Date: 2026-12-08 10:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "h15net2_0001_if_by_ifindex"
down_revision = "h15net_0001_inventory_revision"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "UPDATE interfaces SET if_index = NULL WHERE if_index IS NOT NULL AND id NOT IN "
        "(SELECT keep FROM (SELECT MIN(id) AS keep FROM interfaces WHERE if_index IS NOT NULL "
        "GROUP BY device_id, if_index) AS oldest)"
    )
    with op.batch_alter_table("interfaces", schema=None) as batch_op:
        batch_op.add_column(sa.Column("alias", sa.String(length=255), server_default="", nullable=False))
        batch_op.create_unique_constraint("uq_interfaces_device_if_index", ["device_id", "if_index"])


def downgrade() -> None:
    with op.batch_alter_table("interfaces", schema=None) as batch_op:
        batch_op.drop_constraint("uq_interfaces_device_if_index", type_="unique")
        batch_op.drop_column("alias")
