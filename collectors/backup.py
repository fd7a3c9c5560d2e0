"""Config backup: running-config captured over SSH, stored as versions only when it changed.

"Changed" compares normalized text: volatile lines that a device rewrites without any
configuration change (IOS "! Last configuration change at", "! NVRAM config last updated",
"ntp clock-period", Junos "## Last commit:") are dropped before hashing and diffing.
The raw text is stored as captured, encrypted with the vault (it may hold secrets); an HMAC
of the normalized text keyed from the vault finds unchanged captures (Fernet tokens are
randomized, so ciphertexts never compare equal). A new version raises a ``config_changed`` event
(source "backup") after its transaction commits; the event carries line counts and ids,
never config text (it may hold secrets).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from prometheus_client import Counter
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from collectors.backup_models import ConfigBackup
from collectors.cli_commands import command_table
from devices.conn import DeviceConn
from devices.ssh import device_session, emit, write_transaction
from faultloop import clock
from faultloop.errors import InvalidInput, NotFound
from faultloop.events import Event, ObservationSink
from faultloop.metrics import REGISTRY
from faultloop.runtime import Runtime
from faultloop.vault import Vault
from inventory import queries
from inventory.queries import DeviceRecord

BACKUPS = Counter(
    "faultloop_config_backups_total",
    "Config backup attempts by result (new_version, unchanged, failed)",
    ["result"],
    registry=REGISTRY,
)

VOLATILE = tuple(
    re.compile(p)
    for p in (
        r"^! Last configuration change at ",
        r"^! NVRAM config last updated at ",
        r"^! No configuration change since last restart",
        r"^Building configuration\.\.\.",
        r"^Current configuration : \d+ bytes",
        r"^ntp clock-period ",
        r"^## Last commit: ",
        r"^## Last changed: ",
    )
)

Trigger = Literal["schedule", "on_demand"]


def normalize_config(text: str) -> str:
    """The text compared between versions: volatile lines dropped, line ends and trailing blanks unified."""
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    kept = [line for line in lines if not any(p.match(line) for p in VOLATILE)]
    return "\n".join(kept).strip("\n") + "\n"


def config_digest(vault: Vault, text: str) -> str:
    return vault.digest(normalize_config(text))


def backup_text(vault: Vault, row: ConfigBackup) -> str:
    """The stored configuration in clear (VaultError when the configured keys cannot open it)."""
    if row.text_encrypted is not None:
        return vault.decrypt(row.text_encrypted)
    return row.text or ""  # stored before h15backup_0001 and not sealed yet


def _same_config(vault: Vault, row: ConfigBackup, normalized: str) -> bool:
    if row.digest is not None:
        return row.digest in vault.digests(normalized)
    return normalize_config(backup_text(vault, row)) == normalized


def _diff_lines(old: str, new: str) -> list[str]:
    old_lines = normalize_config(old).splitlines() if old.strip() else []
    new_lines = normalize_config(new).splitlines()
    return list(difflib.unified_diff(old_lines, new_lines, lineterm=""))


def _count(diff: list[str]) -> tuple[int, int]:
    added = sum(1 for line in diff if line.startswith("+") and not line.startswith("+++"))
    removed = sum(1 for line in diff if line.startswith("-") and not line.startswith("---"))
    return added, removed


# ---- storage (plain functions over a Session; flush, never commit) -------------------


def latest_backup(session: Session, device_id: int) -> ConfigBackup | None:
    return session.scalar(
        select(ConfigBackup).where(ConfigBackup.device_id == device_id).order_by(ConfigBackup.id.desc()).limit(1)
    )


def store_backup(
    session: Session, vault: Vault, *, device: DeviceRecord, text: str, trigger: Trigger, actor: str,
    taken_at: datetime | None = None,
) -> tuple[ConfigBackup, ConfigBackup | None, bool]:
    """(version, previous version, created). Unchanged text only moves ``last_seen_at`` of the latest.
    ``taken_at``: when the text was captured (a collector's capture, stored later); default now."""
    if not text.strip():
        raise InvalidInput(f"device {device.hostname!r} returned an empty configuration", field="text")
    now = taken_at or clock.now()
    normalized = normalize_config(text)
    latest = latest_backup(session, device.id)
    if latest is not None and _same_config(vault, latest, normalized):
        latest.last_seen_at = now
        session.flush()
        return latest, None, False
    added, removed = _count(_diff_lines(backup_text(vault, latest) if latest else "", text))
    row = ConfigBackup(
        device_id=device.id,
        taken_at=now,
        last_seen_at=now,
        digest=vault.digest(normalized),
        size=len(text.encode()),
        lines_added=added,
        lines_removed=removed,
        trigger=trigger,
        actor=actor,
        text_encrypted=vault.encrypt(text),
        text=None,
    )
    session.add(row)
    session.flush()
    return row, latest, True


def _device(session: Session, device_id: int) -> DeviceRecord:
    device = queries.device(session, device_id)
    if device is None:
        raise NotFound(f"device {device_id} not found")
    return device


def list_backups(session: Session, *, device_id: int, limit: int, offset: int) -> tuple[list[ConfigBackup], int]:
    _device(session, device_id)
    query = select(ConfigBackup).where(ConfigBackup.device_id == device_id)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(query.order_by(ConfigBackup.id.desc()).limit(limit).offset(offset)).all()
    return list(rows), total


def get_backup(session: Session, *, device_id: int, backup_id: int) -> ConfigBackup:
    device = _device(session, device_id)
    row = session.get(ConfigBackup, backup_id)
    if row is None or row.device_id != device_id:
        raise NotFound(f"device {device.hostname!r} has no config backup {backup_id}")
    return row


def previous_backup(session: Session, row: ConfigBackup) -> ConfigBackup | None:
    return session.scalar(
        select(ConfigBackup)
        .where(ConfigBackup.device_id == row.device_id, ConfigBackup.id < row.id)
        .order_by(ConfigBackup.id.desc())
        .limit(1)
    )


@dataclass(frozen=True)
class BackupDiff:
    device: str
    old: ConfigBackup | None
    new: ConfigBackup
    text: str  # unified diff of the normalized texts; "" when equal


def diff_backups(
    session: Session, vault: Vault, *, device_id: int, backup_id: int, against: int | None = None
) -> BackupDiff:
    """Unified diff from ``against`` (default: the version before) to ``backup_id``."""
    new = get_backup(session, device_id=device_id, backup_id=backup_id)
    device = _device(session, device_id)
    if against is None:
        old = previous_backup(session, new)
    else:
        old = session.get(ConfigBackup, against)
        if old is None or old.device_id != device_id:
            raise InvalidInput(
                f"against: expected the id of another config backup of device {device.hostname!r}, got {against}",
                field="against",
            )
    old_name = f"{device.hostname} backup {old.id} ({old.taken_at.isoformat()})" if old else "(nothing)"
    new_name = f"{device.hostname} backup {new.id} ({new.taken_at.isoformat()})"
    lines = difflib.unified_diff(
        normalize_config(backup_text(vault, old)).splitlines() if old else [],
        normalize_config(backup_text(vault, new)).splitlines(),
        fromfile=old_name,
        tofile=new_name,
        lineterm="",
    )
    text = "\n".join(lines)
    return BackupDiff(device=device.hostname, old=old, new=new, text=text + "\n" if text else "")


def backup_out(row: ConfigBackup) -> dict[str, Any]:
    return {
        "id": row.id,
        "device_id": row.device_id,
        "taken_at": row.taken_at,
        "last_seen_at": row.last_seen_at,
        "digest": row.digest,
        "size": row.size,
        "lines_added": row.lines_added,
        "lines_removed": row.lines_removed,
        "trigger": row.trigger,
        "actor": row.actor,
    }


# ---- at rest: sealing rows stored in clear, re-encrypting under a new key -------------------

_BATCH = 100


def _rows(session: Session, *, unsealed_only: bool) -> Iterator[ConfigBackup]:
    """Every (or every unsealed) backup, ``_BATCH`` at a time by id, so a long history is never
    all in memory; each batch is flushed and let go before the next is read."""
    last = 0
    while True:
        query = select(ConfigBackup).where(ConfigBackup.id > last)
        if unsealed_only:
            query = query.where(ConfigBackup.text_encrypted.is_(None))
        batch = list(session.scalars(query.order_by(ConfigBackup.id).limit(_BATCH)))
        if not batch:
            return
        yield from batch
        last = batch[-1].id
        session.flush()
        for row in batch:
            session.expunge(row)


def _seal(vault: Vault, row: ConfigBackup, text: str) -> None:
    row.text_encrypted = vault.encrypt(text)
    row.digest = config_digest(vault, text)
    row.text = None


def seal_backups(session: Session, vault: Vault) -> int:
    """Encrypt the backups still stored in clear (rows from before h15backup_0001: a migration
    has no key). Run by `faultloop db upgrade`, at service start and by `secrets rotate`."""
    count = 0
    for row in _rows(session, unsealed_only=True):
        _seal(vault, row, row.text or "")
        count += 1
    session.flush()
    return count


def rotate_backups(session: Session, vault: Vault) -> int:
    """Re-encrypt and re-digest every backup under the vault's newest key (rows still in clear
    are sealed on the way). VaultError, and nothing changed, when one cannot be decrypted."""
    count = 0
    for row in _rows(session, unsealed_only=False):
        _seal(vault, row, backup_text(vault, row))
        count += 1
    session.flush()
    return count


# ---- the job: fetch over SSH, store, emit after commit -------------------------------


@dataclass(frozen=True)
class BackupOutcome:
    device_id: int
    hostname: str
    status: Literal["new_version", "unchanged", "first_version"]
    backup_id: int
    previous_id: int | None
    lines_added: int
    lines_removed: int
    summary: dict[str, Any]  # backup_out() of the version, read in the transaction that stored it


def fetch_config(conn: DeviceConn, device_type: str) -> str:
    """The running configuration, read with the platform's backup command (in enable mode where it needs it)."""
    spec = command_table().get(device_type)
    if spec is None:
        raise InvalidInput(f"device_type {device_type!r} has no backup command", field="device_type")
    if spec.privileged and not conn.check_enable_mode():
        conn.enable()
    return str(conn.send_command(spec.backup_command))


def backup_device(
    rt: Runtime,
    device_id: int,
    *,
    sink: ObservationSink | None,
    trigger: Trigger = "schedule",
    actor: str = "scheduler",
) -> BackupOutcome:
    """Back up one device now. Raises (NotFound, HostKeyError, DeviceUnreachable, ...) on failure."""
    try:
        with device_session(rt, device_id, sink=sink, source="backup") as conn:
            text = fetch_config(conn, conn.device_type)
        with write_transaction(rt) as session:
            device = _device(session, device_id)
            row, previous, created = store_backup(
                session, rt.vault, device=device, text=text, trigger=trigger, actor=actor
            )
            hostname = device.hostname
            summary = backup_out(row)
    except Exception:
        BACKUPS.labels(result="failed").inc()
        raise
    if not created:
        status: Literal["new_version", "unchanged", "first_version"] = "unchanged"
    else:
        status = "new_version" if previous is not None else "first_version"
    BACKUPS.labels(result="unchanged" if status == "unchanged" else "new_version").inc()
    outcome = BackupOutcome(
        device_id=device_id,
        hostname=hostname,
        status=status,
        backup_id=row.id,
        previous_id=previous.id if previous else None,
        lines_added=row.lines_added if created else 0,
        lines_removed=row.lines_removed if created else 0,
        summary=summary,
    )
    if status == "new_version":
        emit(sink, [config_changed_event(outcome, trigger=trigger, actor=actor)])
    return outcome


def config_changed_event(outcome: BackupOutcome, *, trigger: str, actor: str) -> Event:
    return Event(
        source="backup",
        device=outcome.hostname,
        event_type="config_changed",
        severity="warning",
        time=clock.now(),
        specific_problem="configuration changed",
        description=(
            f"configuration of {outcome.hostname} changed: +{outcome.lines_added} -{outcome.lines_removed} lines "
            f"(backup {outcome.previous_id} -> {outcome.backup_id})"
        ),
        raw={
            "backup_id": outcome.backup_id,
            "previous_backup_id": outcome.previous_id,
            "lines_added": outcome.lines_added,
            "lines_removed": outcome.lines_removed,
            "trigger": trigger,
            "actor": actor,
        },
    )
