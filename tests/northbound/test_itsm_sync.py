"""Two-way ITSM sync against a small TMF621 server written for the tests (real HTTP on 127.0.0.1).

Out: tickets the desk owns are created there, their status changes, notes and alarm changes follow,
in order, at least once, retried; 4xx gives up. Back: the desk's PATCH on our API (as the ITSM user)
and its hub event; resolved there -> verification here; reopened here -> inProgress there; no echo.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from cryptography.fernet import Fernet
from fastapi.testclient import TestClient
from sqlalchemy import select

from api.main import create_api
from faultloop import clock
from faultloop.events import AlarmChange
from faultloop.runtime import Runtime
from faultloop.settings import Settings
from northbound import itsm as itsm_module
from northbound import ticket as tmf
from northbound.itsm import ItsmSync
from northbound.ticket_models import ItsmOutbox, TicketLink
from tests.conftest import make_token
from tests.northbound.conformance import validate
from tests.ticketing.conftest import make_alarm, make_device, make_user
from ticketing import service
from ticketing.models import Ticket
from ticketing.policy import load_policy

TOKEN = "itsm-marker-secret-7f3a"
URL = "/tmf-api/troubleTicket/v4/troubleTicket"


class Desk:
    """A TMF621 service desk: POST /troubleTicket answers 201 with id DESK-n, PATCH /troubleTicket/{id}
    200; ``fail`` answers the next requests with that status instead; every request is recorded."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, dict, dict]] = []
        self.fail: list[int] = []
        self.tickets: dict[str, dict] = {}
        desk = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _answer(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _handle(self, method: str) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")
                desk.requests.append((method, self.path, dict(self.headers), body))
                if desk.fail:
                    self._answer(desk.fail.pop(0), {"code": "x", "reason": "failing"})
                    return
                if method == "POST" and self.path == "/tmf-api/troubleTicket/v4/troubleTicket":
                    tid = f"DESK-{len(desk.tickets) + 1}"
                    desk.tickets[tid] = {**body, "id": tid}
                    self._answer(201, desk.tickets[tid])
                elif method == "PATCH" and self.path.startswith("/tmf-api/troubleTicket/v4/troubleTicket/"):
                    tid = self.path.rsplit("/", 1)[1]
                    if tid not in desk.tickets:
                        self._answer(404, {"code": "404", "reason": "not found"})
                        return
                    desk.tickets[tid].update({k: v for k, v in body.items() if k != "note"})
                    self._answer(200, desk.tickets[tid])
                else:
                    self._answer(404, {"code": "404", "reason": "not found"})

            def do_POST(self):  # noqa: N802
                self._handle("POST")

            def do_PATCH(self):  # noqa: N802
                self._handle("PATCH")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/tmf-api/troubleTicket/v4"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def calls(self) -> list[tuple[str, str, dict]]:
        return [(m, p.removeprefix("/tmf-api/troubleTicket/v4"), b) for m, p, _h, b in self.requests]


@pytest.fixture
def desk():
    d = Desk()
    d.thread.start()
    yield d
    d.server.shutdown()
    d.server.server_close()


@pytest.fixture
def frozen():
    c = clock.FrozenClock(clock.now().replace(microsecond=0))
    with clock.use(c):
        yield c


@pytest.fixture
def itsm_settings(tmp_path, desk) -> Settings:
    return Settings(data_dir=tmp_path / "var", secret_key=Fernet.generate_key().decode(), itsm_url=desk.url,
                    itsm_token=TOKEN, itsm_user="desk", itsm_min_priority="P2", itsm_allow_private=True)  # fmt: skip


@pytest.fixture
def sync(itsm_settings, sessions, monkeypatch) -> ItsmSync:
    s = ItsmSync(sessions, itsm_settings)
    monkeypatch.setitem(service.CHANGES, "itsm", s.on_ticket_change)
    monkeypatch.setitem(service.CHANGES, "tmf-hub", tmf.on_ticket_change)
    return s


@pytest.fixture
def api(itsm_settings, db_engine, sessions, vault):
    rt = Runtime(settings=itsm_settings, engine=db_engine, sessions=sessions, vault=vault)
    with TestClient(create_api(rt), raise_server_exceptions=False) as c:
        yield c


def manual(session, *, priority="P1", actor="noc-a"):
    who = service.Actor.of(make_user(session, actor, "noc"))
    ticket = service.create_manual(session, policy=load_policy(), actor=who, title="fibre cut", priority=priority,
                                   now=clock.now())  # fmt: skip
    session.commit()
    return ticket, who


def rows(session, ticket_id):
    session.expire_all()
    return list(session.scalars(select(ItsmOutbox).where(ItsmOutbox.ticket_id == ticket_id).order_by(ItsmOutbox.id)))


def test_created_there_then_status_and_notes_follow_in_order(session, sync, desk, frozen):
    ticket, noc = manual(session)
    low, _ = manual(session, priority="P4", actor="noc-b")  # below FAULTLOOP_ITSM_MIN_PRIORITY: faultloop's own
    service.transition(session, policy=load_policy(), ticket_id=ticket.id, action="acknowledge", actor=noc,
                       now=clock.now())  # fmt: skip
    service.add_note(session, ticket_id=ticket.id, actor=noc, text="splicing crew called", expected_version=None,
                     now=clock.now())  # fmt: skip
    service.transition(
        session,
        policy=load_policy(),
        ticket_id=ticket.id,
        action="diagnose",
        actor=noc,
        data={"diagnosis": "cut", "fault_category": "fibre"},
        now=clock.now(),
    )  # no status change
    session.commit()
    assert rows(session, low.id) == []
    assert [r.route for r in rows(session, ticket.id)] == ["create", "update", "update"]
    assert sync.run_once() == (3, 0)
    calls = desk.calls()
    assert [(m, p) for m, p, _b in calls] == [("POST", "/troubleTicket"), ("PATCH", "/troubleTicket/DESK-1"),
                                              ("PATCH", "/troubleTicket/DESK-1")]  # fmt: skip
    created = calls[0][2]
    assert created["externalId"] == str(ticket.id) and created["status"] == "acknowledged"
    assert created["priority"] == "P1" and created["@type"] == "TroubleTicket"
    assert calls[1][2] == {"status": "inProgress", "statusChangeReason": "acknowledge in faultloop"}
    assert calls[2][2]["note"][0]["text"] == "splicing crew called"
    assert all(h["Authorization"] == f"Bearer {TOKEN}" for _m, _p, h, _b in desk.requests)
    session.expire_all()
    link = session.get(TicketLink, ticket.id)
    assert (link.external_id, link.owner) == ("DESK-1", "itsm")
    assert all(r.delivered_at is not None for r in rows(session, ticket.id))
    # our TMF view shows the desk's id as the externalId
    assert tmf.get(session, str(ticket.id))["externalId"] == "DESK-1"


def test_retried_at_least_once_in_order_and_4xx_gives_up(session, sync, desk, frozen):
    ticket, noc = manual(session)
    service.transition(session, policy=load_policy(), ticket_id=ticket.id, action="acknowledge", actor=noc,
                       now=clock.now())  # fmt: skip
    session.commit()
    desk.fail = [503]
    assert sync.run_once() == (0, 1)  # the create failed; the update waits behind it
    assert [(m, p) for m, p, _b in desk.calls()] == [("POST", "/troubleTicket")]
    first, second = rows(session, ticket.id)
    assert first.attempts == 1 and first.last_error == "HTTP 503 from the service desk" and second.attempts == 0
    assert sync.run_once() == (0, 0)  # not due yet
    frozen.advance(11)
    assert sync.run_once() == (2, 0)
    assert [m for m, _p, _b in desk.calls()] == ["POST", "POST", "PATCH"]
    # a refusal (4xx) is given up at once, visibly; the next change still goes
    service.add_note(session, ticket_id=ticket.id, actor=noc, text="n1", expected_version=None, now=clock.now())
    service.add_note(session, ticket_id=ticket.id, actor=noc, text="n2", expected_version=None, now=clock.now())
    session.commit()
    desk.fail = [422]
    assert sync.run_once() == (1, 1)
    gave_up, sent = rows(session, ticket.id)[-2:]
    assert gave_up.gave_up_at is not None and "HTTP 422" in (gave_up.last_error or "")
    assert sent.delivered_at is not None and desk.calls()[-1][2]["note"][0]["text"] == "n2"
    # an unreachable desk: retried, and the token is in no error text
    sync.url = "http://127.0.0.1:9/tmf-api/troubleTicket/v4"
    service.add_note(session, ticket_id=ticket.id, actor=noc, text="n3", expected_version=None, now=clock.now())
    session.commit()
    assert sync.run_once() == (0, 1)
    row = rows(session, ticket.id)[-1]
    assert row.gave_up_at is None and row.last_error == "ConnectError" and TOKEN not in json.dumps(row.payload)


def test_alarm_changes_are_notes_there(session, sync, desk, frozen):
    make_device(session, "itsm-edge-1")
    alarm = make_alarm(session, device="itsm-edge-1", severity="critical")
    from alarms import queries

    ticket = service.open_for_alarm(session, policy=load_policy(), alarm=queries.alarm(session, alarm.id),
                                    now=clock.now())  # fmt: skip
    session.commit()
    assert ticket is not None and ticket.priority in ("P1", "P2")
    change = AlarmChange(kind="cleared", alarm_id=alarm.id, reduction_key=alarm.reduction_key, alarm_type="linkDown",
                         device="itsm-edge-1", managed_object="interface:Gi0/1", severity="critical", state="cleared",
                         count=1, muted=False, suppression_reason=None, parent_id=None, root_cause=False,
                         at=clock.now())  # fmt: skip
    other = dataclasses.replace(change, alarm_id=alarm.id + 100000)  # on no ticket of the desk's
    sync.on_alarm_changes(session, [change, other])
    session.commit()
    assert sync.run_once() == (2, 0)
    note = desk.calls()[-1][2]["note"][0]
    assert note["text"] == f"alarm {alarm.id} linkDown on itsm-edge-1 interface:Gi0/1: cleared (critical, cleared)"


def test_resolved_there_is_verified_here_and_reopened_here_goes_back(session, sync, desk, frozen, api):
    ticket, noc = manual(session)
    make_user(session, "desk", "oss")
    session.commit()
    token = make_token(session, "desk-token-user", "oss")
    sync.run_once()
    # the desk's user is FAULTLOOP_ITSM_USER: a token of that user
    from faultloop.accounts import service as accounts
    from faultloop.accounts.models import User

    desk_user = session.scalar(select(User).where(User.username == "desk"))
    _row, desk_token = accounts.create_token(session, user=desk_user, name="itsm", ttl_days=1, actor="test")
    session.commit()
    headers = {"Authorization": f"Bearer {desk_token}", "Content-Type": "application/merge-patch+json"}
    response = api.patch(f"{URL}/{ticket.id}", json={"status": "resolved", "statusChangeReason": "spliced"},
                         headers=headers)  # fmt: skip
    assert response.status_code == 200, response.text
    validate(response.json(), "TroubleTicket")
    session.expire_all()
    assert session.get(Ticket, ticket.id).state == "resolved"
    assert [r.route for r in rows(session, ticket.id)] == ["create"]  # the desk's own change: no echo
    # verification here: no alarms to wait for, so after the hold-down the tick verifies it
    frozen.advance(301)
    result = service.tick(session, policy=load_policy(), now=clock.now(), hold_down_s=300, verify_timeout_s=3600,
                          reopen_window_s=86400)  # fmt: skip
    session.commit()
    assert result.verified == [ticket.id]
    assert [r.route for r in rows(session, ticket.id)] == ["create"]  # still resolved in TMF terms
    # reopened here (the root cause came back) -> inProgress there
    service.transition(session, policy=load_policy(), ticket_id=ticket.id, action="reopen", actor=service.SYSTEM,
                       data={"reason": "root cause recurred"}, now=clock.now())  # fmt: skip
    session.commit()
    assert sync.run_once() == (1, 0)
    reopened = {"status": "inProgress", "statusChangeReason": "reopen in faultloop: root cause recurred"}
    assert desk.calls()[-1] == ("PATCH", "/troubleTicket/DESK-1", reopened)
    # another oss user's change is sent (only the desk's own is not)
    other = {"Authorization": f"Bearer {token}", "Content-Type": "application/merge-patch+json"}
    assert api.patch(f"{URL}/{ticket.id}", json={"status": "cancelled", "statusChangeReason": "dup"},
                     headers=other).status_code == 200  # fmt: skip
    assert sync.run_once() == (1, 0)
    assert desk.calls()[-1][2]["status"] == "cancelled"


def test_the_desks_hub_event(session, sync, desk, frozen, api):
    ticket, _noc = manual(session)
    sync.run_once()
    make_user(session, "desk", "oss")
    session.commit()
    from faultloop.accounts import service as accounts
    from faultloop.accounts.models import User

    user = session.scalar(select(User).where(User.username == "desk"))
    _row, token = accounts.create_token(session, user=user, name="itsm", ttl_days=1, actor="test")
    session.commit()
    headers = {"Authorization": f"Bearer {token}"}
    listener = "/tmf-api/troubleTicket/v4/listener/troubleTicketStatusChangeEvent"
    event = {
        "eventId": "e1",
        "eventTime": clock.now().isoformat(),
        "eventType": "TroubleTicketStatusChangeEvent",
        "event": {"troubleTicket": {"id": "DESK-1", "status": "inProgress", "statusChangeReason": "taken"}},
    }
    response = api.post(listener, json=event, headers=headers)
    assert response.status_code == 200, response.text
    validate(response.json(), "TroubleTicket")
    session.expire_all()
    assert session.get(Ticket, ticket.id).state == "acknowledged"
    # by our id as its externalId too
    by_ours = {**event, "event": {"troubleTicket": {"externalId": str(ticket.id), "status": "cancelled",
                                                    "statusChangeReason": "duplicate"}}}  # fmt: skip
    assert api.post(listener, json=by_ours, headers=headers).json()["status"] == "cancelled"
    assert [r.route for r in rows(session, ticket.id)] == ["create"]  # nothing echoed
    # bad events: 400 / 404 in the TMF Error shape, naming what
    cases = [
        ([1], 400, "body"),
        ({**event, "eventType": "AlarmCreateEvent"}, 400, "eventType"),
        ({**event, "event": {}}, 400, "event.troubleTicket"),
        ({**event, "event": {"troubleTicket": {"id": "DESK-1"}}}, 400, "event.troubleTicket.status"),
        ({**event, "event": {"troubleTicket": {"id": "DESK-1", "status": "held"}}}, 400, "event.troubleTicket.status"),
        ({**event, "event": {"troubleTicket": {"id": "NOPE", "status": "resolved"}}}, 404, "event.troubleTicket"),
    ]
    for body, status, field in cases:
        response = api.post(listener, json=body, headers=headers)
        assert response.status_code == status, (body, response.text)
        validate(response.json(), "Error")
        assert response.json()["field"] == field
    assert api.post(listener, json=event, headers={"Authorization": f"Bearer {make_token(session, 'v1', 'viewer')}"}
                    ).status_code == 403  # fmt: skip


def test_settings_checked_and_off_by_default(tmp_path, sessions, session):
    key = Fernet.generate_key().decode()
    with pytest.raises(ValueError, match="loopback|private|local"):
        ItsmSync(sessions, Settings(data_dir=tmp_path, secret_key=key, itsm_url="http://127.0.0.1:1/x"))
    with pytest.raises(ValueError):
        ItsmSync(sessions, Settings(data_dir=tmp_path, secret_key=key, itsm_url="ftp://desk.example.com/x"))
    off = ItsmSync(sessions, Settings(data_dir=tmp_path, secret_key=key))
    assert not off.enabled and off.run_once() == (0, 0)
    ticket = service.create_manual(session, policy=load_policy(), actor=service.Actor("n", "noc"), title="t",
                                   priority="P1", now=clock.now())  # fmt: skip
    off.on_ticket_change(session, ticket, "created", {"actor": "n"})
    assert rows(session, ticket.id) == []
    assert "itsm_token" in repr(Settings(data_dir=tmp_path, secret_key=key, itsm_token=TOKEN)) and TOKEN not in repr(
        Settings(data_dir=tmp_path, secret_key=key, itsm_token=TOKEN)
    )
    assert itsm_module.OWNER == "itsm"


def test_wired_by_the_composition_root(runtime, monkeypatch, desk):
    from faultloop.cmd.app import Hook, StartupError, build_pipeline

    def itsm_hooks(pipeline):
        return [s for s in pipeline.services if isinstance(s, Hook) and s.key == "itsm"]

    pipeline = build_pipeline(runtime)
    assert "itsm sync" not in [s.name for s in pipeline.services] and itsm_hooks(pipeline) == []
    runtime.settings.itsm_url, runtime.settings.itsm_allow_private = desk.url, True
    pipeline = build_pipeline(runtime)
    [sync] = [s for s in pipeline.services if s.name == "itsm sync"]
    [hook] = itsm_hooks(pipeline)  # registered in ticketing.service.CHANGES while the pipeline runs
    assert hook.registry is service.CHANGES and hook.write == sync.on_ticket_change
    runtime.settings.itsm_allow_private = False
    with pytest.raises(StartupError, match="FAULTLOOP_ITSM_URL: .*127.0.0.1"):
        build_pipeline(runtime)


def test_a_desk_owned_tickets_change_raises_its_version_once(runtime, session, sync, desk, frozen, monkeypatch):
    """The desk's outbox rows are written inside the ticket's change: each change stays one version,
    with or without a row for the desk, the TMF621 hub listening too (the hub's rows, once flushed in
    the middle of a change, made an SLA breach two versions)."""
    from northbound.models import HubSubscription
    from ticketing.jobs import TicketingService

    monkeypatch.setitem(service.OUTBOX, "tmf-hub", tmf.on_ticket_outbox)
    session.add(HubSubscription(id="00000000-0000-0000-0000-0000000itsm1", api="troubleTicket",
                                callback="http://127.0.0.1:9/listener", query="", created_at=clock.now(),
                                created_by="test", state="active", failed_events=0))  # fmt: skip
    policy = load_policy()
    ticket, noc = manual(session)
    tid, version = ticket.id, ticket.version
    assert [r.route for r in rows(session, tid)] == ["create"]

    def changed(expected_routes: list[str]) -> None:
        nonlocal version
        session.commit()
        session.expire_all()
        now = service.get(session, tid).version
        assert now == version + 1, f"version {version} -> {now}"
        version = now
        assert [r.route for r in rows(session, tid)] == expected_routes

    service.transition(session, policy=policy, ticket_id=tid, action="acknowledge", actor=noc, now=clock.now(),
                       expected_version=version)  # fmt: skip
    changed(["create", "update"])  # acknowledged -> inProgress there
    service.transition(session, policy=policy, ticket_id=tid, action="diagnose", actor=noc, now=clock.now(),
                       data={"diagnosis": "cut", "fault_category": "fibre"}, expected_version=version)  # fmt: skip
    changed(["create", "update"])  # inProgress there still: nothing to send
    jobs = TicketingService(runtime, policy=policy)
    frozen.advance(11_520)  # P1 restore: the warning
    jobs.run_once()
    changed(["create", "update"])
    frozen.advance(14_400 - 11_520)  # the breach, which also raises the tier
    jobs.run_once()
    changed(["create", "update"])
    assert (service.get(session, tid).restore_breached, service.get(session, tid).tier) == (True, 2)
    service.transition(session, policy=policy, ticket_id=tid, action="cancel", actor=noc, now=clock.now(),
                       data={"reason": "duplicate of the carrier's ticket"}, expected_version=version)  # fmt: skip
    changed(["create", "update", "update"])  # cancelled there too
    # the row is added without a flush: from a hook that runs before the change's own flush (where the
    # OUTBOX hooks run), the half-made ticket is not written early
    half_made = service.get(session, tid)
    half_made.title = "fibre cut at the river crossing"
    itsm_module._enqueue(session, tid, "update", {"name": half_made.title})
    assert half_made in session.dirty and session.is_modified(half_made)
    session.rollback()
