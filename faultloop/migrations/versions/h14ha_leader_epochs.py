"""Leader election fencing: one epoch row per group of singleton loops (faultloop.leader).

Revision ID: h14ha_leader_epochs
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "h14ha_leader_epochs"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "leader_epochs",
        sa.Column("name", sa.String(length=50), nullable=False),
        sa.Column("epoch", sa.BigInteger(), nullable=False),
        sa.Column("holder", sa.String(length=200), nullable=False),
        sa.Column("acquired_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_leader_epochs")),
    )


def downgrade() -> None:
    op.drop_table("leader_epochs")
