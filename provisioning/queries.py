"""The read API of the service inventory for the other packages: frozen records, never ORM rows.

Ticketing never imports provisioning (the two are independent); the API layer reads a
customer's service here and hands the record to ticketing, which only knows the record's shape
(``ticketing.desk.CustomerService``); the composition root hands ``footprints`` to the alarm
engine (service impact). Nothing here writes; callers own the session and its transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from faultloop.errors import InvalidInput
from inventory import queries as inventory
from provisioning.models import ServiceInstance, ServiceResource

# the param a service's customer knows it by (their circuit or contract reference); services of
# the packaged catalog have none, so their ``description`` (e.g. "ACME-42 BIA") serves instead
CUSTOMER_REF_PARAMS = ("customer_ref", "description")


@dataclass(frozen=True, slots=True)
class ResourceRecord:
    device_id: int
    hostname: str
    site: str  # "" when the device has no site
    interface: str  # "" when the service holds the whole device
    vlan: int | None


@dataclass(frozen=True, slots=True)
class ServiceRecord:
    id: int
    customer: str
    service_type: str
    state: str  # pending | active | terminated
    customer_ref: str
    created_at: datetime
    updated_at: datetime
    resources: tuple[ResourceRecord, ...]


def _customer_ref(params: dict[str, object]) -> str:
    for key in CUSTOMER_REF_PARAMS:
        value = params.get(key)
        if isinstance(value, str) and value:
            return value
    return ""


def _records(session: Session, instances: list[ServiceInstance]) -> list[ServiceRecord]:
    if not instances:
        return []
    ids = [s.id for s in instances]
    rows: dict[int, list[ServiceResource]] = {i: [] for i in ids}
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        query = select(ServiceResource).where(ServiceResource.service_id.in_(chunk)).order_by(ServiceResource.id)
        for r in session.scalars(query):
            rows[r.service_id].append(r)
    devices = {d.id: d for d in inventory.devices(session, ids={r.device_id for rs in rows.values() for r in rs})}
    out = []
    for s in instances:
        resources = tuple(
            ResourceRecord(
                device_id=r.device_id,
                hostname=devices[r.device_id].hostname if r.device_id in devices else "",
                site=(devices[r.device_id].site or "") if r.device_id in devices else "",
                interface=r.interface or "",
                vlan=r.vlan,
            )
            for r in rows[s.id]
        )
        out.append(ServiceRecord(id=s.id, customer=s.customer, service_type=s.service_type, state=s.state,
                                 customer_ref=_customer_ref(s.params or {}), created_at=s.created_at,
                                 updated_at=s.updated_at, resources=resources))  # fmt: skip
    return out


def services(session: Session, *, customer: str | None = None) -> list[ServiceRecord]:
    """Every service (of one customer), terminated ones included (reports look back), by id."""
    query = select(ServiceInstance).order_by(ServiceInstance.id)
    if customer is not None:
        query = query.where(ServiceInstance.customer == customer)
    return _records(session, list(session.scalars(query)))


def customer_service(
    session: Session, *, customer: str, service_id: int | None = None, customer_ref: str | None = None
) -> ServiceRecord:
    """The customer's active service named by id or by the customer's own reference.

    Every refusal is an InvalidInput naming the field: an unknown customer (``customer``), a
    service that does not exist or is another customer's (``service_id``; the same answer for
    both, so the desk learns nothing of other customers), a reference that matches no service
    or several (``customer_ref``), a service that is not active (``service_id``).
    """
    if not session.scalar(select(ServiceInstance.id).where(ServiceInstance.customer == customer).limit(1)):
        raise InvalidInput(f"customer: no customer {customer!r} has a service", field="customer")
    if service_id is not None:
        instance = session.get(ServiceInstance, service_id)
        if instance is None or instance.customer != customer:
            raise InvalidInput(f"service_id: customer {customer!r} has no service {service_id}", field="service_id")
        found = _records(session, [instance])[0]
        if customer_ref and found.customer_ref != customer_ref:
            raise InvalidInput(f"customer_ref: service {service_id} is not {customer_ref!r}", field="customer_ref")
    elif customer_ref:
        matches = [s for s in services(session, customer=customer) if s.customer_ref == customer_ref]
        live = [s for s in matches if s.state != "terminated"] or matches
        if not live:
            raise InvalidInput(f"customer_ref: customer {customer!r} has no service {customer_ref!r}",
                               field="customer_ref")  # fmt: skip
        if len(live) > 1:
            ids = ", ".join(str(s.id) for s in live)
            raise InvalidInput(f"customer_ref: {customer_ref!r} names services {ids}; give service_id",
                               field="customer_ref")  # fmt: skip
        found = live[0]
    else:
        raise InvalidInput("service_id: give service_id or customer_ref", field="service_id")
    if found.state != "active":
        raise InvalidInput(f"service_id: service {found.id} is {found.state}, not active", field="service_id")
    return found


# ---- where the active services live (the alarm engine's service impact) --------------------------


@dataclass(frozen=True, slots=True)
class ServiceFootprint:
    """One resource of an active service: where on the network the customer's service lives."""

    service_id: int
    customer: str
    service_type: str
    sla_class: str | None
    device: str  # hostname
    interface: str
    vlan: int | None


def footprints(
    session: Session, *, sla_classes: Mapping[str, str | None], service_ids: Iterable[int] | None = None
) -> list[ServiceFootprint]:
    """The resources of the active services (``service_ids``: only those), each with its service's
    customer and the SLA class its catalog type declares (``sla_classes``: service type -> class)."""
    query = (
        select(ServiceResource.service_id, ServiceInstance.customer, ServiceInstance.service_type,
               ServiceResource.device_id, ServiceResource.interface, ServiceResource.vlan)
        .join(ServiceInstance, ServiceInstance.id == ServiceResource.service_id)
        .where(ServiceInstance.state == "active")
        .order_by(ServiceResource.service_id, ServiceResource.id)
    )  # fmt: skip
    if service_ids is not None:
        query = query.where(ServiceResource.service_id.in_(sorted(set(service_ids))))
    rows = session.execute(query).all()
    hostnames = {d.id: d.hostname for d in inventory.devices(session, ids={r.device_id for r in rows})}
    return [
        ServiceFootprint(
            service_id=r.service_id, customer=r.customer, service_type=r.service_type,
            sla_class=sla_classes.get(r.service_type), device=hostnames.get(r.device_id, ""),
            interface=r.interface or "", vlan=r.vlan,
        )  # fmt: skip
        for r in rows
        if r.device_id in hostnames
    ]
