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
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, aliased, selectinload

from inventory.models import Device, Interface, InventoryRevision, Link, Site, device_dependencies


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
    collector_group: str = "default"


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
        collector_group=d.collector_group,
    )


def device(session: Session, device_id: int) -> DeviceRecord | None:
    """The device with this id, or None."""
    row = session.get(Device, device_id, options=[selectinload(Device.site)])
    return _record(row) if row is not None else None


def device_by_hostname(session: Session, hostname: str) -> DeviceRecord | None:
    row = session.scalar(select(Device).options(selectinload(Device.site)).where(Device.hostname == hostname))
    return _record(row) if row is not None else None


def collector_groups(session: Session) -> list[str]:
    """Every collector group some device names, sorted."""
    return sorted(session.scalars(select(Device.collector_group).distinct()))


def devices(
    session: Session,
    *,
    ids: Iterable[int] | None = None,
    with_snmp: bool = False,
    with_ssh: bool = False,
    collector_group: str | None = None,
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
    if collector_group is not None:
        query = query.where(Device.collector_group == collector_group)
    return [_record(d) for d in session.scalars(query)]


# ---- interfaces, links, the receivers' directory (collectors, the dashboard) -------------------


@dataclass(frozen=True, slots=True)
class InterfaceRecord:
    id: int
    device_id: int
    name: str
    if_index: int | None
    description: str
    alias: str  # the device's ifAlias at the last poll
    speed_mbps: int | None
    admin_status: str
    oper_status: str


def _interface_record(i: Interface) -> InterfaceRecord:
    return InterfaceRecord(
        id=i.id,
        device_id=i.device_id,
        name=i.name,
        if_index=i.if_index,
        description=i.description,
        alias=i.alias,
        speed_mbps=i.speed_mbps,
        admin_status=i.admin_status,
        oper_status=i.oper_status,
    )


def interfaces(session: Session, device_id: int) -> list[InterfaceRecord]:
    """The interfaces of one device, ordered by name (empty for an unknown device)."""
    rows = session.scalars(select(Interface).where(Interface.device_id == device_id).order_by(Interface.name))
    return [_interface_record(i) for i in rows]


def existing_device_ids(session: Session, ids: Iterable[int]) -> set[int]:
    """Which of ``ids`` are still in the inventory (one query for a whole batch)."""
    wanted = sorted(set(ids))
    if not wanted:
        return set()
    return set(session.scalars(select(Device.id).where(Device.id.in_(wanted))))


def existing_link_ids(session: Session, ids: Iterable[int]) -> set[int]:
    """Which of these link ids are still in the inventory (one query)."""
    wanted = sorted(set(ids))
    if not wanted:
        return set()
    return set(session.scalars(select(Link.id).where(Link.id.in_(wanted))))


def devices_by_name(session: Session, *, site: str | None = None) -> list[DeviceRecord]:
    """Devices ordered by hostname in the database's collation (as the pages list them);
    ``site`` narrows to one site by name."""
    query = select(Device).options(selectinload(Device.site)).order_by(Device.hostname)
    if site is not None:
        query = query.join(Site, Device.site_id == Site.id).where(Site.name == site)
    return [_record(d) for d in session.scalars(query)]


def known_oper_status(session: Session, *, device_ids: Iterable[int] | None = None) -> dict[int, dict[int, str]]:
    """Per device, {ifIndex: oper status} of the interfaces whose status a poll has set (not
    "unknown"); all devices, or only ``device_ids``."""
    return _per_if_index(session, Interface.oper_status, device_ids, Interface.oper_status != "unknown")


def known_interface_names(session: Session, *, device_ids: Iterable[int] | None = None) -> dict[int, dict[int, str]]:
    """Per device, {ifIndex: display name} of its interfaces that have an ifIndex (what polls and
    alarms call each port); all devices, or only ``device_ids``."""
    return _per_if_index(session, Interface.name, device_ids)


def _per_if_index(
    session: Session, column: Any, device_ids: Iterable[int] | None, *where: Any
) -> dict[int, dict[int, str]]:
    """{device id: {ifIndex: column}} over the interfaces that have an ifIndex."""
    query = select(Interface.device_id, Interface.if_index, column).where(Interface.if_index.is_not(None), *where)
    if device_ids is not None:
        wanted = sorted(set(device_ids))
        if not wanted:
            return {}
        query = query.where(Interface.device_id.in_(wanted))
    out: dict[int, dict[int, str]] = {}
    for device_id, if_index, value in session.execute(query):
        out.setdefault(device_id, {})[if_index] = value
    return out


def revision(session: Session) -> int:
    """The inventory's change counter: it moves whenever devices, addresses or interfaces change."""
    return session.scalar(select(InventoryRevision.revision).where(InventoryRevision.id == 1)) or 0


def device_addresses(session: Session, *, collector_group: str | None = None) -> list[tuple[str, str]]:
    """(hostname, management address) of every device (of one collector group, if given)."""
    query = select(Device.hostname, Device.address)
    if collector_group is not None:
        query = query.where(Device.collector_group == collector_group)
    return [(h, a) for h, a in session.execute(query)]


def interface_names(session: Session, *, collector_group: str | None = None) -> list[tuple[str, int, str]]:
    """(hostname, ifIndex, interface name) of every interface that has an ifIndex."""
    query = (
        select(Device.hostname, Interface.if_index, Interface.name)
        .join(Interface, Interface.device_id == Device.id)
        .where(Interface.if_index.is_not(None))
    )
    if collector_group is not None:
        query = query.where(Device.collector_group == collector_group)
    rows = session.execute(query)
    return [(h, int(i), n) for h, i, n in rows if i is not None]


@dataclass(frozen=True, slots=True)
class LinkRecord:
    """A link with both ends (stored with ``a.id < b.id``)."""

    id: int
    source: str
    state: str
    a: InterfaceRecord
    b: InterfaceRecord


def _interface_columns(i: Any) -> tuple[Any, ...]:
    return (
        i.id, i.device_id, i.name, i.if_index, i.description, i.alias, i.speed_mbps, i.admin_status, i.oper_status
    )  # fmt: skip


def links(session: Session) -> list[LinkRecord]:
    """Every link with both ends, ordered by id, in one query (columns, no ORM objects)."""
    a, b = aliased(Interface), aliased(Interface)
    query = (
        select(Link.id, Link.source, Link.state, *_interface_columns(a), *_interface_columns(b))
        .join(a, Link.a_interface_id == a.id)
        .join(b, Link.b_interface_id == b.id)
        .order_by(Link.id)
    )
    return [
        LinkRecord(id=r[0], source=r[1], state=r[2], a=InterfaceRecord(*r[3:12]), b=InterfaceRecord(*r[12:21]))
        for r in session.execute(query)
    ]


# ---- sites (provisioning's VLAN pools are per site) ---------------------------------------------


def site_id(session: Session, name: str) -> int | None:
    """The id of the site with this name, or None."""
    return session.scalar(select(Site.id).where(Site.name == name))


def site_name(session: Session, site_id: int) -> str | None:
    """The name of the site with this id, or None."""
    return session.scalar(select(Site.name).where(Site.id == site_id))


# ---- device scope, the topology, link peers (alarms, notifications, ticketing) --------------------


@dataclass(frozen=True, slots=True)
class DeviceScope:
    """Where a device sits and what it is: what notification routes, maintenance windows, the
    alarm engine's topology and ticket priorities match on."""

    id: int
    hostname: str
    site: str | None
    role: str
    tags: tuple[str, ...]


def _scopes() -> Any:
    return select(Device.id, Device.hostname, Site.name, Device.role, Device.tags).outerjoin(
        Site, Site.id == Device.site_id
    )


def _scope(row: Any) -> DeviceScope:
    return DeviceScope(id=row[0], hostname=row[1], site=row[2], role=row[3], tags=tuple(row[4] or ()))


def device_scope(session: Session, hostname: str) -> DeviceScope | None:
    """The scope of the device with this hostname, or None."""
    row = session.execute(_scopes().where(Device.hostname == hostname)).first()
    return _scope(row) if row is not None else None


def device_places() -> Any:
    """A subquery (hostname, device_id, site) of every device, for a read that joins its own rows
    to where their devices are in one statement (the alarm console's page)."""
    return (
        select(Device.hostname.label("hostname"), Device.id.label("device_id"), Site.name.label("site"))
        .outerjoin(Site, Site.id == Device.site_id)
        .subquery("device_places")
    )


def hostnames_at_site(session: Session, site: str) -> list[str]:
    """The hostnames of the devices at the site with this name (empty for an unknown site)."""
    return list(session.scalars(select(Device.hostname).join(Site, Site.id == Device.site_id).where(Site.name == site)))


@dataclass(frozen=True, slots=True)
class TopologyLink:
    id: int
    a: tuple[str, str]  # (hostname, interface name)
    b: tuple[str, str]


@dataclass(frozen=True, slots=True)
class Topology:
    """The graph the alarm engine correlates and suppresses over."""

    devices: tuple[DeviceScope, ...]  # ordered by id
    links: tuple[TopologyLink, ...]  # the active links, ordered by id
    dependencies: tuple[tuple[str, str], ...]  # (child hostname, parent hostname)


def topology(session: Session) -> Topology:
    """Devices, active links and declared dependencies, in three queries (columns, no ORM objects)."""
    devices = tuple(_scope(row) for row in session.execute(_scopes().order_by(Device.id)))
    names = {d.id: d.hostname for d in devices}
    a_if, b_if, a_dev, b_dev = aliased(Interface), aliased(Interface), aliased(Device), aliased(Device)
    link_rows = session.execute(
        select(Link.id, a_dev.hostname, a_if.name, b_dev.hostname, b_if.name)
        .join(a_if, a_if.id == Link.a_interface_id)
        .join(a_dev, a_dev.id == a_if.device_id)
        .join(b_if, b_if.id == Link.b_interface_id)
        .join(b_dev, b_dev.id == b_if.device_id)
        .where(Link.state == "active")
        .order_by(Link.id)
    )
    dependency_rows = session.execute(select(device_dependencies.c.child_id, device_dependencies.c.parent_id))
    return Topology(
        devices=devices,
        links=tuple(TopologyLink(id=i, a=(ah, an), b=(bh, bn)) for i, ah, an, bh, bn in link_rows),
        dependencies=tuple((names[child], names[parent]) for child, parent in dependency_rows),
    )


def link_peer(session: Session, hostname: str, interface: str) -> tuple[str, str] | None:
    """(hostname, interface name) at the far end of the link on this device's interface (a link
    in any state), or None when the interface is unknown or on no link."""
    here = session.scalar(
        select(Interface.id)
        .join(Device, Device.id == Interface.device_id)
        .where(Device.hostname == hostname, Interface.name == interface)
    )
    if here is None:
        return None
    link = session.execute(
        select(Link.a_interface_id, Link.b_interface_id)
        .where((Link.a_interface_id == here) | (Link.b_interface_id == here))
        .order_by(Link.id)
        .limit(1)
    ).first()
    if link is None:
        return None
    far = link[1] if link[0] == here else link[0]
    row = session.execute(
        select(Device.hostname, Interface.name)
        .join(Device, Device.id == Interface.device_id)
        .where(Interface.id == far)
    ).first()
    return (row[0], row[1]) if row is not None else None
