"""TMF638 Service Inventory v4: faultloop's service instances as TMF ``Service`` resources.

A service is what a completed activation order put on the network: its catalog type
(``serviceSpecification``), its values (``serviceCharacteristic``), the devices, ports and VLAN it
holds (``supportingResource``), its customer (``relatedParty``) and the orders that made and
changed it (``serviceOrderItem``). Read-only: a service changes through a service order (TMF641).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from northbound import hub
from northbound.query import Attribute, Kind, ListQuery, Resource, TmfQueryError, matches, project
from provisioning import service as provisioning
from provisioning.models import ServiceInstance, ServiceOrder
from provisioning.schemas import ServiceOut

BASE = "/tmf-api/serviceInventory/v4"
PATH = f"{BASE}/service"
ORDER_PATH = "/tmf-api/serviceOrdering/v4/serviceOrder"

# faultloop service state -> TMF638 ServiceStateType
STATE_MAP: dict[str, str] = {
    "pending": "inactive",  # its activation order is not done yet
    "active": "active",
    "terminated": "terminated",
    "cancelled": "terminated",  # an activation cancelled or rolled back: the service never came up
}
STATES = frozenset({"feasibilityChecked", "designed", "reserved", "inactive", "active", "terminated"})
ACTION_MAP: dict[str, str] = {"activate": "add", "modify": "modify", "terminate": "delete"}

FILTERS: dict[str, Attribute] = {
    "id": Attribute(),
    "name": Attribute(),
    "state": Attribute(Kind.text, STATES),
    "serviceType": Attribute(),
    "serviceSpecification.id": Attribute(),
    "serviceSpecification.name": Attribute(),
    "relatedParty.id": Attribute(),
    "relatedParty.name": Attribute(),
    "supportingResource.id": Attribute(),
    "supportingResource.name": Attribute(),
    "serviceCharacteristic.name": Attribute(),
    "isServiceEnabled": Attribute(Kind.boolean),
    "serviceDate": Attribute(Kind.datetime),
    "startDate": Attribute(Kind.datetime),
}
RESOURCE_FIELDS = frozenset({
    "name", "description", "category", "serviceType", "state", "isServiceEnabled", "hasStarted", "isStateful",
    "serviceDate", "startDate", "endDate", "serviceSpecification", "serviceCharacteristic", "supportingResource",
    "relatedParty", "serviceOrderItem", "@baseType",
})  # fmt: skip

RESOURCE = Resource("service", RESOURCE_FIELDS, FILTERS)
API = hub.HubApi(
    name="serviceInventory",
    resource_key="service",
    event_types=frozenset({"ServiceCreateEvent", "ServiceStateChangeEvent", "ServiceAttributeValueChangeEvent"}),
    filters=FILTERS,
)


def iso(at: datetime | None) -> str | None:
    return at.isoformat() if at is not None else None


def spec_ref(service_type: str) -> dict[str, Any]:
    """The catalog type as a ServiceSpecificationRef (its name is its id: the catalog is keyed by name)."""
    return {"id": service_type, "name": service_type, "@referredType": "ServiceSpecification"}


def customer_party(customer: str) -> dict[str, Any]:
    return {"id": customer, "name": customer, "role": "customer", "@referredType": "Customer"}


def characteristics(by_host: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per-device values (by hostname) folded into one characteristic per name: the value itself
    when every device has the same, else an object by hostname (``{"sw1": "Gi0/1", "sw2": "Gi0/2"}``)."""
    names: list[str] = []
    for params in by_host.values():
        names.extend(n for n in params if n not in names)
    out = []
    for name in names:
        values = {host: p[name] for host, p in by_host.items() if name in p}
        first = next(iter(values.values()))
        same = len(values) == len(by_host) and all(v == first for v in values.values())
        value: Any = first if same else values
        out.append({"name": name, "valueType": _value_type(value), "value": value})
    return out


def _value_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, dict):
        return "object"
    return "string"


