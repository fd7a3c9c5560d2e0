"""Poller storage: latest state per device, and short-term samples for graphs."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, Float, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from faultloop.db import Base, UTCDateTime

# BIGINT on PostgreSQL; SQLite only auto-increments an INTEGER PRIMARY KEY.
SampleId = BigInteger().with_variant(Integer(), "sqlite")


class DevicePollState(Base):
    """What the last SNMP poll saw of one device (one row per polled device)."""

    __tablename__ = "device_poll_state"

    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"), primary_key=True)
    reachable: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    last_poll_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_error: Mapped[str] = mapped_column(String(255), default="")
    poll_duration_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    sys_uptime_cs: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    sys_descr: Mapped[str] = mapped_column(String(1024), default="")
    sys_name: Mapped[str] = mapped_column(String(255), default="")
    sys_location: Mapped[str] = mapped_column(String(255), default="", server_default="")
    sys_object_id: Mapped[str] = mapped_column(String(255), default="")
    cpu_percent: Mapped[float | None] = mapped_column(Float, nullable=True)
    memory_percent: Mapped[float | None] = mapped_column(Float, nullable=True)
    # Per-device overrides of the FAULTLOOP_POLL_* defaults (None: use the setting).
    poll_interval_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    poll_timeout_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    poll_retries: Mapped[int | None] = mapped_column(Integer, nullable=True)


class InterfaceSample(Base):
    """One metric value at one time; ``interface`` is "" for device-level metrics."""

    __tablename__ = "interface_samples"
    __table_args__ = (Index("ix_interface_samples_lookup", "device_id", "metric", "time"),)

    id: Mapped[int] = mapped_column(SampleId, primary_key=True, autoincrement=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"))
    interface: Mapped[str] = mapped_column(String(100), default="")
    metric: Mapped[str] = mapped_column(String(64))
    value: Mapped[float] = mapped_column(Float)
    time: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
