"""The alarm console in chromium: a fault injected in the lab appears live (SSE, no reload),
is acknowledged from the browser, and leaves the console when the link comes back."""

from __future__ import annotations

import time
from collections.abc import Callable

from .conftest import Watched, active_alarms, wait_until
from .server import Demo

LIVE_S = 5.0  # the bound: fault to row on an open console


def test_link_fault_appears_live_and_is_acknowledged(open_page: Callable[..., Watched], demo: Demo) -> None:
    w = open_page()
    page = w.page
    w.goto("/")
    page.get_by_test_id("alarm-table").wait_for()
    # a marker that a reload would wipe: the row must arrive through the stream, not a reload
    page.evaluate("window.__sameDocument = true")
    # the dist3 -- dist4 pair link (untouched by the demo's background scenario)
    injected = time.monotonic()
    demo.fault("link-down", device="dist3", interface="GigabitEthernet0/3")
    try:
        alarms = wait_until(
            lambda: [a for a in active_alarms(demo, "dist3", "GigabitEthernet0/3") if a["parent_id"] is None],
            LIVE_S,
            "the link-down alarm in the API",
        )
        alarm = alarms[0]
        row = page.locator(f'[data-testid="alarm-row"][data-alarm-id="{alarm["id"]}"]')
        row.wait_for(timeout=max(0.1, LIVE_S - (time.monotonic() - injected)) * 1000)
        seen_after = time.monotonic() - injected
        assert seen_after < LIVE_S, f"row appeared {seen_after:.1f} s after the fault"
        assert page.evaluate("window.__sameDocument") is True, "the page was reloaded"
        assert row.get_attribute("data-severity") == alarm["severity"]
        assert row.get_attribute("data-acknowledged") == "false"
        assert "dist3" in row.inner_text()
        w.shot("console-live-fault")

        row.get_by_test_id("ack").click()
        acked = page.locator(f'[data-testid="alarm-row"][data-alarm-id="{alarm["id"]}"][data-acknowledged="true"]')
        acked.wait_for(timeout=10_000)
        assert "ack admin" in acked.get_by_test_id("acked-by").inner_text()
        stored = demo.ok("GET", f"/api/v1/alarms/{alarm['id']}")
        assert stored["acknowledged"] and stored["ack_by"] == "admin"
        w.shot("console-acknowledged")
    finally:
        demo.fault("link-up", device="dist3", interface="GigabitEthernet0/3")
    # the link is back: the (active-only) console drops the row, still without a reload
    page.locator(f'[data-testid="alarm-row"][data-alarm-id="{alarm["id"]}"]').wait_for(state="detached", timeout=15_000)
    assert page.evaluate("window.__sameDocument") is True
    w.assert_clean()


def test_alarm_detail_and_comment(open_page: Callable[..., Watched], demo: Demo) -> None:
    w = open_page()
    page = w.page
    demo.fault("link-down", device="dist4", interface="GigabitEthernet0/6")
    try:
        alarm = wait_until(lambda: active_alarms(demo, "dist4", "GigabitEthernet0/6"), 10, "the dist4 link-down alarm")[
            0
        ]
        w.goto(f"/ui/alarms/{alarm['id']}")
        page.get_by_test_id("comment-text").fill("fibre team called, ETA 20 min")
        page.get_by_test_id("comment-submit").click()
        page.get_by_text("fibre team called, ETA 20 min").first.wait_for(timeout=10_000)
        journal = demo.ok("GET", f"/api/v1/alarms/{alarm['id']}")["journal"]
        assert any(j["detail"].get("text") == "fibre team called, ETA 20 min" for j in journal), journal
        w.shot("alarm-detail")
        w.assert_clean()
    finally:
        demo.fault("link-up", device="dist4", interface="GigabitEthernet0/6")
