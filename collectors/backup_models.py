"""Tables of the SSH/CLI side of the collectors: config backups and the latest show results."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from faultloop.db import Base, UTCDateTime


class ConfigBackup(Base):
    """One stored version of a device's configuration; a new row only when the normalized text changed.

    ``text`` may hold secrets (enable secrets, communities): API routes that return it are
    restricted to admin, noc and provisioner.
    """

    __tablename__ = "config_backups"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"), index=True)
    taken_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # the latest capture whose normalized text equalled this version's
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    sha256: Mapped[str] = mapped_column(String(64))  # of the normalized text
    size: Mapped[int] = mapped_column(Integer)  # bytes of the raw text
    lines_added: Mapped[int] = mapped_column(Integer, default=0)
    lines_removed: Mapped[int] = mapped_column(Integer, default=0)
    trigger: Mapped[str] = mapped_column(String(20))  # "schedule" or "on_demand"
    actor: Mapped[str] = mapped_column(String(100))
    text: Mapped[str] = mapped_column(Text)


class CliResult(Base):
    """The latest output of one show command on one device (raw, and parsed when a TextFSM template exists)."""

    __tablename__ = "cli_results"
    __table_args__ = (UniqueConstraint("device_id", "command", name="uq_cli_results_device_command"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"), index=True)
    command: Mapped[str] = mapped_column(String(200))
    taken_at: Mapped[datetime] = mapped_column(UTCDateTime)
    output: Mapped[str] = mapped_column(Text)
    parsed: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, nullable=True)
