"""XSS battery in chromium: hostile strings from every outside source -- what a device says
over SNMP (sysName, sysDescr, ifAlias), trap varbinds, ticket notes and titles, user names --
render as inert text on every page that shows them, under the pages' CSP."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from typing import Any

import pytest

from .conftest import XSS_PAYLOADS, Watched, wait_until
from .server import Demo
from .test_tickets import TECH, TECH_PASSWORD, dispatched_ticket, technician

ALL = " ".join(XSS_PAYLOADS)  # 128 bytes: fits a DisplayString (255)
LINK = "javascript:window.__xss=1"
BGP_PEER_DOWN = "1.3.6.1.2.1.15.0.2"
BGP_PEER_REMOTE_ADDR = "1.3.6.1.2.1.15.3.1.7"  # the trap map's managed-object varbind for bgpPeerDown
SPARE = "GigabitEthernet0/3"  # acc7's unlinked spare port


def text_of(w: Watched) -> str:
    return str(w.page.locator("body").inner_text())


def assert_shown(w: Watched, *texts: str) -> None:
    body = text_of(w)
    for text in texts:
        assert text in body, f"{text!r} is not shown as text on {w.page.url}"


@pytest.fixture(scope="module")
def planted(demo: Demo) -> dict[str, Any]:
    """Every hostile string planted once, through the paths real data takes."""
    acc7 = demo.device_id("acc7")
    # what the device reports over SNMP; a poll stores sysName/sysDescr
    demo.fault("describe", device="acc7", sys_name=ALL, sys_descr=ALL, interface=SPARE, alias=ALL)
    # an ifAlias becomes an interface's description when the poll finds a port the inventory
    # does not know yet (known ports keep the operator's description): forget the spare port
    spare = next(i for i in demo.ok("GET", f"/api/v1/devices/{acc7}/interfaces") if i["name"] == SPARE)
    assert demo.api("DELETE", f"/api/v1/interfaces/{spare['id']}").status_code == 204
    demo.ok("POST", f"/api/v1/devices/{acc7}/poll")
    status = demo.ok("GET", f"/api/v1/devices/{acc7}/interfaces/status")
    assert status["sys_descr"] == ALL and status["sys_name"] == ALL, status
    assert next(i for i in status["interfaces"] if i["name"] == SPARE)["description"] == ALL

    # a trap from acc7's address whose varbinds carry the payloads (net-snmp's snmptrap)
    snmptrap = shutil.which("snmptrap")
    assert snmptrap, "net-snmp's snmptrap is not installed (Debian package 'snmp'; make test installs it)"
    address = demo.lab_device("acc7")["address"]
    subprocess.run(
        [snmptrap, "-v2c", "-c", "public", f"--clientaddr={address}", f"127.0.0.1:{demo.trap_port}", "",
         BGP_PEER_DOWN, f"{BGP_PEER_REMOTE_ADDR}.1", "s", ALL, "1.3.6.1.4.1.99999.1.0", "s", LINK],
        check=True, timeout=15,
    )  # fmt: skip
    trap_alarm = wait_until(
        lambda: [
            a
            for a in demo.ok("GET", "/api/v1/alarms", params={"device": "acc7", "state": "active"})["items"]
            if XSS_PAYLOADS[0] in a["managed_object"]
        ],
        15,
        "the alarm of the hostile trap",
    )[0]

    # ticket title, diagnosis and notes, dispatched to the technician (odd but valid name)
    username = technician(demo)
    ticket = dispatched_ticket(demo, ALL, username)
    demo.ok("POST", f"/api/v1/tickets/{ticket['id']}/notes", json={"text": ALL})
    demo.ok("POST", f"/api/v1/tickets/{ticket['id']}/notes", json={"text": LINK})
    return {"device_id": acc7, "alarm": trap_alarm, "ticket": ticket, "technician": username}


def test_device_supplied_strings_render_as_text(open_page: Callable[..., Watched], planted: dict[str, Any]) -> None:
    w = open_page()
    w.goto(f"/ui/devices/{planted['device_id']}")
    assert w.page.get_by_test_id("sys-name").inner_text() == ALL
    assert w.page.get_by_test_id("sys-descr").inner_text() == ALL
    spare = w.page.locator(f'[data-testid="interface-row"][data-interface="{SPARE}"]')
    assert ALL in spare.inner_text()
    w.shot("xss-device")
    w.assert_inert()
    for path, name in (("/ui/devices", "devices"), ("/ui/topology", "topology")):
        w.goto(path)
        w.page.wait_for_load_state("networkidle")
        w.shot(f"xss-{name}")
        w.assert_inert()


def test_trap_varbinds_render_as_text(open_page: Callable[..., Watched], planted: dict[str, Any]) -> None:
    alarm = planted["alarm"]
    w = open_page()
    w.goto("/")
    row = w.page.locator(f'[data-testid="alarm-row"][data-alarm-id="{alarm["id"]}"]')
    row.wait_for()
    assert ALL in row.inner_text()
    w.shot("xss-console")
    w.assert_inert()
    # the detail panel, opened in the console (htmx swap) and as its own page
    row.get_by_test_id("alarm-open").click()
    w.page.get_by_test_id("alarm-detail").get_by_text(XSS_PAYLOADS[1]).first.wait_for()
    w.assert_inert()
    w.goto(f"/ui/alarms/{alarm['id']}")
    assert_shown(w, *XSS_PAYLOADS)
    w.shot("xss-alarm-detail")
    w.assert_inert()
    w.goto(f"/ui/devices/{planted['device_id']}")
    assert_shown(w, XSS_PAYLOADS[2])
    w.assert_inert()


def test_ticket_text_renders_as_text(open_page: Callable[..., Watched], planted: dict[str, Any]) -> None:
    ticket = planted["ticket"]
    w = open_page()
    w.goto(f"/ui/tickets/{ticket['id']}")
    assert w.page.get_by_test_id("ticket-title").inner_text() == ALL
    notes = w.page.get_by_test_id("ticket-note").all_inner_texts()
    assert any(ALL in n for n in notes) and any(LINK in n for n in notes), notes
    assert_shown(w, TECH)
    w.shot("xss-ticket")
    w.assert_inert()
    w.goto("/ui/tickets")
    card = w.page.locator(f'[data-testid="ticket-card"][data-ticket-id="{ticket["id"]}"]')
    assert ALL in card.inner_text()
    w.shot("xss-board")
    w.assert_inert()
    # the technician's phone view shows the title too
    tech = open_page(TECH, TECH_PASSWORD, viewport={"width": 390, "height": 844})
    tech.goto("/ui/my/tickets")
    mine = tech.page.locator(f'[data-testid="my-ticket"][data-ticket-id="{ticket["id"]}"]')
    assert ALL in mine.inner_text()
    assert tech.page.locator(".who .username").inner_text() == TECH
    tech.shot("xss-technician")
    tech.assert_inert()


def test_hostile_user_names_are_refused(demo: Demo) -> None:
    before = {u["username"] for u in demo.ok("GET", "/api/v1/users")}
    for name in (*XSS_PAYLOADS, "a b", "x\r\ny"):
        r = demo.api("POST", "/api/v1/users", json={"username": name, "role": "viewer", "password": "long enough pw"})
        assert r.status_code == 422, (name, r.status_code, r.text)
        assert "username" in r.text and "expected 1-64 characters" in r.text, r.text
        assert name not in r.text  # the error names the field, never echoes the input
    assert {u["username"] for u in demo.ok("GET", "/api/v1/users")} == before
