"""Customer service impact of alarms: which services each alarm affects, with counts on the alarm.

Revision ID: h16impact_0001_alarm_impact
Revises: 0004c_notification_gave_up
"""

import sqlalchemy as sa
from alembic import op

revision = "h16impact_0001_alarm_impact"
down_revision = "0004c_notification_gave_up"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("alarms", schema=None) as batch_op:
        batch_op.add_column(sa.Column("services_affected", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("customers_affected", sa.Integer(), nullable=False, server_default="0"))
    op.create_table(
        "alarm_service_impact",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("alarm_id", sa.Integer(), sa.ForeignKey("alarms.id", ondelete="CASCADE"), nullable=False),
        sa.Column("service_id", sa.Integer(), nullable=False),
        sa.Column("customer", sa.String(120), nullable=False),
        sa.Column("service_type", sa.String(64), nullable=False),
        sa.Column("sla_class", sa.String(32), nullable=True),
        sa.Column("how", sa.String(10), nullable=False),
        sa.Column("level", sa.String(10), nullable=False),
    )
    op.create_index("ix_alarm_service_impact_alarm_id", "alarm_service_impact", ["alarm_id"])
    op.create_index("ix_alarm_service_impact_service_id", "alarm_service_impact", ["service_id"])
    op.create_index("ix_alarm_service_impact_customer", "alarm_service_impact", ["customer", "alarm_id"])


def downgrade() -> None:
    op.drop_table("alarm_service_impact")
    with op.batch_alter_table("alarms", schema=None) as batch_op:
        batch_op.drop_column("customers_affected")
        batch_op.drop_column("services_affected")
