"""Inventory services: plain functions over a Session; they flush, never commit."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import String, bindparam, cast, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from faultloop import clock
from faultloop.audit import service as audit
from faultloop.db import like_literal
from faultloop.signals import INVENTORY_CHANGED
from faultloop.vault import Vault
from inventory.errors import Conflict, Forbidden, InvalidInput, NotFound
from inventory.models import Device, Interface, InventoryRevision, Link, Site
from inventory.rules import display_name
from inventory.schemas import (
    IF_STATUSES,
    DeviceIn,
    DeviceOut,
    DeviceUpdate,
    InterfaceIn,
    InterfaceUpdate,
    InventoryDoc,
    LinkEnd,
    LinkIn,
    LinkOut,
    ObservedInterface,
    ObservedNeighbor,
    SiteIn,
    SketchDevice,
    SketchLink,
    SnmpIn,
    SnmpOut,
    SshIn,
    SshOut,
)

# ---- change notification ---------------------------------------------------------------


def _inventory_changed(session: Session) -> None:
    """Devices, addresses or interfaces changed in this transaction: bump the stored revision
    (another process, e.g. the service while the CLI writes, notices it with one read) and, after
    the commit, tell this process's subscribers (the receivers' directory reloads at once)."""
    if INVENTORY_CHANGED.pending(session):
        return
    bumped = session.execute(
        update(InventoryRevision).where(InventoryRevision.id == 1).values(revision=InventoryRevision.revision + 1)
    )
    if getattr(bumped, "rowcount", 1) == 0:  # a database created without the migration's row
        session.add(InventoryRevision(id=1, revision=1))
        session.flush()
    INVENTORY_CHANGED.notify(session)


# ---- sites -------------------------------------------------------------------------


def list_sites(session: Session) -> list[Site]:
    return list(session.scalars(select(Site).order_by(Site.name)))


def get_site(session: Session, site_id: int) -> Site:
    site = session.get(Site, site_id)
    if site is None:
        raise NotFound(f"site {site_id} not found")
    return site


def site_by_name(session: Session, name: str, *, field: str = "site") -> Site:
    site = session.scalar(select(Site).where(Site.name == name))
    if site is None:
        raise InvalidInput(f"{field}: unknown site {name!r}", field=field)
    return site


def create_site(session: Session, data: SiteIn, *, actor: str) -> Site:
    if session.scalar(select(Site).where(Site.name == data.name)):
        raise Conflict(f"site {data.name!r} already exists", field="name")
    site = Site(name=data.name, description=data.description, created_at=clock.now())
    session.add(site)
    session.flush()
    audit.record(
        session, actor=actor, action="site.create", object_type="site", object_id=site.id, after=data.model_dump()
    )
    return site


def update_site(session: Session, site_id: int, data: SiteIn, *, actor: str) -> Site:
    site = get_site(session, site_id)
    before = {"name": site.name, "description": site.description}
    if data.name != site.name and session.scalar(select(Site).where(Site.name == data.name)):
        raise Conflict(f"site {data.name!r} already exists", field="name")
    site.name, site.description = data.name, data.description
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="site.update",
        object_type="site",
        object_id=site.id,
        before=before,
        after=data.model_dump(),
    )
    return site


def delete_site(session: Session, site_id: int, *, actor: str) -> None:
    site = get_site(session, site_id)
    count = session.scalar(select(func.count()).select_from(Device).where(Device.site_id == site.id)) or 0
    if count:
        raise Conflict(f"site {site.name!r} still has {count} device(s)")
    audit.record(
        session,
        actor=actor,
        action="site.delete",
        object_type="site",
        object_id=site.id,
        before={"name": site.name, "description": site.description},
    )
    session.delete(site)
    session.flush()


# ---- devices -----------------------------------------------------------------------


def _device_query() -> Any:
    return select(Device).options(
        selectinload(Device.site), selectinload(Device.parents), selectinload(Device.interfaces)
    )


def get_device(session: Session, device_id: int) -> Device:
    device = session.scalar(_device_query().where(Device.id == device_id))
    if device is None:
        raise NotFound(f"device {device_id} not found")
    return device


def device_by_hostname(session: Session, hostname: str) -> Device:
    device = session.scalar(_device_query().where(Device.hostname == hostname))
    if device is None:
        raise NotFound(f"device {hostname!r} not found")
    return device


def list_devices(
    session: Session,
    *,
    limit: int,
    offset: int,
    site: str | None = None,
    role: str | None = None,
    vendor: str | None = None,
    tag: str | None = None,
    q: str | None = None,
) -> tuple[list[Device], int]:
    query = select(Device)
    if site:
        query = query.join(Site, Device.site_id == Site.id).where(Site.name == site)
    if role:
        query = query.where(Device.role == role)
    if vendor:
        query = query.where(Device.vendor == vendor)
    if tag:
        query = query.where(cast(Device.tags, String).like(f'%"{like_literal(tag)}"%', escape="\\"))
    if q:
        pattern = f"%{like_literal(q)}%"
        query = query.where(or_(Device.hostname.like(pattern, escape="\\"), Device.address.like(pattern, escape="\\")))
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    ids = session.scalars(query.with_only_columns(Device.id).order_by(Device.hostname).limit(limit).offset(offset))
    id_list = list(ids)
    rows = session.scalars(_device_query().where(Device.id.in_(id_list)).order_by(Device.hostname)).all()
    return list(rows), total


def _apply_snmp(device: Device, snmp: SnmpIn | None, vault: Vault) -> None:
    def enc(secret: Any) -> bytes | None:
        return vault.encrypt(secret.get_secret_value()) if secret is not None else None

    if snmp is None:
        device.snmp_version = None
        device.snmp_community_enc = device.snmp_auth_key_enc = device.snmp_priv_key_enc = None
        device.snmp_user = device.snmp_auth_protocol = device.snmp_priv_protocol = None
        device.snmp_allow_weak = False
        return
    device.snmp_version = snmp.version
    device.snmp_port = snmp.port
    device.snmp_community_enc = enc(snmp.community)
    device.snmp_user = snmp.user
    device.snmp_auth_protocol = snmp.auth_protocol
    device.snmp_auth_key_enc = enc(snmp.auth_key)
    device.snmp_priv_protocol = snmp.priv_protocol
    device.snmp_priv_key_enc = enc(snmp.priv_key)
    device.snmp_allow_weak = snmp.allow_weak


def _apply_ssh(device: Device, ssh: SshIn | None, vault: Vault) -> None:
    if ssh is None:
        device.ssh_username = None
        device.ssh_password_enc = device.ssh_private_key_enc = None
        return
    device.ssh_port = ssh.port
    device.ssh_username = ssh.username
    device.ssh_password_enc = vault.encrypt(ssh.password.get_secret_value()) if ssh.password else None
    device.ssh_private_key_enc = vault.encrypt(ssh.private_key.get_secret_value()) if ssh.private_key else None
    device.ssh_host_key_policy = ssh.host_key_policy


def _resolve_parents(session: Session, names: Iterable[str], *, field: str = "parents") -> list[Device]:
    names = list(names)
    found = {d.hostname: d for d in session.scalars(select(Device).where(Device.hostname.in_(names)))}
    missing = [n for n in names if n not in found]
    if missing:
        raise InvalidInput(f"{field}: unknown device(s) {', '.join(missing)}", field=field)
    return [found[n] for n in names]


def create_device(session: Session, vault: Vault, data: DeviceIn, *, actor: str) -> Device:
    if session.scalar(select(Device.id).where(Device.hostname == data.hostname)):
        raise Conflict(f"device with hostname {data.hostname!r} already exists", field="hostname")
    now = clock.now()
    device = Device(
        hostname=data.hostname,
        address=data.address,
        site=site_by_name(session, data.site) if data.site else None,
        vendor=data.vendor,
        platform=data.platform,
        device_type=data.device_type,
        role=data.role,
        tags=data.tags,
        collector_group=data.collector_group,
        created_at=now,
        updated_at=now,
    )
    session.add(device)
    _apply_snmp(device, data.snmp, vault)
    _apply_ssh(device, data.ssh, vault)
    device.parents = _resolve_parents(session, data.parents)
    device.interfaces = [Interface(**itf.model_dump()) for itf in data.interfaces]
    try:
        session.flush()
    except IntegrityError:
        raise Conflict(f"device with hostname {data.hostname!r} already exists", field="hostname") from None
    audit.record(
        session, actor=actor, action="device.create", object_type="device", object_id=device.id, after=device.summary()
    )
    _inventory_changed(session)
    return device


def update_device(
    session: Session,
    vault: Vault,
    device_id: int,
    data: DeviceUpdate,
    *,
    actor: str,
    actor_is_admin: bool,
    forget_host_key: Callable[[int], None],
) -> Device:
    """Change a device. A new address invalidates what was trusted for the old one.

    The stored community, USM keys and SSH secrets were given for the old address: sent to a
    new one they would go to whoever answers there. So a new address needs the credentials
    re-entered in the same request (``snmp`` / ``ssh``, or null to drop them), unless an admin
    asks for ``keep_credentials`` (audited). The SSH host key pin of the old address is
    forgotten through ``forget_host_key`` (device access owns that table).
    """
    device = get_device(session, device_id)
    before = device.summary()
    fields = data.model_fields_set
    readdressed = "address" in fields and data.address is not None and data.address != device.address
    kept = _stored_secrets(device) if readdressed else []
    if readdressed:
        _check_credentials_follow(device, data, actor_is_admin=actor_is_admin)
    for name in ("address", "vendor", "platform", "device_type", "role", "tags", "collector_group"):
        if name in fields:
            value = getattr(data, name)
            if value is None:
                raise InvalidInput(f"{name}: must not be null", field=name)
            setattr(device, name, value)
    if "site" in fields:
        device.site = site_by_name(session, data.site) if data.site else None
    if "parents" in fields:
        parents = data.parents or []
        if device.hostname in parents:
            raise InvalidInput("parents: a device cannot depend on itself", field="parents")
        device.parents = _resolve_parents(session, parents)
    if "snmp" in fields:
        _apply_snmp(device, data.snmp, vault)
    if "ssh" in fields:
        _apply_ssh(device, data.ssh, vault)
    device.updated_at = clock.now()
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="device.update",
        object_type="device",
        object_id=device.id,
        before=before,
        after=device.summary(),
    )
    _inventory_changed(session)
    if readdressed:
        if data.keep_credentials:
            audit.record(
                session,
                actor=actor,
                action="device.readdress_keep_credentials",
                object_type="device",
                object_id=device.id,
                before={"address": before.get("address")},
                after={"address": device.address, "kept": [k for k in kept if k not in data.model_fields_set]},
            )
        forget_host_key(device.id)
    return device


def _stored_secrets(device: Device) -> list[str]:
    """Which secret-bearing credential sets the device holds (names only)."""
    kinds = []
    if device.snmp_community_enc or device.snmp_auth_key_enc or device.snmp_priv_key_enc:
        kinds.append("snmp")
    if device.ssh_password_enc or device.ssh_private_key_enc:
        kinds.append("ssh")
    return kinds


def _check_credentials_follow(device: Device, data: DeviceUpdate, *, actor_is_admin: bool) -> None:
    if data.keep_credentials:
        if not actor_is_admin:
            raise Forbidden(
                "keep_credentials: only an admin may keep the stored credentials for a new address",
                field="keep_credentials",
            )
        return
    for kind in _stored_secrets(device):
        if kind not in data.model_fields_set:
            raise InvalidInput(
                f"{kind}: the address changes from {device.address} to {data.address}; re-enter the {kind.upper()} "
                f"credentials in the same request ({kind}: null drops them; an admin may send keep_credentials: true)",
                field=kind,
            )


def delete_device(session: Session, device_id: int, *, actor: str) -> None:
    device = get_device(session, device_id)
    audit.record(
        session, actor=actor, action="device.delete", object_type="device", object_id=device.id, before=device.summary()
    )
    session.delete(device)
    session.flush()
    _inventory_changed(session)


def device_out(device: Device) -> DeviceOut:
    snmp = None
    if device.snmp_version:
        snmp = SnmpOut(
            version=device.snmp_version,
            port=device.snmp_port,
            user=device.snmp_user,
            auth_protocol=device.snmp_auth_protocol,
            priv_protocol=device.snmp_priv_protocol,
            has_community=device.snmp_community_enc is not None,
            has_auth_key=device.snmp_auth_key_enc is not None,
            has_priv_key=device.snmp_priv_key_enc is not None,
        )
    ssh = None
    if device.ssh_username:
        ssh = SshOut(
            port=device.ssh_port,
            username=device.ssh_username,
            host_key_policy=device.ssh_host_key_policy,
            has_password=device.ssh_password_enc is not None,
            has_private_key=device.ssh_private_key_enc is not None,
        )
    return DeviceOut(
        id=device.id,
        hostname=device.hostname,
        address=device.address,
        site=device.site.name if device.site else None,
        vendor=device.vendor,
        platform=device.platform,
        device_type=device.device_type,
        role=device.role,
        tags=list(device.tags or []),
        collector_group=device.collector_group,
        parents=[p.hostname for p in device.parents],
        snmp=snmp,
        ssh=ssh,
    )


# ---- interfaces --------------------------------------------------------------------


def get_interface(session: Session, interface_id: int) -> Interface:
    itf = session.get(Interface, interface_id)
    if itf is None:
        raise NotFound(f"interface {interface_id} not found")
    return itf


def list_interfaces(session: Session, *, device_id: int) -> list[Interface]:
    get_device(session, device_id)
    return list(session.scalars(select(Interface).where(Interface.device_id == device_id).order_by(Interface.name)))


def create_interface(session: Session, *, device_id: int, data: InterfaceIn, actor: str) -> Interface:
    device = get_device(session, device_id)
    if any(i.name == data.name for i in device.interfaces):
        raise Conflict(f"interface {data.name!r} already exists on {device.hostname}", field="name")
    _check_if_index_free(device, data.if_index, keep=None)
    itf = Interface(device_id=device.id, **data.model_dump())
    session.add(itf)
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="interface.create",
        object_type="interface",
        object_id=itf.id,
        after={"device": device.hostname, **data.model_dump()},
    )
    _inventory_changed(session)
    return itf


def _check_if_index_free(device: Device, if_index: int | None, *, keep: Interface | None) -> None:
    """One interface per ifIndex on a device (polls identify ports by it)."""
    if if_index is None:
        return
    for other in device.interfaces:
        if other.if_index == if_index and other is not keep:
            raise Conflict(
                f"if_index: {if_index} is already interface {other.name!r} of {device.hostname}", field="if_index"
            )


def update_interface(session: Session, interface_id: int, data: InterfaceUpdate, *, actor: str) -> Interface:
    itf = get_interface(session, interface_id)
    if "if_index" in data.model_fields_set:
        _check_if_index_free(itf.device, data.if_index, keep=itf)
    before = {"if_index": itf.if_index, "description": itf.description, "speed_mbps": itf.speed_mbps}
    for name in data.model_fields_set:
        value = getattr(data, name)
        if name == "description" and value is None:
            raise InvalidInput("description: must not be null", field="description")
        setattr(itf, name, value)
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="interface.update",
        object_type="interface",
        object_id=itf.id,
        before=before,
        after={"if_index": itf.if_index, "description": itf.description, "speed_mbps": itf.speed_mbps},
    )
    _inventory_changed(session)
    return itf


def delete_interface(session: Session, interface_id: int, *, actor: str) -> None:
    itf = get_interface(session, interface_id)
    audit.record(
        session,
        actor=actor,
        action="interface.delete",
        object_type="interface",
        object_id=itf.id,
        before={"device_id": itf.device_id, "name": itf.name},
    )
    session.delete(itf)
    session.flush()
    _inventory_changed(session)


@dataclass(frozen=True, slots=True)
class InterfaceSync:
    """What ``sync_interfaces`` did: the display name of every observed ifIndex it stored, and the
    ports it refused to add (the device already holds ``max_interfaces`` rows)."""

    names: dict[int, str]
    refused: int = 0


def sync_interfaces(
    session: Session,
    *,
    device_id: int,
    observed: Iterable[ObservedInterface],
    max_interfaces: int | None = None,
    complete: bool = True,
) -> InterfaceSync:
    """What a poll read from the device's IF-MIB. A port is identified by its ifIndex: a row that
    has it keeps its name (stable, whatever the device now calls the port) and takes the status,
    speed and ifAlias (``alias``) read. A port without one takes a row of the same name that no
    observed ifIndex holds (an imported port learning its ifIndex, or a renumbered one), else a
    new row: its display name is the ifName, or ``<ifName>#<ifIndex>`` when the device repeats a
    name, its description the ifAlias (an operator's description is never overwritten). A device
    that already holds ``max_interfaces`` rows gets no new one (counted in ``refused``). A poll
    that read only part of the table (``complete=False``) never takes over a row that has an
    ifIndex: the port it belongs to may just not have been read."""
    observed = sorted(observed, key=lambda o: o.if_index)
    for itf in observed:  # checked before anything is written
        for name in ("admin_status", "oper_status"):
            if getattr(itf, name) not in IF_STATUSES:
                raise InvalidInput(f"{name}: expected one of {', '.join(IF_STATUSES)}", field=name)
    if max_interfaces is not None and max_interfaces < 0:
        raise InvalidInput("max_interfaces: expected a number >= 0", field="max_interfaces")
    existing = list(session.scalars(select(Interface).where(Interface.device_id == device_id)))
    by_index = {i.if_index: i for i in existing if i.if_index is not None}
    by_name = {i.name: i for i in existing}
    seen = {o.if_index for o in observed}
    rows = len(existing)
    names: dict[int, str] = {}
    refused = 0
    changed = False
    for itf in observed:
        if itf.if_index in names:  # the same ifIndex twice in one walk: the first row counts
            continue
        row = by_index.get(itf.if_index)
        if row is None:
            free = by_name.get(itf.name[:100])
            if free is not None and (free.if_index is None or (complete and free.if_index not in seen)):
                row = free
                if free.if_index is not None:
                    by_index.pop(free.if_index, None)
                by_index[itf.if_index] = row
        if row is None:  # the device has a port the inventory does not know yet
            if max_interfaces is not None and rows >= max_interfaces:
                refused += 1
                continue
            row = Interface(
                device_id=device_id, name=display_name(itf.name, itf.if_index, by_name), description=itf.alias[:255]
            )
            session.add(row)
            by_name[row.name] = by_index[itf.if_index] = row
            rows += 1
        changed = changed or row.if_index != itf.if_index
        row.if_index = itf.if_index
        row.alias = itf.alias[:255]
        row.admin_status = itf.admin_status
        row.oper_status = itf.oper_status
        if itf.speed_bps:
            row.speed_mbps = itf.speed_bps // 1_000_000
        names[itf.if_index] = row.name
    session.flush()
    if changed:  # ifIndex -> name is what the receivers map; status and speed are not
        _inventory_changed(session)
    return InterfaceSync(names=names, refused=refused)


def record_lldp_links(
    session: Session, *, device_id: int, neighbors: Sequence[ObservedNeighbor], now: datetime
) -> list[int]:
    """LLDP neighbours of one device -> discovered links (created, or seen again: active, last
    seen ``now``); the device's discovered links not among them go stale (kept, not deleted).
    Returns the ids of the links seen."""
    if now.tzinfo is None:
        raise InvalidInput("now: expected a timestamp with a timezone", field="now")
    local = {i.if_index: i for i in session.scalars(select(Interface).where(Interface.device_id == device_id))}
    local_by_name = {i.name: i for i in local.values()}
    seen: list[Link] = []
    for n in neighbors:
        mine = local.get(n.local_if_index) or local_by_name.get(n.local_port)
        if mine is None or not n.remote_name:
            continue
        remote = session.scalar(
            select(Interface).join(Device).where(Device.hostname == n.remote_name, Interface.name == n.remote_port)
        )
        if remote is None or remote.id == mine.id:
            continue
        low, high = sorted((mine.id, remote.id))
        link = session.scalar(select(Link).where(Link.a_interface_id == low, Link.b_interface_id == high))
        if link is None:
            link = Link(a_interface_id=low, b_interface_id=high, source="discovered", state="active", created_at=now)
            session.add(link)
        link.state = "active"
        link.last_seen_at = now
        seen.append(link)
    session.flush()
    seen_ids = {link.id for link in seen}
    mine_ids = [i.id for i in local.values()]
    if mine_ids:
        stale = session.scalars(
            select(Link).where(
                Link.source == "discovered",
                Link.state == "active",
                or_(Link.a_interface_id.in_(mine_ids), Link.b_interface_id.in_(mine_ids)),
            )
        )
        for link in stale:
            if link.id not in seen_ids:
                link.state = "stale"
    session.flush()
    return [link.id for link in seen]


def touch_lldp_links(session: Session, *, seen: Sequence[tuple[int, datetime]]) -> None:
    """Links polls saw again through LLDP tables that did not change since the polls that stored
    them (ids ``record_lldp_links`` returned, discovered or entered by hand), as (link id, seen at):
    active, last seen then, in one executemany UPDATE. A link deleted meanwhile is skipped (the
    caller checks with ``queries.existing_link_ids`` first)."""
    for _link_id, at in seen:
        if at.tzinfo is None:
            raise InvalidInput("now: expected a timestamp with a timezone", field="now")
    if not seen:
        return
    session.flush()
    table: Any = Link.__table__  # Core: one executemany, no ORM bookkeeping per row
    session.connection().execute(
        update(table).where(table.c.id == bindparam("link_id")).values(state="active", last_seen_at=bindparam("at")),
        [{"link_id": link_id, "at": at} for link_id, at in seen],
    )


# ---- links -------------------------------------------------------------------------


def _interface_named(session: Session, device: str, interface: str, *, field: str) -> Interface:
    itf = session.scalar(select(Interface).join(Device).where(Device.hostname == device, Interface.name == interface))
    if itf is None:
        raise InvalidInput(f"{field}: no interface {interface!r} on device {device!r}", field=field)
    return itf


def create_link(session: Session, data: LinkIn, *, actor: str) -> Link:
    a = _interface_named(session, data.a_device, data.a_interface, field="a_interface")
    b = _interface_named(session, data.b_device, data.b_interface, field="b_interface")
    if a.id == b.id:
        raise InvalidInput("b_interface: a link needs two different interfaces", field="b_interface")
    low, high = sorted((a.id, b.id))
    existing = session.scalar(select(Link).where(Link.a_interface_id == low, Link.b_interface_id == high))
    if existing is not None:
        raise Conflict(f"link {data.a_device}:{data.a_interface} <-> {data.b_device}:{data.b_interface} exists")
    link = Link(a_interface_id=low, b_interface_id=high, source=data.source, state="active", created_at=clock.now())
    session.add(link)
    session.flush()
    audit.record(
        session, actor=actor, action="link.create", object_type="link", object_id=link.id, after=data.model_dump()
    )
    return link


def get_link(session: Session, link_id: int) -> Link:
    link = session.get(Link, link_id)
    if link is None:
        raise NotFound(f"link {link_id} not found")
    return link


def list_links(
    session: Session, *, limit: int, offset: int, device: str | None = None, source: str | None = None
) -> tuple[list[Link], int]:
    query = select(Link)
    if source:
        query = query.where(Link.source == source)
    if device:
        ids = select(Interface.id).join(Device).where(Device.hostname == device)
        query = query.where(or_(Link.a_interface_id.in_(ids), Link.b_interface_id.in_(ids)))
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(query.order_by(Link.id).limit(limit).offset(offset)).all()
    return list(rows), total


def delete_link(session: Session, link_id: int, *, actor: str) -> None:
    link = get_link(session, link_id)
    audit.record(
        session,
        actor=actor,
        action="link.delete",
        object_type="link",
        object_id=link.id,
        before=link_out(link).model_dump(),
    )
    session.delete(link)
    session.flush()


def link_out(link: Link) -> LinkOut:
    def end(itf: Interface) -> LinkEnd:
        return LinkEnd(device=itf.device.hostname, interface=itf.name, interface_id=itf.id)

    return LinkOut(id=link.id, a=end(link.a_interface), b=end(link.b_interface), source=link.source, state=link.state)


# ---- bulk import / export ------------------------------------------------------------


def import_inventory(
    session: Session,
    vault: Vault,
    doc: InventoryDoc,
    *,
    actor: str,
    forget_host_key: Callable[[int], None],
    progress: Callable[[str], None] | None = None,
) -> dict[str, int]:
    """Upsert a whole document (sites, devices, interfaces, links). The caller's
    transaction makes it all-or-nothing. ``forget_host_key`` drops the SSH host key pin of a
    device whose address the document changes."""
    counts = {"sites": 0, "devices_created": 0, "devices_updated": 0, "links": 0}
    for site_in in doc.sites:
        site = session.scalar(select(Site).where(Site.name == site_in.name))
        if site is None:
            create_site(session, site_in, actor=actor)
        elif site.description != site_in.description:
            site.description = site_in.description
        counts["sites"] += 1
    pending_parents: list[tuple[int, Device, list[str]]] = []
    for index, dev_in in enumerate(doc.devices):
        existing = session.scalar(_device_query().where(Device.hostname == dev_in.hostname))
        where = f"devices[{index}] ({dev_in.hostname})"
        try:
            if existing is None:
                device = create_device(session, vault, dev_in.model_copy(update={"parents": []}), actor=actor)
                counts["devices_created"] += 1
            else:
                update = DeviceUpdate(
                    **{
                        k: getattr(dev_in, k)
                        for k in ("address", "site", "vendor", "platform", "device_type", "role", "tags", "snmp", "ssh")
                    }
                )
                # The file carries the credentials (or none): re-entered whenever the address changes.
                device = update_device(
                    session,
                    vault,
                    existing.id,
                    update,
                    actor=actor,
                    actor_is_admin=False,
                    forget_host_key=forget_host_key,
                )
                _merge_interfaces(session, device, dev_in.interfaces)
                counts["devices_updated"] += 1
                _inventory_changed(session)
        except InvalidInput as exc:
            raise InvalidInput(f"{where}: {exc.detail}", field=exc.field) from None
        pending_parents.append((index, device, dev_in.parents))
        if progress:
            progress(dev_in.hostname)
    for index, device, parents in pending_parents:
        try:
            device.parents = _resolve_parents(session, parents)
        except InvalidInput as exc:
            raise InvalidInput(f"devices[{index}] ({device.hostname}): {exc.detail}", field="parents") from None
    session.flush()
    for index, link_in in enumerate(doc.links):
        try:
            create_link(session, link_in, actor=actor)
        except Conflict:
            continue  # an import re-run keeps existing links
        except InvalidInput as exc:
            raise InvalidInput(f"links[{index}]: {exc.detail}", field=exc.field) from None
        counts["links"] += 1
    audit.record(session, actor=actor, action="inventory.import", object_type="inventory", object_id="-", after=counts)
    return counts


def _merge_interfaces(session: Session, device: Device, interfaces: list[InterfaceIn]) -> None:
    by_name = {i.name: i for i in device.interfaces}
    named = {i.name for i in interfaces}
    for index, itf_in in enumerate(interfaces):  # checked before anything is written
        holder = next((i for i in device.interfaces if i.if_index is not None and i.if_index == itf_in.if_index), None)
        if holder is not None and holder.name != itf_in.name and holder.name not in named:
            raise InvalidInput(
                f"interfaces[{index}]: if_index {itf_in.if_index} is already interface {holder.name!r} "
                f"of {device.hostname}",
                field="interfaces",
            )
    moved = [by_name[i.name] for i in interfaces if i.name in by_name and by_name[i.name].if_index != i.if_index]
    if moved:  # ports trading ifIndexes: free them first (one row per ifIndex at every step)
        for row in moved:
            row.if_index = None
        session.flush()
    for itf_in in interfaces:
        current = by_name.get(itf_in.name)
        if current is None:
            device.interfaces.append(Interface(**itf_in.model_dump()))
        else:
            current.if_index = itf_in.if_index
            current.description = itf_in.description
            current.speed_mbps = itf_in.speed_mbps


def export_inventory(session: Session, vault: Vault, *, with_secrets: bool) -> dict[str, Any]:
    """The import document for the whole inventory; secrets only when asked for."""

    def secret(token: bytes | None) -> str | None:
        if token is None:
            return None
        return vault.decrypt(token) if with_secrets else "<redacted>"

    devices = []
    for d in session.scalars(_device_query().order_by(Device.hostname)):
        entry: dict[str, Any] = {
            "hostname": d.hostname,
            "address": d.address,
            "site": d.site.name if d.site else None,
            "vendor": d.vendor,
            "platform": d.platform,
            "device_type": d.device_type,
            "role": d.role,
            "tags": list(d.tags or []),
            "parents": [p.hostname for p in d.parents],
            "interfaces": [
                {"name": i.name, "if_index": i.if_index, "description": i.description, "speed_mbps": i.speed_mbps}
                for i in d.interfaces
            ],
        }
        if d.snmp_version:
            snmp: dict[str, Any] = {"version": d.snmp_version, "port": d.snmp_port}
            if d.snmp_version == "v3":
                snmp.update(
                    user=d.snmp_user,
                    auth_protocol=d.snmp_auth_protocol,
                    auth_key=secret(d.snmp_auth_key_enc),
                    priv_protocol=d.snmp_priv_protocol,
                    priv_key=secret(d.snmp_priv_key_enc),
                )
                if d.snmp_allow_weak:
                    snmp["allow_weak"] = True
            else:
                snmp["community"] = secret(d.snmp_community_enc)
            entry["snmp"] = {k: v for k, v in snmp.items() if v is not None}
        if d.ssh_username:
            ssh = {
                "port": d.ssh_port,
                "username": d.ssh_username,
                "password": secret(d.ssh_password_enc),
                "private_key": secret(d.ssh_private_key_enc),
                "host_key_policy": d.ssh_host_key_policy,
            }
            entry["ssh"] = {k: v for k, v in ssh.items() if v is not None}
        devices.append(entry)
    links = []
    for link in session.scalars(select(Link).order_by(Link.id)):
        out = link_out(link)
        links.append(
            {
                "a_device": out.a.device,
                "a_interface": out.a.interface,
                "b_device": out.b.device,
                "b_interface": out.b.interface,
                "source": out.source,
            }
        )
    return {
        "sites": [{"name": s.name, "description": s.description} for s in list_sites(session)],
        "devices": devices,
        "links": links,
    }


def rotate_secrets(session: Session, vault: Vault) -> int:
    """Re-encrypt every secret column of every device under the vault's newest key."""
    count = 0
    for device in session.scalars(select(Device)):
        for column in Device.SECRET_COLUMNS:
            token = getattr(device, column)
            if token is not None:
                setattr(device, column, vault.rotate(token))
                count += 1
    session.flush()
    return count


# ---- topology sketches (alarm replay) -----------------------------------------------------------


def sketch_topology(session: Session, *, devices: Sequence[SketchDevice], links: Sequence[SketchLink]) -> None:
    """Write a topology sketch into an empty scratch inventory: sites, devices (address 127.0.0.1),
    dependencies, the interfaces the links name and the links (active, manual). A link or parent
    naming a device outside the sketch is refused before anything is written."""
    names = {d.hostname for d in devices}
    for d in devices:
        for parent in d.parents:
            if parent not in names:
                raise InvalidInput(f"parents: unknown device {parent!r} (of {d.hostname})", field="parents")
    for link in links:
        for host, _ in (link.a, link.b):
            if host not in names:
                raise InvalidInput(f"links: unknown device {host!r}", field="links")
    now = clock.now()
    sites: dict[str, Site] = {}
    by_name: dict[str, Device] = {}
    for d in devices:
        site = None
        if d.site:
            site = sites.get(d.site)
            if site is None:
                site = sites[d.site] = Site(name=d.site, description="", created_at=now)
                session.add(site)
        device = Device(hostname=d.hostname, address="127.0.0.1", role=d.role, site=site, tags=list(d.tags),
                        created_at=now, updated_at=now)  # fmt: skip
        session.add(device)
        by_name[d.hostname] = device
    for d in devices:
        by_name[d.hostname].parents = [by_name[p] for p in d.parents]
    session.flush()
    interfaces: dict[tuple[str, str], Interface] = {}

    def interface(host: str, name: str) -> Interface:
        if (host, name) not in interfaces:
            interfaces[(host, name)] = Interface(device_id=by_name[host].id, name=name)
            session.add(interfaces[(host, name)])
        return interfaces[(host, name)]

    ends = [(interface(*link.a), interface(*link.b)) for link in links]
    session.flush()
    for a, b in ends:
        low, high = sorted((a.id, b.id))
        session.add(Link(a_interface_id=low, b_interface_id=high, source="manual", state="active", created_at=now))
    session.flush()
