"""Tickets: the SLA class of the customer services they affect, and why they were closed.

Revision ID: h16impact_0002_ticket_sla
Revises: 0005_tickets
"""

import sqlalchemy as sa
from alembic import op

revision = "h16impact_0002_ticket_sla"
down_revision = "0005_tickets"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sla_class", sa.String(32), nullable=True))
        batch_op.add_column(sa.Column("close_reason", sa.String(100), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.drop_column("close_reason")
        batch_op.drop_column("sla_class")
