"""TMF641 Service Ordering v4: TMF ``ServiceOrder``s as faultloop service orders.

A serviceOrder becomes ONE faultloop order through provisioning's own functions: the same
character gate and catalog validation, VLAN allocation, dry-run plan, four-eyes approval, change
window and all-or-nothing execution. A faultloop order is one action on one service, executed
all or nothing, so a serviceOrder carries exactly one ``serviceOrderItem`` (several services are
several serviceOrders): ``partial`` never happens. The item maps as:

- ``action`` add / modify / delete -> activate / modify / terminate;
- ``service.serviceSpecification.name`` (or ``id``) -> the catalog type; ``service.id`` -> the
  service to modify or terminate;
- ``service.supportingResource`` (``@referredType`` Device, by ``name`` = hostname or ``id``) -> the
  devices;
- ``service.serviceCharacteristic``: each catalog field by ``name``; a value for every device, or
  an object by hostname for per-device values (``{"sw1": "Gi0/1", "sw2": "Gi0/2"}``); ``vlanPool``
  names the VLAN pool;
- ``relatedParty`` with role ``customer`` -> the customer; ``requestedStartDate`` /
  ``requestedCompletionDate`` -> the change window.

POST answers with the order planned (``acknowledged``); a NOC approver approves it in faultloop and
it runs in its change window. Every bad input is a 400 naming the TMF attribute.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from faultloop.errors import Conflict, DomainError, InvalidInput, NotFound
from faultloop.vault import Vault
from inventory import queries as inventory
from northbound import hub
from northbound.query import Attribute, Kind, ListQuery, Resource, TmfQueryError, matches, project
from northbound.service import PATH as SERVICE_PATH
from northbound.service import characteristics, customer_party, iso, spec_ref
from provisioning import service as provisioning
from provisioning.models import ServiceOrder
from provisioning.render import reject_unsafe

BASE = "/tmf-api/serviceOrdering/v4"
PATH = f"{BASE}/serviceOrder"
CANCEL_PATH = f"{BASE}/cancelServiceOrder"

# faultloop order state -> TMF641 ServiceOrderStateType (the item's state is the order's: one item)
STATE_MAP: dict[str, str] = {
    "draft": "acknowledged",
    "validated": "acknowledged",
    "planned": "acknowledged",
    "approved": "inProgress",  # approved, runs when its change window opens
    "executing": "inProgress",
    "verifying": "inProgress",
    "completed": "completed",
    "rolled_back": "failed",  # all or nothing: every device is back to its backup
    "failed": "failed",
    "cancelled": "cancelled",
}
STATES = frozenset({"acknowledged", "rejected", "pending", "held", "inProgress", "cancelled", "completed", "failed",
                    "partial", "assessingCancellation", "pendingCancellation"})  # fmt: skip
ACTIONS = {"add": "activate", "modify": "modify", "delete": "terminate"}
TMF_ACTION = {v: k for k, v in ACTIONS.items()}

FILTERS: dict[str, Attribute] = {
    "id": Attribute(),
    "externalId": Attribute(),
    "state": Attribute(Kind.text, STATES),
    "category": Attribute(),
    "priority": Attribute(),
    "orderDate": Attribute(Kind.datetime),
    "completionDate": Attribute(Kind.datetime),
    "relatedParty.name": Attribute(),
    "serviceOrderItem.action": Attribute(Kind.text, frozenset({"add", "modify", "delete", "noChange"})),
    "serviceOrderItem.state": Attribute(Kind.text, STATES),
    "serviceOrderItem.service.id": Attribute(),
    "serviceOrderItem.service.serviceSpecification.name": Attribute(),
}
RESOURCE = Resource("serviceOrder", frozenset({
    "externalId", "description", "category", "priority", "state", "orderDate", "startDate", "completionDate",
    "cancellationDate", "requestedStartDate", "requestedCompletionDate", "relatedParty", "note",
    "serviceOrderItem",
}), FILTERS)  # fmt: skip
API = hub.HubApi(
    name="serviceOrdering",
    resource_key="serviceOrder",
    event_types=frozenset({"ServiceOrderCreateEvent", "ServiceOrderStateChangeEvent"}),
    filters=FILTERS,
)

MAX_TEXT = 500
READ_ONLY = frozenset({"id", "href", "state", "orderDate", "startDate", "completionDate", "expectedCompletionDate",
                       "cancellationDate", "cancellationReason"})  # fmt: skip
META = frozenset({"@type", "@baseType", "@schemaLocation"})
ORDER_KEYS = (
    frozenset(
        {
            "externalId",
            "description",
            "category",
            "priority",
            "requestedStartDate",
            "requestedCompletionDate",
            "relatedParty",
            "serviceOrderItem",
            "notificationContact",
        }
    )
    | META
)
ITEM_KEYS = frozenset({"id", "action", "service", "quantity"}) | META
SERVICE_KEYS = frozenset({"id", "href", "name", "serviceSpecification", "serviceCharacteristic",
                          "supportingResource", "@referredType"}) | META  # fmt: skip
VLAN_POOL = "vlanPool"  # the characteristic naming the VLAN pool (not a catalog field)


# ---- the TMF representation -------------------------------------------------------------------


def to_tmf(order: ServiceOrder, devices: list[tuple[int, str, dict[str, Any]]]) -> dict[str, Any]:
    """The TMF641 ``ServiceOrder`` of a faultloop order and its devices (id, hostname, values)."""
    external: dict[str, Any] = dict(order.external or {})
    state = STATE_MAP[order.state]
    final = order.state in ("completed", "rolled_back", "failed")
    service: dict[str, Any] = {
        "serviceSpecification": spec_ref(order.service_type),
        "serviceCharacteristic": characteristics({host: params for _id, host, params in devices}),
        "supportingResource": [{"id": str(device_id), "name": host, "@referredType": "Device"}
                               for device_id, host, _params in devices],
        "@type": "Service",
    }  # fmt: skip
    if order.service_id is not None:
        service["id"] = str(order.service_id)
        service["href"] = f"{SERVICE_PATH}/{order.service_id}"
    if order.vlan_pool:
        service["serviceCharacteristic"].append({"name": VLAN_POOL, "valueType": "string", "value": order.vlan_pool})
    doc: dict[str, Any] = {
        "id": str(order.id),
        "href": f"{PATH}/{order.id}",
        "state": state,
        "orderDate": iso(order.created_at),
        "relatedParty": [customer_party(order.customer)],
        "serviceOrderItem": [{
            "id": str(external.get("itemId", "1")),
            "action": TMF_ACTION[order.action],
            "quantity": 1,
            "state": state,
            "service": service,
            "@type": "ServiceOrderItem",
        }],
        "note": [{"author": "faultloop", "date": iso(order.updated_at),
                  "text": f"faultloop order state: {order.state}" + (f"; {order.result}" if order.result else "")}],
        "@type": "ServiceOrder",
    }  # fmt: skip
    for key in ("externalId", "description", "category", "priority", "notificationContact"):
        if external.get(key):
            doc[key] = external[key]
    if order.window_start is not None:
        doc["requestedStartDate"] = iso(order.window_start)
    if order.window_end is not None:
        doc["requestedCompletionDate"] = iso(order.window_end)
    if final and order.finished_at is not None:
        doc["completionDate"] = iso(order.finished_at)
    if order.state == "cancelled":
        doc["cancellationDate"] = iso(order.updated_at)
    return doc


def snapshot(session: Session, order: ServiceOrder) -> dict[str, Any]:
    """The order's devices are its items once validated; before (a draft), what it asks for."""
    items = provisioning.items(session, order.id)
    if items:
        hostnames = {d.id: d.hostname for d in inventory.devices(session, ids=[i.device_id for i in items])}
        devices = [(i.device_id, hostnames.get(i.device_id, ""), dict(i.params)) for i in items]
    else:
        request = order.request or {}
        devices = []
        for target in request.get("targets", []):
            found = inventory.device_by_hostname(session, target["device"])
            if found is not None:
                devices.append((found.id, found.hostname, {**request.get("params", {}), **target.get("params", {})}))
    return to_tmf(order, devices)


