from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Column,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Table,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from faultloop.db import Base, UTCDateTime

device_dependencies = Table(
    "device_dependencies",
    Base.metadata,
    Column("child_id", ForeignKey("devices.id", ondelete="CASCADE"), primary_key=True),
    Column("parent_id", ForeignKey("devices.id", ondelete="CASCADE"), primary_key=True),
    CheckConstraint("child_id <> parent_id", name="not_self"),
)


class Site(Base):
    __tablename__ = "sites"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    description: Mapped[str] = mapped_column(String(500), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    devices: Mapped[list[Device]] = relationship(back_populates="site")


class Device(Base):
    """A managed network element. Secret columns (``*_enc``) hold Fernet tokens only."""

    __tablename__ = "devices"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    hostname: Mapped[str] = mapped_column(String(255), unique=True)
    address: Mapped[str] = mapped_column(String(45), index=True)
    site_id: Mapped[int | None] = mapped_column(ForeignKey("sites.id", ondelete="RESTRICT"), index=True)
    vendor: Mapped[str] = mapped_column(String(50), default="")
    platform: Mapped[str] = mapped_column(String(50), default="")
    device_type: Mapped[str] = mapped_column(String(50), default="")
    role: Mapped[str] = mapped_column(String(20), index=True)
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    # which collectors poll it and receive its traps (issue 14: remote sites); "default": central's
    collector_group: Mapped[str] = mapped_column(String(64), default="default", server_default="default", index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

    snmp_version: Mapped[str | None] = mapped_column(String(4), nullable=True)
    snmp_port: Mapped[int] = mapped_column(Integer, default=161)
    snmp_community_enc: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    snmp_user: Mapped[str | None] = mapped_column(String(64), nullable=True)
    snmp_auth_protocol: Mapped[str | None] = mapped_column(String(10), nullable=True)
    snmp_auth_key_enc: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    snmp_priv_protocol: Mapped[str | None] = mapped_column(String(10), nullable=True)
    snmp_priv_key_enc: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    snmp_allow_weak: Mapped[bool] = mapped_column(Boolean, default=False)

    ssh_port: Mapped[int] = mapped_column(Integer, default=22)
    ssh_username: Mapped[str | None] = mapped_column(String(64), nullable=True)
    ssh_password_enc: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    ssh_private_key_enc: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    ssh_host_key_policy: Mapped[str] = mapped_column(String(10), default="tofu")

    site: Mapped[Site | None] = relationship(back_populates="devices")
    interfaces: Mapped[list[Interface]] = relationship(
        back_populates="device", cascade="all, delete-orphan", order_by="Interface.name"
    )
    parents: Mapped[list[Device]] = relationship(
        secondary=device_dependencies,
        primaryjoin=lambda: Device.id == device_dependencies.c.child_id,
        secondaryjoin=lambda: Device.id == device_dependencies.c.parent_id,
        order_by=lambda: Device.hostname,
    )

    SECRET_COLUMNS = (
        "snmp_community_enc",
        "snmp_auth_key_enc",
        "snmp_priv_key_enc",
        "ssh_password_enc",
        "ssh_private_key_enc",
    )

    def summary(self) -> dict[str, Any]:
        """What the audit log records: never a secret."""
        return {
            "hostname": self.hostname,
            "address": self.address,
            "site": self.site.name if self.site else None,
            "role": self.role,
            "vendor": self.vendor,
            "platform": self.platform,
            "device_type": self.device_type,
            "tags": list(self.tags or []),
            "collector_group": self.collector_group,
            "snmp_version": self.snmp_version,
            "ssh_username": self.ssh_username,
        }


class Interface(Base):
    """A port of a device. A polled port is identified by its ifIndex (one row per ifIndex); its
    ``name`` is the display name, unique per device: the ifName, or ``<ifName>#<ifIndex>`` for a
    port whose ifName another port of the device already shows (devices repeat names: two
    ``lo0``). ``alias`` is the device's ifAlias as the last poll read it; ``description`` is the
    operator's text."""

    __tablename__ = "interfaces"
    __table_args__ = (
        UniqueConstraint("device_id", "name", name="uq_interfaces_device_name"),
        UniqueConstraint("device_id", "if_index", name="uq_interfaces_device_if_index"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    if_index: Mapped[int | None] = mapped_column(Integer, nullable=True)
    description: Mapped[str] = mapped_column(String(255), default="")
    alias: Mapped[str] = mapped_column(String(255), default="", server_default="")
    speed_mbps: Mapped[int | None] = mapped_column(Integer, nullable=True)
    admin_status: Mapped[str] = mapped_column(String(10), default="unknown")
    oper_status: Mapped[str] = mapped_column(String(10), default="unknown")

    device: Mapped[Device] = relationship(back_populates="interfaces")


class Link(Base):
    """A topology link between two interfaces; stored with a_interface_id < b_interface_id."""

    __tablename__ = "links"
    __table_args__ = (
        UniqueConstraint("a_interface_id", "b_interface_id", name="uq_links_pair"),
        CheckConstraint("a_interface_id < b_interface_id", name="ordered_pair"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    a_interface_id: Mapped[int] = mapped_column(ForeignKey("interfaces.id", ondelete="CASCADE"), index=True)
    b_interface_id: Mapped[int] = mapped_column(ForeignKey("interfaces.id", ondelete="CASCADE"), index=True)
    source: Mapped[str] = mapped_column(String(12), default="manual")
    state: Mapped[str] = mapped_column(String(10), default="active")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    a_interface: Mapped[Interface] = relationship(foreign_keys=[a_interface_id])
    b_interface: Mapped[Interface] = relationship(foreign_keys=[b_interface_id])


class InventoryRevision(Base):
    """One row: a number every transaction that changes devices or interfaces increments, so a
    process that keeps a copy (the receivers' address -> device directory) notices a change made
    by another process (the CLI) with one cheap read instead of reloading everything."""

    __tablename__ = "inventory_revision"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    revision: Mapped[int] = mapped_column(Integer, default=0)
