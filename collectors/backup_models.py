"""Tables of the SSH/CLI side of the collectors: config backups and the latest show results."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from faultloop.db import Base, UTCDateTime


class ConfigBackup(Base):
    """One stored version of a device's configuration; a new row only when the normalized text changed.

    The configuration may hold secrets (enable secrets, communities): it is stored encrypted
    with the vault (``text_encrypted``; read it through ``collectors.backup.backup_text``), and
    API routes that return it are restricted to admin, noc and provisioner. ``digest`` (an HMAC
    keyed from the vault, of the normalized text) finds unchanged captures without decrypting.

    ``text`` holds the plaintext of rows stored before migration h15backup_0001 until the first
    `faultloop db upgrade`, service start or `secrets rotate` with the key encrypts them
    (``seal_backups``); no new row is ever written with it.
    """

    __tablename__ = "config_backups"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"), index=True)
    taken_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # the latest capture whose normalized text equalled this version's
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    digest: Mapped[str | None] = mapped_column(String(64), nullable=True)  # None only on a row not yet sealed
    size: Mapped[int] = mapped_column(Integer)  # bytes of the raw text
    lines_added: Mapped[int] = mapped_column(Integer, default=0)
    lines_removed: Mapped[int] = mapped_column(Integer, default=0)
    trigger: Mapped[str] = mapped_column(String(20))  # "schedule" or "on_demand"
    actor: Mapped[str] = mapped_column(String(100))
    text_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    text: Mapped[str | None] = mapped_column(Text, nullable=True)  # legacy plaintext, see above


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
