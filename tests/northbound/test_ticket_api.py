"""TMF621 Trouble Ticket v4 over HTTP: list, get, create, patch, hub events, RBAC, every bad input.

Every TMF answer goes through the conformance schema (tests/data/tmf/TroubleTicket.schema.json,
Error.schema.json); every event through TroubleTicketEvent.schema.json.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from northbound import hub
from northbound import ticket as tmf
from northbound.models import HubEvent
from tests.northbound.conformance import validate
from tests.ticketing.conftest import make_alarm, make_device
from ticketing import service
from ticketing.models import Ticket, TicketEvent
from ticketing.policy import load_policy

URL = "/tmf-api/troubleTicket/v4/troubleTicket"
JSON = {"Content-Type": "application/json"}
MERGE = {"Content-Type": "application/merge-patch+json"}


@pytest.fixture(autouse=True)
def hooks(monkeypatch):
    """The composition root's wiring (faultloop/cmd/app.py)."""
    monkeypatch.setitem(service.CHANGES, "tmf-hub", tmf.on_ticket_change)
    monkeypatch.setitem(service.OUTBOX, "tmf-hub", tmf.on_ticket_outbox)


@pytest.fixture
def oss(auth):
    return auth("oss")


@pytest.fixture
def subscription(session):
    row = hub.subscribe(session, tmf.API, callback="http://127.0.0.1:9/listener-base", query="", actor="test",
                        allow_private=True)  # fmt: skip
    session.commit()
    return row


def events(session, subscription) -> list[dict]:
    rows = session.scalars(select(HubEvent).where(HubEvent.subscription_id == subscription.id).order_by(HubEvent.id))
    out = [row.payload for row in rows]
    for doc in out:
        validate(doc, "TroubleTicketEvent")
    return out


def error(response, status: int) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    validate(body, "Error")
    return body


def create(client, headers, **extra) -> dict:
    body = {"description": "customer cannot reach the VPN", "severity": "major", "ticketType": "incident", **extra}
    response = client.post(URL, json=body, headers=headers)
    assert response.status_code == 201, response.text
    doc = response.json()
    validate(doc, "TroubleTicket")
    return doc


def patch(client, headers, ticket_id: str, body: dict, status: int = 200, content=MERGE) -> dict:
    response = client.patch(f"{URL}/{ticket_id}", json=body, headers={**headers, **content})
    if status != 200:
        return error(response, status)
    assert response.status_code == 200, response.text
    doc = response.json()
    validate(doc, "TroubleTicket")
    return doc


def test_create_get_and_list(client, oss, session, subscription):
    dev = make_device(session, "tmf-edge-1")
    session.commit()
    doc = create(client, oss, name="VPN down", externalId="INC0012345", priority="P2",
                 relatedEntity=[{"id": dev.hostname, "role": "device", "@referredType": "Resource"}],
                 note=[{"text": "reported by phone"}])  # fmt: skip
    assert doc["status"] == "acknowledged"
    assert doc["name"] == "VPN down" and doc["priority"] == "P2" and doc["severity"] == "major"
    assert doc["externalId"] == "INC0012345" and doc["ticketType"] == "incident"
    assert doc["href"] == f"{URL}/{doc['id']}"
    assert [n["text"] for n in doc["note"]] == ["reported by phone"]
    assert {"id": "tmf-edge-1", "name": "tmf-edge-1", "role": "device", "@referredType": "Resource",
            "@type": "RelatedEntity"} in doc["relatedEntity"]  # fmt: skip
    assert {(p["role"], p["id"]) for p in doc["relatedParty"]} == {("originator", "oss-user")}
    assert doc["statusChange"][0]["status"] == "acknowledged"
    assert "expectedResolutionDate" in doc  # from the P2 restore target
    ticket = session.get(Ticket, int(doc["id"]))
    assert ticket is not None and ticket.state == "new" and ticket.device == "tmf-edge-1"
    # the same state machine, the same timeline
    assert [e.action for e in service.timeline(session, ticket.id)] == ["create", "note"]

    got = client.get(f"{URL}/{doc['id']}", headers=oss)
    assert got.status_code == 200 and got.headers["ETag"] == f'"{ticket.version}"'
    validate(got.json(), "TroubleTicket")
    assert got.json() == doc

    listed = client.get(URL, params={"externalId": "INC0012345"}, headers=oss)
    assert listed.status_code == 200 and listed.headers["X-Total-Count"] == "1"
    assert [d["id"] for d in listed.json()] == [doc["id"]]
    sparse = client.get(URL, params={"fields": "status,severity", "status": "acknowledged", "limit": 1}, headers=oss)
    assert sparse.status_code == 200 and sparse.headers["X-Result-Count"] == "1"
    for item in sparse.json():
        validate(item, "TroubleTicket")
        assert set(item) == {"id", "href", "@type", "status", "severity"}
    none = client.get(URL, params={"status": "closed", "externalId": "INC0012345"}, headers=oss)
    assert none.json() == [] and none.headers["X-Total-Count"] == "0"
    typed = client.get(URL, params={"ticketType": "incident", "id": doc["id"]}, headers=oss)
    assert [d["id"] for d in typed.json()] == [doc["id"]]

    sent = events(session, subscription)
    assert [e["eventType"] for e in sent] == ["TroubleTicketCreateEvent"]  # one, with the link and notes in it
    assert sent[0]["event"]["troubleTicket"]["externalId"] == "INC0012345"


