"""The order API: roles per route and per action (four-eyes), problem+json errors, dry-run plan,
execution over HTTP against a lab device."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.main import create_api
from faultloop.db import transaction
from faultloop.runtime import Runtime
from inventory import service as inventory
from inventory.schemas import DeviceIn
from tests.collectors import cli_lab
from tests.conftest import make_token
from tests.provisioning.lab import add_device, lab_device

bg, host_key, lab_ssh, file_runtime = cli_lab.bg, cli_lab.host_key, cli_lab.lab_ssh, cli_lab.file_runtime


def _order(device: str) -> dict[str, Any]:
    return {
        "service_type": "l2_vlan",
        "customer": "ACME",
        "params": {"vlan_name": "ACME-L2", "description": "ACME L2"},
        "targets": [{"device": device, "params": {"interface": "GigabitEthernet0/2"}}],
        "vlan_pool": "metro-1",
    }


def test_order_api_roles_errors_and_dry_run(client, auth, session, vault) -> None:
    inventory.create_device(
        session,
        vault,
        DeviceIn.model_validate(
            {
                "hostname": "sw1",
                "address": "127.0.0.9",
                "role": "access",
                "device_type": "cisco_ios",
                "ssh": {"username": "u", "password": "p"},
            }
        ),
        actor="t",
    )
    session.commit()
    prov, noc, viewer = auth("provisioner"), auth("noc"), auth("viewer")
    r = client.post("/api/v1/vlan-pools", json={"name": "metro-1", "vlan_min": 300, "vlan_max": 399}, headers=prov)
    assert r.status_code == 201 and r.json()["allocated"] == []

    assert client.post("/api/v1/orders", json=_order("sw1"), headers=viewer).status_code == 403
    assert client.post("/api/v1/orders", json=_order("sw1"), headers=noc).status_code == 403

    bad = _order("sw1")
    bad["params"]["description"] = "ACME\r\nusername x privilege 15"
    r = client.post("/api/v1/orders", json=bad, headers=prov)
    assert r.status_code == 422 and r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["field"] == "params.description" and "control characters" in r.json()["detail"]
    assert "username x" not in r.text  # the input is not echoed
    assert client.get("/api/v1/orders", headers=viewer).json() == []

    r = client.post("/api/v1/orders", json=_order("sw1"), headers=prov)
    assert r.status_code == 201, r.text
    order = r.json()
    assert order["state"] == "draft" and "plan" in order["allowed_actions"]
    r = client.post(f"/api/v1/orders/{order['id']}/plan", headers=prov)
    assert r.status_code == 200, r.text
    item = r.json()["items"][0]
    assert r.json()["state"] == "planned" and item["params"]["vlan"] == 300
    assert item["commands"][:2] == ["vlan 300", " name ACME-L2"] and "+vlan 300" in item["diff"]

    r = client.post(f"/api/v1/orders/{order['id']}/approve", headers=prov)
    assert r.status_code == 403  # provisioners submit, noc/admin approve
    r = client.post(f"/api/v1/orders/{order['id']}/approve", headers=noc)
    assert r.status_code == 200 and r.json()["approved_by"] == "noc-user"
    r = client.post(f"/api/v1/orders/{order['id']}/plan", headers=prov)
    assert r.status_code == 409 and r.json()["allowed_actions"] == ["cancel", "execute"]
    assert client.post("/api/v1/orders/999999/plan", headers=prov).status_code == 404

    pools = client.get("/api/v1/vlan-pools", headers=viewer).json()
    assert pools[0]["allocated"] == [300]
    timeline = client.get(f"/api/v1/orders/{order['id']}/timeline", headers=viewer).json()
    assert [(e["actor"], e["action"]) for e in timeline] == [
        ("provisioner-user", "order.create"),
        ("provisioner-user", "order.plan"),
        ("noc-user", "order.approve"),
    ]
    catalog = client.get("/api/v1/catalog", headers=viewer).json()
    assert {c["name"] for c in catalog} >= {"business_internet", "l2_vlan", "interface_state"}
    assert client.get("/api/v1/catalog/teleport", headers=viewer).status_code == 422
    services = client.get("/api/v1/services", headers=viewer).json()
    assert [s["state"] for s in services] == ["pending"]


@pytest.fixture
def api(file_runtime: Runtime) -> Iterator[tuple[TestClient, Runtime]]:
    file_runtime.settings = file_runtime.settings.model_copy(
        update={"ssh_timeout_s": 15, "provisioning_check_timeout_s": 5, "poll_timeout_s": 1}
    )
    with TestClient(create_api(file_runtime), raise_server_exceptions=False) as c:
        yield c, file_runtime


def test_execute_over_http_shuts_a_port_and_the_service_is_active(api, lab_ssh, bg) -> None:
    client, rt = api
    lab, transport = lab_device(lab_ssh, bg, "pv-api1")
    try:
        with transaction(rt.sessions) as session:
            add_device(session, rt.vault, lab)
            prov = {"Authorization": f"Bearer {make_token(session, 'pat', 'provisioner')}"}
            noc = {"Authorization": f"Bearer {make_token(session, 'nina', 'noc')}"}
        body = {
            "service_type": "interface_state",
            "customer": "ACME",
            "params": {"state": "down"},
            "targets": [{"device": lab.name, "params": {"interface": lab.interfaces[1].name}}],
        }
        order_id = client.post("/api/v1/orders", json=body, headers=prov).json()["id"]
        assert client.post(f"/api/v1/orders/{order_id}/plan", headers=prov).status_code == 200
        assert client.post(f"/api/v1/orders/{order_id}/execute", headers=prov).status_code == 409  # not approved
        assert client.post(f"/api/v1/orders/{order_id}/approve", headers=noc).status_code == 200
        r = client.post(f"/api/v1/orders/{order_id}/execute", headers=prov)
        assert r.status_code == 200, r.text
        assert r.json()["state"] == "completed", r.json()["result"]
        assert lab.interfaces[1].admin_up is False
        service = client.get(f"/api/v1/services/{r.json()['service_id']}", headers=prov).json()
        assert service["state"] == "active"
        assert [(x["hostname"], x["interface"]) for x in service["resources"]] == [(lab.name, lab.interfaces[1].name)]
        metrics = client.get("/metrics").text
        assert 'faultloop_provisioning_orders_total{outcome="completed"}' in metrics
        assert "faultloop_provisioning_device_push_seconds_bucket" in metrics
    finally:
        transport.close()


def test_planned_diff_context_only_for_config_readers(client, auth, session, vault) -> None:
    """Issue 15 item 6: the context lines of a planned diff are running config (secrets included)."""
    from api.rbac import CONFIG_READERS
    from collectors.backup import store_backup
    from inventory import queries
    from provisioning import policy

    assert policy.CONFIG_READERS == {str(r) for r in CONFIG_READERS}
    device = inventory.create_device(
        session,
        vault,
        DeviceIn.model_validate(
            {"hostname": "sw9", "address": "127.0.0.19", "role": "access", "device_type": "cisco_ios"}
        ),
        actor="t",
    )
    running = (
        "hostname sw9\n"
        "snmp-server community MARKER-COMMUNITY RO\n"
        "interface GigabitEthernet0/2\n description old\n"
        "username ops secret 5 MARKER-HASH\n"
    )
    store_backup(
        session, vault, device=queries.device(session, device.id), text=running, trigger="on_demand", actor="t"
    )
    session.commit()
    prov = auth("provisioner")
    client.post("/api/v1/vlan-pools", json={"name": "metro-1", "vlan_min": 300, "vlan_max": 399}, headers=prov)
    order = client.post("/api/v1/orders", json=_order("sw9"), headers=prov).json()
    full = client.post(f"/api/v1/orders/{order['id']}/plan", headers=prov).json()["items"][0]["diff"]
    assert "MARKER-COMMUNITY" in full and "MARKER-HASH" in full  # the config reader sees the context

    for role in ("viewer", "technician"):
        r = client.get(f"/api/v1/orders/{order['id']}", headers=auth(role))
        assert r.status_code == 200
        diff = r.json()["items"][0]["diff"]
        assert "MARKER" not in r.text, role
        assert "+vlan 300" in diff and all(line[:1] in "-+@#" for line in diff.splitlines()), diff
    for role in ("noc", "admin"):
        assert client.get(f"/api/v1/orders/{order['id']}", headers=auth(role)).json()["items"][0]["diff"] == full
