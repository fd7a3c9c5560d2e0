"""TMF642 hub: subscriptions with a query, the three alarm events written in the transaction of the
change (engine and operator actions, REST and TMF routes), delivered to a real local listener at
{callback}/listener/{eventName} with the signed envelope, deduplicable by eventId; a failing callback
is retried with back-off, its subscription marked failing, and never holds up another subscriber."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import func, select

from alarms.bus import AlarmBus
from alarms.models import Alarm
from alarms.runner import AlarmEngine
from faultloop.events import Event
from faultloop.notify import sign
from faultloop.settings import Settings
from northbound import alarm as tmf_alarm
from northbound.hub import HubDelivery
from northbound.models import HubEvent, HubSubscription
from tests.northbound.conformance import validate

BASE = "/tmf-api/alarmManagement/v4"
SECRET = "hub-test-secret"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "var", secret_key=Fernet.generate_key().decode(), tmf_hub_allow_private=True,
        tmf_hub_secret=SECRET, tmf_hub_max_attempts=3,
    )  # fmt: skip


class Listener:
    """A real HTTP listener on 127.0.0.1: paths under /bad answer 500, everything else 204."""

    def __init__(self) -> None:
        self.received: list[tuple[str, dict[str, str], bytes]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server name
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                owner.received.append((self.path, dict(self.headers), body))
                self.send_response(500 if self.path.startswith("/bad") else 204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def under(self, prefix: str) -> list[tuple[str, dict[str, str], dict]]:
        return [(p, h, json.loads(b)) for p, h, b in self.received if p.startswith(prefix)]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    got = Listener()
    try:
        yield got
    finally:
        got.close()


@pytest.fixture
def hub_engine(runtime, frozen):
    woken: list[int] = []
    engine = AlarmEngine(runtime, AlarmBus())
    engine.add_outbox("tmf-hub", tmf_alarm.engine_outbox(lambda: woken.append(1)))
    engine.load()
    engine.woken = woken  # type: ignore[attr-defined]
    return engine


def _event(frozen, event_type: str, severity: str) -> Event:
    return Event(source="trap", device="r1", event_type=event_type, severity=severity, time=frozen(),
                 managed_object="interface:Gi0/1", probable_cause="lossOfSignal")  # fmt: skip


def _subscribe(client, auth, callback: str, query: str = "") -> dict:
    r = client.post(f"{BASE}/hub", json={"callback": callback, "query": query}, headers=auth("oss"))
    assert r.status_code == 201, r.text
    validate(r.json(), "EventSubscription")
    assert r.headers["Location"] == f"{BASE}/hub/{r.json()['id']}"
    return r.json()


def test_scripted_alarm_life_reaches_the_listener_once_per_outbox_row(client, auth, session, frozen, listener,
                                                                       hub_engine, operator_hook, runtime):  # fmt: skip
    every = _subscribe(client, auth, f"{listener.url}/all")
    twin = _subscribe(client, auth, f"{listener.url}/twin")
    creates = _subscribe(client, auth, f"{listener.url}/creates", "eventType=AlarmCreateEvent")
    majors = _subscribe(client, auth, f"{listener.url}/majors",
                        "eventType=AlarmStateChangeEvent&event.alarm.perceivedSeverity=cleared")  # fmt: skip
    elsewhere = _subscribe(client, auth, f"{listener.url}/elsewhere", "event.alarm.alarmedObject.id=r9")

    # raised by the engine
    hub_engine.submit_events([_event(frozen, "linkDown", "major")])
    hub_engine.run_once()
    assert hub_engine.woken, "the delivery is woken after the engine's commit"
    alarm_id = session.scalars(select(Alarm.id)).one()
    # acknowledged through the JSON API, commented through TMF642 (operators: written in their transaction)
    assert client.post(f"/api/v1/alarms/{alarm_id}/ack", headers=auth("noc")).status_code == 200
    task = {"alarmPattern": [{"id": str(alarm_id)}], "comment": {"comment": "crew on the way"}}
    assert client.post(f"{BASE}/commentAlarms", json=task, headers=auth("oss")).status_code == 201
    assert len(operator_hook) == 2
    frozen.advance(30)
    # cleared by the device; the engine's round also sees the operators' journal entries: no second event
    hub_engine.submit_events([_event(frozen, "linkUp", "cleared")])
    hub_engine.run_once()
    hub_engine.run_once()

    rows = {sub["id"]: session.scalar(select(func.count()).where(HubEvent.subscription_id == sub["id"]))
            for sub in (every, twin, creates, majors, elsewhere)}  # fmt: skip
    assert rows == {every["id"]: 4, twin["id"]: 4, creates["id"]: 1, majors["id"]: 1, elsewhere["id"]: 0}

    delivered, failed = HubDelivery(runtime.sessions, runtime.settings).deliver_due()
    assert (delivered, failed) == (10, 0)
    got = listener.under("/all")
    assert [p for p, _h, _b in got] == [
        "/all/listener/alarmCreateEvent", "/all/listener/alarmStateChangeEvent",
        "/all/listener/alarmAttributeValueChangeEvent", "/all/listener/alarmStateChangeEvent",
    ]  # fmt: skip
    for _path, headers, body in got:
        validate(body, "AlarmEvent")
        assert body["event"]["alarm"]["id"] == str(alarm_id)
        assert headers["X-Faultloop-Event-Id"] == body["eventId"]
        raw = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
        assert headers["X-Faultloop-Signature"] == sign(SECRET.encode(), headers["X-Faultloop-Timestamp"], raw)
    states = [(b["eventType"], b["event"]["alarm"]["state"], b["event"]["alarm"]["ackState"]) for _p, _h, b in got]
    assert states == [
        ("AlarmCreateEvent", "raised", "unacknowledged"),
        ("AlarmStateChangeEvent", "raised", "acknowledged"),
        ("AlarmAttributeValueChangeEvent", "raised", "acknowledged"),
        ("AlarmStateChangeEvent", "cleared", "acknowledged"),
    ]  # fmt: skip
    assert got[2][2]["event"]["alarm"]["comment"][0]["comment"] == "crew on the way"
    # one event, one eventId for every subscriber: a listener deduplicates by it
    assert [b["eventId"] for _p, _h, b in got] == [b["eventId"] for _p, _h, b in listener.under("/twin")]
    assert len({b["eventId"] for _p, _h, b in got}) == 4
    assert [b["eventId"] for _p, _h, b in listener.under("/creates")] == [got[0][2]["eventId"]]
    assert [b["eventId"] for _p, _h, b in listener.under("/majors")] == [got[3][2]["eventId"]]
    assert listener.under("/elsewhere") == []
    # delivered once: a second round sends nothing
    assert HubDelivery(runtime.sessions, runtime.settings).deliver_due() == (0, 0)


def test_a_failing_callback_is_retried_marked_failing_and_blocks_nobody(client, auth, session, frozen, listener,
                                                                          hub_engine, runtime):  # fmt: skip
    bad = _subscribe(client, auth, f"{listener.url}/bad")
    good = _subscribe(client, auth, f"{listener.url}/good")
    hub_engine.submit_events([_event(frozen, "linkDown", "major")])
    hub_engine.run_once()
    delivery = HubDelivery(runtime.sessions, runtime.settings)
    assert delivery.deliver_due() == (1, 1)
    assert len(listener.under("/good")) == 1 and len(listener.under("/bad")) == 1
    r = client.get(f"{BASE}/hub/{bad['id']}", headers=auth("oss"))
    assert r.json()["state"] == "active"  # one failure: retried, not yet failing
    assert delivery.deliver_due() == (0, 0)  # not due before the back-off
    frozen.advance(11)
    assert delivery.deliver_due() == (0, 1)
    frozen.advance(21)
    assert delivery.deliver_due() == (0, 1)  # third attempt: FAULTLOOP_TMF_HUB_MAX_ATTEMPTS=3, given up
    assert len(listener.under("/bad")) == 3
    r = client.get(f"{BASE}/hub/{bad['id']}", headers=auth("oss"))
    assert r.status_code == 200
    validate(r.json(), "EventSubscription")
    assert (r.json()["state"], r.json()["failedEvents"], r.json()["lastError"]) == ("failing", 1, "HTTP 500")
    assert client.get(f"{BASE}/hub/{good['id']}", headers=auth("oss")).json()["state"] == "active"
    # a later event still reaches the good subscriber at once
    frozen.advance(7200)
    hub_engine.submit_events([_event(frozen, "linkUp", "cleared")])
    hub_engine.run_once()
    delivered, _failed = delivery.deliver_due()
    assert delivered == 1 and [b["eventType"] for _p, _h, b in listener.under("/good")] == [
        "AlarmCreateEvent", "AlarmStateChangeEvent"]  # fmt: skip


def test_hub_subscription_inputs_are_checked(client, auth, session):
    h = auth("oss")

    def bad(body, *needles: str) -> None:
        r = client.post(f"{BASE}/hub", json=body, headers=h)
        assert r.status_code == 400, r.text
        validate(r.json(), "Error")
        for needle in needles:
            assert needle in r.json()["message"]

    bad({"callback": "https://oss.example.net/cb", "query": "event.alarm.colour=red"}, "event.alarm.colour")
    bad({"callback": "https://oss.example.net/cb", "query": "eventType=AlarmExplodedEvent"}, "eventType")
    bad({"callback": "https://oss.example.net/cb", "query": "event.alarm.state=burning"}, "event.alarm.state")
    bad({"callback": "ftp://oss.example.net/cb"}, "callback")
    bad({"callback": "https://oss.example.net/cb", "extra": 1}, "extra")
    assert session.scalar(select(func.count()).select_from(HubSubscription)) == 0
    sub = _subscribe(client, auth, "https://oss.example.net/cb", "event.alarm.perceivedSeverity=critical")
    assert client.delete(f"{BASE}/hub/{sub['id']}", headers=h).status_code == 204
    r = client.get(f"{BASE}/hub/{sub['id']}", headers=h)
    assert r.status_code == 404
    validate(r.json(), "Error")


def test_one_engine_batch_writes_each_subscriber_its_share(client, auth, session, frozen, hub_engine):
    r1 = _subscribe(client, auth, "https://oss.example.net/r1", "event.alarm.alarmedObject.id=r1")
    r2 = _subscribe(client, auth, "https://oss.example.net/r2", "event.alarm.alarmedObject.id=r2")
    events = [
        Event(source="trap", device=device, event_type="linkDown", severity="major", time=frozen(),
              managed_object=f"interface:Gi0/{i}")
        for device, n in (("r1", 20), ("r2", 10)) for i in range(n)
    ]  # fmt: skip
    hub_engine.submit_events(events)
    hub_engine.run_once()
    assert session.scalar(select(func.count()).select_from(Alarm)) == 30
    for sub, want in ((r1, 20), (r2, 10)):
        rows = session.scalars(select(HubEvent).where(HubEvent.subscription_id == sub["id"])).all()
        assert len(rows) == want and len({r.event_id for r in rows}) == want
        assert {r.event_type for r in rows} == {"AlarmCreateEvent"}
        for row in rows:
            validate(row.payload, "AlarmEvent")