def test_alarm_ticket_shows_alarms_services_and_technician(client, oss, session, policy_ticket):
    doc = client.get(f"{URL}/{policy_ticket.id}", headers=oss).json()
    validate(doc, "TroubleTicket")
    roles = {e["role"] for e in doc["relatedEntity"]}
    assert {"rootAlarm", "device"} <= roles
    root = next(e for e in doc["relatedEntity"] if e["role"] == "rootAlarm")
    assert root["href"] == f"/tmf-api/alarmManagement/v4/alarm/{policy_ticket.root_alarm_id}"
    assert doc["ticketType"] == "alarm"
    assert {c["name"]: c["value"] for c in doc["troubleTicketCharacteristic"]}["faultloopState"] == "new"


@pytest.fixture
def policy_ticket(session):
    from faultloop import clock

    make_device(session, "tmf-core-1", role="core")
    alarm = make_alarm(session, device="tmf-core-1", severity="critical")
    ticket = service.open_for_alarm(session, policy=load_policy(), alarm=_record(session, alarm.id), now=clock.now())
    assert ticket is not None
    session.commit()
    return ticket


def _record(session, alarm_id):
    from alarms import queries

    record = queries.alarm(session, alarm_id)
    assert record is not None
    return record


def test_status_changes_are_state_machine_actions(client, oss, auth, session, subscription):
    doc = create(client, oss)
    tid = doc["id"]
    doc = patch(client, oss, tid, {"status": "inProgress"})
    assert doc["status"] == "inProgress"
    assert [c["status"] for c in doc["statusChange"]] == ["acknowledged", "inProgress"]
    assert {c["name"]: c["value"] for c in doc["troubleTicketCharacteristic"]}["faultloopState"] == "acknowledged"
    # inProgress again: nothing to do, nothing written
    version = session.get(Ticket, int(tid)).version
    assert patch(client, oss, tid, {"status": "inProgress"}, content=JSON)["status"] == "inProgress"
    session.expire_all()
    assert session.get(Ticket, int(tid)).version == version
    # pending is the technician's wait: not from acknowledged -> 409 with the allowed actions
    body = patch(client, oss, tid, {"status": "pending", "statusChangeReason": "customer away"}, 409)
    assert "cannot become pending: cannot wait" in body["message"]
    assert body["allowed_actions"] == ["resolve_external", "cancel"]
    # acknowledged is where a ticket starts: no way back
    body = patch(client, oss, tid, {"status": "acknowledged"}, 409)
    assert "cannot become acknowledged" in body["message"]
    assert "reachable: resolved, cancelled" in body["message"] or "reachable: cancelled, resolved" in body["message"]
    # rejected only before anyone acknowledged it
    assert "rejected" in patch(client, oss, tid, {"status": "rejected"}, 409)["message"]
    # the NOC resolves only on site (resolve); the oss role (the external desk) resolves from here
    noc = auth("noc")
    body = patch(client, noc, tid, {"status": "resolved"}, 409)
    assert "diagnose" in body["allowed_actions"]
    doc = patch(
        client,
        oss,
        tid,
        {
            "status": "resolved",
            "statusChangeReason": "replaced the CPE",
            "troubleTicketCharacteristic": [{"name": "cause_category", "value": "hardware"}],
        },
    )
    assert doc["status"] == "resolved" and "resolutionDate" in doc and "expectedResolutionDate" not in doc
    ticket = session.get(Ticket, int(tid))
    session.refresh(ticket)
    assert (ticket.state, ticket.cause_category, ticket.action_taken) == ("resolved", "hardware", "replaced the CPE")
    # reopened: inProgress again, with a reason
    doc = patch(client, oss, tid, {"status": "inProgress", "statusChangeReason": "still down"})
    assert doc["status"] == "inProgress" and doc["statusChangeReason"] == "reopen: still down"
    doc = patch(client, oss, tid, {"status": "cancelled", "statusChangeReason": "duplicate of INC9"})
    assert doc["status"] == "cancelled"  # it was acknowledged before: cancelled, not rejected
    types = [e["eventType"] for e in events(session, subscription)]
    assert types == ["TroubleTicketCreateEvent"] + ["TroubleTicketStatusChangeEvent"] * 4


