"""Tickets in chromium: the auto-opened ticket of a lab fault on the board, and a
technician working a dispatched ticket on a phone-sized screen."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .conftest import Watched, active_alarms, wait_until
from .server import Demo

TECH = "e2e.tech_01@night-shift"  # odd but allowed: letters, digits, '.', '_', '@', '-'
TECH_PASSWORD = "e2e technician password"  # noqa: S105 - test password


def test_auto_opened_ticket_is_on_the_board(open_page: Callable[..., Watched], demo: Demo) -> None:
    # The demo's policy opens a ticket for a root-cause alarm (major or worse) active for
    # open.min_active_s; the harness shortens the packaged 60 s to 2 s through
    # FAULTLOOP_TICKET_POLICY_FILE, so the wait is that plus one ticketing tick (5 s).
    demo.fault("link-down", device="core1", interface="GigabitEthernet0/6")
    try:
        alarm = wait_until(
            lambda: [a for a in active_alarms(demo, "core1", "GigabitEthernet0/6") if a["ticket_id"]],
            30,
            "a ticket opened for the core1 uplink alarm",
        )[0]
        ticket = demo.ok("GET", f"/api/v1/tickets/{alarm['ticket_id']}")
        w = open_page()
        w.goto("/ui/tickets")
        page = w.page
        card = page.locator(f'[data-testid="ticket-card"][data-ticket-id="{ticket["id"]}"]')
        card.wait_for()
        column = page.locator(f'[data-testid="ticket-column"][data-state="{ticket["state"]}"]')
        assert column.locator(f'[data-ticket-id="{ticket["id"]}"]').count() == 1
        assert ticket["title"] in card.inner_text()
        w.shot("ticket-board")
        # the ticket page shows the linked alarm
        card.get_by_role("link").first.click()
        page.wait_for_url(f"**/ui/tickets/{ticket['id']}")
        page.locator(f'[data-testid="linked-alarm"][data-alarm-id="{alarm["id"]}"]').wait_for()
        w.shot("ticket-page")
        w.assert_clean()
    finally:
        demo.fault("link-up", device="core1", interface="GigabitEthernet0/6")


def technician(demo: Demo) -> str:
    """The technician user (made once with `faultloop user add` on the demo's data dir)."""
    users = {u["username"] for u in demo.ok("GET", "/api/v1/users")}
    if TECH not in users:
        demo.user(TECH, "technician", TECH_PASSWORD)
        demo.ok(
            "PUT",
            f"/api/v1/technicians/{TECH}",
            json={"skills": ["fiber"], "sites": ["lab-south"], "team": "south", "tier": 1, "on_shift": True},
        )
    return TECH


def dispatched_ticket(demo: Demo, title: str, username: str) -> dict[str, Any]:
    ticket = demo.ok("POST", "/api/v1/tickets", json={"title": title, "device": "acc7", "site": "lab-south"})
    steps = [
        {"action": "acknowledge"},
        {"action": "diagnose", "diagnosis": "customer port dark", "fault_category": "fiber"},
        {"action": "dispatch", "technician": username},
    ]
    for step in steps:
        ticket = demo.ok("POST", f"/api/v1/tickets/{ticket['id']}/transitions", json=step)
    assert ticket["state"] == "dispatched", ticket
    return dict(ticket)


def act(w: Watched, action: Callable[[], None]) -> None:
    """One technician action; it must succeed first time (the SLA timer does not change a
    ticket's version, so a form a few seconds old is not stale)."""
    page = w.page
    with page.expect_response(lambda r: r.request.method == "POST" and "/ui/my/tickets/" in r.url) as posted:
        action()
    assert posted.value.status < 400, (posted.value.status, posted.value.url)


def test_technician_works_a_ticket_on_a_phone(open_page: Callable[..., Watched], demo: Demo) -> None:
    username = technician(demo)
    ticket = dispatched_ticket(demo, "acc7 customer port dark", username)
    w = open_page(username, TECH_PASSWORD, viewport={"width": 390, "height": 844})
    page = w.page
    w.goto("/ui/my/tickets")
    assert username in page.locator(".who .username").inner_text()
    card = page.locator(f'[data-testid="my-ticket"][data-ticket-id="{ticket["id"]}"]')
    card.wait_for()
    # nothing wider than the phone: no horizontal scrolling
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    w.shot("technician-dispatched")
    for button, state in (("accept", "accepted"), ("en-route", "en_route"), ("on-site", "on_site")):
        act(w, lambda button=button: card.get_by_test_id(button).click())
        page.locator(f'[data-testid="my-ticket"][data-ticket-id="{ticket["id"]}"][data-state="{state}"]').wait_for(
            timeout=10_000
        )
        assert demo.ok("GET", f"/api/v1/tickets/{ticket['id']}")["state"] == state
    w.shot("technician-on-site")

    def resolve() -> None:
        form = card.locator("form").filter(has=page.get_by_test_id("resolve"))
        form.locator("select[name=cause_category]").select_option(index=1)
        form.locator("textarea[name=action_taken]").fill("re-spliced the drop cable")
        form.get_by_test_id("resolve").click()

    act(w, resolve)
    wait_until(
        lambda: demo.ok("GET", f"/api/v1/tickets/{ticket['id']}")["state"] == "resolved", 10, "the ticket resolved"
    )
    w.shot("technician-resolved")
    w.assert_clean()


def test_technician_view_refreshes_itself_unless_the_technician_is_typing(
    open_page: Callable[..., Watched], demo: Demo
) -> None:
    """A ticket dispatched by the NOC shows up on the phone without a reload (every 30 s),
    but never while the technician is filling in a form: that would wipe what they typed."""
    username = technician(demo)
    first = dispatched_ticket(demo, "acc7 refresh: the first", username)
    w = open_page(username, TECH_PASSWORD, viewport={"width": 390, "height": 844})
    page = w.page
    page.clock.install()  # the page's timers on a clock the test can move
    w.goto("/ui/my/tickets")
    page.clock.resume()  # ...which runs in real time until the test jumps ahead
    card = page.locator(f'[data-testid="my-ticket"][data-ticket-id="{first["id"]}"]')
    act(w, lambda: card.get_by_test_id("accept").click())
    accepted = page.locator(f'[data-testid="my-ticket"][data-ticket-id="{first["id"]}"][data-state="accepted"]')
    accepted.wait_for(timeout=10_000)
    note = accepted.locator("input[name=location_note]")
    note.fill("gate code 4711")  # typing, not yet sent
    page.locator("h1, .who").first.click()  # focus leaves the field; the edit is still unsent
    second = dispatched_ticket(demo, "acc7 refresh: the second", username)
    second_card = page.locator(f'[data-testid="my-ticket"][data-ticket-id="{second["id"]}"]')
    page.clock.fast_forward(61_000)
    page.wait_for_timeout(1500)  # a refresh, had one been sent, would have been answered by now
    assert second_card.count() == 0 and note.input_value() == "gate code 4711"
    note.fill("")  # back to what was rendered: nothing in progress
    page.locator("h1, .who").first.click()
    page.clock.fast_forward(31_000)
    second_card.wait_for(timeout=10_000)
    w.shot("technician-refreshed")
    w.assert_clean()
