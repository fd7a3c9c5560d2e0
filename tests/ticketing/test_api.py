"""The ticket API: NOC flow, technician phone-app flow, visibility, 409s, ETag/If-Match, Idempotency-Key,
timeline export, reports, metrics; every bad input names the field and writes nothing."""

from __future__ import annotations

import csv
import io

from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from faultloop.accounts import service as accounts
from ticketing import metrics
from ticketing.models import IdempotencyKey, Ticket, TicketEvent

from .conftest import make_device, make_technician


def _count(session, model, *where):
    return session.scalar(select(func.count()).select_from(model).where(*where))


def _tech(session, name, **kw):
    """A technician user with a profile, and the headers of a token for it."""
    user = make_technician(session, name, **kw)
    _row, token = accounts.create_token(session, user=user, name="t", ttl_days=1, actor="test")
    session.commit()
    return user, {"Authorization": f"Bearer {token}"}


def _create(client, auth, **body):
    r = client.post("/api/v1/tickets", json={"title": "fiber cut pop-1", **body}, headers=auth("noc"))
    assert r.status_code == 201, r.text
    return r


def _act(client, headers, tid, action, **body):
    return client.post(f"/api/v1/tickets/{tid}/transitions", json={"action": action, **body}, headers=headers)


def _to_dispatched(client, auth, tid, technician):
    noc = auth("noc")
    assert _act(client, noc, tid, "acknowledge").status_code == 200
    r = _act(client, noc, tid, "diagnose", diagnosis="LOS on uplink", fault_category="transmission")
    assert r.status_code == 200, r.text
    r = _act(client, noc, tid, "dispatch", technician=technician)
    assert r.status_code == 200, r.text
    return r


def test_manual_ticket_through_the_whole_flow(client, auth, session, frozen):
    make_device(session, "acc1", role="core", site="pop-1")
    tech, th = _tech(session, "tina")
    r = _create(client, auth, device="acc1", severity="critical")
    body = r.json()
    assert (body["state"], body["priority"], body["site"], body["version"]) == ("new", "P1", "pop-1", 1)
    assert r.headers["ETag"] == '"1"' and body["allowed_actions"] == ["acknowledge", "cancel"]
    tid = body["id"]
    _to_dispatched(client, auth, tid, "tina")
    r = client.get("/api/v1/me/tickets", headers=th)
    assert [t["id"] for t in r.json()["items"]] == [tid]
    r = client.post(f"/api/v1/me/tickets/{tid}/accept", headers=th)
    assert r.status_code == 200 and r.json()["state"] == "accepted"
    move = {"status": "en_route", "eta": "2026-03-02T10:30:00Z", "location_note": "A1 north"}
    r = client.post(f"/api/v1/me/tickets/{tid}/status", headers=th, json=move)
    assert r.status_code == 200 and r.json()["eta"].startswith("2026-03-02T10:30") and r.json()["state"] == "en_route"
    frozen.advance(1800)
    assert client.post(f"/api/v1/me/tickets/{tid}/status", headers=th, json={"status": "on_site"}).status_code == 200
    r = client.post(f"/api/v1/me/tickets/{tid}/notes", headers=th, json={"text": "rodent damage at splice box"})
    assert r.status_code == 201 and r.json()["action"] == "note"
    r = client.post(f"/api/v1/me/tickets/{tid}/resolve", headers=th,
                    json={"cause_category": "fiber_cut", "action_taken": "re-spliced 4 fibres",
                          "parts_used": ["splice tray"], "notes": "ok"})  # fmt: skip
    assert r.status_code == 200, r.text
    assert (r.json()["state"], r.json()["cause_category"], r.json()["parts_used"]) == (
        "resolved", "fiber_cut", ["splice tray"])  # fmt: skip
    noc = auth("noc")
    assert _act(client, noc, tid, "verify", how="customer confirmed").json()["state"] == "verified"
    r = _act(client, noc, tid, "close", rating=4)
    assert (r.json()["state"], r.json()["rating"]) == ("closed", 4)
    timeline = client.get(f"/api/v1/tickets/{tid}/timeline", headers=auth("viewer")).json()
    assert [(e["action"], e["from_state"], e["to_state"]) for e in timeline][:3] == [
        ("create", None, "new"),
        ("acknowledge", "new", "acknowledged"),
        ("diagnose", "acknowledged", "diagnosed"),
    ]
    assert [e["actor"] for e in timeline if e["action"] in ("accept", "resolve", "note")] == ["tina"] * 3
    r = client.get(f"/api/v1/tickets/{tid}/timeline?format=csv", headers=auth("viewer"))
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert r.headers["content-type"].startswith("text/csv") and len(rows) == len(timeline)
    assert rows[-1]["action"] == "close" and rows[-1]["to_state"] == "closed"
    report = client.get("/api/v1/reports/tickets/mttr?by=cause", headers=auth("viewer")).json()
    assert report == [
        {
            "key": "fiber_cut",
            "tickets": 1,
            "resolved": 1,
            "mttr_s": 1800.0,
            "recurrences": 0,
            "cleared_before_dispatch": 0,
        }
    ]