def test_rejected_and_notes(client, oss, session, subscription):
    tid = create(client, oss)["id"]
    doc = patch(client, oss, tid, {"note": [{"text": "first look: CPE unreachable"}]})
    note = doc["note"][0]
    assert note["author"] == "oss-user" and note["text"] == "first look: CPE unreachable"
    # a note the ticket has is left as it is; a new one is added
    doc = patch(client, oss, tid, {"note": [note, {"text": "second"}]})
    assert [n["text"] for n in doc["note"]] == ["first look: CPE unreachable", "second"]
    doc = patch(client, oss, tid, {"status": "rejected", "statusChangeReason": "not our network"})
    assert doc["status"] == "rejected" and doc["statusChange"][-1]["status"] == "rejected"
    assert patch(client, oss, tid, {"status": "rejected"})["status"] == "rejected"  # already: nothing to do
    assert patch(client, oss, tid, {"externalId": "CHG-1", "ticketType": "complaint"})["externalId"] == "CHG-1"
    types = [e["eventType"] for e in events(session, subscription)]
    assert types == [
        "TroubleTicketCreateEvent", "TroubleTicketAttributeValueChangeEvent", "TroubleTicketAttributeValueChangeEvent",
        "TroubleTicketStatusChangeEvent", "TroubleTicketAttributeValueChangeEvent",
    ]  # fmt: skip


def test_changes_made_elsewhere_are_events_too(client, oss, auth, session, subscription):
    tid = create(client, oss)["id"]
    noc = auth("noc")
    response = client.post(f"/api/v1/tickets/{tid}/transitions", json={"action": "acknowledge"}, headers=noc)
    assert response.status_code == 200, response.text
    response = client.post(f"/api/v1/tickets/{tid}/transitions",
                           json={"action": "diagnose", "diagnosis": "CPE dead", "fault_category": "hardware"},
                           headers=noc)  # fmt: skip
    assert response.status_code == 200, response.text
    response = client.post(f"/api/v1/tickets/{tid}/notes", json={"text": "ordered a CPE"}, headers=noc)
    assert response.status_code == 201, response.text
    sent = events(session, subscription)
    assert [e["eventType"] for e in sent] == [
        "TroubleTicketCreateEvent", "TroubleTicketStatusChangeEvent", "TroubleTicketAttributeValueChangeEvent",
        "TroubleTicketAttributeValueChangeEvent",
    ]  # fmt: skip
    last = sent[-1]["event"]["troubleTicket"]
    assert {c["name"]: c["value"] for c in last["troubleTicketCharacteristic"]}["faultloopState"] == "diagnosed"
    assert last["note"][-1]["text"] == "ordered a CPE"
    # a subscription's query selects: only status changes to resolved
    only = hub.subscribe(session, tmf.API, callback="http://127.0.0.1:9/b",
                         query="eventType=TroubleTicketStatusChangeEvent&event.troubleTicket.status=resolved",
                         actor="test", allow_private=True)  # fmt: skip
    session.commit()
    patch(client, oss, tid, {"status": "resolved"})
    assert [e["event"]["troubleTicket"]["status"] for e in events(session, only)] == ["resolved"]


