"""The ticket board and the ticket page: columns, filters, role rules, NOC actions through the
forms (the state table decides), 409s for illegal and stale actions, 422 naming the field,
CSRF, and hostile strings rendered inert."""

from __future__ import annotations

from datetime import UTC, datetime
from html.parser import HTMLParser
from typing import Any

import pytest
from sqlalchemy import func, select

from alarms import queries as alarm_queries
from faultloop import clock
from tests.ticketing.conftest import make_device, make_technician
from ticketing import service
from ticketing.models import Ticket, TicketEvent
from ticketing.policy import load_policy

HX = {"HX-Request": "true"}
XSS = '<script>alert("x")</script><img src=x onerror=alert(1)>'
NOC = service.Actor("noc-setup", "noc")


# ---- a small DOM for asserting on rendered pages -------------------------------------------------


class Node:
    def __init__(self, tag: str, attrs: dict[str, str], parent: Node | None) -> None:
        self.tag, self.attrs, self.parent = tag, attrs, parent
        self.children: list[Node] = []
        self.content: list[str | Node] = []  # text and elements in document order

    @property
    def text(self) -> str:
        return " ".join(" ".join(c if isinstance(c, str) else c.text for c in self.content).split())

    def all(self, testid: str | None = None, tag: str | None = None, **attrs: str) -> list[Node]:
        found = []
        for child in self.children:
            wanted = {"data-testid": testid, **{k.replace("_", "-"): v for k, v in attrs.items()}}
            if (tag is None or child.tag == tag) and all(
                v is None or child.attrs.get(k) == v for k, v in wanted.items()
            ):
                found.append(child)
            found.extend(child.all(testid, tag, **attrs))
        return found

    def one(self, testid: str | None = None, tag: str | None = None, **attrs: str) -> Node:
        found = self.all(testid, tag, **attrs)
        assert len(found) == 1, f"expected one {testid or tag} {attrs}, found {len(found)}"
        return found[0]


VOID = {"input", "br", "img", "meta", "link", "hr", "source", "col", "area", "base", "wbr"}


class _Builder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = self.cur = Node("root", {}, None)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k: v or "" for k, v in attrs}, self.cur)
        self.cur.children.append(node)
        self.cur.content.append(node)
        if tag not in VOID:
            self.cur = node

    def handle_endtag(self, tag: str) -> None:
        node: Node | None = self.cur
        while node is not None and node.tag != tag:
            node = node.parent
        if node is not None and node.parent is not None:
            self.cur = node.parent

    def handle_data(self, data: str) -> None:
        self.cur.content.append(data)


def dom(html: str) -> Node:
    builder = _Builder()
    builder.feed(html)
    return builder.root


# ---- fixtures and helpers ------------------------------------------------------------------------


@pytest.fixture
def frozen():
    c = clock.FrozenClock(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))  # a Monday, in business hours
    with clock.use(c):
        yield c


@pytest.fixture
def policy():
    return load_policy()


def new_ticket(session, policy, title="fiber cut pop-1", **kw: Any) -> Ticket:
    ticket = service.create_manual(session, policy=policy, actor=NOC, title=title, now=clock.now(), **kw)
    session.commit()
    return ticket


def move(session, policy, ticket: Ticket, *steps: tuple[str, dict[str, Any]], actor=NOC) -> Ticket:
    for action, data in steps:
        service.transition(session, policy=policy, ticket_id=ticket.id, action=action, actor=actor, data=data,
                           now=clock.now())  # fmt: skip
    session.commit()
    return ticket


ACK = ("acknowledge", {})
DIAG = ("diagnose", {"diagnosis": "LOS on uplink", "fault_category": "transmission"})


def dispatch_to(name: str) -> tuple[str, dict[str, Any]]:
    return ("dispatch", {"technician": name})


def events(session, tid: int) -> int:
    return session.scalar(select(func.count()).select_from(TicketEvent).where(TicketEvent.ticket_id == tid))