def _order_id(order_id: str) -> int:
    if not order_id.isdigit() or len(order_id) > 18:
        raise TmfQueryError(f"id: expected a service order id (digits), got {order_id[:40]!r}", field="id")
    return int(order_id)


def get(session: Session, order_id: str) -> dict[str, Any]:
    return snapshot(session, provisioning.get_order(session, _order_id(order_id)))


def list_orders(session: Session, query: ListQuery) -> tuple[list[dict[str, Any]], int]:
    """The page of orders the query selects (newest first) and how many it selects in all."""
    found: list[dict[str, Any]] = []
    offset, batch = 0, 500
    while True:
        rows = provisioning.list_orders(session, state=None, limit=batch, offset=offset)
        found.extend(doc for doc in (snapshot(session, o) for o in rows) if matches(doc, query.filters))
        if len(rows) < batch:
            break
        offset += batch
    page = found[query.offset : query.offset + query.limit]
    return [project(doc, query.fields, always=RESOURCE.always) for doc in page], len(found)


# ---- a TMF serviceOrder -> a faultloop order ----------------------------------------------------------


def _bad(path: str, message: str) -> TmfQueryError:
    return TmfQueryError(f"{path}: {message}", field=path)


def _text(doc: dict[str, Any], key: str, path: str, *, max_len: int = MAX_TEXT) -> str | None:
    value = doc.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > max_len:
        raise _bad(f"{path}{key}", f"expected a string of 1 to {max_len} characters")
    return value


