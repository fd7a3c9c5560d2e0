"""TMF621: the TMF attributes of tickets (externalId, ticketType, the ITSM's id) and the ITSM outbox.

Revision ID: tmf621_0001_ticket_links
Revises: tmf_0001_hub
"""

import sqlalchemy as sa
from alembic import op

revision = "tmf621_0001_ticket_links"
down_revision = "tmf_0001_hub"
branch_labels = None
depends_on = ("0005_tickets",)  # the tickets table (another branch of the history)


def upgrade() -> None:
    op.create_table(
        "tmf_ticket_links",
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("external_id", sa.String(length=200), nullable=True),
        sa.Column("ticket_type", sa.String(length=100), nullable=False),
        sa.Column("owner", sa.String(length=10), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("synced_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["ticket_id"], ["tickets.id"], name=op.f("fk_tmf_ticket_links_ticket_id_tickets"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("ticket_id", name=op.f("pk_tmf_ticket_links")),
    )
    with op.batch_alter_table("tmf_ticket_links", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_tmf_ticket_links_external_id"), ["external_id"], unique=False)
    op.create_table(
        "itsm_outbox",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=100), nullable=False),
        sa.Column("route", sa.String(length=100), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.Column("gave_up_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["ticket_id"], ["tickets.id"], name=op.f("fk_itsm_outbox_ticket_id_tickets"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_itsm_outbox")),
    )
    with op.batch_alter_table("itsm_outbox", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_itsm_outbox_ticket_id"), ["ticket_id"], unique=False)
        batch_op.create_index("ix_itsm_outbox_due", ["delivered_at", "next_attempt_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("itsm_outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_itsm_outbox_due")
        batch_op.drop_index(batch_op.f("ix_itsm_outbox_ticket_id"))
    op.drop_table("itsm_outbox")
    with op.batch_alter_table("tmf_ticket_links", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tmf_ticket_links_external_id"))
    op.drop_table("tmf_ticket_links")
