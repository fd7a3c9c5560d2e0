"""The inventory's read API for the other packages: frozen snapshots, never ORM objects.

Other packages never import ``inventory.models`` (an import contract enforces it): they read
devices, interfaces, links and the topology through these functions, inside the caller's
session and transaction, and get plain values back that they cannot write through. Writes
to the inventory's tables go through ``inventory.service``.

Secrets stay encrypted in a snapshot (``*_enc``: Fernet tokens); the device access layer
decrypts them right before use.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from inventory.models import Device


@dataclass(frozen=True, slots=True)
class DeviceRecord:
    """One device as the other packages see it (secrets still encrypted)."""

    id: int
    hostname: str
    address: str
    site: str | None
    vendor: str
    platform: str
    device_type: str
    role: str
    tags: tuple[str, ...]

    snmp_version: str | None
    snmp_port: int
    snmp_community_enc: bytes | None
    snmp_user: str | None
    snmp_auth_protocol: str | None
    snmp_auth_key_enc: bytes | None
    snmp_priv_protocol: str | None
    snmp_priv_key_enc: bytes | None
    snmp_allow_weak: bool

    ssh_port: int
    ssh_username: str | None
    ssh_password_enc: bytes | None
    ssh_private_key_enc: bytes | None
    ssh_host_key_policy: str


def _record(d: Device) -> DeviceRecord:
    return DeviceRecord(
        id=d.id,
        hostname=d.hostname,
        address=d.address,
        site=d.site.name if d.site is not None else None,
        vendor=d.vendor,
        platform=d.platform,
        device_type=d.device_type,
        role=d.role,
        tags=tuple(d.tags or ()),
        snmp_version=d.snmp_version,
        snmp_port=d.snmp_port,
        snmp_community_enc=d.snmp_community_enc,
        snmp_user=d.snmp_user,
        snmp_auth_protocol=d.snmp_auth_protocol,
        snmp_auth_key_enc=d.snmp_auth_key_enc,
        snmp_priv_protocol=d.snmp_priv_protocol,
        snmp_priv_key_enc=d.snmp_priv_key_enc,
        snmp_allow_weak=d.snmp_allow_weak,
        ssh_port=d.ssh_port,
        ssh_username=d.ssh_username,
        ssh_password_enc=d.ssh_password_enc,
        ssh_private_key_enc=d.ssh_private_key_enc,
        ssh_host_key_policy=d.ssh_host_key_policy,
    )


def device(session: Session, device_id: int) -> DeviceRecord | None:
    """The device with this id, or None."""
    row = session.get(Device, device_id, options=[selectinload(Device.site)])
    return _record(row) if row is not None else None


def device_by_hostname(session: Session, hostname: str) -> DeviceRecord | None:
    row = session.scalar(select(Device).options(selectinload(Device.site)).where(Device.hostname == hostname))
    return _record(row) if row is not None else None


def devices(
    session: Session, *, ids: Iterable[int] | None = None, with_snmp: bool = False, with_ssh: bool = False
) -> list[DeviceRecord]:
    """Devices ordered by id; ``ids`` narrows to those, ``with_snmp`` / ``with_ssh`` to the
    devices that have SNMP settings / an SSH user."""
    query = select(Device).options(selectinload(Device.site)).order_by(Device.id)
    if ids is not None:
        wanted = sorted(set(ids))
        if not wanted:
            return []
        query = query.where(Device.id.in_(wanted))
    if with_snmp:
        query = query.where(Device.snmp_version.is_not(None))
    if with_ssh:
        query = query.where(Device.ssh_username.is_not(None))
    return [_record(d) for d in session.scalars(query)]
