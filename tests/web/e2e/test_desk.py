"""The service desk in chromium on the running demo: a service activated by an order, a customer's
fault reported through the form and looked up, the service reports page; no CSP violation,
dialog or script error, and the customer's text stays text."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from .conftest import XSS_PAYLOADS, Watched
from .server import Demo


def _activate(demo: Demo) -> int:
    """A service on core1 through an order (plan, four-eyes approve by another user, execute)."""
    demo.user("desk-approver", "noc", demo.password)
    r = httpx.post(demo.base + "/api/v1/auth/token", json={"username": "desk-approver", "password": demo.password},
                   timeout=30)  # fmt: skip
    assert r.status_code == 201, r.text
    approver = r.json()["token"]
    port = next(i["name"] for i in demo.lab_device("core1")["interfaces"][1:] if i.get("admin_up", True))
    body = {"service_type": "interface_state", "customer": "ACME", "params": {"state": "up"},
            "targets": [{"device": "core1", "params": {"interface": port}}]}  # fmt: skip
    order = demo.ok("POST", "/api/v1/orders", json=body)
    demo.ok("POST", f"/api/v1/orders/{order['id']}/plan")
    demo.ok("POST", f"/api/v1/orders/{order['id']}/approve", token=approver)
    done = demo.ok("POST", f"/api/v1/orders/{order['id']}/execute")
    assert done["state"] == "completed", done["result"]
    return int(done["service_id"])


def test_the_desk_reports_a_fault_and_reads_its_status(open_page: Callable[..., Watched], demo: Demo) -> None:
    service_id = _activate(demo)
    demo.user("desk1", "servicedesk", demo.password)
    w = open_page("desk1")
    page = w.page
    page.wait_for_url("**/ui/fault-reports")
    page.get_by_test_id("customer").fill("ACME")
    page.get_by_test_id("service-id").fill(str(service_id))
    page.get_by_test_id("symptom").fill("no service since 9:00 " + XSS_PAYLOADS[0])
    page.get_by_test_id("contact").fill("Ann, +41 44 000 00 00")
    page.get_by_test_id("submit-report").click()
    ref = page.get_by_test_id("report-ref").inner_text(timeout=60_000)
    assert ref.startswith("FR-")
    assert page.get_by_test_id("report-status").inner_text() in ("Received", "Being repaired")
    assert XSS_PAYLOADS[0] in page.get_by_test_id("report-symptom").inner_text()  # shown as text
    w.shot("desk-report")
    page.get_by_test_id("status-customer").fill("ACME")
    page.get_by_test_id("status-ref").fill(ref)
    page.get_by_test_id("submit-status").click()
    page.locator(f'[data-testid="report"][data-ref="{ref}"] [data-testid="report-history"]').wait_for()
    w.assert_clean()
    w.assert_inert()

    admin = open_page()
    admin.goto("/ui/reports")
    chart = admin.page.get_by_test_id("chart-availability")
    chart.wait_for()
    assert admin.page.locator('[data-testid="chart-availability"] .bar-row[data-key="ACME"]').count() == 1
    admin.shot("service-reports")
    admin.assert_clean()
