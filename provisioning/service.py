"""Orders, service instances and VLAN pools over a Session (flush, never commit).

The executor (``provisioning.executor``) does the device work; everything here is
database work: create, validate (schema per device, VLAN allocation), plan (render and
diff against the latest backup, never touching a device), approve, cancel, and the
bookkeeping when an order finishes. Every step is an audit entry on the order, which
is its timeline.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from pydantic import ValidationError
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from collectors.backup import backup_text, latest_backup
from devices.ssh import netmiko_device_type
from faultloop import clock
from faultloop.audit import service as audit
from faultloop.audit.models import AuditEntry
from faultloop.errors import Conflict, DomainError, InvalidInput, NotFound
from faultloop.vault import Vault
from inventory import queries
from inventory.queries import DeviceRecord
from provisioning import policy, rules
from provisioning.models import OrderItem, ServiceInstance, ServiceOrder, ServiceResource, VlanAllocation, VlanPool
from provisioning.render import ServiceType, service_type
from provisioning.schemas import (
    CatalogFieldOut,
    CatalogTypeOut,
    OrderIn,
    OrderItemOut,
    OrderOut,
    OrderTarget,
    ResourceOut,
    ServiceOut,
    TimelineEntryOut,
    VlanPoolIn,
    VlanPoolOut,
)

OBJECT = "service_order"

# ---- in-transaction hooks ------------------------------------------------------------------

# Order and service changes for outboxes (the TM Forum hub): the composition root registers writers
# here; each runs INSIDE the transaction of the change, so a change never commits without its events
# and no event is written for a change that rolled back. Provisioning never imports who listens.
OrderOutbox = Callable[[Session, ServiceOrder, str, "str | None"], None]  # (order, action, state before)
ServiceOutbox = Callable[[Session, ServiceInstance, "str | None"], None]  # (service, state before; None: new)
ORDER_OUTBOX: dict[str, OrderOutbox] = {}
SERVICE_OUTBOX: dict[str, ServiceOutbox] = {}


def _service_changed(session: Session, instance: ServiceInstance, before: str | None) -> None:
    """A service was created (``before`` None), changed state, or changed its resources."""
    session.flush()
    for write in list(SERVICE_OUTBOX.values()):
        write(session, instance, before)


def parse_order(raw: Any) -> OrderIn:
    """The order document, character gate first, then shape; errors name the field."""
    if not isinstance(raw, dict):
        raise InvalidInput("expected a JSON object (the order)", field="body")
    try:
        return OrderIn.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        msg = str(err["msg"]).removeprefix("Value error, ")
        where = ".".join(str(p) for p in err["loc"])
        if not where:  # a whole-order rule names its field first ("service_id: ...")
            head = msg.split(":", 1)[0]
            where = head if ":" in msg and re.fullmatch(r"[a-z_]+", head) else "body"
        raise InvalidInput(msg if msg.startswith(f"{where}:") else f"{where}: {msg}", field=where) from None


# ---- catalog ------------------------------------------------------------------------------


def catalog_out(st: ServiceType) -> CatalogTypeOut:
    return CatalogTypeOut(
        name=st.name,
        description=st.description,
        platforms=st.platforms,
        resources=list(st.resources),
        fields=[
            CatalogFieldOut(name=f.name, type=f.type, required=f.required, pool=f.pool, choices=list(f.choices))
            for f in st.fields.values()
        ],
    )


# ---- VLAN pools ---------------------------------------------------------------------------


def create_pool(session: Session, data: VlanPoolIn, *, actor: str) -> VlanPool:
    site_id = None
    if data.site is not None:
        site_id = queries.site_id(session, data.site)
        if site_id is None:
            raise InvalidInput(f"site: no site named {data.site!r}", field="site")
    if session.scalar(select(VlanPool).where(VlanPool.name == data.name)) is not None:
        raise Conflict(f"name: a VLAN pool named {data.name!r} exists", field="name")
    pool = VlanPool(name=data.name, site_id=site_id, vlan_min=data.vlan_min, vlan_max=data.vlan_max)
    session.add(pool)
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="vlan_pool.create",
        object_type="vlan_pool",
        object_id=pool.id,
        after=data.model_dump(),
    )
    return pool


def pool_out(session: Session, pool: VlanPool) -> VlanPoolOut:
    site = queries.site_name(session, pool.site_id) if pool.site_id else None
    used = session.scalars(
        select(VlanAllocation.vlan).where(VlanAllocation.pool_id == pool.id).order_by(VlanAllocation.vlan)
    )
    return VlanPoolOut(
        id=pool.id,
        name=pool.name,
        site=site,
        vlan_min=pool.vlan_min,
        vlan_max=pool.vlan_max,
        allocated=list(used),
    )


def list_pools(session: Session) -> list[VlanPool]:
    return list(session.scalars(select(VlanPool).order_by(VlanPool.name)))


def _pool(session: Session, name: str) -> VlanPool:
    pool = session.scalar(select(VlanPool).where(VlanPool.name == name))
    if pool is None:
        raise InvalidInput(f"vlan_pool: no VLAN pool named {name!r}", field="vlan_pool")
    return pool


def allocate_vlan(session: Session, *, pool: VlanPool, service_id: int, wanted: int | None = None) -> int:
    """Take a VLAN of the pool for a service; the unique (pool, vlan) constraint decides races.

    Each attempt runs in a savepoint: a losing insert (another order took the VLAN first)
    rolls back only itself and the next free VLAN is tried.
    """
    if wanted is not None:
        if not pool.vlan_min <= wanted <= pool.vlan_max:
            raise InvalidInput(
                f"params.vlan: {wanted} is outside pool {pool.name!r} ({pool.vlan_min}-{pool.vlan_max})",
                field="params.vlan",
            )
        candidates = [wanted]
    else:
        used = set(session.scalars(select(VlanAllocation.vlan).where(VlanAllocation.pool_id == pool.id)))
        candidates = [v for v in range(pool.vlan_min, pool.vlan_max + 1) if v not in used]
    for vlan in candidates:
        try:
            with session.begin_nested():
                session.add(VlanAllocation(pool_id=pool.id, vlan=vlan, service_id=service_id, allocated_at=clock.now()))
                session.flush()
        except IntegrityError:
            continue
        return vlan
    if wanted is not None:
        raise Conflict(f"params.vlan: VLAN {wanted} of pool {pool.name!r} is already allocated", field="params.vlan")
    raise Conflict(f"vlan_pool: pool {pool.name!r} has no free VLAN", field="vlan_pool")


# ---- orders -------------------------------------------------------------------------------


def get_order(session: Session, order_id: int) -> ServiceOrder:
    order = session.get(ServiceOrder, order_id)
    if order is None:
        raise NotFound(f"order {order_id} not found")
    return order


def items(session: Session, order_id: int) -> list[OrderItem]:
    return list(session.scalars(select(OrderItem).where(OrderItem.order_id == order_id).order_by(OrderItem.seq)))


def list_orders(session: Session, *, state: str | None, limit: int, offset: int) -> list[ServiceOrder]:
    query = select(ServiceOrder)
    if state:
        query = query.where(ServiceOrder.state == state)
    return list(session.scalars(query.order_by(ServiceOrder.id.desc()).limit(limit).offset(offset)))


def _hostnames(session: Session, device_ids: Iterable[int]) -> dict[int, str]:
    """Hostnames of these devices only (an order names a handful of the inventory's thousands)."""
    return {d.id: d.hostname for d in queries.devices(session, ids=device_ids)}


def item_diff(vault: Vault, item: OrderItem) -> str:
    """The planned diff of one item in clear (encrypted at rest; a diff planned before
    h15fin_0001 and not sealed yet is read as stored)."""
    if item.diff_encrypted is not None:
        return vault.decrypt(item.diff_encrypted)
    return item.diff or ""


def order_out(session: Session, order: ServiceOrder, *, vault: Vault, role: str | None = None) -> OrderOut:
    """The order as the API shows it to ``role`` (None: the CLI operator). A role that may not read
    configuration text gets each planned diff without its context lines (unchanged running config)."""
    order_items = items(session, order.id)
    hostnames = _hostnames(session, (i.device_id for i in order_items))
    return OrderOut(
        id=order.id,
        action=order.action,
        service_type=order.service_type,
        customer=order.customer,
        service_id=order.service_id,
        state=order.state,
        vlan_pool=order.vlan_pool,
        window_start=order.window_start,
        window_end=order.window_end,
        maintenance_window_id=order.maintenance_window_id,
        created_by=order.created_by,
        approved_by=order.approved_by,
        executed_by=order.executed_by,
        created_at=order.created_at,
        updated_at=order.updated_at,
        finished_at=order.finished_at,
        result=order.result,
        allowed_actions=[a for a in policy.allowed_actions(order.state, role) if role is None or a in _PUBLIC],
        items=[
            OrderItemOut(
                device_id=i.device_id,
                hostname=hostnames.get(i.device_id, ""),
                seq=i.seq,
                params=i.params,
                commands=i.commands,
                inverse=i.inverse,
                diff=_diff_for(role, item_diff(vault, i)),
                backup_id=i.backup_id,
                status=i.status,
                message=i.message,
            )
            for i in order_items
        ],
    )


def _diff_for(role: str | None, diff: str) -> str:
    return diff if policy.reads_config(role) else rules.changed_lines_only(diff)


_PUBLIC = frozenset({"validate", "plan", "approve", "execute", "cancel"})


def record(session: Session, order: ServiceOrder, *, actor: str, action: str, before: str | None, **after: Any) -> None:
    audit.record(
        session,
        actor=actor,
        action=f"order.{action}",
        object_type=OBJECT,
        object_id=order.id,
        before={"state": before} if before else None,
        after={"state": order.state, **after},
    )
    for write in list(ORDER_OUTBOX.values()):
        write(session, order, action, before)


def create_order(
    session: Session, data: OrderIn, *, actor: str, external: dict[str, Any] | None = None
) -> ServiceOrder:
    """A draft order; ``external`` is what an ordering system sent beside it (the TMF641 externalId,
    item id, description), kept as given and shown back to it."""
    st = service_type(data.service_type)
    if data.service_id is not None:
        instance = session.get(ServiceInstance, data.service_id)
        if instance is None:
            raise InvalidInput(f"service_id: no service {data.service_id}", field="service_id")
        if instance.service_type != st.name:
            raise InvalidInput(
                f"service_type: service {instance.id} is a {instance.service_type}, not a {st.name}",
                field="service_type",
            )
        if instance.state != "active":
            raise Conflict(f"service_id: service {instance.id} is {instance.state}, not active", field="service_id")
    if data.vlan_pool is not None:
        _pool(session, data.vlan_pool)
    for i, target in enumerate(data.targets):
        if queries.device_by_hostname(session, target.device) is None:
            raise InvalidInput(f"targets[{i}].device: no device named {target.device!r}", field=f"targets[{i}].device")
    now = clock.now()
    order = ServiceOrder(
        action=data.action,
        service_type=st.name,
        customer=data.customer,
        service_id=data.service_id,
        state="draft",
        request=data.model_dump(mode="json"),
        vlan_pool=data.vlan_pool,
        window_start=data.window_start,
        window_end=data.window_end,
        created_by=actor,
        created_at=now,
        updated_at=now,
        result="",
        external=external,
    )
    session.add(order)
    session.flush()
    record(session, order, actor=actor, action="create", before=None, action_kind=data.action, service_type=st.name)
    return order


def _move(session: Session, order: ServiceOrder, action: str, *, actor: str, role: str, four_eyes: bool) -> str:
    before = order.state
    order.state = policy.transition(
        order.state, action, role=role, actor=actor, author=order.created_by, four_eyes=four_eyes
    )
    order.updated_at = clock.now()
    return before


def _device(session: Session, hostname: str) -> DeviceRecord:
    device = queries.device_by_hostname(session, hostname)
    if device is None:
        raise InvalidInput(f"device: no device named {hostname!r}", field="device")
    return device


def _validate(session: Session, order: ServiceOrder) -> None:
    """Per-device schema check, VLAN allocation, service instance; replaces earlier items."""
    data = OrderIn.model_validate(order.request)
    st = service_type(order.service_type)
    session.execute(delete(OrderItem).where(OrderItem.order_id == order.id))
    if order.action == "activate":
        instance = session.get(ServiceInstance, order.service_id) if order.service_id else None
        if instance is None:
            now = clock.now()
            instance = ServiceInstance(
                service_type=st.name,
                customer=order.customer,
                state="pending",
                params={},
                created_at=now,
                updated_at=now,
            )
            session.add(instance)
            session.flush()
            order.service_id = instance.id
            _service_changed(session, instance, None)
    instance = session.get(ServiceInstance, order.service_id) if order.service_id else None
    assert instance is not None
    old_devices: dict[str, dict[str, Any]] = dict(instance.params.get("devices", {}))
    targets = data.targets
    if order.action == "terminate" and not targets:
        hostnames = _hostnames(session, (int(d) for d in old_devices))
        targets = [OrderTarget(device=hostnames[int(d)], params={}) for d in old_devices]
    common = dict(data.params)
    pool_field = st.pool_field
    if pool_field and data.vlan_pool and order.action == "activate":
        pool = _pool(session, data.vlan_pool)
        if pool.site_id is not None:  # a site's pool serves that site's devices only
            pool_site = queries.site_name(session, pool.site_id)
            for seq, target in enumerate(targets):
                if _device(session, target.device).site != pool_site:
                    raise InvalidInput(
                        f"targets[{seq}].device: {target.device} is not at the site of VLAN pool {pool.name!r}",
                        field=f"targets[{seq}].device",
                    )
        existing = session.scalar(select(VlanAllocation.vlan).where(VlanAllocation.service_id == instance.id))
        if existing is None:
            existing = allocate_vlan(session, pool=pool, service_id=instance.id, wanted=common.get(pool_field))
        common[pool_field] = existing
    for seq, target in enumerate(targets):
        device = _device(session, target.device)
        platform = netmiko_device_type(device) or device.platform
        if order.action == "terminate":
            if str(device.id) not in old_devices:
                raise InvalidInput(
                    f"targets[{seq}].device: service {instance.id} has nothing on {device.hostname}",
                    field=f"targets[{seq}].device",
                )
            params = old_devices[str(device.id)]
        else:
            merged = {**common, **target.params}
            if order.action == "modify":
                merged = {**old_devices.get(str(device.id), {}), **merged}
            params = st.validate_params(merged, path=f"targets[{seq}].params")
        if platform not in st.templates:
            raise InvalidInput(
                f"targets[{seq}].device: {device.hostname} is {platform or 'of no known platform'}; "
                f"{st.name} has templates for {', '.join(st.platforms)}",
                field=f"targets[{seq}].device",
            )
        session.add(
            OrderItem(
                order_id=order.id,
                device_id=device.id,
                seq=seq,
                params=params,
                status="pending",
                commands=[],
                inverse=[],
                diff="",
                message="",
            )
        )
    session.flush()


def _plan(session: Session, vault: Vault, order: ServiceOrder) -> None:
    st = service_type(order.service_type)
    instance = session.get(ServiceInstance, order.service_id) if order.service_id else None
    old_devices: dict[str, dict[str, Any]] = dict(instance.params.get("devices", {})) if instance else {}
    for item in items(session, order.id):
        device = queries.device(session, item.device_id)
        assert device is not None
        platform = netmiko_device_type(device) or device.platform
        if order.action == "activate":
            commands = st.render(platform, item.params)
            inverse = st.render(platform, item.params, remove=True)
        elif order.action == "terminate":
            commands = st.render(platform, item.params, remove=True)
            inverse = st.render(platform, item.params)
        else:  # modify: remove what the service had on this device, then configure the new values
            old = old_devices.get(str(device.id))
            commands = (st.render(platform, old, remove=True) if old else []) + st.render(platform, item.params)
            inverse = st.render(platform, item.params, remove=True) + (st.render(platform, old) if old else [])
        backup = latest_backup(session, device.id)
        item.commands, item.inverse = commands, inverse
        running = backup_text(vault, backup) if backup else None
        diff = rules.planned_diff(device.hostname, running, commands, platform)
        if backup is None:
            diff = f"# no config backup of {device.hostname} yet: the commands that will be sent\n" + diff
        item.diff_encrypted, item.diff = vault.encrypt(diff), ""
        item.status = "planned"
    session.flush()


def act(
    session: Session, order_id: int, action: str, *, actor: str, role: str, four_eyes: bool, vault: Vault
) -> ServiceOrder:
    """validate | plan | approve | cancel: the state table decides; each step is audited (``vault``: planning
    reads the latest config backups)."""
    if action not in ("validate", "plan", "approve", "cancel"):
        raise InvalidInput(f"action: expected validate, plan, approve or cancel, got {action!r}", field="action")
    order = get_order(session, order_id)
    before = _move(session, order, action, actor=actor, role=role, four_eyes=four_eyes)
    detail: dict[str, Any] = {}
    if action in ("validate", "plan"):
        _validate(session, order)
        if action == "plan":
            _plan(session, vault, order)
            detail["devices"] = len(items(session, order.id))
    elif action == "approve":
        order.approved_by = actor
    elif action == "cancel":
        release(session, order, final_state="cancelled")
    record(session, order, actor=actor, action=action, before=before, **detail)
    return order


def release(session: Session, order: ServiceOrder, *, final_state: str) -> None:
    """An activation that will not happen gives its VLAN back and leaves no pending service."""
    if order.action != "activate" or order.service_id is None:
        return
    instance = session.get(ServiceInstance, order.service_id)
    if instance is not None and instance.state == "pending":
        session.execute(delete(VlanAllocation).where(VlanAllocation.service_id == instance.id))
        instance.state = final_state
        instance.updated_at = clock.now()
        _service_changed(session, instance, "pending")
    session.flush()


def finish(session: Session, order: ServiceOrder, *, outcome: str, actor: str, message: str) -> None:
    """Record the end of an execution: order state, service inventory, VLANs."""
    action = {"completed": "complete", "rolled_back": "roll_back", "failed": "fail"}[outcome]
    if order.state == "executing" and action == "complete":
        raise DomainError("an order completes from verifying only")
    before = order.state
    order.state = policy.transition(
        order.state, action, role="system", actor=actor, author=order.created_by, four_eyes=False
    )
    now = clock.now()
    order.finished_at = order.updated_at = now
    order.result = message
    instance = session.get(ServiceInstance, order.service_id) if order.service_id else None
    order_items = items(session, order.id)
    if outcome == "completed" and instance is not None:
        service_before = instance.state
        st = service_type(order.service_type)
        devices = dict(instance.params.get("devices", {}))
        session.execute(delete(ServiceResource).where(ServiceResource.service_id == instance.id))
        if order.action == "terminate":
            instance.state = "terminated"
            session.execute(delete(VlanAllocation).where(VlanAllocation.service_id == instance.id))
            devices = {}
        else:
            instance.state = "active"
            for item in order_items:
                devices[str(item.device_id)] = item.params
            for device_id, params in devices.items():
                session.add(
                    ServiceResource(
                        service_id=instance.id,
                        device_id=int(device_id),
                        interface=str(params.get("interface", "")) if "interface" in st.resources else "",
                        vlan=params.get("vlan") if "vlan" in st.resources else None,
                    )
                )
        instance.params = {"devices": devices}
        instance.updated_at = now
        _service_changed(session, instance, service_before)
    elif instance is not None:
        release(session, order, final_state="cancelled")
    session.flush()
    record(session, order, actor=actor, action=action, before=before, result=message)


def timeline(session: Session, order_id: int) -> list[TimelineEntryOut]:
    get_order(session, order_id)
    rows = session.scalars(
        select(AuditEntry)
        .where(AuditEntry.object_type == OBJECT, AuditEntry.object_id == str(order_id))
        .order_by(AuditEntry.id)
    )
    return [TimelineEntryOut(at=r.at, actor=r.actor, action=r.action, before=r.before, after=r.after) for r in rows]


def busy_devices(session: Session, device_ids: list[int], *, except_order: int) -> list[int]:
    """Devices another order is pushing to or verifying right now."""
    rows = session.scalars(
        select(OrderItem.device_id)
        .join(ServiceOrder, ServiceOrder.id == OrderItem.order_id)
        .where(
            ServiceOrder.state.in_(policy.ACTIVE), ServiceOrder.id != except_order, OrderItem.device_id.in_(device_ids)
        )
    )
    return sorted(set(rows))


# ---- service inventory --------------------------------------------------------------------


def list_services(session: Session, *, customer: str | None, state: str | None) -> list[ServiceInstance]:
    query = select(ServiceInstance)
    if customer:
        query = query.where(ServiceInstance.customer == customer)
    if state:
        query = query.where(ServiceInstance.state == state)
    return list(session.scalars(query.order_by(ServiceInstance.id)))


def service_orders(session: Session, service_id: int) -> list[ServiceOrder]:
    """The orders of one service, oldest first (its activation, changes and termination)."""
    return list(session.scalars(
        select(ServiceOrder).where(ServiceOrder.service_id == service_id).order_by(ServiceOrder.id)
    ))  # fmt: skip


def get_service(session: Session, service_id: int) -> ServiceInstance:
    instance = session.get(ServiceInstance, service_id)
    if instance is None:
        raise NotFound(f"service {service_id} not found")
    return instance


def service_out(session: Session, instance: ServiceInstance) -> ServiceOut:
    resources = list(session.scalars(select(ServiceResource).where(ServiceResource.service_id == instance.id)))
    hostnames = _hostnames(session, (r.device_id for r in resources))
    return ServiceOut(
        id=instance.id,
        service_type=instance.service_type,
        customer=instance.customer,
        state=instance.state,
        params=instance.params,
        created_at=instance.created_at,
        updated_at=instance.updated_at,
        resources=[
            ResourceOut(
                device_id=r.device_id, hostname=hostnames.get(r.device_id, ""), interface=r.interface, vlan=r.vlan
            )
            for r in resources
        ],
    )


# ---- at rest: sealing diffs stored in clear, re-encrypting under a new key ------------------

_BATCH = 100


def _item_rows(session: Session, *, unsealed_only: bool) -> Iterator[OrderItem]:
    """Every (or every unsealed) order item with a diff, ``_BATCH`` at a time by id; each batch is
    flushed and let go before the next is read."""
    last = 0
    while True:
        query = select(OrderItem).where(OrderItem.id > last)
        if unsealed_only:
            query = query.where(OrderItem.diff_encrypted.is_(None), OrderItem.diff != "")
        else:
            query = query.where((OrderItem.diff_encrypted.is_not(None)) | (OrderItem.diff != ""))
        batch = list(session.scalars(query.order_by(OrderItem.id).limit(_BATCH)))
        if not batch:
            return
        yield from batch
        last = batch[-1].id
        session.flush()
        for row in batch:
            session.expunge(row)


def seal_order_diffs(session: Session, vault: Vault) -> int:
    """Encrypt the planned diffs still stored in clear (planned before h15fin_0001: a migration
    has no key). Run by `faultloop db upgrade`, at service start and by `secrets rotate`."""
    count = 0
    for item in _item_rows(session, unsealed_only=True):
        item.diff_encrypted, item.diff = vault.encrypt(item.diff), ""
        count += 1
    session.flush()
    return count


def rotate_order_diffs(session: Session, vault: Vault) -> int:
    """Re-encrypt every planned diff under the vault's newest key (diffs still in clear are sealed
    on the way). VaultError, and nothing changed by the caller's transaction, when one cannot be
    decrypted."""
    count = 0
    for item in _item_rows(session, unsealed_only=False):
        item.diff_encrypted, item.diff = vault.encrypt(item_diff(vault, item)), ""
        count += 1
    session.flush()
    return count
