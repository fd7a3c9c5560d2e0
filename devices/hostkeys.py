"""SSH host keys per device: strict, trust-on-first-use (default) or off.

The check runs inside paramiko's ``SSHClient.connect`` right after key exchange and
before any authentication method is tried, so a changed key aborts the connection
before the username or password leave this process. No known-hosts file is ever
loaded: every offered key goes through ``PinnedHostKeyPolicy`` and is compared with
the key stored in ``ssh_host_keys``; there is no path to paramiko's AutoAddPolicy.

A key that was refused (changed, or unknown under strict) is kept as *pending*; an
admin accepts it explicitly (API or CLI), which is audited.
"""

from __future__ import annotations

import base64
import hashlib
import logging
from dataclasses import dataclass
from typing import Any, Protocol

import paramiko
from sqlalchemy import select
from sqlalchemy.orm import Session

from devices.models import SshHostKey
from faultloop import clock
from faultloop.audit import service as audit
from faultloop.errors import Conflict, InvalidInput
from faultloop.events import Event

log = logging.getLogger("faultloop.devices.hostkeys")

POLICIES = ("strict", "tofu", "off")


class KeyedDevice(Protocol):
    """What the host key functions read of a device: an ``inventory.queries.DeviceRecord``, or
    the row ``inventory.service`` hands the API and the CLI (they check the device exists)."""

    @property
    def id(self) -> int: ...

    @property
    def hostname(self) -> str: ...

    @property
    def ssh_host_key_policy(self) -> str: ...


class HostKeyError(Exception):
    """The device's SSH host key is not trusted; the connection was closed before authentication."""

    def __init__(self, message: str, *, offered: OfferedKey) -> None:
        super().__init__(message)
        self.offered = offered


class HostKeyChanged(HostKeyError):
    def __init__(self, message: str, *, offered: OfferedKey, trusted: OfferedKey) -> None:
        super().__init__(message, offered=offered)
        self.trusted = trusted


class HostKeyUnknown(HostKeyError):
    """Policy strict and no key stored for the device."""


@dataclass(frozen=True, slots=True)
class OfferedKey:
    key_type: str  # e.g. "ssh-ed25519"
    key_base64: str
    fingerprint: str  # "SHA256:<base64 without padding>", as ssh-keygen -l prints it

    @classmethod
    def from_paramiko(cls, key: paramiko.PKey) -> OfferedKey:
        return cls(key.get_name(), key.get_base64(), fingerprint(key.get_base64()))

    def same_key(self, other: OfferedKey) -> bool:
        return self.key_type == other.key_type and self.key_base64 == other.key_base64


def fingerprint(key_base64: str) -> str:
    digest = hashlib.sha256(base64.b64decode(key_base64)).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


class PinnedHostKeyPolicy(paramiko.MissingHostKeyPolicy):
    """Decides on the key the server presented, before authentication.

    paramiko calls ``missing_host_key`` for every connection because the client has no
    host keys loaded. Raising here makes ``SSHClient.connect`` stop before ``_auth``.
    """

    def __init__(self, *, policy: str, trusted: OfferedKey | None, device: str) -> None:
        if policy not in POLICIES:
            raise ValueError(f"host key policy must be one of {', '.join(POLICIES)}, not {policy!r}")
        self.policy = policy
        self.trusted = trusted
        self.device = device
        self.offered: OfferedKey | None = None
        self.trusted_now = False  # set when TOFU trusts a first key

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        offered = OfferedKey.from_paramiko(key)
        self.offered = offered
        if self.policy == "off":
            log.warning(
                "%s: SSH host key not verified (policy off); offered %s %s",
                self.device,
                offered.key_type,
                offered.fingerprint,
            )
            return
        if self.trusted is None:
            if self.policy == "strict":
                client.close()
                raise HostKeyUnknown(
                    f"{self.device}: no trusted SSH host key and policy is strict; offered {offered.fingerprint} "
                    "(an admin can accept it: faultloop hostkey accept)",
                    offered=offered,
                )
            self.trusted_now = True
            return
        if offered.same_key(self.trusted):
            return
        client.close()
        raise HostKeyChanged(
            f"{self.device}: SSH host key changed: trusted {self.trusted.fingerprint}, offered {offered.fingerprint}; "
            "connection aborted before authentication",
            offered=offered,
            trusted=self.trusted,
        )


# ---- storage (plain functions over a Session; flush, never commit) -------------------


def get_host_key(session: Session, device_id: int) -> SshHostKey | None:
    return session.scalar(select(SshHostKey).where(SshHostKey.device_id == device_id))


