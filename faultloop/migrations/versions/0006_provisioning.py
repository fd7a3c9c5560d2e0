"""Provisioning: service orders and items, service instances and resources, VLAN pools and allocations.

Revision ID: 0006_provisioning
Revises: 0001
Create Date: 2026-11-25 15:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_provisioning"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "service_instances",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("service_type", sa.String(length=64), nullable=False),
        sa.Column("customer", sa.String(length=120), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_service_instances")),
    )
    op.create_index(op.f("ix_service_instances_customer"), "service_instances", ["customer"], unique=False)
    op.create_table(
        "service_orders",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(length=20), nullable=False),
        sa.Column("service_type", sa.String(length=64), nullable=False),
        sa.Column("customer", sa.String(length=120), nullable=False),
        sa.Column("service_id", sa.Integer(), nullable=True),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("request", sa.JSON(), nullable=False),
        sa.Column("vlan_pool", sa.String(length=64), nullable=True),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=True),
        sa.Column("window_end", sa.DateTime(timezone=True), nullable=True),
        sa.Column("maintenance_window_id", sa.Integer(), nullable=True),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("approved_by", sa.String(length=64), nullable=True),
        sa.Column("executed_by", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("result", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["service_id"],
            ["service_instances.id"],
            name=op.f("fk_service_orders_service_id_service_instances"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_service_orders")),
    )
    op.create_index(op.f("ix_service_orders_service_id"), "service_orders", ["service_id"], unique=False)
    op.create_index(op.f("ix_service_orders_state"), "service_orders", ["state"], unique=False)
    op.create_table(
        "vlan_pools",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=True),
        sa.Column("vlan_min", sa.Integer(), nullable=False),
        sa.Column("vlan_max", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["site_id"], ["sites.id"], name=op.f("fk_vlan_pools_site_id_sites"), ondelete="RESTRICT"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_vlan_pools")),
        sa.UniqueConstraint("name", name=op.f("uq_vlan_pools_name")),
    )
    op.create_index(op.f("ix_vlan_pools_site_id"), "vlan_pools", ["site_id"], unique=False)
    op.create_table(
        "service_order_items",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("order_id", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("commands", sa.JSON(), nullable=False),
        sa.Column("inverse", sa.JSON(), nullable=False),
        sa.Column("diff", sa.Text(), nullable=False),
        sa.Column("backup_id", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["device_id"], ["devices.id"], name=op.f("fk_service_order_items_device_id_devices"), ondelete="RESTRICT"
        ),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["service_orders.id"],
            name=op.f("fk_service_order_items_order_id_service_orders"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_service_order_items")),
        sa.UniqueConstraint("order_id", "device_id", name="uq_service_order_items_order_device"),
    )
    op.create_index(op.f("ix_service_order_items_device_id"), "service_order_items", ["device_id"], unique=False)
    op.create_index(op.f("ix_service_order_items_order_id"), "service_order_items", ["order_id"], unique=False)
    op.create_table(
        "service_resources",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("service_id", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("interface", sa.String(length=100), nullable=False),
        sa.Column("vlan", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["device_id"], ["devices.id"], name=op.f("fk_service_resources_device_id_devices"), ondelete="RESTRICT"
        ),
        sa.ForeignKeyConstraint(
            ["service_id"],
            ["service_instances.id"],
            name=op.f("fk_service_resources_service_id_service_instances"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_service_resources")),
    )
    op.create_index(op.f("ix_service_resources_device_id"), "service_resources", ["device_id"], unique=False)
    op.create_index(op.f("ix_service_resources_service_id"), "service_resources", ["service_id"], unique=False)
    op.create_table(
        "vlan_allocations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("pool_id", sa.Integer(), nullable=False),
        sa.Column("vlan", sa.Integer(), nullable=False),
        sa.Column("service_id", sa.Integer(), nullable=True),
        sa.Column("allocated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["pool_id"], ["vlan_pools.id"], name=op.f("fk_vlan_allocations_pool_id_vlan_pools"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["service_id"],
            ["service_instances.id"],
            name=op.f("fk_vlan_allocations_service_id_service_instances"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_vlan_allocations")),
        sa.UniqueConstraint("pool_id", "vlan", name="uq_vlan_allocations_pool_vlan"),
    )
    op.create_index(op.f("ix_vlan_allocations_pool_id"), "vlan_allocations", ["pool_id"], unique=False)
    op.create_index(op.f("ix_vlan_allocations_service_id"), "vlan_allocations", ["service_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_vlan_allocations_service_id"), table_name="vlan_allocations")
    op.drop_index(op.f("ix_vlan_allocations_pool_id"), table_name="vlan_allocations")
    op.drop_table("vlan_allocations")
    op.drop_index(op.f("ix_service_resources_service_id"), table_name="service_resources")
    op.drop_index(op.f("ix_service_resources_device_id"), table_name="service_resources")
    op.drop_table("service_resources")
    op.drop_index(op.f("ix_service_order_items_order_id"), table_name="service_order_items")
    op.drop_index(op.f("ix_service_order_items_device_id"), table_name="service_order_items")
    op.drop_table("service_order_items")
    op.drop_index(op.f("ix_vlan_pools_site_id"), table_name="vlan_pools")
    op.drop_table("vlan_pools")
    op.drop_index(op.f("ix_service_orders_state"), table_name="service_orders")
    op.drop_index(op.f("ix_service_orders_service_id"), table_name="service_orders")
    op.drop_table("service_orders")
    op.drop_index(op.f("ix_service_instances_customer"), table_name="service_instances")
    op.drop_table("service_instances")
