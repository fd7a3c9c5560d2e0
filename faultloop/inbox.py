"""Exactly-once storage for messages that arrive at least once (the NATS transport).

The consumer claims each message id in the same transaction that stores what the message
carries: a redelivered message (its ack was lost, central crashed before acking, a collector
re-published after a lost publish ack) finds its id already claimed and stores nothing. Ids are
kept a little longer than the streams keep messages, then purged.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import String, delete, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from faultloop.db import Base, UTCDateTime, insert_rows

MSG_ID_MAX = 200


class InboxEntry(Base):
    __tablename__ = "broker_inbox"

    msg_id: Mapped[str] = mapped_column(String(MSG_ID_MAX), primary_key=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


def claim(session: Session, msg_ids: Iterable[str], *, now: datetime) -> set[str]:
    """Record the ids not seen before, in ``session``'s transaction; return those (the new ones).

    Two consumers claiming one id at once: the second transaction fails on the primary key and
    rolls back, and its batch is redelivered (then found claimed)."""
    wanted = {m[:MSG_ID_MAX] for m in msg_ids}
    if not wanted:
        return set()
    seen: set[str] = set()
    ordered = sorted(wanted)
    for start in range(0, len(ordered), 500):
        chunk = ordered[start : start + 500]
        seen.update(session.scalars(select(InboxEntry.msg_id).where(InboxEntry.msg_id.in_(chunk))))
    new = wanted - seen
    if new:
        insert_rows(session, InboxEntry.__table__, [{"msg_id": m, "received_at": now} for m in sorted(new)])  # type: ignore[arg-type]
    return new


def purge(session: Session, *, older_than: datetime) -> int:
    return session.execute(delete(InboxEntry).where(InboxEntry.received_at < older_than)).rowcount or 0  # type: ignore[attr-defined]
