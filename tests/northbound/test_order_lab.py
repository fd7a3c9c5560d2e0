"""TMF641 -> faultloop order -> the real lab device (SSH CLI + SNMP agent) -> TMF638, end to end:
add, modify and delete one service through serviceOrders, approved and executed in faultloop, and
every hub event delivered to a local listener exactly once (deduplicable by eventId), signed."""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from api.main import create_api
from faultloop.db import transaction
from faultloop.notify import sign
from faultloop.runtime import Runtime
from northbound import order as tmf_order
from northbound import service as tmf_service
from northbound.hub import HubDelivery
from provisioning import service as provisioning
from tests.collectors import cli_lab
from tests.conftest import make_token
from tests.northbound.conformance import validate
from tests.provisioning.lab import add_device, lab_device

bg, host_key, lab_ssh, file_runtime = cli_lab.bg, cli_lab.host_key, cli_lab.lab_ssh, cli_lab.file_runtime
ORDERS = "/tmf-api/serviceOrdering/v4/serviceOrder"
SERVICES = "/tmf-api/serviceInventory/v4/service"
SECRET = "hub-signing-key"


class Listener:
    """A TMF listener on loopback: records every POST (path, headers, body)."""

    def __init__(self) -> None:
        self.received: list[tuple[str, dict[str, str], bytes]] = []
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append((self.path, dict(self.headers), body))
                self.send_response(201)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/cb"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    found = Listener()
    yield found
    found.close()


@pytest.fixture
def api(file_runtime: Runtime) -> Iterator[tuple[TestClient, Runtime]]:
    file_runtime.settings = file_runtime.settings.model_copy(update={
        "ssh_timeout_s": 15, "provisioning_check_timeout_s": 5, "poll_timeout_s": 1,
        "tmf_hub_allow_private": True, "tmf_hub_secret": SecretStr(SECRET),
    })  # fmt: skip
    provisioning.ORDER_OUTBOX["tmf-hub"] = tmf_order.on_order_change
    provisioning.SERVICE_OUTBOX["tmf-hub"] = tmf_service.on_service_change
    try:
        with TestClient(create_api(file_runtime), raise_server_exceptions=False) as c:
            yield c, file_runtime
    finally:
        provisioning.ORDER_OUTBOX.pop("tmf-hub", None)
        provisioning.SERVICE_OUTBOX.pop("tmf-hub", None)


def _run(client: TestClient, body: dict[str, Any], oss: dict[str, str], noc: dict[str, str]) -> dict[str, Any]:
    """POST the serviceOrder, approve and execute it in faultloop; the TMF order afterwards."""
    r = client.post(ORDERS, json=body, headers=oss)
    assert r.status_code == 201, r.text
    order_id = r.json()["id"]
    assert client.post(f"/api/v1/orders/{order_id}/approve", headers=noc).status_code == 200
    r = client.post(f"/api/v1/orders/{order_id}/execute", headers=noc)
    assert r.status_code == 200 and r.json()["state"] == "completed", r.json()
    r = client.get(f"{ORDERS}/{order_id}", headers=oss)
    validate(r.json(), "ServiceOrder")
    return r.json()