@pytest.mark.parametrize(
    "body,field,text",
    [
        ({"severity": "minor"}, "severity", "read-only"),
        ({"priority": "P1"}, "priority", "read-only"),
        ({"name": "x"}, "name", "read-only"),
        ({"statusChange": []}, "statusChange", "read-only"),
        ({"relatedParty": []}, "relatedParty", "read-only"),
        ({"id": "9"}, "id", "read-only"),
        ({"colour": "red"}, "colour", "unknown attribute"),
        ({"status": "held"}, "status", "expected one of"),
        ({"status": "fixed"}, "status", "expected one of"),
        ({"status": 3}, "status", "expected one of"),
        ({"statusChangeReason": "why"}, "statusChangeReason", "only with a status change"),
        ({"status": "cancelled", "statusChangeReason": "x" * 501}, "statusChangeReason", "at most 500"),
        ({"note": "text"}, "note", "expected a list"),
        ({"note": [{"text": ""}]}, "note[0].text", "expected text"),
        ({"note": [{"id": "999999", "text": "x"}]}, "note[0].id", "has no note"),
        ({"note": [{"text": "x", "colour": 1}]}, "note[0]", "unknown attribute of a note"),
        ({"note": [{"text": "n"}] * 21}, "note", "at most 20"),
        ({"externalId": ""}, "externalId", "1-200 printable"),
        ({"externalId": "a\nb"}, "externalId", "1-200 printable"),
        ({"ticketType": ""}, "ticketType", "non-empty"),
        ({"@type": "Alarm"}, "@type", "expected TroubleTicket"),
        (
            {"troubleTicketCharacteristic": [{"name": "rating", "value": 3}]},
            "troubleTicketCharacteristic",
            "only with a status change",
        ),
        (
            {"status": "closed", "troubleTicketCharacteristic": [{"name": "tier", "value": 3}]},
            "troubleTicketCharacteristic[0].name",
            "expected one of",
        ),
        ({"status": "closed", "troubleTicketCharacteristic": "x"}, "troubleTicketCharacteristic", "expected a list"),
        ({"status": "cancelled"}, "reason", "required"),  # ticketing's own validation, named as it names it
        ({}, "body", "attributes to change"),
    ],
)
def test_bad_patch_is_400_naming_what_and_writes_nothing(client, oss, session, body, field, text):
    tid = create(client, oss)["id"]
    before = session.get(Ticket, int(tid)).version
    entries = len(service.timeline(session, int(tid)))
    err = error(client.patch(f"{URL}/{tid}", json=body, headers={**oss, **MERGE}), 400)
    assert err.get("field") == field and text in err["message"], err
    session.expire_all()
    assert session.get(Ticket, int(tid)).version == before
    assert len(service.timeline(session, int(tid))) == entries


def test_bad_patch_requests(client, oss, session):
    tid = create(client, oss)["id"]
    err = error(client.patch(f"{URL}/{tid}", json={"status": "inProgress"}, headers={**oss, "Content-Type":
                                                                                      "text/plain"}), 400)  # fmt: skip
    assert err["field"] == "Content-Type"
    err = error(client.patch(f"{URL}/{tid}", content=b"{not json", headers={**oss, **MERGE}), 400)
    assert "JSON" in err["message"] or "json" in err["message"]
    error(client.patch(f"{URL}/{tid}", json=[1], headers={**oss, **MERGE}), 400)
    error(client.patch(f"{URL}/999999", json={"status": "inProgress"}, headers={**oss, **MERGE}), 404)
    error(client.patch(f"{URL}/abc", json={"status": "inProgress"}, headers={**oss, **MERGE}), 404)
    error(client.get(f"{URL}/abc", headers=oss), 404)
    error(client.get(f"{URL}/{'9' * 30}", headers=oss), 404)
    # a stale If-Match: 409, nothing written
    version = session.get(Ticket, int(tid)).version
    err = error(client.patch(f"{URL}/{tid}", json={"status": "inProgress"},
                             headers={**oss, **MERGE, "If-Match": f'"{version + 5}"'}), 409)  # fmt: skip
    assert "reload" in err["message"]
    matching = {**oss, **MERGE, "If-Match": f'"{version}"'}
    ok = client.patch(f"{URL}/{tid}", json={"status": "inProgress"}, headers=matching)
    assert ok.status_code == 200 and ok.headers["ETag"] == f'"{version + 1}"'


