"""Hub subscriptions of the TMF APIs and the outbox of their events."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from faultloop.db import Base, UTCDateTime
from faultloop.notify import OutboxColumns


class HubSubscription(Base):
    """A listener registered with ``POST /tmf-api/<api>/v4/hub``: every event of ``api`` that its
    ``query`` selects is written to ``HubEvent`` in the transaction of the change."""

    __tablename__ = "tmf_hub_subscriptions"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)  # a UUID: TMF ids are strings
    api: Mapped[str] = mapped_column(String(40), index=True)  # alarmManagement, troubleTicket, ...
    callback: Mapped[str] = mapped_column(String(2000))
    query: Mapped[str] = mapped_column(String(2000), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_by: Mapped[str] = mapped_column(String(100))
    # active; failing once an event was given up (attempts ran out); a delivered event makes it active again
    state: Mapped[str] = mapped_column(String(20), default="active")
    failed_events: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(String(500), nullable=True)
    last_delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class HubEvent(OutboxColumns, Base):
    """One event for one subscription, delivered at least once; ``event_id`` is the same for every
    subscription that got the event (a listener deduplicates by it). ``channel`` is ``tmf-hub``,
    ``route`` the subscription's id; ``payload`` the whole envelope."""

    __tablename__ = "tmf_hub_events"
    __table_args__ = (Index("ix_tmf_hub_events_due", "delivered_at", "next_attempt_at"),)

    subscription_id: Mapped[str] = mapped_column(
        ForeignKey("tmf_hub_subscriptions.id", ondelete="CASCADE"), index=True
    )
    event_id: Mapped[str] = mapped_column(String(36))
    event_type: Mapped[str] = mapped_column(String(60))
