"""Provisioning tables: service orders with per-device items, service instances and their
resources, VLAN pools and allocations.

VLAN allocation is decided by the database: ``vlan_allocations`` has a unique constraint on
(pool_id, vlan), so two concurrent orders can never hold the same VLAN of one pool.
Order records hold rendered configuration lines and summaries, never credentials. The planned
diff of an item holds running configuration around the changed lines (which may hold secrets): it
is stored encrypted with the vault, like config backups.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from faultloop.db import Base, UTCDateTime


class ServiceInstance(Base):
    __tablename__ = "service_instances"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    service_type: Mapped[str] = mapped_column(String(64))
    customer: Mapped[str] = mapped_column(String(120), index=True)
    state: Mapped[str] = mapped_column(String(20))  # pending | active | terminated
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ServiceResource(Base):
    """What a service holds on the network: (device, interface, vlan)."""

    __tablename__ = "service_resources"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    service_id: Mapped[int] = mapped_column(ForeignKey("service_instances.id", ondelete="CASCADE"), index=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id", ondelete="RESTRICT"), index=True)
    interface: Mapped[str] = mapped_column(String(100), default="")
    vlan: Mapped[int | None] = mapped_column(Integer, nullable=True)


class VlanPool(Base):
    __tablename__ = "vlan_pools"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    site_id: Mapped[int | None] = mapped_column(ForeignKey("sites.id", ondelete="RESTRICT"), nullable=True, index=True)
    vlan_min: Mapped[int] = mapped_column(Integer)
    vlan_max: Mapped[int] = mapped_column(Integer)


class VlanAllocation(Base):
    __tablename__ = "vlan_allocations"
    __table_args__ = (UniqueConstraint("pool_id", "vlan", name="uq_vlan_allocations_pool_vlan"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    pool_id: Mapped[int] = mapped_column(ForeignKey("vlan_pools.id", ondelete="CASCADE"), index=True)
    vlan: Mapped[int] = mapped_column(Integer)
    service_id: Mapped[int | None] = mapped_column(
        ForeignKey("service_instances.id", ondelete="CASCADE"), nullable=True, index=True
    )
    allocated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ServiceOrder(Base):
    __tablename__ = "service_orders"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    action: Mapped[str] = mapped_column(String(20))  # activate | modify | terminate
    service_type: Mapped[str] = mapped_column(String(64))
    customer: Mapped[str] = mapped_column(String(120))
    service_id: Mapped[int | None] = mapped_column(
        ForeignKey("service_instances.id", ondelete="SET NULL"), nullable=True, index=True
    )
    state: Mapped[str] = mapped_column(String(20), index=True)
    request: Mapped[dict[str, Any]] = mapped_column(JSON)  # the order as submitted (validated values)
    vlan_pool: Mapped[str | None] = mapped_column(String(64), nullable=True)
    window_start: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    window_end: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    maintenance_window_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_by: Mapped[str] = mapped_column(String(64))
    approved_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    executed_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    result: Mapped[str] = mapped_column(Text, default="")
    # what an ordering system sent beside the order (TMF641: externalId, item id, description, ...)
    external: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)


class OrderItem(Base):
    """One device of an order: what is sent, its inverse, the planned diff and the outcome.

    The planned diff's context lines are the device's running configuration: the diff is stored
    encrypted with the vault (``diff_encrypted``; read it through ``provisioning.service.item_diff``).
    ``diff`` holds the plaintext of diffs planned before migration h15fin_0001 until `faultloop db
    upgrade`, the service's start or `secrets rotate` encrypts them (``seal_order_diffs``); no new
    row is written with it. ``message`` never quotes configuration lines (only counts and ids).
    """

    __tablename__ = "service_order_items"
    __table_args__ = (UniqueConstraint("order_id", "device_id", name="uq_service_order_items_order_device"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("service_orders.id", ondelete="CASCADE"), index=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id", ondelete="RESTRICT"), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    commands: Mapped[list[str]] = mapped_column(JSON, default=list)
    inverse: Mapped[list[str]] = mapped_column(JSON, default=list)
    diff: Mapped[str] = mapped_column(Text, default="")  # legacy plaintext, see above
    diff_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    backup_id: Mapped[int | None] = mapped_column(Integer, nullable=True)  # pre-change backup
    status: Mapped[str] = mapped_column(String(20), default="pending")
    message: Mapped[str] = mapped_column(Text, default="")