def test_illegal_transition_is_409_with_allowed_actions_and_changes_nothing(client, auth, session, frozen):
    tid = _create(client, auth).json()["id"]
    r = _act(client, auth("noc"), tid, "resolve", cause_category="power", action_taken="x")
    assert r.status_code == 409
    assert r.json()["detail"] == "cannot resolve a ticket in state 'new'; allowed: acknowledge, cancel"
    assert r.json()["allowed_actions"] == ["acknowledge", "cancel"]
    assert session.get(Ticket, tid).state == "new" and _count(session, TicketEvent, TicketEvent.ticket_id == tid) == 1


def test_bad_inputs_name_the_field_and_write_nothing(client, auth, session, frozen):
    noc = auth("noc")
    before = _count(session, Ticket)
    r = client.post("/api/v1/tickets", json={"title": "x", "device": "nope"}, headers=noc)
    assert (r.status_code, r.json()["field"]) == (422, "device")
    assert r.json()["detail"] == "device: no device with hostname 'nope'"
    r = client.post("/api/v1/tickets", json={"title": "", "priority": "P7"}, headers=noc)
    assert r.status_code == 422 and {e["field"] for e in r.json()["errors"]} == {"title", "priority"}
    assert _count(session, Ticket) == before
    tid = _create(client, auth).json()["id"]
    assert _act(client, noc, tid, "acknowledge").status_code == 200
    r = _act(client, noc, tid, "diagnose", diagnosis="   ")
    assert (r.status_code, r.json()["detail"]) == (422, "diagnosis: required for this action")
    r = _act(client, noc, tid, "teleport")
    assert r.status_code == 422 and "expected one of acknowledge" in r.json()["detail"]
    r = _act(client, noc, tid, "cancel")
    assert (r.status_code, r.json()["field"]) == (422, "reason")
    session.expire_all()
    t = session.get(Ticket, tid)
    assert (t.state, t.diagnosis, t.version) == ("acknowledged", "", 2)
    assert _count(session, TicketEvent, TicketEvent.ticket_id == tid) == 2
    r = _act(client, noc, tid, "diagnose", diagnosis="d", fault_category="f")
    r = _act(client, noc, tid, "dispatch")  # nobody on shift: auto-dispatch names what is missing
    assert r.status_code == 409 and r.json()["detail"].startswith("no on-shift technician of tier >= 1")
    r = _act(client, noc, tid, "dispatch", technician="ghost")
    assert (r.status_code, r.json()["detail"]) == (422, "technician: no technician named 'ghost'")
    session.expire_all()
    assert session.get(Ticket, tid).state == "diagnosed"


