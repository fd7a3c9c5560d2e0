"""Ticket tables: tickets, their alarms, the append-only timeline, technician profiles, idempotency keys.

``Ticket.active_key`` holds the root alarm's reduction key while the ticket is open and NULL
once it is closed or cancelled; a unique index on it makes "exactly one open ticket per root
cause" hold under concurrency and across restarts. ``Ticket.version`` is SQLAlchemy's
version counter (the ETag): every ORM UPDATE says ``WHERE version = :v`` and raises it, so of
two writers holding the same version exactly one wins. The one write that does not raise it is
the timer's routine advance of the SLA clocks (``service._store_clocks``: a Core UPDATE of
``sla.CLOCK_COLUMNS``, guarded by the same version), since nobody acts on elapsed seconds.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint, event
from sqlalchemy.orm import Mapped, mapped_column

from faultloop.db import Base, UTCDateTime
from faultloop.notify import OutboxColumns


class Ticket(Base):
    __tablename__ = "tickets"
    __table_args__ = (Index("ix_tickets_state_priority", "state", "priority"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    title: Mapped[str] = mapped_column(String(300))
    description: Mapped[str] = mapped_column(Text, default="")
    state: Mapped[str] = mapped_column(String(16), index=True)
    priority: Mapped[str] = mapped_column(String(2))
    severity: Mapped[str] = mapped_column(String(16), default="major")
    source: Mapped[str] = mapped_column(String(10))  # alarm, manual
    site: Mapped[str] = mapped_column(String(100), default="", index=True)
    device: Mapped[str] = mapped_column(String(255), default="", index=True)
    alarm_type: Mapped[str] = mapped_column(String(100), default="")
    root_key: Mapped[str | None] = mapped_column(String(500), nullable=True, index=True)
    active_key: Mapped[str | None] = mapped_column(String(500), nullable=True, unique=True)
    root_alarm_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    fault_category: Mapped[str] = mapped_column(String(100), default="")
    diagnosis: Mapped[str] = mapped_column(Text, default="")
    required_skill: Mapped[str] = mapped_column(String(50), default="")
    tier: Mapped[int] = mapped_column(Integer, default=1)
    assignee_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True, index=True
    )
    team: Mapped[str] = mapped_column(String(100), default="", index=True)
    eta: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    location_note: Mapped[str] = mapped_column(String(500), default="")
    cause_category: Mapped[str] = mapped_column(String(100), default="")
    action_taken: Mapped[str] = mapped_column(Text, default="")
    parts_used: Mapped[list[str]] = mapped_column(JSON, default=list)
    resolution_notes: Mapped[str] = mapped_column(Text, default="")
    rating: Mapped[int | None] = mapped_column(Integer, nullable=True)
    cancel_reason: Mapped[str] = mapped_column(String(500), default="")
    reopen_count: Mapped[int] = mapped_column(Integer, default=0)
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # SLA clocks: elapsed seconds (business seconds when the target says so), advanced up to sla_checked_at
    response_target_s: Mapped[float] = mapped_column(Float)
    restore_target_s: Mapped[float] = mapped_column(Float)
    business_hours: Mapped[bool] = mapped_column(Boolean, default=False)
    response_elapsed_s: Mapped[float] = mapped_column(Float, default=0.0)
    restore_elapsed_s: Mapped[float] = mapped_column(Float, default=0.0)
    sla_checked_at: Mapped[datetime] = mapped_column(UTCDateTime)
    response_warned: Mapped[bool] = mapped_column(Boolean, default=False)
    restore_warned: Mapped[bool] = mapped_column(Boolean, default=False)
    response_breached: Mapped[bool] = mapped_column(Boolean, default=False)
    restore_breached: Mapped[bool] = mapped_column(Boolean, default=False)
    # the highest SLA class among the customer services its alarms affect (None: device rules apply)
    sla_class: Mapped[str | None] = mapped_column(String(32), nullable=True)
    close_reason: Mapped[str] = mapped_column(String(100), default="", server_default="")

    __mapper_args__ = {"version_id_col": version}


class TicketAlarm(Base):
    """An alarm linked to a ticket: the root cause or a correlated child."""

    __tablename__ = "ticket_alarms"
    __table_args__ = (UniqueConstraint("ticket_id", "alarm_id", name="uq_ticket_alarms_ticket_alarm"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), index=True)
    alarm_id: Mapped[int] = mapped_column(Integer, index=True)
    reduction_key: Mapped[str] = mapped_column(String(500))
    role: Mapped[str] = mapped_column(String(8))  # root, child
    attached_at: Mapped[datetime] = mapped_column(UTCDateTime)
    archived_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class TicketEvent(Base):
    """The append-only timeline: who did what, when, from which state to which."""

    __tablename__ = "ticket_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    actor: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(40))
    from_state: Mapped[str | None] = mapped_column(String(16), nullable=True)
    to_state: Mapped[str | None] = mapped_column(String(16), nullable=True)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


@event.listens_for(TicketEvent, "before_update")
@event.listens_for(TicketEvent, "before_delete")
def _append_only(_mapper: Any, _conn: Any, target: TicketEvent) -> None:
    raise ValueError(f"ticket timeline entry {target.id} is append-only")


class TechnicianProfile(Base):
    __tablename__ = "technicians"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), unique=True)
    skills: Mapped[list[str]] = mapped_column(JSON, default=list)
    sites: Mapped[list[str]] = mapped_column(JSON, default=list)  # "*" = anywhere
    team: Mapped[str] = mapped_column(String(100), default="")
    tier: Mapped[int] = mapped_column(Integer, default=1)
    on_shift: Mapped[bool] = mapped_column(Boolean, default=True)
    # where a dispatch to this technician is announced: an e-mail address or a webhook URL (empty: nowhere)
    notify_to: Mapped[str] = mapped_column(String(1000), default="", server_default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class IdempotencyKey(Base):
    """A POST's Idempotency-Key, stored in the same transaction as the POST's effect."""

    __tablename__ = "ticket_idempotency_keys"
    __table_args__ = (UniqueConstraint("user_id", "key", name="uq_ticket_idempotency_keys_user_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(200))
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer)
    response: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class TicketNotification(OutboxColumns, Base):
    """The ticket notification outbox: one row per (ticket event, channel) or per technician notice,
    written in the transaction of the ticket change, delivered at least once (``ticketing/notify.py``).

    ``channel`` is a channel of the notification file, or ``technician`` for the notice to
    ``recipient_id`` (its address is read from the technician's profile when it is sent).
    """

    __tablename__ = "ticket_notifications"
    __table_args__ = (Index("ix_ticket_notifications_due", "delivered_at", "next_attempt_at"),)

    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), index=True)
    recipient_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    reason: Mapped[str] = mapped_column(String(20))  # created, dispatched, accepted, sla_warning, ...


class FaultReport(Base):
    """A fault a customer reported through the service desk, and the ticket that carries it.

    ``ref`` is what the customer is told (random, not a row number: it does not reveal how many
    reports exist, nor can it be guessed from another one). The service is named by id only:
    the service inventory is provisioning's, and ticketing does not reach into its tables.
    """

    __tablename__ = "fault_reports"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ref: Mapped[str] = mapped_column(String(20), unique=True)
    customer: Mapped[str] = mapped_column(String(120), index=True)
    service_id: Mapped[int] = mapped_column(Integer, index=True)
    customer_ref: Mapped[str] = mapped_column(String(120), default="")
    symptom: Mapped[str] = mapped_column(Text)
    contact: Mapped[str] = mapped_column(String(200))
    channel: Mapped[str] = mapped_column(String(10))  # phone, email, web, chat
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="RESTRICT"), index=True)
    correlated: Mapped[bool] = mapped_column(Boolean)  # joined a ticket already open for a network fault
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
