"""Service orders: what an ordering system sent beside the order (TMF641 externalId, item id).

Revision ID: tmf641_0001_order_external
Revises: h15fin_0001_order_diff_sealed
"""

import sqlalchemy as sa
from alembic import op

revision = "tmf641_0001_order_external"
down_revision = "h15fin_0001_order_diff_sealed"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("service_orders") as batch:
        batch.add_column(sa.Column("external", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("service_orders") as batch:
        batch.drop_column("external")