def fresh(session, tid: int) -> Ticket:
    session.expire_all()
    ticket = session.get(Ticket, tid)
    assert ticket is not None
    return ticket


def cards_by_column(html: str) -> dict[str, list[int]]:
    board = dom(html).one("ticket-board")
    return {
        col.attrs["data-state"]: [int(c.attrs["data-ticket-id"]) for c in col.all("ticket-card")]
        for col in board.all("ticket-column")
    }


# ---- the board -----------------------------------------------------------------------------------


def test_board_has_a_column_per_state_and_cards_in_the_right_one(web, session, frozen, policy):
    make_device(session, "acc1", site="pop-1", role="core")
    make_technician(session, "tina", team="north")
    session.commit()
    a = new_ticket(session, policy, "loss of signal", device="acc1", severity="critical")
    b = move(session, policy, new_ticket(session, policy, "power alarm"), ACK)
    c = move(session, policy, new_ticket(session, policy, "fan failure"), ACK, DIAG, dispatch_to("tina"))
    d = move(session, policy, new_ticket(session, policy, "old one"), ("cancel", {"reason": "duplicate"}))
    r = web("noc").get("/ui/tickets")
    assert r.status_code == 200, r.text
    columns = cards_by_column(r.text)
    assert list(columns) == ["new", "acknowledged", "diagnosed", "dispatched", "accepted", "en_route", "on_site",
                             "waiting", "resolved", "verified"]  # fmt: skip
    assert columns["new"] == [a.id] and columns["acknowledged"] == [b.id] and columns["dispatched"] == [c.id]
    assert d.id not in [t for ids in columns.values() for t in ids]
    page = dom(r.text)
    done = page.one("ticket-done")
    assert "old one" in done.text and "Closed and cancelled (1)" in done.text
    card = page.one("ticket-card", data_ticket_id=str(a.id))
    assert "P1" in card.text and "loss of signal" in card.text and "pop-1 · acc1" in card.text
    assert "unassigned" in card.one("assignee").text
    assert page.one("ticket-card", data_ticket_id=str(c.id)).one("assignee").text == "tina"
    # SLA timers for app.js: P1 response 900 s, restore 4 h, counted from now (the clock is frozen)
    deadlines = [s.attrs["data-deadline"] for s in card.all(tag="span") if "data-deadline" in s.attrs]
    assert deadlines == ["2026-03-02T09:15:00+00:00", "2026-03-02T13:00:00+00:00"]
    # the operator's controls come from the state table: new -> acknowledge (cancel is on the ticket page)
    assert [b.attrs["value"] for b in card.all(tag="button")] == ["acknowledge"]
    dispatched = page.one("ticket-card", data_ticket_id=str(c.id))
    assert [b.attrs["value"] for b in dispatched.all(tag="button")] == ["reassign", "escalate", "accept"]
    assert dispatched.one(tag="input", name="version").attrs["value"] == str(c.version)


def test_sla_warning_and_breach_styling(web, session, frozen, policy):
    t = new_ticket(session, policy, "slow one", priority="P1")  # response 900 s
    frozen.advance(800)  # 89 %: warning
    card = dom(web("noc").get("/ui/tickets").text).one("ticket-card", data_ticket_id=str(t.id))
    response = card.one("sla-response")
    assert "sla-warn" in response.attrs["class"]
    frozen.advance(200)  # past the target
    card = dom(web("noc", "noc2").get("/ui/tickets").text).one("ticket-card", data_ticket_id=str(t.id))
    response = card.one("sla-response")
    assert "sla-breach" in response.attrs["class"] and "overdue 1m 40s" in response.text


def test_business_hours_deadline_skips_the_night(web, session, frozen, policy):
    frozen.advance(8 * 3600 + 1800)  # Monday 17:30 UTC; P3 counts business hours (08:00-18:00)
    t = new_ticket(session, policy, "minor thing", priority="P3")  # response target 1 h
    card = dom(web("viewer").get("/ui/tickets").text).one("ticket-card", data_ticket_id=str(t.id))
    deadline = card.one("sla-response").all(tag="span")[0].attrs["data-deadline"]
    assert deadline == "2026-03-03T08:30:00+00:00"  # 30 min today, 30 min tomorrow morning
    assert card.one("sla-response").text == "response 15h 00m"  # the wall time app.js counts down


