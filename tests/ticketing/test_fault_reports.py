"""Customer fault reports through the service desk: met with the alarms on the service's resources
(join the open ticket), or a diagnosis ticket with the resources pre-filled and a first automatic
test (an SNMP poll of the service's device: net-snmp snmpd on loopback); the status in customer
terms; bad inputs name the field and write nothing; a customer never sees another's report."""

from __future__ import annotations

import shutil

import pytest
from sqlalchemy import func, select

from faultloop import clock
from provisioning.models import ServiceInstance, ServiceResource
from tests.collectors import conftest as collectors_fixtures
from tests.collectors.snmpd import COMMUNITY
from ticketing import service
from ticketing.models import FaultReport, Ticket, TicketEvent

from .conftest import make_alarm, make_device

snmpd = collectors_fixtures.snmpd
needs_snmpd = pytest.mark.skipif(shutil.which("/usr/sbin/snmpd") is None, reason="net-snmp snmpd not installed")


def make_service(session, customer: str, device_id: int, interface: str = "Gi0/1", *, state: str = "active",
                 description: str = "", vlan: int | None = 100, created_at=None) -> int:  # fmt: skip
    now = created_at or clock.now()
    params = {"description": description} if description else {}
    svc = ServiceInstance(service_type="business_internet", customer=customer, state=state, params=params,
                          created_at=now, updated_at=now)  # fmt: skip
    session.add(svc)
    session.flush()
    session.add(ServiceResource(service_id=svc.id, device_id=device_id, interface=interface, vlan=vlan))
    session.commit()
    return svc.id


def _count(session, model, *where):
    return session.scalar(select(func.count()).select_from(model).where(*where))


def _report(client, headers, **body):
    payload = {"customer": "ACME", "symptom": "no internet since 9:00", "contact": "Ann +41 44 000 00 00",
               "channel": "phone", **body}  # fmt: skip
    return client.post("/api/v1/fault-reports", json=payload, headers=headers)


def _timeline(session, ticket_id):
    session.expire_all()
    return list(session.scalars(select(TicketEvent).where(TicketEvent.ticket_id == ticket_id).order_by(TicketEvent.id)))


@needs_snmpd
def test_nothing_on_the_network_opens_a_diagnosis_ticket_and_polls_the_device(client, auth, session, snmpd,
                                                                               frozen):  # fmt: skip
    device = {"hostname": "cpe-snmpd", "address": snmpd.host, "role": "access",
              "snmp": {"version": "v2c", "port": snmpd.port, "community": COMMUNITY}}  # fmt: skip
    r = client.post("/api/v1/devices", json=device, headers=auth("admin"))
    assert r.status_code == 201, r.text
    sid = make_service(session, "ACME", r.json()["id"], "lo")

    r = _report(client, auth("servicedesk"), service_id=sid)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["correlated"] is False and "opened for diagnosis" in body["message"]
    assert (body["status"], body["status_label"], body["service_id"]) == ("received", "Received", sid)
    assert body["ref"].startswith("FR-") and len(body["ref"]) == 13
    [test] = body["auto_tests"]
    assert (test["test"], test["ran"], test["reachable"], test["device"], test["interface"]) == (
        "snmp_poll", True, True, "cpe-snmpd", "lo")  # fmt: skip
    assert test["oper_status"] == "up" and test["admin_status"] == "up"
    assert "ticket" not in body and "alarms" not in body and COMMUNITY not in r.text

    report = session.scalar(select(FaultReport).where(FaultReport.ref == body["ref"]))
    ticket = session.get(Ticket, report.ticket_id)
    assert (ticket.source, ticket.state, ticket.device, ticket.created_by) == (
        "customer", "new", "cpe-snmpd", "servicedesk-user")  # fmt: skip
    assert "no internet since 9:00" in ticket.description and "cpe-snmpd lo vlan 100" in ticket.description
    entries = {e.action: e.detail for e in _timeline(session, ticket.id)}
    assert entries["create"]["resources"] == [{"device": "cpe-snmpd", "interface": "lo", "vlan": 100}]
    assert entries["fault_report"]["ref"] == body["ref"] and entries["fault_report"]["correlated"] is False
    assert entries["auto_test"]["reachable"] is True and entries["auto_test"]["oper_status"] == "up"
    assert entries["auto_test"]["fault_report"] == body["ref"]