@pytest.mark.parametrize(
    "body,field,text",
    [
        ({"severity": "major", "ticketType": "incident"}, "description", "required"),
        ({"description": "x", "ticketType": "incident"}, "severity", "required"),
        ({"description": "x", "severity": "major"}, "ticketType", "required"),
        ({"description": "x", "severity": "bad", "ticketType": "t"}, "severity", "expected critical"),
        ({"description": "x", "severity": "major", "ticketType": "t", "priority": "urgent"}, "priority", "P1"),
        ({"description": "x", "severity": "major", "ticketType": "t", "status": "closed"}, "status", "acknowledged"),
        ({"description": "x", "severity": "major", "ticketType": "t", "id": "7"}, "id", "read-only"),
        ({"description": "x", "severity": "major", "ticketType": "t", "colour": 1}, "colour", "unknown"),
        ({"description": "", "severity": "major", "ticketType": "t"}, "description", "non-empty"),
        ({"description": "x" * 4001, "severity": "major", "ticketType": "t"}, "description", "at most 4000"),
        (
            {
                "description": "x",
                "severity": "major",
                "ticketType": "t",
                "relatedEntity": [{"id": "nope", "role": "device", "@referredType": "Resource"}],
            },
            "device",
            "no device",
        ),
        (
            {
                "description": "x",
                "severity": "major",
                "ticketType": "t",
                "relatedEntity": [{"id": "1", "role": "x", "@referredType": "Alarm"}],
            },
            "relatedEntity[0].@referredType",
            "expected Resource",
        ),
        (
            {"description": "x", "severity": "major", "ticketType": "t", "note": [{"text": 5}]},
            "note[0].text",
            "expected text",
        ),
        ({"description": "x", "severity": "major", "ticketType": "t", "@type": "Alarm"}, "@type", "TroubleTicket"),
    ],
)
def test_bad_create_is_400_and_writes_nothing(client, oss, session, body, field, text):
    count = len(session.scalars(select(Ticket.id)).all())
    err = error(client.post(URL, json=body, headers=oss), 400)
    assert err.get("field") == field and text in err["message"], err
    session.expire_all()
    assert len(session.scalars(select(Ticket.id)).all()) == count


def test_bad_list_queries(client, oss):
    cases = [({"fields": "colour"}, "fields"), ({"status": "open"}, "status"), ({"status.gt": "closed"}, "status"),
             ({"creationDate.gt": "yesterday"}, "creationDate"), ({"colour": "red"}, "colour"),
             ({"limit": "0"}, "limit"), ({"sort": "id"}, "sort")]  # fmt: skip
    for params, field in cases:
        err = error(client.get(URL, params=params, headers=oss), 400)
        assert err["field"] == field, (params, err)


def test_date_filters(client, oss):
    doc = create(client, oss)
    created = doc["creationDate"]
    after = client.get(URL, params={"creationDate.gte": created, "id": doc["id"]}, headers=oss).json()
    assert [d["id"] for d in after] == [doc["id"]]
    assert client.get(URL, params={"creationDate.lt": created, "id": doc["id"]}, headers=oss).json() == []


@pytest.mark.parametrize("role", ["viewer", "technician", "servicedesk", "provisioner"])
def test_roles_that_must_not(client, auth, role):
    headers = auth(role)
    # provisioner reads tickets in the JSON API too (api/rbac.py TMF_RESOURCE_READERS); it writes none
    assert client.get(URL, headers=headers).status_code == (200 if role == "provisioner" else 403)
    assert client.post(URL, json={"description": "x", "severity": "major", "ticketType": "t"},
                       headers=headers).status_code == 403  # fmt: skip
    assert client.patch(f"{URL}/1", json={"status": "inProgress"}, headers={**headers, **MERGE}).status_code == 403
    assert client.post("/tmf-api/troubleTicket/v4/hub", json={"callback": "http://example.com/x"},
                       headers=headers).status_code == 403  # fmt: skip


