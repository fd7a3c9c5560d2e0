"""Provisioning's read API: the service inventory as frozen records, for the composition root to
hand to other packages (the alarm engine's impact, ticketing's service verification).

Nothing here writes; callers own the session and its transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from inventory import queries as inventory
from provisioning.models import ServiceInstance, ServiceResource


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


@dataclass(frozen=True, slots=True)
class ServiceRecord:
    id: int
    customer: str
    service_type: str
    state: str
    params: dict[str, object]
    footprints: tuple[ServiceFootprint, ...]


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


def services(session: Session, ids: Iterable[int], *, sla_classes: Mapping[str, str | None]) -> list[ServiceRecord]:
    """These services (any state) with the footprints of the active ones, by id."""
    wanted = sorted(set(ids))
    if not wanted:
        return []
    rows = session.scalars(select(ServiceInstance).where(ServiceInstance.id.in_(wanted)).order_by(ServiceInstance.id))
    prints: dict[int, list[ServiceFootprint]] = {}
    for fp in footprints(session, sla_classes=sla_classes, service_ids=wanted):
        prints.setdefault(fp.service_id, []).append(fp)
    return [
        ServiceRecord(id=s.id, customer=s.customer, service_type=s.service_type, state=s.state,
                      params=dict(s.params or {}), footprints=tuple(prints.get(s.id, ())))  # fmt: skip
        for s in rows
    ]
