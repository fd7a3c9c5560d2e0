"""TMF621 trouble tickets: what the TM Forum view keeps beside ticketing's own tables.

``TicketLink`` holds a ticket's ``externalId`` and ``ticketType`` (TMF attributes faultloop's ticket
has no column for) and, for a ticket an external service desk (ITSM) owns, its id there.
``ItsmOutbox`` holds what is to be sent to that service desk, written in the transaction of the
ticket change and sent at least once, in order per ticket (``northbound/itsm.py``).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from faultloop.db import Base, UTCDateTime
from faultloop.notify import OutboxColumns


class TicketLink(Base):
    """One ticket's TMF attributes. ``owner`` is ``itsm`` when the configured service desk owns the
    ticket (faultloop created it there; ``external_id`` is its id there once the create went through),
    empty when a TMF client created or tagged it (``external_id`` is what the client sent)."""

    __tablename__ = "tmf_ticket_links"

    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), primary_key=True)
    external_id: Mapped[str | None] = mapped_column(String(200), nullable=True, index=True)
    ticket_type: Mapped[str] = mapped_column(String(100), default="")
    owner: Mapped[str] = mapped_column(String(10), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    synced_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class ItsmOutbox(OutboxColumns, Base):
    """One request to the service desk: ``channel`` ``itsm``, ``route`` ``create`` (POST the ticket)
    or ``update`` (PATCH it); ``payload`` the TMF621 body."""

    __tablename__ = "itsm_outbox"
    __table_args__ = (Index("ix_itsm_outbox_due", "delivered_at", "next_attempt_at"),)

    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), index=True)
