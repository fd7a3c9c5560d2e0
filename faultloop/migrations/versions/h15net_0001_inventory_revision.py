"""Inventory: a revision number bumped by every device/interface change (receivers notice it).

Revision ID: h15net_0001_inventory_revision
Revises: 0001
Create Date: 2026-12-06 23:50:00
"""

import sqlalchemy as sa
from alembic import op

revision = "h15net_0001_inventory_revision"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    table = op.create_table(
        "inventory_revision",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inventory_revision")),
    )
    op.bulk_insert(table, [{"id": 1, "revision": 0}])


def downgrade() -> None:
    op.drop_table("inventory_revision")