def _keys(doc: Any, allowed: frozenset[str], path: str, what: str,
          read_only: frozenset[str] = frozenset()) -> dict[str, Any]:  # fmt: skip
    if not isinstance(doc, dict):
        raise _bad(path or "serviceOrder", f"expected a JSON object ({what})")
    for key in doc:
        if key in read_only:
            raise _bad(key, "is set by faultloop (read-only); leave it out")
        if key not in allowed:
            raise _bad(f"{path}.{key}" if path else key, f"not an attribute faultloop reads in {what}; "
                       f"expected: {', '.join(sorted(allowed))}")  # fmt: skip
    return doc


def _when(doc: dict[str, Any], key: str) -> datetime | None:
    raw = doc.get(key)
    if raw is None:
        return None
    try:
        at = datetime.fromisoformat(str(raw).replace("Z", "+00:00")) if isinstance(raw, str) else None
    except ValueError:
        at = None
    if at is None or at.tzinfo is None:
        raise _bad(key, "expected an ISO 8601 date-time with a time zone (2026-12-24T22:00:00Z)")
    return at


def _customer(parties: Any) -> str | None:
    if parties is None:
        return None
    if not isinstance(parties, list) or len(parties) > 20:
        raise _bad("relatedParty", "expected a list of up to 20 related parties")
    found = None
    for i, party in enumerate(parties):
        if not isinstance(party, dict):
            raise _bad(f"relatedParty[{i}]", "expected an object (id, name, role)")
        if str(party.get("role", "")).lower() == "customer":
            name = party.get("name") or party.get("id")
            if not isinstance(name, str) or not name:
                raise _bad(f"relatedParty[{i}].name", "the customer party needs a name (or an id)")
            found = name
    return found


def _devices(session: Session, resources: Any, path: str) -> list[str]:
    """The hostnames of the item's Device resources."""
    if resources is None:
        return []
    if not isinstance(resources, list) or len(resources) > 1000:
        raise _bad(path, "expected a list of up to 1000 resources (@referredType Device)")
    names: list[str] = []
    for k, ref in enumerate(resources):
        where = f"{path}[{k}]"
        if not isinstance(ref, dict):
            raise _bad(where, "expected a ResourceRef object (id or name, @referredType Device)")
        kind = ref.get("@referredType", "Device")
        if kind != "Device":
            raise _bad(
                f"{where}.@referredType",
                f"expected Device (ports and VLANs are characteristics), got {str(kind)[:40]!r}",
            )
        name, ref_id = ref.get("name"), ref.get("id")
        if name is not None:
            if not isinstance(name, str) or not 1 <= len(name) <= 255:
                raise _bad(f"{where}.name", "expected the device's hostname")
            if inventory.device_by_hostname(session, name) is None:
                raise _bad(where, f"no device named {name[:60]!r}")
        elif ref_id is not None:
            device = (
                inventory.device(session, int(ref_id))
                if isinstance(ref_id, str) and ref_id.isdigit() and len(ref_id) < 18
                else None
            )
            if device is None:
                raise _bad(f"{where}.id", f"no device with id {str(ref_id)[:40]!r}")
            name = device.hostname
        else:
            raise _bad(where, "give the device's name (hostname) or id")
        if name in names:
            raise _bad(where, f"device {name!r} is named twice")
        names.append(name)
    return names


