"""TMF641 service ordering and TMF638 service inventory over HTTP: a serviceOrder becomes a
faultloop order (created and planned), approved in faultloop, cancelled through TMF; every
answer validated against the v4 schemas; the hub events written in the transaction of each change;
roles; every bad input a 400 naming the TMF attribute, with nothing written."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import func, select

from inventory import service as inventory
from inventory.schemas import DeviceIn
from northbound import order as tmf_order
from northbound import service as tmf_service
from northbound.models import HubEvent
from provisioning import service as provisioning
from provisioning.models import ServiceInstance, ServiceOrder, VlanAllocation
from tests.northbound.conformance import validate, validate_all

ORDERS = "/tmf-api/serviceOrdering/v4/serviceOrder"
CANCEL = "/tmf-api/serviceOrdering/v4/cancelServiceOrder"
SERVICES = "/tmf-api/serviceInventory/v4/service"
CALLBACK = "https://listener.example.net/tmf"
SP = "serviceOrderItem[0].service"


@pytest.fixture
def hooked() -> Iterator[None]:
    """The hooks faultloop/cmd/app.py registers (the test app has no pipeline)."""
    provisioning.ORDER_OUTBOX["tmf-hub"] = tmf_order.on_order_change
    provisioning.SERVICE_OUTBOX["tmf-hub"] = tmf_service.on_service_change
    yield
    provisioning.ORDER_OUTBOX.pop("tmf-hub", None)
    provisioning.SERVICE_OUTBOX.pop("tmf-hub", None)


def _device(session, vault, hostname: str, address: str) -> None:
    inventory.create_device(session, vault, DeviceIn.model_validate(
        {"hostname": hostname, "address": address, "role": "access", "device_type": "cisco_ios",
         "ssh": {"username": "u", "password": "p"}}), actor="t")  # fmt: skip


@pytest.fixture
def lab(client, auth, session, vault) -> dict[str, dict[str, str]]:
    _device(session, vault, "tsw1", "127.0.0.31")
    _device(session, vault, "tsw2", "127.0.0.32")
    session.commit()
    r = client.post("/api/v1/vlan-pools", json={"name": "tmf-metro", "vlan_min": 300, "vlan_max": 399},
                    headers=auth("provisioner"))  # fmt: skip
    assert r.status_code == 201, r.text
    return {"oss": auth("oss"), "noc": auth("noc")}


def order_body(**over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "externalId": "BSS-4711",
        "description": "ACME metro L2",
        "category": "L2VPN",
        "priority": "1",
        "notificationContact": "noc@bss.example.net",
        "requestedStartDate": "2026-12-24T22:00:00Z",
        "requestedCompletionDate": "2026-12-25T02:00:00+00:00",
        "relatedParty": [{"id": "ACME", "name": "ACME", "role": "customer", "@referredType": "Customer"}],
        "serviceOrderItem": [{
            "id": "item-1",
            "action": "add",
            "service": {
                "serviceSpecification": {"id": "l2_vlan", "name": "l2_vlan"},
                "supportingResource": [{"name": "tsw1", "@referredType": "Device"}, {"name": "tsw2"}],
                "serviceCharacteristic": [
                    {"name": "interface", "value": {"tsw1": "GigabitEthernet0/2", "tsw2": "GigabitEthernet0/3"}},
                    {"name": "vlan_name", "value": "ACME-L2"},
                    {"name": "description", "valueType": "string", "value": "ACME L2"},
                    {"name": "vlanPool", "value": "tmf-metro"},
                ],
            },
        }],
        "@type": "ServiceOrder",
    }  # fmt: skip
    body.update(over)
    return body


def _events(session, event_type: str) -> list[dict[str, Any]]:
    session.expire_all()
    rows = session.scalars(select(HubEvent).where(HubEvent.event_type == event_type).order_by(HubEvent.id))
    return [r.payload for r in rows]


def _subscribe(client, headers, api: str) -> None:
    r = client.post(f"/tmf-api/{api}/v4/hub", json={"callback": CALLBACK, "query": ""}, headers=headers)
    assert r.status_code == 201, r.text
    validate(r.json(), "EventSubscription")


def test_order_created_planned_approved_cancelled_with_events(client, session, lab, hooked) -> None:
    oss, noc = lab["oss"], lab["noc"]
    _subscribe(client, oss, "serviceOrdering")
    _subscribe(client, oss, "serviceInventory")

    r = client.post(ORDERS, json=order_body(), headers=oss)
    assert r.status_code == 201, r.text
    doc = r.json()
    validate(doc, "ServiceOrder")
    assert r.headers["Location"] == f"{ORDERS}/{doc['id']}" and doc["href"] == r.headers["Location"]
    assert doc["state"] == "acknowledged" and doc["externalId"] == "BSS-4711" and doc["priority"] == "1"
    assert doc["notificationContact"] == "noc@bss.example.net" and doc["category"] == "L2VPN"
    assert doc["requestedStartDate"] == "2026-12-24T22:00:00+00:00"
    assert doc["requestedCompletionDate"] == "2026-12-25T02:00:00+00:00"
    assert doc["relatedParty"][0]["name"] == "ACME"
    (item,) = doc["serviceOrderItem"]
    assert (item["id"], item["action"], item["state"]) == ("item-1", "add", "acknowledged")
    chars = {c["name"]: c["value"] for c in item["service"]["serviceCharacteristic"]}
    assert chars == {"interface": {"tsw1": "GigabitEthernet0/2", "tsw2": "GigabitEthernet0/3"}, "vlan": 300,
                     "vlan_name": "ACME-L2", "description": "ACME L2", "vlanPool": "tmf-metro"}  # fmt: skip
    assert [x["name"] for x in item["service"]["supportingResource"]] == ["tsw1", "tsw2"]
    assert "planned" in doc["note"][0]["text"]
    service_id = item["service"]["id"]

    # the same order through faultloop's own API: planned, by the oss user, window kept
    order = session.get(ServiceOrder, int(doc["id"]))
    assert (order.state, order.created_by, order.vlan_pool) == ("planned", "oss-user", "tmf-metro")

    created = _events(session, "ServiceOrderCreateEvent")
    assert len(created) == 1 and created[0]["event"]["serviceOrder"]["id"] == doc["id"]
    validate(created[0], "Event")
    validate(created[0]["event"]["serviceOrder"], "ServiceOrder")
    assert created[0]["event"]["serviceOrder"]["externalId"] == "BSS-4711"
    # written at creation (a draft, before validation): what the order asks for
    draft_service = created[0]["event"]["serviceOrder"]["serviceOrderItem"][0]["service"]
    assert [x["name"] for x in draft_service["supportingResource"]] == ["tsw1", "tsw2"]
    assert {c["name"]: c["value"] for c in draft_service["serviceCharacteristic"]} == {
        "interface": {"tsw1": "GigabitEthernet0/2", "tsw2": "GigabitEthernet0/3"},
        "vlan_name": "ACME-L2",
        "description": "ACME L2",
        "vlanPool": "tmf-metro",
    }
    assert _events(session, "ServiceOrderStateChangeEvent") == []  # draft -> planned stays acknowledged
    (svc_created,) = _events(session, "ServiceCreateEvent")
    validate(svc_created["event"]["service"], "Service")
    assert svc_created["event"]["service"]["state"] == "inactive"

    # TMF638: the pending service
    r = client.get(f"{SERVICES}/{service_id}", headers=oss)
    assert r.status_code == 200
    validate(r.json(), "Service")
    assert r.json()["state"] == "inactive" and r.json()["serviceOrderItem"][0]["serviceOrderId"] == doc["id"]

    # approval stays in faultloop (four-eyes, noc)
    r = client.post(f"/api/v1/orders/{doc['id']}/approve", headers=noc)
    assert r.status_code == 200, r.text
    r = client.get(f"{ORDERS}/{doc['id']}", headers=oss)
    validate(r.json(), "ServiceOrder")
    assert r.json()["state"] == "inProgress" and r.json()["serviceOrderItem"][0]["state"] == "inProgress"
    (changed,) = _events(session, "ServiceOrderStateChangeEvent")
    assert changed["event"]["serviceOrder"]["state"] == "inProgress"

    # list, filters, projection
    r = client.get(ORDERS, params={"externalId": "BSS-4711", "fields": "state,externalId"}, headers=oss)
    assert r.status_code == 200 and r.headers["X-Total-Count"] == "1" and r.headers["X-Result-Count"] == "1"
    assert r.json() == [{"id": doc["id"], "href": doc["href"], "@type": "ServiceOrder", "state": "inProgress",
                         "externalId": "BSS-4711"}]  # fmt: skip
    assert client.get(ORDERS, params={"state": "completed", "externalId": "BSS-4711"},
                      headers=oss).json() == []  # fmt: skip
    r = client.get(ORDERS, params={"serviceOrderItem.service.serviceSpecification.name": "l2_vlan"}, headers=oss)
    assert doc["id"] in [o["id"] for o in r.json()]
    validate_all(r.json(), "ServiceOrder")

    # cancel through TMF641 (the state table allows it before execution)
    r = client.post(CANCEL, json={"serviceOrder": {"id": doc["id"]}, "cancellationReason": "customer withdrew"},
                    headers=oss)  # fmt: skip
    assert r.status_code == 201, r.text
    validate(r.json(), "CancelServiceOrder")
    assert r.json()["state"] == "done" and r.json()["cancellationReason"] == "customer withdrew"
    r = client.get(f"{ORDERS}/{doc['id']}", headers=oss)
    validate(r.json(), "ServiceOrder")
    assert r.json()["state"] == "cancelled" and "cancellationDate" in r.json()
    assert [e["event"]["serviceOrder"]["state"] for e in _events(session, "ServiceOrderStateChangeEvent")] == [
        "inProgress", "cancelled"]  # fmt: skip
    (svc_changed,) = _events(session, "ServiceStateChangeEvent")
    assert svc_changed["event"]["service"]["state"] == "terminated"
    session.expire_all()
    assert session.scalar(select(VlanAllocation).where(VlanAllocation.service_id == int(service_id))) is None

    # cancelling twice: 409 in the TMF Error shape, with what the state allows
    r = client.post(CANCEL, json={"serviceOrder": {"id": doc["id"]}}, headers=oss)
    assert r.status_code == 409
    validate(r.json(), "Error")
    assert "cancelled" in r.json()["message"]

    r = client.get(SERVICES, params={"relatedParty.name": "ACME"}, headers=oss)
    assert r.status_code == 200 and r.headers["X-Total-Count"] == "1"
    validate_all(r.json(), "Service")
    assert r.json()[0]["state"] == "terminated" and "endDate" in r.json()[0]


def test_roles(client, session, lab) -> None:
    body = order_body()
    for role in ("viewer", "technician", "servicedesk", "noc"):
        from tests.conftest import make_token

        headers = {"Authorization": f"Bearer {make_token(session, f'r-{role}', role)}"}
        assert client.post(ORDERS, json=body, headers=headers).status_code == 403, role
        assert client.post(CANCEL, json={"serviceOrder": {"id": "1"}}, headers=headers).status_code == 403, role
        expected = 200 if role == "noc" else 403
        assert client.get(ORDERS, headers=headers).status_code == expected, role
        assert client.get(SERVICES, headers=headers).status_code == expected, role
        r = client.post("/tmf-api/serviceInventory/v4/hub", json={"callback": CALLBACK}, headers=headers)
        assert r.status_code == (201 if role == "noc" else 403), role
    assert client.get(ORDERS).status_code == 401
    assert client.get(SERVICES).status_code == 401
    assert client.post(ORDERS, json=body).status_code == 401
    # oss reaches the TMF APIs only, not faultloop's own order API
    assert client.get("/api/v1/orders", headers=lab["oss"]).status_code == 403
    assert session.scalar(select(func.count()).select_from(ServiceOrder)) == 0


def test_a_provisioner_reads_back_its_order_and_writes_nothing_else(client, session, auth, lab, hooked) -> None:
    """The role that may POST a serviceOrder may GET it and the service it points to, and alarms and
    tickets as in the JSON API; hub subscriptions and the alarm and ticket writes stay refused."""
    prov = auth("provisioner")
    r = client.post(ORDERS, json=order_body(), headers=prov)
    assert r.status_code == 201, r.text
    created = r.json()
    r = client.get(r.headers["Location"], headers=prov)
    assert r.status_code == 200, r.text
    validate(r.json(), "ServiceOrder")
    assert r.json()["id"] == created["id"] and r.json()["state"] == "acknowledged"
    r = client.get(ORDERS, params={"externalId": "BSS-4711"}, headers=prov)
    assert r.status_code == 200 and [d["id"] for d in r.json()] == [created["id"]]
    service_id = created["serviceOrderItem"][0]["service"]["id"]
    r = client.get(f"{SERVICES}/{service_id}", headers=prov)
    assert r.status_code == 200, r.text
    validate(r.json(), "Service")
    assert client.get(SERVICES, headers=prov).status_code == 200
    for native, tmf in (("/api/v1/alarms", "/tmf-api/alarmManagement/v4/alarm"),
                        ("/api/v1/tickets", "/tmf-api/troubleTicket/v4/troubleTicket")):  # fmt: skip
        assert client.get(native, headers=prov).status_code == 200, native
        assert client.get(tmf, headers=prov).status_code == 200, tmf
    refused = (
        ("POST", "/tmf-api/serviceOrdering/v4/hub", {"callback": CALLBACK}),
        ("POST", "/tmf-api/serviceInventory/v4/hub", {"callback": CALLBACK}),
        ("GET", "/tmf-api/serviceOrdering/v4/hub/x", None),
        ("POST", "/tmf-api/alarmManagement/v4/ackAlarms", {"alarmPattern": [{"id": "1"}]}),
        ("PATCH", "/tmf-api/alarmManagement/v4/alarm/1", {"ackState": "acknowledged"}),
        ("POST", "/tmf-api/alarmManagement/v4/hub", {"callback": CALLBACK}),
        ("POST", "/tmf-api/troubleTicket/v4/troubleTicket", {"description": "x", "severity": "major",
                                                              "ticketType": "t"}),
        ("PATCH", "/tmf-api/troubleTicket/v4/troubleTicket/1", {"status": "inProgress"}),
        ("POST", "/tmf-api/troubleTicket/v4/hub", {"callback": CALLBACK}),
    )  # fmt: skip
    for method, path, body in refused:
        r = client.request(method, path, json=body, headers=prov)
        assert r.status_code == 403, (method, path, r.status_code)
        assert "provisioner" in r.json()["message"], (method, path)


def _item(body: dict[str, Any]) -> dict[str, Any]:
    return body["serviceOrderItem"][0]


def _chars(body: dict[str, Any]) -> list[dict[str, Any]]:
    return _item(body)["service"]["serviceCharacteristic"]


def _bad_cases() -> list[tuple[str, Any, str]]:
    cases: list[tuple[str, Any, str]] = [("not an object", [1, 2], "serviceOrder: expected a JSON object")]

    def case(name: str, edit: Any, expected: str) -> None:
        body = order_body()
        edit(body)
        cases.append((name, body, expected))

    case("read-only state", lambda b: b.update(state="completed"), "state: is set by faultloop (read-only)")
    case("read-only id", lambda b: b.update(id="7"), "id: is set by faultloop (read-only)")
    case("unknown attribute", lambda b: b.update(colour="red"), "colour: not an attribute faultloop reads")
    case("no items", lambda b: b.pop("serviceOrderItem"), "serviceOrderItem: expected a list with one")
    case("empty items", lambda b: b.update(serviceOrderItem=[]), "serviceOrderItem: expected a list with one")
    case("two items", lambda b: b["serviceOrderItem"].append(copy.deepcopy(_item(b))),
         "serviceOrderItem[1]: a serviceOrder holds one item here")  # fmt: skip
    case("item not object", lambda b: b.update(serviceOrderItem=["x"]), "serviceOrderItem[0]: expected a JSON object")
    case("item id missing", lambda b: _item(b).pop("id"), "serviceOrderItem[0].id: expected a string")
    case("item id too long", lambda b: _item(b).update(id="x" * 65), "serviceOrderItem[0].id: expected a string")
    case("item id CR/LF", lambda b: _item(b).update(id="a\r\nb"), "serviceOrderItem[0].id: control characters")
    case("unknown item attribute", lambda b: _item(b).update(appointment={}),
         "serviceOrderItem[0].appointment: not an attribute")  # fmt: skip
    case("noChange", lambda b: _item(b).update(action="noChange"), "serviceOrderItem[0].action: expected add, modify")
    case("quantity", lambda b: _item(b).update(quantity=2), "serviceOrderItem[0].quantity: expected 1")
    case("no service", lambda b: _item(b).pop("service"), f"{SP}: expected a JSON object")
    case("unknown service attribute", lambda b: _item(b)["service"].update(place=[]),
         f"{SP}.place: not an attribute")  # fmt: skip
    case("add with id", lambda b: _item(b)["service"].update(id="5"), f"{SP}.id: an add creates")
    case("no spec", lambda b: _item(b)["service"].pop("serviceSpecification"),
         f"{SP}.serviceSpecification: required to add")  # fmt: skip
    case("spec not object", lambda b: _item(b)["service"].update(serviceSpecification="l2_vlan"),
         f"{SP}.serviceSpecification: expected a ServiceSpecificationRef")  # fmt: skip
    case("unknown spec", lambda b: _item(b)["service"].update(serviceSpecification={"id": "teleport"}),
         f"{SP}.serviceSpecification.name: expected one of")  # fmt: skip
    case("no customer", lambda b: b.pop("relatedParty"), "relatedParty: required to add a service")
    case("customer without name", lambda b: b.update(relatedParty=[{"role": "customer"}]),
         "relatedParty[0].name: the customer party needs a name")  # fmt: skip
    case("customer bad characters", lambda b: b["relatedParty"][0].update(name="AC;ME", id="AC;ME"),
         "relatedParty: ")  # fmt: skip
    case("port as resource", lambda b: _item(b)["service"]["supportingResource"].append(
        {"id": "1:Gi0/1", "@referredType": "Interface"}),
         f"{SP}.supportingResource[2].@referredType: expected Device")  # fmt: skip
    case("unknown device", lambda b: _item(b)["service"]["supportingResource"][1].update(name="nosuch"),
         f"{SP}.supportingResource[1]: no device named 'nosuch'")  # fmt: skip
    case("unknown device id", lambda b: _item(b)["service"]["supportingResource"].__setitem__(1, {"id": "999999"}),
         f"{SP}.supportingResource[1].id: no device with id '999999'")  # fmt: skip
    case("device twice", lambda b: _item(b)["service"]["supportingResource"][1].update(name="tsw1"),
         f"{SP}.supportingResource[1]: device 'tsw1' is named twice")  # fmt: skip
    case("no devices", lambda b: _item(b)["service"].pop("supportingResource"),
         f"{SP}.serviceCharacteristic[0].value.tsw1: a per-device value for a device")  # fmt: skip
    case("characteristic without name", lambda b: _chars(b)[1].pop("name"),
         f"{SP}.serviceCharacteristic[1].name: expected the name of a catalog field")  # fmt: skip
    case("characteristic twice", lambda b: _chars(b).append({"name": "vlan_name", "value": "X"}),
         f"{SP}.serviceCharacteristic[4].name: characteristic 'vlan_name' is given twice")  # fmt: skip
    case("characteristic without value", lambda b: _chars(b)[1].pop("value"),
         f"{SP}.serviceCharacteristic[1].value: missing")  # fmt: skip
    case("characteristic list value", lambda b: _chars(b)[1].update(value=["a"]),
         f"{SP}.serviceCharacteristic[1].value: expected a value, or an object")  # fmt: skip
    case("per-device value for another device", lambda b: _chars(b)[0]["value"].update(tsw9="Gi0/1"),
         f"{SP}.serviceCharacteristic[0].value.tsw9: a per-device value")  # fmt: skip
    case("characteristic CR/LF", lambda b: _chars(b)[2].update(value="ACME\r\nusername x privilege 15"),
         f"{SP}.serviceCharacteristic[2]: description: control characters")  # fmt: skip
    case("per-device bad interface", lambda b: _chars(b)[0]["value"].update(tsw2="Gi0/3; reload"),
         f"{SP}.serviceCharacteristic[0]: interface of tsw2: ")  # fmt: skip
    case("missing required characteristic", lambda b: _chars(b).pop(2),
         f"{SP}.serviceCharacteristic[name=description]: description of tsw1: Field required")  # fmt: skip
    case("unknown characteristic", lambda b: _chars(b).append({"name": "colour", "value": "red"}),
         f"{SP}.serviceCharacteristic[4]: colour of tsw1: ")  # fmt: skip
    case("unknown pool", lambda b: _chars(b)[3].update(value="nosuch"),
         f"{SP}.serviceCharacteristic[3]: no VLAN pool named 'nosuch'")  # fmt: skip
    case("pool not a string", lambda b: _chars(b)[3].update(value=5),
         f"{SP}.serviceCharacteristic[3].value: expected the name of a VLAN pool")  # fmt: skip
    case("naive start", lambda b: b.update(requestedStartDate="2026-12-24T22:00:00"),
         "requestedStartDate: expected an ISO 8601 date-time with a time zone")  # fmt: skip
    case("garbage end", lambda b: b.update(requestedCompletionDate="tomorrow"),
         "requestedCompletionDate: expected an ISO 8601 date-time")  # fmt: skip
    case("window backwards", lambda b: b.update(requestedCompletionDate="2026-12-24T21:00:00Z"),
         "requestedCompletionDate: expected a time after requestedStartDate")  # fmt: skip
    case("externalId CR/LF", lambda b: b.update(externalId="BSS\r\n1"), "externalId: control characters")
    case("externalId not text", lambda b: b.update(externalId=12), "externalId: expected a string of 1 to 500")
    case("description too long", lambda b: b.update(description="x" * 501),
         "description: expected a string of 1 to 500")  # fmt: skip
    case("modify without id", lambda b: _item(b).update(action="modify"),
         f"{SP}.id: required to modify a service")  # fmt: skip
    case("delete unknown service",
         lambda b: (_item(b).update(action="delete"), _item(b)["service"].update(id="999999")),
         f"{SP}.id: no service 999999")  # fmt: skip
    case("delete bad id", lambda b: (_item(b).update(action="delete"), _item(b)["service"].update(id="x1")),
         f"{SP}.id: required to delete a service")  # fmt: skip
    return cases


@pytest.mark.parametrize(("body", "expected"), [(b, e) for _n, b, e in _bad_cases()],
                         ids=[n for n, _b, _e in _bad_cases()])  # fmt: skip
def test_bad_service_order_is_a_400_naming_the_attribute(client, session, lab, hooked, body, expected) -> None:
    _subscribe(client, lab["oss"], "serviceOrdering")
    _subscribe(client, lab["oss"], "serviceInventory")
    r = client.post(ORDERS, json=body, headers=lab["oss"])
    assert r.status_code == 400, r.text
    validate(r.json(), "Error")
    assert r.json()["message"].startswith(expected), r.json()["message"]
    assert "username x" not in r.text and "reload" not in r.text  # the unsafe input is not echoed
    session.expire_all()
    assert session.scalar(select(func.count()).select_from(ServiceOrder)) == 0  # nothing written
    assert session.scalar(select(func.count()).select_from(ServiceInstance)) == 0
    assert session.scalar(select(func.count()).select_from(VlanAllocation)) == 0
    assert session.scalar(select(func.count()).select_from(HubEvent)) == 0


def test_conflicts_keep_their_status_and_name_the_attribute(client, session, lab, hooked) -> None:
    oss = lab["oss"]
    first = client.post(ORDERS, json=order_body(), headers=oss).json()
    service_id = first["serviceOrderItem"][0]["service"]["id"]
    # the service is pending (not active): modify / delete are refused by provisioning, 409
    body = order_body()
    _item(body).update(action="delete")
    _item(body)["service"] = {"id": service_id}
    r = client.post(ORDERS, json=body, headers=oss)
    assert r.status_code == 409, r.text
    validate(r.json(), "Error")
    assert r.json()["message"] == f"{SP}.id: service {service_id} is pending, not active"
    # a wanted VLAN that another service holds
    body = order_body()
    _chars(body).append({"name": "vlan", "value": 300})
    r = client.post(ORDERS, json=body, headers=oss)
    assert r.status_code == 409
    assert r.json()["message"].startswith(f"{SP}.serviceCharacteristic[4]: ")
    assert "already allocated" in r.json()["message"]
    # another customer's service
    body = order_body(relatedParty=[{"id": "OTHER", "name": "OTHER", "role": "customer", "@referredType": "Customer"}])
    _item(body).update(action="modify")
    _item(body)["service"]["id"] = service_id
    del _item(body)["service"]["serviceSpecification"]
    r = client.post(ORDERS, json=body, headers=oss)
    assert r.status_code == 400
    assert r.json()["message"] == f"relatedParty: service {service_id} belongs to another customer"
    session.expire_all()
    assert session.scalar(select(func.count()).select_from(ServiceOrder)) == 1


def test_reads_and_queries_refuse_bad_input(client, lab) -> None:
    oss = lab["oss"]
    for path, message in [
        (f"{ORDERS}/abc", "id: expected a service order id"),
        (f"{SERVICES}/abc", "id: expected a service id"),
        (f"{ORDERS}?fields=colour", "fields: unknown field(s) of serviceOrder: colour"),
        (f"{SERVICES}?fields=colour", "fields: unknown field(s) of service: colour"),
        (f"{ORDERS}?state=done", "filter state: expected one of"),
        (f"{SERVICES}?state=up", "filter state: expected one of"),
        (f"{ORDERS}?colour=red", "unknown filter attribute 'colour' for serviceOrder"),
        (f"{SERVICES}?orderDate.gt=x", "unknown filter attribute 'orderDate' for service"),
        (f"{ORDERS}?orderDate.gt=yesterday", "filter orderDate: expected an ISO 8601 date-time"),
        (f"{ORDERS}?limit=0", "limit: expected an integer"),
        (f"{SERVICES}?offset=-1", "offset: expected an integer"),
    ]:
        r = client.get(path, headers=oss)
        assert r.status_code == 400, (path, r.text)
        validate(r.json(), "Error")
        assert r.json()["message"].startswith(message), (path, r.json())
    for path in (f"{ORDERS}/999999", f"{SERVICES}/999999"):
        r = client.get(path, headers=oss)
        assert r.status_code == 404
        validate(r.json(), "Error")
    for body, message in [
        ({}, "serviceOrder.id: expected the id"),
        ({"serviceOrder": {"id": "x"}}, "id: expected a service order id"),
        ({"serviceOrder": {"id": "1"}, "reason": "x"}, "reason: not an attribute"),
        ({"serviceOrder": {"id": "1"}, "cancellationReason": "a\nb"}, "cancellationReason: control characters"),
    ]:
        r = client.post(CANCEL, json=body, headers=oss)
        assert r.status_code == 400, r.text
        assert r.json()["message"].startswith(message), r.json()
    r = client.post(CANCEL, json={"serviceOrder": {"id": "999999"}}, headers=oss)
    assert r.status_code == 404
    r = client.post("/tmf-api/serviceOrdering/v4/hub", json={"callback": CALLBACK, "query": "eventType=Nope"},
                    headers=oss)  # fmt: skip
    assert r.status_code == 400 and "eventType" in r.json()["message"]
    r = client.post("/tmf-api/serviceInventory/v4/hub",
                    json={"callback": CALLBACK, "query": "event.service.state=active"}, headers=oss)  # fmt: skip
    assert r.status_code == 201


def test_hub_query_selects_events(client, session, lab, hooked) -> None:
    oss = lab["oss"]
    r = client.post("/tmf-api/serviceOrdering/v4/hub",
                    json={"callback": CALLBACK, "query": "eventType=ServiceOrderStateChangeEvent"},
                    headers=oss)  # fmt: skip
    assert r.status_code == 201
    doc = client.post(ORDERS, json=order_body(), headers=oss).json()
    assert _events(session, "ServiceOrderCreateEvent") == []  # not selected by the query
    assert client.post(CANCEL, json={"serviceOrder": {"id": doc["id"]}}, headers=oss).status_code == 201
    (event,) = _events(session, "ServiceOrderStateChangeEvent")
    assert event["event"]["serviceOrder"]["state"] == "cancelled"