def test_board_filters_by_priority_site_and_assignee(web, session, frozen, policy):
    make_technician(session, "tina")
    make_technician(session, "ted")
    make_device(session, "acc1", site="pop-1")
    make_device(session, "acc2", site="pop-2")
    session.commit()
    p1 = new_ticket(session, policy, "one", device="acc1", priority="P1")
    p3 = new_ticket(session, policy, "three", device="acc2", priority="P3")
    tina = move(session, policy, new_ticket(session, policy, "tina's", priority="P2"), ACK, DIAG, dispatch_to("tina"))
    ted = move(session, policy, new_ticket(session, policy, "ted's", priority="P2"), ACK, DIAG, dispatch_to("ted"))
    client = web("noc")

    def shown(query: str) -> set[int]:
        r = client.get(f"/ui/tickets?{query}")
        assert r.status_code == 200, r.text
        return {t for ids in cards_by_column(r.text).values() for t in ids}

    assert shown("") == {p1.id, p3.id, tina.id, ted.id}
    assert shown("priority=P1") == {p1.id}
    assert shown("site=pop-2") == {p3.id}
    assert shown("assignee=tina") == {tina.id}
    assert shown("assignee=-") == {p1.id, p3.id}
    assert shown("priority=P2&assignee=ted") == {ted.id}
    # the htmx filter form asks for the board fragment only, which remembers its filter for reloads
    r = client.get("/ui/tickets?priority=P3", headers={**HX, "HX-Target": "board"})
    assert r.text.lstrip().startswith('<div id="board"') and "<html" not in r.text
    assert dom(r.text).one("ticket-board").attrs["hx-get"] == "/ui/tickets?priority=P3"
    assert r.headers["HX-Push-Url"] == "/ui/tickets?priority=P3"
    r = client.get("/ui/tickets?priority=P9")
    assert r.status_code == 422 and "priority" in r.text
    r = client.get("/ui/tickets?assignee=nobody")
    assert r.status_code == 422 and "assignee: no user named" in r.text


def test_board_columns_stay_capped_and_counted(web, session, frozen, policy, monkeypatch):
    from api.web import tickets as pages

    monkeypatch.setattr(pages, "CARDS_PER_COLUMN", 3)
    made = [new_ticket(session, policy, f"t{i}", priority="P4" if i % 2 else "P2") for i in range(7)]
    page = dom(web("noc").get("/ui/tickets").text)
    column = page.one("ticket-column", data_state="new")
    shown = [int(c.attrs["data-ticket-id"]) for c in column.all("ticket-card")]
    p2 = [t.id for t in made if t.priority == "P2"]
    assert shown == p2[:3]  # most urgent first: priority, then oldest
    assert column.one("column-count").text == "7" and "4 more" in column.text


def test_board_roles(web, session, frozen, policy):
    t = new_ticket(session, policy)
    viewer = web("viewer")
    r = viewer.get("/ui/tickets")
    assert r.status_code == 200
    card = dom(r.text).one("ticket-card", data_ticket_id=str(t.id))
    assert card.all(tag="button") == [] and card.all(tag="form") == []
    r = viewer.get(f"/ui/tickets/{t.id}")
    assert r.status_code == 200 and dom(r.text).one("ticket-actions").all(tag="form") == []
    assert dom(r.text).all("note-form") == []
    for path, data in ((f"/ui/tickets/{t.id}/transitions", {"action": "acknowledge", "version": "1"}),
                       (f"/ui/tickets/{t.id}/notes", {"text": "hi"})):  # fmt: skip
        r = viewer.post(path, data=data, headers=HX)
        assert r.status_code == 403 and r.headers["HX-Retarget"] == "#flash"
    tech = web("technician")
    assert tech.get("/ui/tickets").status_code == 403
    assert (
        tech.post(f"/ui/tickets/{t.id}/transitions", data={"action": "acknowledge", "version": "1"}).status_code == 403
    )
    assert web("provisioner").get("/ui/tickets").status_code == 403
    assert fresh(session, t.id).state == "new" and events(session, t.id) == 1


