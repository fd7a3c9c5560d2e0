"""Issue 17, "done when": a scripted alarm -> ticket -> order -> service sequence through the whole
running pipeline (alarm engine, ticketing, provisioning against the real lab device over SSH and
SNMP, the hub delivery thread) reaches a real local listener with every event type of the four TM
Forum APIs, each outbox row exactly as many times as the outbox promises: at least once, once per
attempt, deduplicable by eventId (a listener that fails a delivery gets that event again, same id).
Every TMF answer and every delivered envelope is validated against the vendored schemas."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.fernet import Fernet
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import select

from faultloop import clock, migrate
from faultloop.cmd.app import build_pipeline, create_app
from faultloop.db import transaction
from faultloop.notify import sign
from faultloop.runtime import build_runtime
from faultloop.settings import Settings
from northbound.hub import HubDelivery
from northbound.models import HubEvent
from tests.collectors import cli_lab
from tests.conftest import make_token
from tests.northbound.conformance import validate
from tests.provisioning.lab import add_device, lab_device
from ticketing.policy import DEFAULT_POLICY_FILE

pytestmark = pytest.mark.slow
bg, host_key, lab_ssh = cli_lab.bg, cli_lab.host_key, cli_lab.lab_ssh
SECRET = "e2e-hub-key"
APIS = ("alarmManagement", "troubleTicket", "serviceOrdering", "serviceInventory")
EVERY_EVENT = {
    "AlarmCreateEvent", "AlarmStateChangeEvent", "AlarmAttributeValueChangeEvent",
    "TroubleTicketCreateEvent", "TroubleTicketStatusChangeEvent", "TroubleTicketAttributeValueChangeEvent",
    "ServiceOrderCreateEvent", "ServiceOrderStateChangeEvent",
    "ServiceCreateEvent", "ServiceStateChangeEvent",
}  # fmt: skip
SCHEMA = {"alarm": "Alarm", "troubleTicket": "TroubleTicket", "serviceOrder": "ServiceOrder", "service": "Service"}


class Listener:
    """A TMF listener on loopback; it answers 500 to the first delivery of ``fail_first`` events."""

    def __init__(self, fail_first: str) -> None:
        self.received: list[tuple[str, dict[str, str], bytes]] = []
        self.failed: set[str] = set()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                owner.received.append((self.path, dict(self.headers), body))
                status = 204
                if self.path.endswith("/" + fail_first) and not owner.failed:
                    owner.failed.add(self.headers["X-Faultloop-Delivery"])
                    status = 500
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/oss"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    got = Listener(fail_first="listener/troubleTicketCreateEvent")
    yield got
    got.close()


@pytest.fixture
def app(tmp_path: Path) -> Iterator[tuple[TestClient, Any]]:
    policy = yaml.safe_load(DEFAULT_POLICY_FILE.read_text())
    policy["open"]["min_active_s"] = 0  # a ticket at once, not after a minute of the alarm
    (tmp_path / "policy.yaml").write_text(yaml.safe_dump(policy))
    settings = Settings(
        data_dir=tmp_path / "var", database_url=f"sqlite:///{tmp_path / 'e2e.db'}",
        secret_key=Fernet.generate_key().decode(), trap_port=0, syslog_port=0,
        ticket_policy_file=tmp_path / "policy.yaml", ssh_timeout_s=15, provisioning_check_timeout_s=5,
        poll_timeout_s=1, tmf_hub_allow_private=True, tmf_hub_secret=SecretStr(SECRET),
    )  # fmt: skip
    rt = build_runtime(settings)
    migrate.upgrade(rt.engine)
    try:
        with TestClient(create_app(rt, build_pipeline(rt)), raise_server_exceptions=False) as client:
            yield client, rt
    finally:
        rt.engine.dispose()


def _until(what: str, check: Any, timeout_s: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, f"not within {timeout_s:.0f} s: {what}"
        time.sleep(0.1)


def test_alarm_ticket_order_service_reach_the_listener_as_the_outbox_promises(app, lab_ssh, bg, listener):
    client, rt = app
    lab, _transport = lab_device(lab_ssh, bg, "e2e-lab1")
    port = lab.interfaces[1]
    with transaction(rt.sessions) as session:
        add_device(session, rt.vault, lab)
        oss = {"Authorization": f"Bearer {make_token(session, 'bss', 'oss')}"}
        noc = {"Authorization": f"Bearer {make_token(session, 'nina', 'noc')}"}
    for api in APIS:
        r = client.post(f"/tmf-api/{api}/v4/hub", json={"callback": listener.url}, headers=oss)
        assert r.status_code == 201, r.text
        validate(r.json(), "EventSubscription")

    # 1. a fault: the engine raises an alarm, ticketing opens a ticket for it
    fault = {"device": lab.name, "event_type": "linkDown", "severity": "critical", "managed_object":
             f"interface:{port.name}", "probable_cause": "lossOfSignal"}  # fmt: skip
    assert client.post("/api/v1/events", json={"events": [fault]}, headers=noc).status_code == 202
    alarms_path = "/tmf-api/alarmManagement/v4/alarm"
    [alarm] = _until("the alarm", lambda: client.get(alarms_path, headers=oss).json())
    validate(alarm, "Alarm")
    tickets_path = "/tmf-api/troubleTicket/v4/troubleTicket"
    [ticket] = _until("the ticket", lambda: client.get(tickets_path, headers=oss).json())
    validate(ticket, "TroubleTicket")
    assert alarm["id"] in [e["id"] for e in ticket["relatedEntity"] if e["@referredType"] == "Alarm"]

    # 2. the OSS works them: acknowledges and comments the alarm, takes the ticket in hand, adds a note
    pattern = [{"id": alarm["id"]}]
    r = client.post("/tmf-api/alarmManagement/v4/ackAlarms", json={"alarmPattern": pattern}, headers=oss)
    assert r.status_code == 201, r.text
    validate(r.json(), "AckAlarms")
    comment = {"alarmPattern": pattern, "comment": {"comment": "field crew dispatched"}}
    r = client.post("/tmf-api/alarmManagement/v4/commentAlarms", json=comment, headers=oss)
    assert r.status_code == 201, r.text
    r = client.patch(f"{tickets_path}/{ticket['id']}", json={"status": "inProgress"}, headers=oss)
    assert r.status_code == 200, r.text
    validate(r.json(), "TroubleTicket")
    r = client.patch(f"{tickets_path}/{ticket['id']}", json={"note": [{"text": "spare optic on the way"}]},
                     headers=oss)  # fmt: skip
    assert r.status_code == 200, r.text

    # 3. the BSS orders a service on the device; faultloop approves and runs it on the lab
    item = {"id": "1", "action": "add", "service": {
        "serviceSpecification": {"id": "interface_state"},
        "supportingResource": [{"name": lab.name, "@referredType": "Device"}],
        "serviceCharacteristic": [{"name": "interface", "value": port.name}, {"name": "state", "value": "down"}]}}
    party = {"id": "ACME", "name": "ACME", "role": "customer", "@referredType": "Customer"}
    orders_path = "/tmf-api/serviceOrdering/v4/serviceOrder"
    r = client.post(orders_path, json={"externalId": "BSS-1", "serviceOrderItem": [item], "relatedParty": [party]},
                    headers=oss)  # fmt: skip
    assert r.status_code == 201, r.text
    validate(r.json(), "ServiceOrder")
    order_id = r.json()["id"]
    assert client.post(f"/api/v1/orders/{order_id}/approve", headers=noc).status_code == 200
    r = client.post(f"/api/v1/orders/{order_id}/execute", headers=noc)
    assert r.status_code == 200 and r.json()["state"] == "completed", r.text
    order = client.get(f"{orders_path}/{order_id}", headers=oss).json()
    validate(order, "ServiceOrder")
    assert order["state"] == "completed"
    service = client.get(f"/tmf-api/serviceInventory/v4/service/{order['serviceOrderItem'][0]['service']['id']}",
                         headers=oss).json()  # fmt: skip
    validate(service, "Service")
    assert service["state"] == "active"

    # 4. the fault clears
    clear = {**fault, "event_type": "linkUp", "severity": "cleared"}
    assert client.post("/api/v1/events", json={"events": [clear]}, headers=noc).status_code == 202
    _until("the cleared alarm", lambda: client.get(f"{alarms_path}/{alarm['id']}", headers=oss).json()["state"]
           == "cleared")  # fmt: skip

    # the pipeline's delivery sends every row; the one the listener failed comes due after its back-off
    def undelivered() -> list[HubEvent]:
        with transaction(rt.sessions) as session:
            return list(session.scalars(select(HubEvent).where(HubEvent.delivered_at.is_(None))))

    _until("every first delivery", lambda: len(listener.failed) == 1 and len(undelivered()) == 1)
    HubDelivery(rt.sessions, rt.settings).deliver_due(clock.now() + timedelta(minutes=5))
    assert undelivered() == []

    with transaction(rt.sessions) as session:
        rows = {str(row.id): (row.event_id, row.event_type, row.attempts) for row in session.scalars(select(HubEvent))}
    posts = Counter(headers["X-Faultloop-Delivery"] for _path, headers, _body in listener.received)
    # exactly as many POSTs per outbox row as its attempts, and one more for the row the listener failed
    assert posts == Counter({row_id: attempts for row_id, (_e, _t, attempts) in rows.items()})
    assert [rows[row_id][2] for row_id in listener.failed] == [2]
    seen: dict[str, dict[str, Any]] = {}
    for path, headers, body in listener.received:
        envelope = json.loads(body)
        validate(envelope, "Event")
        [(key, resource)] = envelope["event"].items()
        validate(resource, SCHEMA[key])
        assert path == "/oss/listener/" + envelope["eventType"][:1].lower() + envelope["eventType"][1:]
        assert headers["X-Faultloop-Signature"] == sign(SECRET.encode(), headers["X-Faultloop-Timestamp"], body)
        assert seen.setdefault(envelope["eventId"], envelope) == envelope  # a repeat is the same event
    types = Counter(e["eventType"] for e in seen.values())
    assert set(types) >= EVERY_EVENT, EVERY_EVENT - set(types)
    assert types["AlarmStateChangeEvent"] >= 2  # acknowledged, cleared
    # deduplicated by eventId, the listener has each outbox event once
    assert sorted(seen) == sorted(event_id for event_id, _t, _a in rows.values())
    assert len(listener.received) == len(seen) + 1