def test_resolve_validation_keeps_ticket_on_site(client, auth, session, frozen):
    _user, th = _tech(session, "rita")
    tid = _create(client, auth).json()["id"]
    _to_dispatched(client, auth, tid, "rita")
    for status in ("accept", "on_site"):
        url = f"/api/v1/me/tickets/{tid}/accept" if status == "accept" else f"/api/v1/me/tickets/{tid}/status"
        assert client.post(url, headers=th, json={} if status == "accept" else {"status": status}).status_code == 200
    r = client.post(f"/api/v1/me/tickets/{tid}/resolve", headers=th,
                    json={"cause_category": "gremlins", "action_taken": "x"})  # fmt: skip
    assert (r.status_code, r.json()["field"]) == (422, "cause_category")
    r = client.post(f"/api/v1/me/tickets/{tid}/resolve", headers=th,
                    json={"cause_category": "power", "action_taken": "x", "parts_used": [""]})  # fmt: skip
    assert (r.status_code, r.json()["field"]) == (422, "parts_used")
    r = client.post(
        f"/api/v1/me/tickets/{tid}/status", headers=th, json={"status": "en_route", "eta": "2026-01-01T10:00"}
    )
    assert r.status_code == 422 and "timezone" in r.json()["detail"]
    session.expire_all()
    t = session.get(Ticket, tid)
    assert (t.state, t.cause_category, t.resolved_at) == ("on_site", "", None)


def test_technicians_see_only_their_own_and_their_teams_tickets(client, auth, session, frozen):
    _a, ah = _tech(session, "alice", team="north")
    _b, bh = _tech(session, "bob", team="north")
    _c, ch = _tech(session, "carol", team="south")
    mine = _create(client, auth).json()["id"]
    team = _create(client, auth).json()["id"]
    other = _create(client, auth).json()["id"]
    _to_dispatched(client, auth, mine, "alice")
    noc = auth("noc")
    _act(client, noc, team, "acknowledge")
    _act(client, noc, team, "diagnose", diagnosis="d", fault_category="f")
    assert _act(client, noc, team, "dispatch", team="north").json()["team"] == "north"
    _to_dispatched(client, auth, other, "carol")
    ids = lambda h: sorted(t["id"] for t in client.get("/api/v1/me/tickets", headers=h).json()["items"])  # noqa: E731
    assert ids(ah) == sorted([mine, team]) and ids(bh) == sorted([mine, team]) and ids(ch) == [other]
    assert sorted(t["id"] for t in client.get("/api/v1/tickets", headers=ch).json()["items"]) == [other]
    r = client.get(f"/api/v1/tickets/{other}", headers=ah)
    assert (r.status_code, r.json()["detail"]) == (404, f"ticket {other} not found")
    assert client.get(f"/api/v1/tickets/{other}/timeline", headers=ah).status_code == 404
    r = client.post(f"/api/v1/me/tickets/{other}/accept", headers=ah)
    assert r.status_code == 404 and session.get(Ticket, other).state == "dispatched"
    # a team ticket becomes the accepting member's
    r = client.post(f"/api/v1/me/tickets/{team}/accept", headers=bh)
    assert (r.status_code, r.json()["assignee"]) == (200, "bob")
    # NOC roles act on any ticket; a technician on a ticket in the wrong state gets the allowed list
    r = client.post(f"/api/v1/me/tickets/{mine}/resolve", headers=ah,
                    json={"cause_category": "power", "action_taken": "x"})  # fmt: skip
    assert r.status_code == 409 and r.json()["allowed_actions"] == ["accept"]


def test_stale_version_is_409_and_etag_round_trip(client, auth, session, frozen):
    tid = _create(client, auth).json()["id"]
    r = client.get(f"/api/v1/tickets/{tid}", headers=auth("noc"))
    etag = r.headers["ETag"]
    ok = client.post(f"/api/v1/tickets/{tid}/transitions", json={"action": "acknowledge"},
                     headers={**auth("noc"), "If-Match": etag})  # fmt: skip
    assert ok.status_code == 200 and ok.headers["ETag"] == '"2"'
    stale = client.post(f"/api/v1/tickets/{tid}/transitions", json={"action": "cancel", "reason": "dup"},
                        headers={**auth("noc"), "If-Match": etag})  # fmt: skip
    assert stale.status_code == 409
    assert stale.json()["detail"] == f"ticket {tid} is at version 2, not 1; reload it and retry"
    r = _act(client, auth("noc"), tid, "cancel", reason="dup", version=1)
    assert r.status_code == 409
    r = client.post(f"/api/v1/tickets/{tid}/transitions", json={"action": "cancel", "reason": "dup"},
                    headers={**auth("noc"), "If-Match": "banana"})  # fmt: skip
    assert (r.status_code, r.json()["field"]) == (422, "If-Match")
    # a Unicode digit passes str.isdigit but not int(): a 422 naming the header, not a 500
    r = client.post(f"/api/v1/tickets/{tid}/transitions", json={"action": "cancel", "reason": "dup"},
                    headers={**auth("noc"), "If-Match": '"\u00b2"'.encode()})  # fmt: skip
    assert (r.status_code, r.json()["field"]) == (422, "If-Match")
    session.expire_all()
    assert session.get(Ticket, tid).state == "acknowledged"