# ---- the ticket page -----------------------------------------------------------------------------


def test_ticket_page_shows_details_alarms_timeline_and_allowed_actions(web, session, frozen, policy):
    from tests.ticketing.conftest import make_alarm

    make_device(session, "acc1", site="pop-1")
    alarm = make_alarm(session, device="acc1", severity="critical")
    session.commit()
    record = alarm_queries.alarm(session, alarm.id)
    ticket = service.open_for_alarm(session, policy=policy, alarm=record, now=clock.now())
    session.commit()
    assert ticket is not None
    service.add_note(session, ticket_id=ticket.id, actor=NOC, text="called the landlord", expected_version=None,
                     now=clock.now())  # fmt: skip
    session.commit()
    r = web("noc").get(f"/ui/tickets/{ticket.id}")
    assert r.status_code == 200, r.text
    page = dom(r.text)
    assert page.one("ticket-title").text == ticket.title and page.one("ticket-state").text == "new"
    linked = page.one("linked-alarm")
    assert linked.attrs["data-alarm-id"] == str(alarm.id) and "link down" in linked.text and "root" in linked.text
    assert [n.text.split("noted:")[1].strip() for n in page.all("ticket-note")] == ["called the landlord"]
    assert [e.attrs["data-action"] for e in page.all("timeline-entry")] == ["alarm_attached", "create"]
    assert [f.attrs["data-action"] for f in page.all("action-form")] == ["acknowledge", "cancel"]
    assert page.one("ticket-sla").all("sla-response")
    detail = page.one("ticket-detail")
    assert detail.attrs["hx-trigger"] == "ticket-changed from:body, refresh" and detail.attrs["data-refresh-s"] == "30"
    r = web("noc", "noc2").get(f"/ui/tickets/{ticket.id}", headers={**HX, "HX-Target": "ticket-detail"})
    assert r.text.lstrip().startswith('<div id="ticket-detail"')
    assert web("noc", "noc3").get("/ui/tickets/999999").status_code == 404


def test_noc_walks_a_ticket_through_the_forms(web, session, frozen, policy):
    make_technician(session, "tina", team="north")
    session.commit()
    t = new_ticket(session, policy)
    noc = web("noc")

    def act(action: str, **fields: str):
        data = {"action": action, "version": str(fresh(session, t.id).version), **fields}
        r = noc.post(f"/ui/tickets/{t.id}/transitions", data=data, headers=HX)
        assert r.status_code == 204, r.text
        assert r.headers["HX-Trigger"] == "ticket-changed"
        return fresh(session, t.id)

    assert act("acknowledge").state == "acknowledged"
    got = act("diagnose", diagnosis="LOS", fault_category="transmission", required_skill="")
    assert (got.state, got.fault_category) == ("diagnosed", "transmission")
    got = act("dispatch", technician="tina", team="")
    assert got.state == "dispatched" and got.team == "north"
    got = act("reassign", technician="", team="south")
    assert (got.state, got.assignee_id, got.team) == ("dispatched", None, "south")
    got = act("accept")
    got = act("on_site", location_note="cabinet 4")
    assert (got.state, got.location_note) == ("on_site", "cabinet 4")
    got = act("resolve", cause_category="power", action_taken="replaced PSU", parts_used="PSU-100\nfuse, 5A")
    assert got.state == "resolved" and got.parts_used == ["PSU-100", "fuse", "5A"]
    got = act("verify", how="customer confirmed")
    got = act("close", rating="4")
    assert (got.state, got.rating) == ("closed", 4)
    page = dom(noc.get(f"/ui/tickets/{t.id}").text)
    assert [f.attrs["data-action"] for f in page.all("action-form")] == ["reopen"]
    # a board click without the JS: a plain form post lands on the ticket page
    r = noc.post(f"/ui/tickets/{t.id}/transitions", data={"action": "reopen", "version": str(got.version),
                                                          "reason": "came back"}, follow_redirects=False)  # fmt: skip
    assert r.status_code == 303 and r.headers["location"] == f"/ui/tickets/{t.id}"
    assert fresh(session, t.id).state == "acknowledged"