def test_unauthenticated_and_noc(client, auth):
    err = error(client.get(URL), 401)
    assert err["code"] == "401"
    assert client.get(URL, headers=auth("noc")).status_code == 200
    assert client.get(URL, headers=auth("admin")).status_code == 200


def test_hub_routes(client, oss):
    callback = "https://listener.example.com/tt"
    response = client.post("/tmf-api/troubleTicket/v4/hub",
                           json={"callback": callback, "query": "eventType=TroubleTicketCreateEvent"},
                           headers=oss)  # fmt: skip
    assert response.status_code == 201, response.text
    validate(response.json(), "EventSubscription")
    err = error(client.post("/tmf-api/troubleTicket/v4/hub",
                            json={"callback": callback, "query": "event.troubleTicket.colour=x"},
                            headers=oss), 400)  # fmt: skip
    assert "colour" in err["message"]
    sid = response.json()["id"]
    assert client.delete(f"/tmf-api/troubleTicket/v4/hub/{sid}", headers=oss).status_code == 204


def test_timeline_entries_of_a_tmf_status_change_name_the_actor(client, oss, session):
    tid = create(client, oss)["id"]
    patch(client, oss, tid, {"status": "inProgress"})
    entry = session.scalars(select(TicketEvent).where(TicketEvent.ticket_id == int(tid),
                                                      TicketEvent.action == "acknowledge")).one()  # fmt: skip
    assert entry.actor == "oss-user" and (entry.from_state, entry.to_state) == ("new", "acknowledged")


def test_events_reach_a_listener_over_http(client, oss, session, runtime):
    """The hub's delivery (the leader's HubDelivery) posts each event to {callback}/listener/{eventName}."""
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    got: list[tuple[str, dict]] = []

    class Listener(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):  # noqa: N802
            got.append((self.path, json.loads(self.rfile.read(int(self.headers["Content-Length"])))))
            self.send_response(204)
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Listener)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        sub = hub.subscribe(session, tmf.API, callback=f"http://127.0.0.1:{server.server_port}/tt", query="",
                            actor="test", allow_private=True)  # fmt: skip
        session.commit()
        tid = create(client, oss)["id"]
        patch(client, oss, tid, {"status": "inProgress"})
        runtime.settings.tmf_hub_allow_private = True
        delivered, failed = hub.HubDelivery(runtime.sessions, runtime.settings).deliver_due()
        assert (delivered, failed) == (2, 0)
    finally:
        server.shutdown()
        server.server_close()
    assert [path for path, _ in got] == ["/tt/listener/troubleTicketCreateEvent",
                                         "/tt/listener/troubleTicketStatusChangeEvent"]  # fmt: skip
    for _path, envelope in got:
        validate(envelope, "TroubleTicketEvent")
        assert envelope["event"]["troubleTicket"]["id"] == tid
    assert got[1][1]["event"]["troubleTicket"]["status"] == "inProgress"
    assert len({envelope["eventId"] for _p, envelope in got}) == 2 and sub.id


def test_an_sla_breach_is_an_attribute_value_change(client, oss, session, subscription):
    from datetime import timedelta

    from faultloop import clock

    tid = create(client, oss, priority="P1")["id"]
    later = clock.now() + timedelta(days=30)
    service.tick(session, policy=load_policy(), now=later, hold_down_s=300, verify_timeout_s=3600,
                 reopen_window_s=86400)  # fmt: skip
    session.commit()
    sent = [e for e in events(session, subscription) if e["event"]["troubleTicket"]["id"] == tid]
    assert [e["eventType"] for e in sent][:1] == ["TroubleTicketCreateEvent"]
    changes = [e["event"]["troubleTicket"] for e in sent if e["eventType"] == "TroubleTicketAttributeValueChangeEvent"]
    assert changes, [e["eventType"] for e in sent]
    flags = {c["name"]: c["value"] for c in changes[-1]["troubleTicketCharacteristic"]}
    assert flags["responseSlaBreached"] is True and flags["restoreSlaBreached"] is True


def test_a_bad_if_match_is_400(client, oss):
    tid = create(client, oss)["id"]
    err = error(client.patch(f"{URL}/{tid}", json={"status": "inProgress"},
                             headers={**oss, **MERGE, "If-Match": "38R8"}), 400)  # fmt: skip
    assert err["field"] == "If-Match"