def test_status_follows_the_ticket_in_customer_terms(client, auth, session, frozen):
    dev = make_device(session, "cpe-2")
    sid = make_service(session, "ACME", dev.id)
    desk = auth("servicedesk")
    r = _report(client, desk, service_id=sid)
    assert r.status_code == 201, r.text
    ref = r.json()["ref"]
    [test] = r.json()["auto_tests"]
    assert test["ran"] is False and test["verdict"] == (
        "no automatic test ran: device 'cpe-2' has no SNMP settings to poll with")  # fmt: skip
    tid = session.scalar(select(FaultReport.ticket_id).where(FaultReport.ref == ref))
    assert [e.action for e in _timeline(session, tid)] == ["create", "fault_report", "auto_test"]

    def status():
        r = client.get(f"/api/v1/fault-reports/{ref}", params={"customer": "ACME"}, headers=desk)
        assert r.status_code == 200, r.text
        return r.json()

    noc = auth("noc")
    _user, th = _tech(session, "tom")
    steps = [
        (noc, "transitions", {"action": "acknowledge"}, "received"),
        (noc, "transitions", {"action": "diagnose", "diagnosis": "CPE port down", "fault_category": "access"},
         "being_repaired"),
        (noc, "transitions", {"action": "dispatch", "technician": "tom"}, "being_repaired"),
        (th, "accept", None, "being_repaired"),
        (th, "status", {"status": "on_site"}, "technician_on_site"),
        (th, "resolve", {"cause_category": "hardware", "action_taken": "replaced CPE"}, "restored"),
        (noc, "transitions", {"action": "verify", "how": "customer confirmed"}, "restored"),
        (noc, "transitions", {"action": "close", "rating": 5}, "closed"),
    ]  # fmt: skip
    for headers, what, data, expected in steps:
        frozen.advance(60)
        url = f"/api/v1/tickets/{tid}/transitions" if what == "transitions" else f"/api/v1/me/tickets/{tid}/{what}"
        r = client.post(url, json=data, headers=headers)
        assert r.status_code == 200, r.text
        assert status()["status"] == expected
    body = status()
    assert [h["status"] for h in body["history"]] == [
        "received", "being_repaired", "technician_on_site", "restored", "closed"]  # fmt: skip
    assert body["status_label"] == "Closed" and body["updated_at"] == body["history"][-1]["at"]
    assert set(body) == {"ref", "customer", "service_id", "customer_ref", "symptom", "channel", "received_at",
                         "status", "status_label", "updated_at", "history"}  # fmt: skip
    r = client.get("/api/v1/fault-reports", params={"customer": "ACME"}, headers=desk)
    assert [x["ref"] for x in r.json()] == [ref]


def test_an_alarm_on_the_service_joins_its_open_ticket(client, auth, session, frozen, policy):
    dev = make_device(session, "acc-9")
    alarm = make_alarm(session, device="acc-9")  # interface:Gi0/1
    ticket = service.open_for_alarm(session, policy=policy, alarm=_record(session, alarm.id), now=clock.now())
    session.commit()
    sid = make_service(session, "ACME", dev.id, "Gi0/1")
    tickets_before = _count(session, Ticket)

    r = _report(client, auth("servicedesk"), service_id=sid)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["correlated"] is True and "joined its repair" in body["message"]
    assert body["auto_tests"] == []
    assert _count(session, Ticket) == tickets_before
    report = session.scalar(select(FaultReport).where(FaultReport.ref == body["ref"]))
    assert report.ticket_id == ticket.id and report.correlated is True
    joined = [e for e in _timeline(session, ticket.id) if e.action == "fault_report"]
    assert joined[0].detail["alarms"] == [alarm.id] and joined[0].actor == "servicedesk-user"


def test_an_alarm_on_another_port_of_the_device_does_not_match(client, auth, session, frozen, policy):
    dev = make_device(session, "acc-10")
    make_alarm(session, device="acc-10")  # interface:Gi0/1
    session.commit()
    sid = make_service(session, "ACME", dev.id, "Gi0/2")
    r = _report(client, auth("servicedesk"), service_id=sid)
    assert r.status_code == 201 and r.json()["correlated"] is False


def test_an_alarm_without_a_ticket_gets_its_root_causes_ticket_now(client, auth, session, frozen):
    dev = make_device(session, "acc-11")
    root = make_alarm(session, device="core-1", alarm_type="deviceDown", age_s=5)
    child = make_alarm(session, device="acc-11", parent_id=root.id, age_s=5)
    session.commit()
    sid = make_service(session, "ACME", dev.id, "Gi0/1")
    r = _report(client, auth("servicedesk"), service_id=sid)
    assert r.status_code == 201, r.text
    assert r.json()["correlated"] is True
    ticket = session.scalar(select(Ticket).where(Ticket.root_alarm_id == root.id))
    assert ticket is not None and ticket.source == "alarm" and ticket.active_key == root.reduction_key
    report = session.scalar(select(FaultReport).where(FaultReport.ref == r.json()["ref"]))
    assert report.ticket_id == ticket.id
    actions = [e.action for e in _timeline(session, ticket.id)]
    assert actions[0] == "create" and "fault_report" in actions
    linked = {a.alarm_id for a in service.linked_alarms(session, ticket.id)}
    assert linked == {root.id, child.id}


def test_a_resolved_ticket_is_reopened_by_a_customer_report(client, auth, session, frozen, policy):
    dev = make_device(session, "acc-12")
    alarm = make_alarm(session, device="acc-12")
    ticket = service.open_for_alarm(session, policy=policy, alarm=_record(session, alarm.id), now=clock.now())
    ticket.state = "resolved"  # the technician said so; the alarm is still active
    session.commit()
    sid = make_service(session, "ACME", dev.id)
    r = _report(client, auth("servicedesk"), service_id=sid)
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "received"
    session.refresh(ticket)
    assert ticket.state == "acknowledged" and ticket.reopen_count == 1