def _characteristics(
    raw: Any, path: str, devices: list[str]
) -> tuple[dict[str, Any], dict[str, dict[str, Any]], str | None, dict[str, int]]:
    """Common values, per-device values, the VLAN pool, and each name's index (for errors)."""
    common: dict[str, Any] = {}
    per_device: dict[str, dict[str, Any]] = {d: {} for d in devices}
    pool: str | None = None
    index: dict[str, int] = {}
    if raw is None:
        return common, per_device, pool, index
    if not isinstance(raw, list) or len(raw) > 100:
        raise _bad(path, "expected a list of up to 100 characteristics (name, value)")
    for i, char in enumerate(raw):
        where = f"{path}[{i}]"
        if not isinstance(char, dict):
            raise _bad(where, "expected an object (name, value)")
        extra = set(char) - {"id", "name", "value", "valueType", "@type", "@baseType", "@schemaLocation"}
        if extra:
            raise _bad(f"{where}.{sorted(extra)[0]}", "not an attribute of a characteristic (name, valueType, value)")
        name = char.get("name")
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,63}", name):
            raise _bad(f"{where}.name", "expected the name of a catalog field (letters, digits, _)")
        if name in index:
            raise _bad(f"{where}.name", f"characteristic {name!r} is given twice (also at [{index[name]}])")
        index[name] = i
        if "value" not in char:
            raise _bad(f"{where}.value", "missing")
        value = char["value"]
        if name == VLAN_POOL:
            if not isinstance(value, str):
                raise _bad(f"{where}.value", "expected the name of a VLAN pool")
            pool = value
        elif isinstance(value, dict):
            for host, v in value.items():
                if host not in per_device:
                    raise _bad(f"{where}.value.{host[:60]}", "a per-device value for a device the item's "
                               "supportingResource does not name")  # fmt: skip
                per_device[host][name] = v
        elif isinstance(value, list):
            raise _bad(f"{where}.value", "expected a value, or an object of values by device hostname")
        else:
            common[name] = value
    return common, per_device, pool, index


