"""Alarm tables: normalized events, alarms with their journal, maintenance windows.

The database is the source of truth: the engine rebuilds its in-memory indexes from
these tables at start. A partial unique index allows one *active* alarm per reduction
key, so a crash in the middle of a batch can never leave two.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from faultloop.db import Base, UTCDateTime
from faultloop.notify import OutboxColumns


class EventRecord(Base):
    """One normalized event as received; ``processed`` is false while it waits in the durable queue."""

    __tablename__ = "alarm_events"
    __table_args__ = (Index("ix_alarm_events_pending", "processed", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    time: Mapped[datetime] = mapped_column(UTCDateTime)
    source: Mapped[str] = mapped_column(String(20))
    device: Mapped[str] = mapped_column(String(255), default="")
    managed_object: Mapped[str] = mapped_column(String(255), default="")
    event_type: Mapped[str] = mapped_column(String(100))
    severity: Mapped[str] = mapped_column(String(16))
    probable_cause: Mapped[str] = mapped_column(String(100), default="")
    specific_problem: Mapped[str] = mapped_column(String(255), default="")
    description: Mapped[str] = mapped_column(Text, default="")
    raw: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    processed: Mapped[bool] = mapped_column(Boolean, default=True)
    action: Mapped[str] = mapped_column(String(12), default="")  # raise, dedup, clear, flap, ignored, pending
    reduction_key: Mapped[str | None] = mapped_column(String(500), nullable=True, index=True)
    alarm_id: Mapped[int | None] = mapped_column(
        ForeignKey("alarms.id", ondelete="SET NULL"), nullable=True, index=True
    )


class Alarm(Base):
    __tablename__ = "alarms"
    __table_args__ = (
        Index(
            "uq_alarms_active_reduction_key",
            "reduction_key",
            unique=True,
            sqlite_where=text("state = 'active'"),
            postgresql_where=text("state = 'active'"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    reduction_key: Mapped[str] = mapped_column(String(500), index=True)
    clear_key: Mapped[str] = mapped_column(String(500))
    alarm_type: Mapped[str] = mapped_column(String(100))
    rule: Mapped[str] = mapped_column(String(100), default="")
    source: Mapped[str] = mapped_column(String(20))
    device: Mapped[str] = mapped_column(String(255), index=True, default="")
    managed_object: Mapped[str] = mapped_column(String(255), default="")
    probable_cause: Mapped[str] = mapped_column(String(100), default="")
    specific_problem: Mapped[str] = mapped_column(String(255), default="")
    description: Mapped[str] = mapped_column(Text, default="")
    first_occurrence: Mapped[datetime] = mapped_column(UTCDateTime)
    last_occurrence: Mapped[datetime] = mapped_column(UTCDateTime)
    cleared_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    count: Mapped[int] = mapped_column(Integer, default=1)
    original_severity: Mapped[str] = mapped_column(String(16))
    severity: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(10), index=True)  # active, cleared
    flapping: Mapped[bool] = mapped_column(Boolean, default=False)
    acknowledged: Mapped[bool] = mapped_column(Boolean, default=False)
    ack_by: Mapped[str | None] = mapped_column(String(100), nullable=True)
    ack_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    root_cause: Mapped[bool] = mapped_column(Boolean, default=False)
    parent_id: Mapped[int | None] = mapped_column(
        ForeignKey("alarms.id", ondelete="SET NULL"), nullable=True, index=True
    )
    correlation_reason: Mapped[str | None] = mapped_column(String(500), nullable=True)
    muted: Mapped[bool] = mapped_column(Boolean, default=False)
    suppression_reason: Mapped[str | None] = mapped_column(String(500), nullable=True)
    ticket_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # customer service impact (alarm_service_impact holds which): counts for the console and filters
    services_affected: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    customers_affected: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class AlarmServiceImpact(Base):
    """One customer service an alarm affects, as the engine last computed it (kept once the alarm clears).

    ``how``: ``direct`` (a resource on the alarmed interface/VLAN/device), ``topology`` (its device is
    reachable only through the failed element) or ``child`` (a correlated child's impact, carried by
    the root cause). ``level``: ``down`` or ``degraded``.
    """

    __tablename__ = "alarm_service_impact"
    __table_args__ = (Index("ix_alarm_service_impact_customer", "customer", "alarm_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    alarm_id: Mapped[int] = mapped_column(ForeignKey("alarms.id", ondelete="CASCADE"), index=True)
    service_id: Mapped[int] = mapped_column(Integer, index=True)
    customer: Mapped[str] = mapped_column(String(120))
    service_type: Mapped[str] = mapped_column(String(64))
    sla_class: Mapped[str | None] = mapped_column(String(32), nullable=True)
    how: Mapped[str] = mapped_column(String(10))
    level: Mapped[str] = mapped_column(String(10))


class ServiceStatePeriod(Base):
    """One stretch of time a customer service was not up: ``degraded`` or ``down`` from ``started_at``
    until ``ended_at`` (None while it lasts). The alarm engine derives it from the active alarms'
    service impact and writes it in the transaction of the change; a service with no open row is up.
    ``alarm_id``: the worst active alarm that caused it when the period began (no foreign key:
    alarm retention must not erase the availability history). One open row per service (partial
    unique index)."""

    __tablename__ = "service_state_history"
    __table_args__ = (
        Index(
            "uq_service_state_open",
            "service_id",
            unique=True,
            sqlite_where=text("ended_at IS NULL"),
            postgresql_where=text("ended_at IS NULL"),
        ),
        Index("ix_service_state_history_service_time", "service_id", "started_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    service_id: Mapped[int] = mapped_column(Integer)
    customer: Mapped[str] = mapped_column(String(120), index=True)
    state: Mapped[str] = mapped_column(String(10))  # degraded, down
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    alarm_id: Mapped[int | None] = mapped_column(Integer, nullable=True)


class AlarmJournal(Base):
    """Every change of an alarm: who (``engine`` or a user), what, when, and the details."""

    __tablename__ = "alarm_journal"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    alarm_id: Mapped[int] = mapped_column(ForeignKey("alarms.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    actor: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(40))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class MaintenanceWindow(Base):
    """One-off (starts_at..ends_at) or recurring (rrule or cron, each occurrence lasting duration_s)."""

    __tablename__ = "maintenance_windows"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    rrule: Mapped[str | None] = mapped_column(String(500), nullable=True)
    cron: Mapped[str | None] = mapped_column(String(100), nullable=True)
    duration_s: Mapped[int | None] = mapped_column(Integer, nullable=True)
    devices: Mapped[list[str]] = mapped_column(JSON, default=list)
    sites: Mapped[list[str]] = mapped_column(JSON, default=list)
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    interfaces: Mapped[list[str]] = mapped_column(JSON, default=list)  # "hostname:ifname"
    reason: Mapped[str] = mapped_column(String(500), default="")
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Notification(OutboxColumns, Base):
    """The notification outbox: one row per (alarm change, channel), deleted never, delivered at least once.

    A row is marked delivered only after the channel accepted it; a crash in between sends
    it again (at-least-once). ``id`` goes out as the delivery id so receivers can dedupe.
    """

    __tablename__ = "alarm_notifications"
    __table_args__ = (Index("ix_alarm_notifications_due", "delivered_at", "next_attempt_at"),)

    alarm_id: Mapped[int] = mapped_column(ForeignKey("alarms.id", ondelete="CASCADE"), index=True)
    reason: Mapped[str] = mapped_column(String(20))  # raised, cleared, unmuted, escalated, renotify, escalation