def test_idempotency_key_retries_have_one_effect(client, auth, session, frozen):
    noc = {**auth("noc"), "Idempotency-Key": "create-1"}
    first = client.post("/api/v1/tickets", json={"title": "once"}, headers=noc)
    assert first.status_code == 201
    for _ in range(99):
        again = client.post("/api/v1/tickets", json={"title": "once"}, headers=noc)
        assert (again.status_code, again.json()) == (201, first.json())
        assert again.headers["Idempotent-Replayed"] == "true"
    assert _count(session, Ticket, Ticket.title == "once") == 1
    r = client.post("/api/v1/tickets", json={"title": "twice"}, headers=noc)
    assert r.status_code == 422
    assert r.json()["detail"] == "Idempotency-Key: this key was used with a different request; use a new key"
    assert _count(session, Ticket, Ticket.title == "twice") == 0
    tid = first.json()["id"]
    note = {**auth("noc"), "Idempotency-Key": "note-1"}
    for _ in range(5):
        assert client.post(f"/api/v1/tickets/{tid}/notes", json={"text": "called"}, headers=note).status_code == 201
    assert _count(session, TicketEvent, TicketEvent.ticket_id == tid, TicketEvent.action == "note") == 1
    # a failed POST stores nothing: the retry runs again (and fails the same way)
    bad = {**auth("noc"), "Idempotency-Key": "bad-1"}
    for _ in range(2):
        assert _act(client, bad, tid, "resolve").status_code == 409
    assert _count(session, IdempotencyKey, IdempotencyKey.key == "bad-1") == 0


def test_technician_profiles(client, auth, session, frozen):
    from .conftest import make_user

    make_user(session, "tech-p", "technician")
    make_user(session, "notatech", "viewer")
    session.commit()
    r = client.put("/api/v1/technicians/tech-p", json={"skills": ["fiber"], "sites": ["pop-1"], "tier": 2},
                   headers=auth("noc"))  # fmt: skip
    assert r.json() == {"username": "tech-p", "skills": ["fiber"], "sites": ["pop-1"], "team": "", "tier": 2,
                        "on_shift": True, "load": 0, "notify_to": ""}  # fmt: skip
    r = client.put("/api/v1/technicians/notatech", json={}, headers=auth("noc"))
    assert (r.status_code, r.json()["detail"]) == (422, "user: 'notatech' has role 'viewer'; expected technician")
    assert client.put("/api/v1/technicians/nobody", json={}, headers=auth("noc")).status_code == 404
    assert [t["username"] for t in client.get("/api/v1/technicians", headers=auth("noc")).json()] == ["tech-p"]


def test_metrics_after_commit(client, auth, session, frozen, sessions):
    metrics.OPEN.sessions = sessions
    try:
        tid = _create(client, auth, severity="critical").json()["id"]
        frozen.advance(120)
        _act(client, auth("noc"), tid, "acknowledge")
        text = client.get("/metrics").text
    finally:
        metrics.OPEN.sessions = None
    fams = {f.name: f for f in text_string_to_metric_families(text)}
    opened = {(s.labels["state"], s.labels["priority"]): s.value for s in fams["faultloop_tickets_open"].samples}
    assert opened.get(("acknowledged", "P2")) == 1
    ack = [s for s in fams["faultloop_ticket_time_to_acknowledge_seconds"].samples
           if s.name.endswith("_count") and s.labels["priority"] == "P2"]  # fmt: skip
    assert ack and ack[0].value >= 1
    assert fams["faultloop_ticket_sla_breaches"].type == "counter"
