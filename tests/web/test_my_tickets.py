"""The technician's phone view: only their own and their team's tickets, the accept -> en route ->
on site -> resolve flow through the UI routes, the same visibility and errors as the JSON API."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from faultloop import clock
from ticketing import dispatch, service
from ticketing.models import TicketEvent
from ticketing.policy import load_policy

from .test_tickets import ACK, DIAG, HX, XSS, dom, events, fresh, move, new_ticket


@pytest.fixture
def frozen():
    c = clock.FrozenClock(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
    with clock.use(c):
        yield c


@pytest.fixture
def policy():
    return load_policy()


@pytest.fixture
def tech(web, session):
    """tech(name, team) -> a logged-in technician client with a technician profile."""

    def make(name: str = "tina", team: str = "north"):
        client = web("technician", name)
        dispatch.upsert_profile(session, username=name, skills=[], sites=["*"], team=team)
        session.commit()
        return client

    return make


def cards(client) -> dict[int, object]:
    r = client.get("/ui/my/tickets")
    assert r.status_code == 200, r.text
    return {int(c.attrs["data-ticket-id"]): c for c in dom(r.text).all("my-ticket")}


def buttons(card) -> list[str]:
    return [b.attrs["data-testid"] for b in card.all(tag="button") if b.attrs.get("data-testid") != "add-note"]


def test_the_whole_technician_flow_through_the_ui(tech, web, session, frozen, policy):
    tina = tech("tina")
    t = move(session, policy, new_ticket(session, policy, "fiber cut at splice 7", site="pop-1"), ACK, DIAG,
             ("dispatch", {"technician": "tina"}))  # fmt: skip
    mine = cards(tina)
    assert list(mine) == [t.id]
    card = mine[t.id]
    assert card.attrs["data-state"] == "dispatched" and buttons(card) == ["accept"]
    assert "fiber cut at splice 7" in card.text and "assigned to you" in card.text
    assert [s.attrs["data-deadline"] for s in card.all(tag="span") if "data-deadline" in s.attrs]

    def post(path: str, **data: str):
        version = str(fresh(session, t.id).version)
        r = tina.post(f"/ui/my/tickets/{t.id}/{path}", data={"version": version, **data}, headers=HX)
        assert r.status_code == 204, r.text
        assert r.headers["HX-Trigger"] == "ticket-changed"
        return fresh(session, t.id)

    assert post("accept").state == "accepted"
    assert buttons(cards(tina)[t.id]) == ["en-route", "on-site"]
    got = post("status", status="en_route", eta_minutes="45", location_note="north cabinet")
    assert got.state == "en_route" and got.location_note == "north cabinet"
    assert got.eta == datetime(2026, 3, 2, 9, 45, tzinfo=UTC)
    card = cards(tina)[t.id]
    assert "ETA 2026-03-02 09:45:00 UTC · north cabinet" in card.text and buttons(card) == ["on-site", "update"]
    frozen.advance(1800)
    assert post("status", status="on_site").state == "on_site"
    assert buttons(cards(tina)[t.id]) == ["resolve", "update", "wait"]
    r = tina.post(f"/ui/tickets/{t.id}/notes", data={"text": "rodent damage"}, headers=HX)
    assert r.status_code == 204
    got = post("resolve", cause_category="fiber_cut", action_taken="re-spliced 4 fibres",
               parts_used="splice tray\nsleeve", notes="ok now")  # fmt: skip
    assert (got.state, got.cause_category, got.parts_used, got.resolution_notes) == (
        "resolved", "fiber_cut", ["splice tray", "sleeve"], "ok now")  # fmt: skip
    card = cards(tina)[t.id]
    assert card.attrs["data-state"] == "resolved" and buttons(card) == []
    actors = [(e.actor, e.action) for e in service.timeline(session, t.id) if e.actor == "tina"]
    assert actors == [("tina", "accept"), ("tina", "en_route"), ("tina", "on_site"), ("tina", "note"),
                      ("tina", "resolve")]  # fmt: skip
    # the ticket page shows the technician the note form but no NOC actions
    page = dom(tina.get(f"/ui/tickets/{t.id}").text)
    assert page.all("note-form") and page.one("ticket-actions").all(tag="form") == []


def test_wait_and_resume_pause_the_sla(tech, session, frozen, policy):
    tina = tech("tina")
    t = move(session, policy, new_ticket(session, policy), ACK, DIAG, ("dispatch", {"technician": "tina"}))
    actor = service.Actor("tina", "technician", fresh(session, t.id).assignee_id)
    move(session, policy, t, ("accept", {}), ("on_site", {}), actor=actor)
    data = {"version": str(fresh(session, t.id).version), "status": "wait", "reason": "no spare"}
    r = tina.post(f"/ui/my/tickets/{t.id}/status", data=data, headers=HX)
    assert r.status_code == 204 and fresh(session, t.id).state == "waiting"
    card = cards(tina)[t.id]
    assert "paused" in card.one("sla-restore").text and not card.one("sla-restore").all(tag="span")[0].attrs.get(
        "data-deadline"
    )
    assert buttons(card) == ["resume"]


def test_technicians_see_only_their_own_and_their_teams_tickets(tech, session, frozen, policy):
    tina = tech("tina", team="north")
    tech("tom", team="north")
    tech("ted", team="south")
    to_tina = move(
        session, policy, new_ticket(session, policy, "tina's"), ACK, DIAG, ("dispatch", {"technician": "tina"})
    )
    to_team = move(
        session, policy, new_ticket(session, policy, "north team"), ACK, DIAG, ("dispatch", {"team": "north"})
    )
    to_ted = move(session, policy, new_ticket(session, policy, "ted's"), ACK, DIAG, ("dispatch", {"technician": "ted"}))
    unassigned = new_ticket(session, policy, "nobody's")
    mine = cards(tina)
    assert set(mine) == {to_tina.id, to_team.id}
    assert "unclaimed · team north" in mine[to_team.id].text
    # accepting a team ticket makes it hers
    r = tina.post(f"/ui/my/tickets/{to_team.id}/accept", data={"version": str(to_team.version)}, headers=HX)
    assert r.status_code == 204
    assert fresh(session, to_team.id).assignee_id == fresh(session, to_tina.id).assignee_id
    # others' tickets answer as if they did not exist, as the JSON API does
    for other in (to_ted, unassigned):
        before = events(session, other.id)
        assert tina.get(f"/ui/tickets/{other.id}").status_code == 404
        r = tina.post(f"/ui/my/tickets/{other.id}/accept", data={"version": str(other.version)}, headers=HX)
        assert r.status_code == 404 and r.headers["HX-Retarget"] == "#flash"
        r = tina.post(f"/ui/tickets/{other.id}/notes", data={"text": "peek"}, headers=HX)
        assert r.status_code == 404
        r = tina.post(f"/ui/my/tickets/{other.id}/status", data={"version": "5", "status": "on_site"}, headers=HX)
        assert r.status_code == 404
        assert events(session, other.id) == before and fresh(session, other.id).version == other.version


def test_technician_route_roles(tech, web, session, frozen, policy):
    t = move(session, policy, new_ticket(session, policy), ACK, DIAG)
    tech("tina")
    noc = web("noc")
    assert noc.get("/ui/my/tickets").status_code == 403
    r = noc.post(f"/ui/my/tickets/{t.id}/accept", data={"version": "3"}, headers=HX)
    assert r.status_code == 403
    assert web("viewer").post(f"/ui/my/tickets/{t.id}/resolve", data={"version": "3"}).status_code == 403
    assert events(session, t.id) == 3


def test_technician_errors_name_the_field_and_change_nothing(tech, session, frozen, policy):
    tina = tech("tina")
    t = move(session, policy, new_ticket(session, policy), ACK, DIAG, ("dispatch", {"technician": "tina"}))
    v = str(t.version)
    cases = [
        ("accept", {}, 422, "version: required"),
        ("status", {"version": v, "status": "fly"}, 422, "status: Input should be"),
        ("status", {"version": v}, 422, "status: Field required"),
        ("status", {"version": v, "status": "en_route", "eta_minutes": "0"}, 422, "eta_minutes: expected whole"),
        ("resolve", {"version": v, "action_taken": "x"}, 422, "cause_category: Field required"),
        ("resolve", {"version": v, "cause_category": "alien", "action_taken": "x"}, 409, "cannot resolve"),
        ("status", {"version": v, "status": "on_site"}, 409, "allowed: accept"),
        ("accept", {"version": str(t.version - 1)}, 409, f"is at version {t.version}, not {t.version - 1}"),
    ]
    for path, data, status, message in cases:
        r = tina.post(f"/ui/my/tickets/{t.id}/{path}", data=data, headers=HX)
        assert r.status_code == status, (path, data, r.text)
        assert message in dom(r.text).one("flash").text, (path, data, r.text)
    assert fresh(session, t.id).state == "dispatched" and fresh(session, t.id).version == t.version
    # a known cause is checked by the service once the state allows resolving
    actor = service.Actor("tina", "technician", fresh(session, t.id).assignee_id)
    move(session, policy, t, ("accept", {}), ("on_site", {}), actor=actor)
    v = str(fresh(session, t.id).version)
    r = tina.post(f"/ui/my/tickets/{t.id}/resolve", data={"version": v, "cause_category": "alien",
                                                           "action_taken": "x"}, headers=HX)  # fmt: skip
    assert r.status_code == 422 and "cause_category: expected one of fiber_cut" in r.text
    assert fresh(session, t.id).state == "on_site"
    # missing CSRF: refused before anything is read
    del tina.headers["X-CSRF-Token"]
    r = tina.post(f"/ui/my/tickets/{t.id}/resolve", data={"version": v, "cause_category": "power",
                                                           "action_taken": "x"}, headers=HX)  # fmt: skip
    assert r.status_code == 403 and fresh(session, t.id).state == "on_site"


def test_notes_are_closed_for_technicians_on_closed_tickets(tech, session, frozen, policy):
    tina = tech("tina")
    t = move(session, policy, new_ticket(session, policy), ACK, DIAG, ("dispatch", {"technician": "tina"}),
             ("cancel", {"reason": "duplicate"}))  # fmt: skip
    r = tina.post(f"/ui/tickets/{t.id}/notes", data={"text": "late"}, headers=HX)
    assert r.status_code == 409 and "notes are closed" in r.text
    assert session.query(TicketEvent).filter_by(ticket_id=t.id, action="note").count() == 0


def test_hostile_strings_in_the_phone_view_render_inert(tech, session, frozen, policy):
    tina = tech("tina", team="north")
    t = move(session, policy, new_ticket(session, policy, title=XSS, site=XSS[:100]), ACK,
             ("diagnose", {"diagnosis": XSS, "fault_category": "x"}), ("dispatch", {"technician": "tina"}))  # fmt: skip
    actor = service.Actor("tina", "technician", fresh(session, t.id).assignee_id)
    move(session, policy, t, ("accept", {}), ("en_route", {"location_note": XSS[:500]}), actor=actor)
    html = tina.get("/ui/my/tickets").text
    assert "<script>alert" not in html and "<img src=x" not in html
    card = dom(html).one("my-ticket")
    assert XSS in card.text and card.all(tag="img") == []


def test_empty_list_and_paging(tech, session, frozen, policy):
    tina = tech("tina")
    page = dom(tina.get("/ui/my/tickets").text)
    assert page.one("no-tickets") and page.all("my-ticket") == []
    for i in range(3):
        move(session, policy, new_ticket(session, policy, f"t{i}"), ACK, DIAG, ("dispatch", {"technician": "tina"}))
    r = tina.get("/ui/my/tickets?limit=2")
    assert len(dom(r.text).all("my-ticket")) == 2 and "1–2 of 3" in r.text
    r = tina.get("/ui/my/tickets?limit=2&offset=2", headers={**HX, "HX-Target": "my-tickets"})
    assert r.text.lstrip().startswith('<div id="my-tickets"') and len(dom(r.text).all("my-ticket")) == 1