def test_add_modify_delete_on_the_lab_with_every_event_delivered_once(api, lab_ssh, bg, listener) -> None:
    client, rt = api
    lab, transport = lab_device(lab_ssh, bg, "tmf-lab1")
    port = lab.interfaces[1]
    try:
        with transaction(rt.sessions) as session:
            add_device(session, rt.vault, lab)
            oss = {"Authorization": f"Bearer {make_token(session, 'bss', 'oss')}"}
            noc = {"Authorization": f"Bearer {make_token(session, 'nina', 'noc')}"}
        for hub in ("serviceOrdering", "serviceInventory"):
            r = client.post(f"/tmf-api/{hub}/v4/hub", json={"callback": listener.url}, headers=oss)
            assert r.status_code == 201, r.text

        def body(action: str, state: str, service_id: str | None = None) -> dict[str, Any]:
            service: dict[str, Any] = {
                "serviceSpecification": {"id": "interface_state"},
                "supportingResource": [{"name": lab.name, "@referredType": "Device"}],
                "serviceCharacteristic": [{"name": "interface", "value": port.name}, {"name": "state", "value": state}],
            }
            if service_id is not None:
                service["id"] = service_id
            party = {"id": "ACME", "name": "ACME", "role": "customer", "@referredType": "Customer"}
            item = {"id": "1", "action": action, "service": service}
            return {"externalId": f"BSS-{action}", "serviceOrderItem": [item], "relatedParty": [party]}

        added = _run(client, body("add", "down"), oss, noc)
        assert added["state"] == "completed" and added["serviceOrderItem"][0]["state"] == "completed"
        assert "completionDate" in added and "configured, verified and saved" in added["note"][0]["text"]
        assert port.admin_up is False
        service_id = added["serviceOrderItem"][0]["service"]["id"]
        svc = client.get(f"{SERVICES}/{service_id}", headers=oss).json()
        validate(svc, "Service")
        assert svc["state"] == "active" and svc["isServiceEnabled"] is True and "startDate" in svc
        assert [(x["@referredType"], x["name"]) for x in svc["supportingResource"]] == [
            ("Device", lab.name), ("Interface", f"{lab.name}:{port.name}")]  # fmt: skip
        assert {c["name"]: c["value"] for c in svc["serviceCharacteristic"]} == {
            "interface": port.name,
            "state": "down",
        }

        modified = _run(client, body("modify", "up", service_id), oss, noc)
        assert modified["serviceOrderItem"][0]["action"] == "modify" and port.admin_up is True
        svc = client.get(f"{SERVICES}/{service_id}", headers=oss).json()
        assert (
            svc["state"] == "active" and {c["name"]: c["value"] for c in svc["serviceCharacteristic"]}["state"] == "up"
        )

        deleted = _run(client, {"serviceOrderItem": [{"id": "9", "action": "delete", "service": {"id": service_id}}]},
                       oss, noc)  # fmt: skip
        assert deleted["serviceOrderItem"][0]["action"] == "delete"
        svc = client.get(f"{SERVICES}/{service_id}", headers=oss).json()
        validate(svc, "Service")
        assert svc["state"] == "terminated" and "endDate" in svc and svc["supportingResource"] == []
        assert [i["itemAction"] for i in svc["serviceOrderItem"]] == ["add", "modify", "delete"]

        delivery = HubDelivery(rt.sessions, rt.settings)
        delivered, failed = delivery.deliver_due()
        assert failed == 0
        assert delivery.deliver_due() == (0, 0)  # at least once, and nothing twice once delivered
        names = Counter(path.rsplit("/", 1)[1] for path, _h, _b in listener.received)
        assert names == {
            "serviceOrderCreateEvent": 3,  # add, modify, delete
            "serviceOrderStateChangeEvent": 6,  # each: acknowledged -> inProgress (approved) -> completed
            "serviceCreateEvent": 1,  # the add's plan made the (inactive) service
            "serviceStateChangeEvent": 2,  # inactive -> active, active -> terminated
            "serviceAttributeValueChangeEvent": 1,  # the modify: still active, new values
        }
        assert delivered == sum(names.values())
        ids = set()
        for path, headers, raw in listener.received:
            assert path.startswith("/cb/listener/")
            assert headers["X-Faultloop-Signature"] == sign(SECRET.encode(), headers["X-Faultloop-Timestamp"], raw)
            envelope = json.loads(raw)
            validate(envelope, "Event")
            ids.add(envelope["eventId"])
            (key,) = envelope["event"]
            validate(envelope["event"][key], "ServiceOrder" if key == "serviceOrder" else "Service")
        assert len(ids) == len(listener.received)
    finally:
        transport.close()