def parse(session: Session, body: Any) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """The faultloop order document (``OrderIn``), what the client sent beside it (``external``),
    and what translating an error back needs; every error names the TMF attribute."""
    body = _keys(body, ORDER_KEYS, "", "a serviceOrder", READ_ONLY)
    external: dict[str, Any] = {}
    for key in ("externalId", "description", "category", "priority", "notificationContact"):
        value = _text(body, key, "")
        if value is not None:
            external[key] = value
    try:
        reject_unsafe(external, "")
    except InvalidInput as exc:
        raise TmfQueryError(exc.detail, field=exc.field) from None
    items = body.get("serviceOrderItem")
    if not isinstance(items, list) or not items:
        raise _bad("serviceOrderItem", "expected a list with one service order item")
    if len(items) > 1:
        raise _bad("serviceOrderItem[1]", "a serviceOrder holds one item here: faultloop runs one action on one "
                   "service, all or nothing; send one serviceOrder per service")  # fmt: skip
    item = _keys(items[0], ITEM_KEYS, "serviceOrderItem[0]", "a serviceOrderItem")
    item_id = item.get("id")
    if not isinstance(item_id, str) or not 1 <= len(item_id) <= 64:
        raise _bad("serviceOrderItem[0].id", "expected a string of 1 to 64 characters (required)")
    external["itemId"] = item_id
    reject_unsafe_tmf(item_id, "serviceOrderItem[0].id")
    if item.get("quantity", 1) != 1:
        raise _bad("serviceOrderItem[0].quantity", "expected 1 (one service per item)")
    action = item.get("action")
    if action not in ACTIONS:
        raise _bad("serviceOrderItem[0].action", f"expected add, modify or delete, got {str(action)[:40]!r}")
    sp = "serviceOrderItem[0].service"
    svc = _keys(item.get("service"), SERVICE_KEYS, sp, "a service")
    service_id: int | None = None
    customer = _customer(body.get("relatedParty"))
    spec_name: str | None = None
    spec = svc.get("serviceSpecification")
    if spec is not None:
        if not isinstance(spec, dict):
            raise _bad(f"{sp}.serviceSpecification", "expected a ServiceSpecificationRef (name or id)")
        name = spec.get("name") or spec.get("id")
        if not isinstance(name, str) or not 1 <= len(name) <= 64:
            raise _bad(f"{sp}.serviceSpecification.name", "expected the name of a catalog service type")
        spec_name = name
    if action == "add":
        if "id" in svc:
            raise _bad(f"{sp}.id", "an add creates a new service; give service.id only to modify or delete")
        if spec_name is None:
            raise _bad(f"{sp}.serviceSpecification", "required to add a service (the catalog type's name)")
        if customer is None:
            raise _bad("relatedParty", "required to add a service: a party with role customer")
    else:
        raw_id = svc.get("id")
        if not isinstance(raw_id, str) or not raw_id.isdigit() or len(raw_id) > 18:
            raise _bad(f"{sp}.id", f"required to {action} a service: the id of a service (digits)")
        try:
            instance = provisioning.get_service(session, int(raw_id))
        except NotFound:
            raise _bad(f"{sp}.id", f"no service {raw_id}") from None
        service_id = instance.id
        spec_name = spec_name or instance.service_type
        if customer is not None and customer != instance.customer:
            raise _bad("relatedParty", f"service {raw_id} belongs to another customer")
        customer = instance.customer
    devices = _devices(session, svc.get("supportingResource"), f"{sp}.supportingResource")
    common, per_device, pool, index = _characteristics(
        svc.get("serviceCharacteristic"), f"{sp}.serviceCharacteristic", devices
    )
    data: dict[str, Any] = {
        "action": ACTIONS[action],
        "service_type": spec_name,
        "customer": customer,
        "params": common,
        "targets": [{"device": d, "params": per_device[d]} for d in devices],
    }
    if service_id is not None:
        data["service_id"] = service_id
    if pool is not None:
        data["vlan_pool"] = pool
    start, end = _when(body, "requestedStartDate"), _when(body, "requestedCompletionDate")
    if start is not None:
        data["window_start"] = start.isoformat()
    if end is not None:
        data["window_end"] = end.isoformat()
    if start is not None and end is not None and end <= start:
        raise _bad("requestedCompletionDate", "expected a time after requestedStartDate (the change window)")
    return data, external, {"index": index, "devices": devices}


def reject_unsafe_tmf(value: Any, path: str) -> None:
    try:
        reject_unsafe(value, path)
    except InvalidInput as exc:
        raise TmfQueryError(exc.detail, field=exc.field) from None


_SP = "serviceOrderItem[0].service"
_PLAIN = {
    "service_type": f"{_SP}.serviceSpecification.name",
    "customer": "relatedParty",
    "service_id": f"{_SP}.id",
    "window_start": "requestedStartDate",
    "window_end": "requestedCompletionDate",
    "targets": f"{_SP}.supportingResource",
    "params": f"{_SP}.serviceCharacteristic",
    "body": "serviceOrder",
}