def test_illegal_transition_is_409_listing_the_allowed_actions(web, session, frozen, policy):
    t = new_ticket(session, policy)
    r = web("noc").post(f"/ui/tickets/{t.id}/transitions",
                        data={"action": "resolve", "version": "1", "cause_category": "power", "action_taken": "x"},
                        headers=HX)  # fmt: skip
    assert r.status_code == 409 and r.headers["HX-Retarget"] == "#flash"
    flash = dom(r.text).one("flash")
    assert "cannot resolve a ticket in state 'new'; allowed: acknowledge, cancel" in flash.text
    assert fresh(session, t.id).state == "new" and events(session, t.id) == 1


def test_stale_version_is_409_and_changes_nothing(web, session, frozen, policy):
    t = new_ticket(session, policy)
    noc = web("noc")
    r = noc.post(f"/ui/tickets/{t.id}/transitions", data={"action": "acknowledge", "version": "1"}, headers=HX)
    assert r.status_code == 204
    # a second operator still has the card of version 1 on screen
    r = web("noc", "noc2").post(f"/ui/tickets/{t.id}/transitions", data={"action": "cancel", "version": "1",
                                                                           "reason": "dup"}, headers=HX)  # fmt: skip
    assert r.status_code == 409
    assert "is at version 2, not 1; reload it and retry" in dom(r.text).one("flash").text
    assert fresh(session, t.id).state == "acknowledged" and events(session, t.id) == 2


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"action": "acknowledge"}, "version", "version: required"),
        ({"action": "acknowledge", "version": "two"}, "version", "version: Input should be a valid integer"),
        ({"version": "1"}, "action", "action: Field required"),
        ({"action": "teleport", "version": "1"}, "action", "action: expected one of acknowledge"),
        ({"action": "cancel", "version": "1"}, "reason", "reason: required for this action"),
        ({"action": "cancel", "version": "1", "reason": "x" * 501}, "reason", "reason: String should have at most"),
        ({"action": "en_route", "version": "1", "eta_minutes": "soon"}, "eta_minutes", "eta_minutes: expected whole"),
        ({"action": "en_route", "version": "1", "eta": "2026-03-02T10:00:00"}, "eta", "eta: expected a timezone"),
    ],
)
def test_bad_form_input_is_422_naming_the_field_and_changes_nothing(web, session, frozen, policy, data, field,
                                                                     message):  # fmt: skip
    t = new_ticket(session, policy)
    r = web("noc").post(f"/ui/tickets/{t.id}/transitions", data=data, headers=HX)
    assert r.status_code == 422, r.text
    assert message in dom(r.text).one("flash").text and field in message
    assert fresh(session, t.id).version == 1 and events(session, t.id) == 1


def test_diagnose_and_close_need_their_fields(web, session, frozen, policy):
    t = move(session, policy, new_ticket(session, policy), ACK)
    noc = web("noc")
    r = noc.post(f"/ui/tickets/{t.id}/transitions", data={"action": "diagnose", "version": "2", "diagnosis": " "},
                 headers=HX)  # fmt: skip
    assert r.status_code == 422 and "diagnosis: required for this action" in r.text
    r = noc.post(f"/ui/tickets/{t.id}/transitions",
                 data={"action": "dispatch", "version": "2", "technician": "ghost"}, headers=HX)  # fmt: skip
    assert r.status_code == 409  # dispatch is not allowed before diagnose
    assert fresh(session, t.id).state == "acknowledged" and events(session, t.id) == 2