def supporting_resources(service: ServiceOut) -> list[dict[str, Any]]:
    """Devices, then their ports, then the VLAN: each once."""
    devices: list[dict[str, Any]] = []
    ports: list[dict[str, Any]] = []
    vlans: list[dict[str, Any]] = []
    for r in service.resources:
        devices.append({"id": str(r.device_id), "name": r.hostname, "@referredType": "Device"})
        if r.interface:
            ports.append({"id": f"{r.device_id}:{r.interface}", "name": f"{r.hostname}:{r.interface}",
                          "@referredType": "Interface"})  # fmt: skip
        if r.vlan is not None and all(v["id"] != f"vlan:{r.vlan}" for v in vlans):
            vlans.append({"id": f"vlan:{r.vlan}", "name": f"VLAN {r.vlan}", "@referredType": "Vlan"})
    return devices + ports + vlans


def to_tmf(service: ServiceOut, orders: list[ServiceOrder]) -> dict[str, Any]:
    """The TMF638 ``Service`` of a service (``provisioning.service.service_out``) and its orders."""
    per_device: dict[str, dict[str, Any]] = dict(service.params.get("devices", {}))
    hostnames = {r.device_id: r.hostname for r in service.resources}
    done = [o for o in orders if o.state == "completed" and o.finished_at is not None]
    started = next((o.finished_at for o in done if o.action == "activate"), None)
    ended = next((o.finished_at for o in done if o.action == "terminate"), None)
    if service.state == "cancelled":
        ended = service.updated_at
    descriptions = {str(p["description"]) for p in per_device.values() if p.get("description")}
    doc: dict[str, Any] = {
        "id": str(service.id),
        "href": f"{PATH}/{service.id}",
        "name": f"{service.service_type} {service.customer} #{service.id}",
        "category": "CustomerFacingService",
        "serviceType": service.service_type,
        "state": STATE_MAP.get(service.state, "inactive"),
        "isServiceEnabled": service.state == "active",
        "hasStarted": started is not None,
        "isStateful": True,
        "serviceDate": iso(service.created_at),
        "serviceSpecification": spec_ref(service.service_type),
        "serviceCharacteristic": characteristics({hostnames.get(int(d), d): p for d, p in per_device.items()}),
        "supportingResource": supporting_resources(service),
        "relatedParty": [customer_party(service.customer)],
        "serviceOrderItem": [
            {"serviceOrderId": str(o.id), "serviceOrderHref": f"{ORDER_PATH}/{o.id}",
             "itemId": str((o.external or {}).get("itemId", "1")), "itemAction": ACTION_MAP[o.action],
             "role": "origin" if o.action == "activate" else "change", "@referredType": "ServiceOrderItem"}
            for o in orders
        ],
        "@type": "Service",
    }  # fmt: skip
    if len(descriptions) == 1:
        doc["description"] = descriptions.pop()
    if started is not None:
        doc["startDate"] = iso(started)
    if ended is not None:
        doc["endDate"] = iso(ended)
    return doc


def snapshot(session: Session, instance: ServiceInstance) -> dict[str, Any]:
    return to_tmf(provisioning.service_out(session, instance), provisioning.service_orders(session, instance.id))


def get(session: Session, service_id: str) -> dict[str, Any]:
    if not service_id.isdigit() or len(service_id) > 18:
        raise TmfQueryError(f"id: expected a service id (digits), got {service_id[:40]!r}", field="id")
    return snapshot(session, provisioning.get_service(session, int(service_id)))


def list_services(session: Session, query: ListQuery) -> tuple[list[dict[str, Any]], int]:
    """The page of services the query selects and how many it selects in all (oldest first)."""
    found = [snapshot(session, s) for s in provisioning.list_services(session, customer=None, state=None)]
    found = [doc for doc in found if matches(doc, query.filters)]
    page = found[query.offset : query.offset + query.limit]
    return [project(doc, query.fields, always=RESOURCE.always) for doc in page], len(found)


def on_service_change(session: Session, instance: ServiceInstance, before: str | None) -> None:
    """provisioning.service.SERVICE_OUTBOX hook: the TMF638 event of a service change, in its transaction."""
    if not hub.listened(session, API):
        return
    doc = snapshot(session, instance)
    if before is None:
        event = "ServiceCreateEvent"
    elif STATE_MAP.get(before) != doc["state"]:
        event = "ServiceStateChangeEvent"
    else:
        event = "ServiceAttributeValueChangeEvent"
    hub.publish(session, API, event, doc)
