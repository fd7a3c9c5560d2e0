"""TMF638 Service Inventory on the database fixtures (SQLite, and PostgreSQL when configured): the
mapping of faultloop's service states, resources and orders, the TMF630 list query, and the
composition root's hooks that write the TMF641/638 events."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from faultloop.errors import NotFound
from inventory import service as inventory
from inventory.schemas import DeviceIn
from northbound import order as tmf_order
from northbound import service as tmf_service
from northbound.query import TmfQueryError, parse_list_query
from provisioning import service as provisioning
from provisioning.models import ServiceInstance
from provisioning.schemas import VlanPoolIn
from tests.northbound.conformance import validate, validate_all


def _query(params: list[tuple[str, str]]) -> Any:
    return parse_list_query(params, tmf_service.RESOURCE, page_max=100)


@pytest.fixture
def services(session, vault) -> list[int]:
    """Three services of two customers: one pending (planned order), one cancelled, one active-looking."""
    for host, address in (("inv1", "127.0.0.41"), ("inv2", "127.0.0.42")):
        device = {"hostname": host, "address": address, "role": "access", "device_type": "cisco_ios"}
        inventory.create_device(session, vault, DeviceIn.model_validate(device), actor="t")
    provisioning.create_pool(session, VlanPoolIn(name="inv-pool", vlan_min=700, vlan_max=709), actor="t")
    ids = []
    for customer, host in (("ACME", "inv1"), ("ACME", "inv2"), ("GLOBEX", "inv1")):
        order = provisioning.create_order(session, provisioning.parse_order({
            "service_type": "business_internet", "customer": customer, "vlan_pool": "inv-pool",
            "params": {"description": f"{customer} BIA", "speed_mbps": 100},
            "targets": [{"device": host, "params": {"interface": "GigabitEthernet0/5"}}],
        }), actor="prov")  # fmt: skip
        provisioning.act(session, order.id, "plan", actor="prov", role="provisioner", four_eyes=True, vault=vault)
        ids.append(order.service_id)
    cancelled = provisioning.get_order(session, provisioning.list_orders(session, state=None, limit=1, offset=0)[0].id)
    provisioning.act(session, cancelled.id, "cancel", actor="noc", role="noc", four_eyes=True, vault=vault)
    session.flush()
    return ids


def test_states_resources_and_orders_map_to_tmf638(session, services) -> None:
    docs = [tmf_service.get(session, str(i)) for i in services]
    validate_all(docs, "Service")
    assert [d["state"] for d in docs] == ["inactive", "inactive", "terminated"]  # pending, pending, cancelled
    first = docs[0]
    assert first["href"] == f"/tmf-api/serviceInventory/v4/service/{services[0]}"
    assert first["serviceSpecification"] == {"id": "business_internet", "name": "business_internet",
                                             "@referredType": "ServiceSpecification"}  # fmt: skip
    assert first["relatedParty"] == [{"id": "ACME", "name": "ACME", "role": "customer", "@referredType": "Customer"}]
    assert first["isServiceEnabled"] is False and first["hasStarted"] is False and "startDate" not in first
    assert first["serviceOrderItem"][0]["itemAction"] == "add"
    assert "endDate" in docs[2]


def test_an_active_service_shows_its_devices_ports_vlan_and_values(session, vault, services) -> None:
    instance = session.get(ServiceInstance, services[0])
    order = provisioning.service_orders(session, instance.id)[0]
    # finish as the executor does after a verified push (the devices are not reachable here)
    provisioning.act(session, order.id, "approve", actor="noc", role="noc", four_eyes=True, vault=vault)
    order.state = "verifying"
    provisioning.finish(session, order, outcome="completed", actor="system", message="1 device(s) configured")
    doc = tmf_service.get(session, str(instance.id))
    validate(doc, "Service")
    assert doc["state"] == "active" and doc["isServiceEnabled"] is True and doc["hasStarted"] is True
    assert doc["startDate"] == order.finished_at.isoformat()
    assert doc["description"] == "ACME BIA"
    device_id = doc["supportingResource"][0]["id"]
    assert doc["supportingResource"] == [
        {"id": device_id, "name": "inv1", "@referredType": "Device"},
        {"id": f"{device_id}:GigabitEthernet0/5", "name": "inv1:GigabitEthernet0/5", "@referredType": "Interface"},
        {"id": "vlan:700", "name": "VLAN 700", "@referredType": "Vlan"},
    ]
    values = {c["name"]: (c["valueType"], c["value"]) for c in doc["serviceCharacteristic"]}
    assert values["vlan"] == ("integer", 700) and values["interface"] == ("string", "GigabitEthernet0/5")
    tmf = tmf_order.get(session, str(order.id))
    validate(tmf, "ServiceOrder")
    assert tmf["state"] == "completed" and tmf["completionDate"] == order.finished_at.isoformat()


def test_list_filters_projection_and_paging(session, services) -> None:
    docs, total = tmf_service.list_services(session, _query([("relatedParty.name", "ACME")]))
    assert total >= 2 and all(d["relatedParty"][0]["name"] == "ACME" for d in docs)
    mine = [d for d in docs if int(d["id"]) in services]
    assert len(mine) == 2
    docs, total = tmf_service.list_services(session, _query([("state", "terminated"), ("relatedParty.name", "GLOBEX")]))
    assert [d["id"] for d in docs if int(d["id"]) in services] == [str(services[2])]
    # a pending service holds no resources yet: an activation's devices become resources when it completes
    docs, _ = tmf_service.list_services(session, _query([("supportingResource.name", "inv2")]))
    assert [d for d in docs if int(d["id"]) in services] == []
    docs, _ = tmf_service.list_services(session, _query([("relatedParty.name", "GLOBEX"), ("fields", "state")]))
    assert {"id", "href", "@type", "state"} == set(docs[0]) and str(services[2]) in [d["id"] for d in docs]
    docs, total = tmf_service.list_services(session, _query([("relatedParty.name", "ACME"), ("limit", "1")]))
    assert len(docs) == 1 and total >= 2
    docs, _ = tmf_service.list_services(
        session, _query([("relatedParty.name", "ACME"), ("offset", "1"), ("limit", "5")])
    )
    assert len(docs) == total - 1
    docs, _ = tmf_service.list_services(
        session, _query([("isServiceEnabled", "true"), ("relatedParty.name", "GLOBEX")])
    )
    assert [d for d in docs if int(d["id"]) in services] == []


def test_bad_ids_and_queries_are_named(session, services) -> None:
    with pytest.raises(TmfQueryError, match="id: expected a service id"):
        tmf_service.get(session, "1;drop")
    with pytest.raises(TmfQueryError, match="id: expected a service id"):
        tmf_service.get(session, "9" * 19)
    with pytest.raises(NotFound):
        tmf_service.get(session, "999999")
    with pytest.raises(TmfQueryError, match="filter isServiceEnabled: expected true or false"):
        _query([("isServiceEnabled", "yes")])
    with pytest.raises(TmfQueryError, match="filter serviceDate: expected a date-time with a time zone"):
        _query([("serviceDate.gt", "2026-01-01T00:00:00")])
    with pytest.raises(TmfQueryError, match="sort is not supported on service"):
        _query([("sort", "id")])


def test_no_subscription_no_event_row(session, vault, services) -> None:
    from northbound.models import HubEvent

    provisioning.ORDER_OUTBOX["tmf-hub"] = tmf_order.on_order_change
    provisioning.SERVICE_OUTBOX["tmf-hub"] = tmf_service.on_service_change
    try:
        order = provisioning.service_orders(session, services[1])[0]
        provisioning.act(session, order.id, "cancel", actor="noc", role="noc", four_eyes=True, vault=vault)
        session.flush()
        assert session.scalars(select(HubEvent)).all() == []
    finally:
        provisioning.ORDER_OUTBOX.pop("tmf-hub", None)
        provisioning.SERVICE_OUTBOX.pop("tmf-hub", None)