def tmf_path(field: str | None, context: dict[str, Any]) -> str:
    """A faultloop order field (``targets[1].params.interface``) as the TMF attribute the client sent."""
    if not field:
        return "serviceOrder"
    index: dict[str, int] = context["index"]
    m = re.fullmatch(r"(?:targets\[(\d+)\]\.)?params\.([A-Za-z0-9_]+)(.*)", field)
    if m:
        name = m.group(2)
        if name in index:
            return f"{_SP}.serviceCharacteristic[{index[name]}]"
        return f"{_SP}.serviceCharacteristic[name={name}]"
    m = re.fullmatch(r"targets\[(\d+)\](\.device)?", field)
    if m:
        return f"{_SP}.supportingResource[{m.group(1)}]"
    if field == "vlan_pool":
        return (
            f"{_SP}.serviceCharacteristic[{index[VLAN_POOL]}]" if VLAN_POOL in index else f"{_SP}.serviceCharacteristic"
        )
    return _PLAIN.get(field.split(".")[0].split("[")[0], "serviceOrder")


def translate(exc: DomainError, context: dict[str, Any]) -> DomainError:
    where = tmf_path(exc.field, context)
    message = exc.detail
    if exc.field and message.startswith(f"{exc.field}:"):
        message = message[len(exc.field) + 1 :].strip()
        m = re.fullmatch(r"targets\[(\d+)\]\.params\.([A-Za-z0-9_]+).*", exc.field)
        if m and context["devices"]:
            message = f"{m.group(2)} of {context['devices'][int(m.group(1))]}: {message}"
        elif exc.field.startswith("params."):
            message = f"{exc.field.removeprefix('params.')}: {message}"
    if isinstance(exc, InvalidInput):  # a bad serviceOrder is a 400 in TMF630, the 409s stay 409
        return TmfQueryError(f"{where}: {message}", field=where)
    return type(exc)(f"{where}: {message}", field=where)


def create(session: Session, body: Any, *, actor: str, role: str, vault: Vault, four_eyes: bool) -> ServiceOrder:
    """A serviceOrder -> a faultloop order, created and planned (validated, VLAN allocated, rendered
    and diffed, never touching a device): ``acknowledged``. A NOC approver approves it in faultloop."""
    data, external, context = parse(session, body)
    try:
        order = provisioning.create_order(session, provisioning.parse_order(data), actor=actor, external=external)
        return provisioning.act(session, order.id, "plan", actor=actor, role=role, four_eyes=four_eyes, vault=vault)
    except (InvalidInput, Conflict) as exc:
        raise translate(exc, context) from None


def cancel(session: Session, body: Any, *, actor: str, role: str, vault: Vault, four_eyes: bool) -> dict[str, Any]:
    """TMF641 ``CancelServiceOrder``: cancels at once when the order's state allows it (before it runs);
    409 with the allowed actions otherwise."""
    body = _keys(body, frozenset({"serviceOrder", "cancellationReason", "requestedCancellationDate"}) | META,
                 "", "a cancelServiceOrder")  # fmt: skip
    ref = body.get("serviceOrder")
    if not isinstance(ref, dict) or not isinstance(ref.get("id"), str):
        raise _bad("serviceOrder.id", "expected the id of the service order to cancel")
    reason = _text(body, "cancellationReason", "")
    if reason is not None:
        reject_unsafe_tmf(reason, "cancellationReason")
    order_id = _order_id(ref["id"])
    order = provisioning.act(session, order_id, "cancel", actor=actor, role=role, four_eyes=four_eyes, vault=vault)
    doc: dict[str, Any] = {
        "id": str(order.id),
        "href": f"{CANCEL_PATH}/{order.id}",
        "state": "done",
        "effectiveCancellationDate": iso(order.updated_at),
        "serviceOrder": {"id": str(order.id), "href": f"{PATH}/{order.id}", "@referredType": "ServiceOrder"},
        "@type": "CancelServiceOrder",
    }
    if reason is not None:
        doc["cancellationReason"] = reason
    return doc


def on_order_change(session: Session, order: ServiceOrder, action: str, before: str | None) -> None:
    """provisioning.service.ORDER_OUTBOX hook: the TMF641 event of an order change, in its transaction
    (a step that keeps the TMF state, e.g. draft -> planned, is no TMF event)."""
    if not hub.listened(session, API):
        return
    if before is None:
        hub.publish(session, API, "ServiceOrderCreateEvent", snapshot(session, order))
    elif STATE_MAP.get(before) != STATE_MAP.get(order.state):
        hub.publish(session, API, "ServiceOrderStateChangeEvent", snapshot(session, order))
