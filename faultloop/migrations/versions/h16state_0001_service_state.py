"""Service operational state history: the periods a customer service was degraded or down.

Revision ID: h16state_0001_service_state
Revises: h16impact_0001_alarm_impact
"""

import sqlalchemy as sa
from alembic import op

revision = "h16state_0001_service_state"
down_revision = "h16impact_0001_alarm_impact"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "service_state_history",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("service_id", sa.Integer(), nullable=False),
        sa.Column("customer", sa.String(120), nullable=False),
        sa.Column("state", sa.String(10), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("alarm_id", sa.Integer(), nullable=True),
    )
    op.create_index("ix_service_state_history_customer", "service_state_history", ["customer"])
    op.create_index("ix_service_state_history_service_time", "service_state_history", ["service_id", "started_at"])
    op.create_index(
        "uq_service_state_open",
        "service_state_history",
        ["service_id"],
        unique=True,
        sqlite_where=sa.text("ended_at IS NULL"),
        postgresql_where=sa.text("ended_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_table("service_state_history")
