"""Ticketing: customer fault reports from the service desk, each carried by a ticket.

Revision ID: h16desk_0001_fault_reports
Revises: 0005_tickets
Create Date: 2026-12-20 10:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "h16desk_0001_fault_reports"
down_revision = "0005_tickets"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "fault_reports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ref", sa.String(length=20), nullable=False),
        sa.Column("customer", sa.String(length=120), nullable=False),
        sa.Column("service_id", sa.Integer(), nullable=False),
        sa.Column("customer_ref", sa.String(length=120), nullable=False),
        sa.Column("symptom", sa.Text(), nullable=False),
        sa.Column("contact", sa.String(length=200), nullable=False),
        sa.Column("channel", sa.String(length=10), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("correlated", sa.Boolean(), nullable=False),
        sa.Column("created_by", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["ticket_id"], ["tickets.id"], name=op.f("fk_fault_reports_ticket_id_tickets"), ondelete="RESTRICT"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fault_reports")),
        sa.UniqueConstraint("ref", name=op.f("uq_fault_reports_ref")),
    )
    with op.batch_alter_table("fault_reports", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_fault_reports_customer"), ["customer"], unique=False)
        batch_op.create_index(batch_op.f("ix_fault_reports_service_id"), ["service_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_fault_reports_ticket_id"), ["ticket_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_fault_reports_created_at"), ["created_at"], unique=False)


def downgrade() -> None:
    op.drop_table("fault_reports")