def trusted_key(row: SshHostKey | None) -> OfferedKey | None:
    if row is None or not row.key_type or not row.key_base64 or not row.fingerprint:
        return None
    return OfferedKey(row.key_type, row.key_base64, row.fingerprint)


def _row(session: Session, device_id: int) -> SshHostKey:
    row = get_host_key(session, device_id)
    if row is None:
        row = SshHostKey(device_id=device_id)
        session.add(row)
    return row


def record_seen(session: Session, *, device_id: int, offered: OfferedKey, trust: bool) -> SshHostKey:
    """After a verified handshake: trust a first key (TOFU) or note when the trusted key was last seen."""
    row = _row(session, device_id)
    now = clock.now()
    if trust:
        row.key_type, row.key_base64, row.fingerprint = offered.key_type, offered.key_base64, offered.fingerprint
        row.trusted_at, row.trusted_by = now, "tofu"
    row.last_seen_at = now
    session.flush()
    return row


def record_pending(session: Session, *, device_id: int, offered: OfferedKey) -> SshHostKey:
    """A refused key: kept so an admin can compare fingerprints and accept it."""
    row = _row(session, device_id)
    row.pending_key_type, row.pending_key_base64 = offered.key_type, offered.key_base64
    row.pending_fingerprint, row.pending_seen_at = offered.fingerprint, clock.now()
    session.flush()
    return row


def accept_pending(
    session: Session, *, device: KeyedDevice, actor: str, expected_fingerprint: str | None
) -> SshHostKey:
    """Trust the pending key. With ``expected_fingerprint`` the admin confirms which key they checked."""
    row = get_host_key(session, device.id)
    if row is None or not row.pending_key_base64 or not row.pending_key_type or not row.pending_fingerprint:
        raise Conflict(f"device {device.hostname!r} has no pending SSH host key to accept")
    if expected_fingerprint is not None and expected_fingerprint != row.pending_fingerprint:
        raise InvalidInput(
            f"fingerprint: the pending key is {row.pending_fingerprint}, not {expected_fingerprint}",
            field="fingerprint",
        )
    before = {"fingerprint": row.fingerprint}
    row.key_type, row.key_base64 = row.pending_key_type, row.pending_key_base64
    row.fingerprint = row.pending_fingerprint
    row.trusted_at, row.trusted_by = clock.now(), actor
    row.pending_key_type = row.pending_key_base64 = row.pending_fingerprint = None
    row.pending_seen_at = None
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="ssh_host_key.accept",
        object_type="device",
        object_id=device.id,
        before=before,
        after={"fingerprint": row.fingerprint, "hostname": device.hostname},
    )
    return row


def forget(session: Session, *, device_id: int, actor: str, reason: str) -> None:
    """Drop the device's trusted and pending key: the next session meets the device as new.

    Used when the device's address changes: a pin belongs to the host that was at the old
    address, and a pending key offered there must not be accepted for the new one.
    """
    row = get_host_key(session, device_id)
    if row is None:
        return
    before = {"fingerprint": row.fingerprint, "pending_fingerprint": row.pending_fingerprint}
    session.delete(row)
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="ssh_host_key.forget",
        object_type="device",
        object_id=device_id,
        before=before,
        after={"reason": reason},
    )


def host_key_accepted_event(device: KeyedDevice, row: SshHostKey, *, actor: str) -> Event:
    """Clears the ``host_key_changed`` alarm of the device (same event type, severity cleared)."""
    return Event(
        source="api",
        device=device.hostname,
        event_type="host_key_changed",
        severity="cleared",
        time=clock.now(),
        specific_problem="SSH host key accepted",
        description=f"SSH host key {row.fingerprint} of {device.hostname} accepted by {actor}",
        raw={"fingerprint": row.fingerprint, "actor": actor},
    )


def host_key_out(device: KeyedDevice, row: SshHostKey | None) -> dict[str, Any]:
    return {
        "device_id": device.id,
        "hostname": device.hostname,
        "policy": device.ssh_host_key_policy,
        "key_type": row.key_type if row else None,
        "fingerprint": row.fingerprint if row else None,
        "trusted_at": row.trusted_at if row else None,
        "trusted_by": row.trusted_by if row else None,
        "last_seen_at": row.last_seen_at if row else None,
        "pending_key_type": row.pending_key_type if row else None,
        "pending_fingerprint": row.pending_fingerprint if row else None,
        "pending_seen_at": row.pending_seen_at if row else None,
    }
