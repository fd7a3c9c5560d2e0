"""Tables of device access: the SSH host key pinned per device."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from faultloop.db import Base, UTCDateTime


class SshHostKey(Base):
    """The trusted SSH host key of a device, and a key offered but not trusted (pending an admin's accept)."""

    __tablename__ = "ssh_host_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"), unique=True)
    key_type: Mapped[str | None] = mapped_column(String(50), nullable=True)
    key_base64: Mapped[str | None] = mapped_column(Text, nullable=True)
    fingerprint: Mapped[str | None] = mapped_column(String(100), nullable=True)  # "SHA256:..."
    trusted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    trusted_by: Mapped[str | None] = mapped_column(String(100), nullable=True)  # "tofu" or a user name
    last_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    pending_key_type: Mapped[str | None] = mapped_column(String(50), nullable=True)
    pending_key_base64: Mapped[str | None] = mapped_column(Text, nullable=True)
    pending_fingerprint: Mapped[str | None] = mapped_column(String(100), nullable=True)
    pending_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