def test_the_service_by_the_customers_own_reference(client, auth, session, frozen):
    dev = make_device(session, "acc-13")
    make_service(session, "ACME", dev.id, description="ACME-42 BIA")
    sid = make_service(session, "ACME", dev.id, "Gi0/3", description="ACME-43 BIA")
    r = _report(client, auth("servicedesk"), customer_ref="ACME-43 BIA")
    assert r.status_code == 201, r.text
    assert r.json()["service_id"] == sid and r.json()["customer_ref"] == "ACME-43 BIA"


@pytest.mark.parametrize(
    "body,field,detail",
    [
        ({"customer": "NOBODY", "service_id": 1}, "customer", "customer: no customer 'NOBODY' has a service"),
        ({"service_id": "OTHER"}, "service_id", "customer 'ACME' has no service"),
        ({"service_id": 999999}, "service_id", "customer 'ACME' has no service 999999"),
        ({"service_id": None}, "service_id", "service_id: give service_id or customer_ref"),
        ({"customer_ref": "NOPE-1"}, "customer_ref", "customer 'ACME' has no service 'NOPE-1'"),
        ({"customer_ref": "DUP"}, "customer_ref", "give service_id"),
        ({"service_id": "TERMINATED"}, "service_id", "is terminated, not active"),
        ({"channel": "fax"}, "channel", "channel: expected one of phone, email, web, chat"),
        ({"symptom": "  "}, "symptom", "symptom: required for this action"),
        ({"contact": ""}, "contact", "contact: required for this action"),
        ({"symptom": "down\x1b[31m"}, "symptom", "symptom: control characters are not allowed"),
        ({"symptom": "x" * 2001}, "symptom", "at most 2000 characters"),
        ({"priority": "P1"}, "priority", "Extra inputs are not permitted"),
    ],
)
def test_bad_reports_name_the_field_and_write_nothing(client, auth, session, frozen, body, field, detail):
    dev = make_device(session, "acc-bad")
    sid = make_service(session, "ACME", dev.id)
    other = make_service(session, "Globex", dev.id, "Gi0/5")
    ended = make_service(session, "ACME", dev.id, "Gi0/6", state="terminated")
    for _ in range(2):
        make_service(session, "ACME", dev.id, "Gi0/7", description="DUP")
    body = dict(body)
    body.setdefault("service_id", sid) if "customer_ref" not in body else None
    body["service_id"] = {"OTHER": other, "TERMINATED": ended}.get(body.get("service_id"), body.get("service_id"))
    before = (_count(session, Ticket), _count(session, TicketEvent))
    r = _report(client, auth("servicedesk"), **body)
    assert r.status_code == 422, r.text
    problem = r.json()
    assert detail in problem["detail"]
    fields = {e["field"] for e in problem.get("errors", [])} | ({problem["field"]} if "field" in problem else set())
    assert field in fields
    session.expire_all()
    assert _count(session, FaultReport) == 0
    assert (_count(session, Ticket), _count(session, TicketEvent)) == before


def test_a_customer_never_sees_another_customers_report(client, auth, session, frozen):
    dev = make_device(session, "acc-14")
    sid = make_service(session, "ACME", dev.id)
    desk = auth("servicedesk")
    ref = _report(client, desk, service_id=sid).json()["ref"]
    for customer in ("Globex", "acme"):
        r = client.get(f"/api/v1/fault-reports/{ref}", params={"customer": customer}, headers=desk)
        assert r.status_code == 404 and r.json()["detail"] == f"fault report {ref} not found"
    r = client.get("/api/v1/fault-reports/FR-0000000000", params={"customer": "ACME"}, headers=desk)
    assert r.status_code == 404
    assert client.get("/api/v1/fault-reports", params={"customer": "Globex"}, headers=desk).json() == []
    r = client.get(f"/api/v1/fault-reports/{ref}", headers=desk)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "customer"


def test_the_service_desk_sees_no_alarm_or_ticket_details(client, auth, session, frozen):
    desk = auth("servicedesk")
    for path in ("/api/v1/tickets", "/api/v1/alarms", "/api/v1/devices", "/api/v1/reports/tickets/mttr",
                 "/api/v1/reports/services", "/ui/tickets", "/"):  # fmt: skip
        r = client.get(path, headers=desk)
        assert r.status_code == 403, (path, r.status_code)
    assert client.get("/api/v1/services", headers=desk).status_code == 200
    assert client.get("/api/v1/me", headers=desk).json()["role"] == "servicedesk"
    r = _report(client, auth("viewer"), service_id=1)
    assert r.status_code == 403


def _tech(session, name):
    from faultloop.accounts import service as accounts

    from .conftest import make_technician

    user = make_technician(session, name)
    _row, token = accounts.create_token(session, user=user, name="t", ttl_days=1, actor="test")
    session.commit()
    return user, {"Authorization": f"Bearer {token}"}


def _record(session, alarm_id):
    from alarms import queries

    return queries.alarm(session, alarm_id)