def test_missing_csrf_is_403_and_changes_nothing(web, session, frozen, policy):
    t = new_ticket(session, policy)
    noc = web("noc")
    del noc.headers["X-CSRF-Token"]
    r = noc.post(f"/ui/tickets/{t.id}/transitions", data={"action": "acknowledge", "version": "1"}, headers=HX)
    assert r.status_code == 403 and "CSRF" in r.text
    r = noc.post(f"/ui/tickets/{t.id}/notes", data={"text": "hello"}, headers={**HX, "X-CSRF-Token": "0" * 64})
    assert r.status_code == 403
    assert fresh(session, t.id).state == "new" and events(session, t.id) == 1


def test_notes_from_the_noc_and_their_errors(web, session, frozen, policy):
    t = new_ticket(session, policy)
    noc = web("noc")
    r = noc.post(f"/ui/tickets/{t.id}/notes", data={"text": "  waiting for the landlord  "}, headers=HX)
    assert r.status_code == 204 and r.headers["HX-Trigger"] == "ticket-changed"
    r = noc.post(f"/ui/tickets/{t.id}/notes", data={"text": "   "}, headers=HX)
    assert r.status_code == 422 and "text: required" in r.text
    r = noc.post(f"/ui/tickets/{t.id}/notes", data={"text": "x" * 4001}, headers=HX)
    assert r.status_code == 422 and "text: expected at most 4000" in r.text
    r = noc.post(f"/ui/tickets/{t.id}/notes", data={"text": "late", "version": "7"}, headers=HX)
    assert r.status_code == 409
    assert web("noc", "noc2").post("/ui/tickets/999999/notes", data={"text": "x"}, headers=HX).status_code == 404
    notes = [n.text for n in dom(noc.get(f"/ui/tickets/{t.id}").text).all("ticket-note")]
    assert len(notes) == 1 and notes[0].endswith("noted: waiting for the landlord")
    assert events(session, t.id) == 2


def test_hostile_strings_render_inert(web, session, frozen, policy):
    make_device(session, XSS[:200], site="pop<b>1</b>")
    session.commit()
    t = new_ticket(session, policy, title=XSS, description=XSS, device=XSS[:200])
    service.add_note(session, ticket_id=t.id, actor=NOC, text=XSS, expected_version=None, now=clock.now())
    session.commit()
    noc = web("noc")
    for html in (noc.get("/ui/tickets").text, noc.get(f"/ui/tickets/{t.id}").text):
        assert "<script>alert" not in html and "<img src=x" not in html and "<b>1</b>" not in html
        assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html
    page = dom(noc.get(f"/ui/tickets/{t.id}").text)
    assert page.one("ticket-title").text == XSS and XSS in page.one("ticket-note").text
    assert page.all(tag="script", src=None) and all("src" in s.attrs for s in page.all(tag="script"))
    assert page.all(tag="img") == []


def test_board_queries_do_not_grow_with_the_tickets(web, session, frozen, policy, db_engine):
    """No query per card: the board costs the same number of statements for 3 tickets and for 30."""
    from sqlalchemy import event

    for name in ("tina", "ted", "tom"):
        make_technician(session, name)
    session.commit()
    noc = web("noc")

    def statements() -> int:
        seen: list[str] = []

        def count(conn, cursor, statement, *args):
            seen.append(statement)

        event.listen(db_engine, "before_cursor_execute", count)
        try:
            assert noc.get("/ui/tickets").status_code == 200
        finally:
            event.remove(db_engine, "before_cursor_execute", count)
        return len(seen)

    def add(n: int) -> None:
        for i in range(n):
            t = new_ticket(session, policy, f"t{i}", priority=f"P{i % 4 + 1}")
            if i % 3:
                move(session, policy, t, ACK, DIAG, dispatch_to(("tina", "ted", "tom")[i % 3]))

    add(3)
    few = statements()
    assert 5 <= few <= 20  # session, user, counts, cards, usernames, closed, sites, technicians, loads
    add(27)
    assert statements() == few
