"""TM Forum APIs: hub subscriptions and the outbox of their events.

Revision ID: tmf_0001_hub
Revises: h16state_0001_service_state
"""

import sqlalchemy as sa
from alembic import op

revision = "tmf_0001_hub"
down_revision = "h16state_0001_service_state"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tmf_hub_subscriptions",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("api", sa.String(length=40), nullable=False),
        sa.Column("callback", sa.String(length=2000), nullable=False),
        sa.Column("query", sa.String(length=2000), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=100), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("failed_events", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.Column("last_delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tmf_hub_subscriptions")),
    )
    with op.batch_alter_table("tmf_hub_subscriptions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_tmf_hub_subscriptions_api"), ["api"], unique=False)
    op.create_table(
        "tmf_hub_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("subscription_id", sa.String(length=36), nullable=False),
        sa.Column("event_id", sa.String(length=36), nullable=False),
        sa.Column("event_type", sa.String(length=60), nullable=False),
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
            ["subscription_id"], ["tmf_hub_subscriptions.id"],
            name=op.f("fk_tmf_hub_events_subscription_id_tmf_hub_subscriptions"), ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tmf_hub_events")),
    )
    with op.batch_alter_table("tmf_hub_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_tmf_hub_events_subscription_id"), ["subscription_id"], unique=False)
        batch_op.create_index("ix_tmf_hub_events_due", ["delivered_at", "next_attempt_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("tmf_hub_events", schema=None) as batch_op:
        batch_op.drop_index("ix_tmf_hub_events_due")
        batch_op.drop_index(batch_op.f("ix_tmf_hub_events_subscription_id"))
    op.drop_table("tmf_hub_events")
    with op.batch_alter_table("tmf_hub_subscriptions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tmf_hub_subscriptions_api"))
    op.drop_table("tmf_hub_subscriptions")
