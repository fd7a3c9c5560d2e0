"""Provisioning orders in the dashboard: the list (state filter, pages), one order with its
per-device rendered diff and timeline; device-supplied and customer strings render inert."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from faultloop import clock
from inventory import service as inventory
from inventory.schemas import DeviceIn
from provisioning.models import OrderItem, ServiceOrder
from tests.ticketing.conftest import make_device

from .test_tickets import XSS, dom


def _order(session, *, state: str = "draft", customer: str = "ACME", items: list[dict[str, Any]] = ()) -> ServiceOrder:
    now = clock.now()
    order = ServiceOrder(action="activate", service_type="l2_vlan", customer=customer, state=state,
                         request={"params": {"vlan_name": "ACME-L2"}}, created_by="pat", created_at=now,
                         updated_at=now, result="")  # fmt: skip
    session.add(order)
    session.flush()
    for seq, item in enumerate(items):
        session.add(OrderItem(order_id=order.id, seq=seq, params={}, commands=[], inverse=[], status="planned",
                              message="", **item))  # fmt: skip
    session.commit()
    return order


def test_a_planned_order_in_the_list_and_its_diff(web, client, auth, session, vault):
    device = DeviceIn.model_validate(
        {
            "hostname": "sw1",
            "address": "127.0.0.9",
            "role": "access",
            "device_type": "cisco_ios",
            "ssh": {"username": "u", "password": "p"},
        }  # fmt: skip
    )
    inventory.create_device(session, vault, device, actor="t")
    session.commit()
    prov = auth("provisioner")
    r = client.post("/api/v1/vlan-pools", json={"name": "metro-1", "vlan_min": 300, "vlan_max": 399}, headers=prov)
    assert r.status_code == 201, r.text
    body = {
        "service_type": "l2_vlan", "customer": "ACME", "params": {"vlan_name": "ACME-L2", "description": "ACME L2"},
        "targets": [{"device": "sw1", "params": {"interface": "GigabitEthernet0/2"}}], "vlan_pool": "metro-1",
    }  # fmt: skip
    order_id = client.post("/api/v1/orders", json=body, headers=prov).json()["id"]
    assert client.post(f"/api/v1/orders/{order_id}/plan", headers=prov).status_code == 200

    viewer = web("viewer")
    r = viewer.get("/ui/orders")
    assert r.status_code == 200, r.text
    row = dom(r.text).one("order-row")
    assert row.attrs["data-order-id"] == str(order_id) and row.attrs["data-state"] == "planned"
    assert "l2_vlan" in row.text and "ACME" in row.text and "sw1" in row.text

    r = viewer.get(f"/ui/orders/{order_id}")
    assert r.status_code == 200, r.text
    page = dom(r.text)
    assert page.one("order-state").text == "planned"
    diff = page.one("order-diff")
    added = [s.text for s in diff.all(tag="span") if s.attrs["class"] == "add"]
    assert "+vlan 300" in added and " name ACME-L2" in diff.text
    assert [e.attrs["data-action"] for e in page.all("order-event")] == ["order.create", "order.plan"]
    assert page.one("order-item").attrs["data-device"] == "sw1"
    # the viewer may not act; a noc operator is told what comes next
    assert "none for you" in page.one("order-actions").text
    assert "approve" in dom(web("noc").get(f"/ui/orders/{order_id}").text).one("order-actions").text


def test_state_filter_and_pages(web, session):
    drafts = [_order(session, state="draft") for _ in range(3)]
    done = _order(session, state="completed")
    client = web("technician")  # every role reads orders, as on the JSON API

    def ids(query: str) -> list[int]:
        r = client.get(f"/ui/orders?{query}")
        assert r.status_code == 200, r.text
        return [int(row.attrs["data-order-id"]) for row in dom(r.text).all("order-row")]

    assert ids("") == [done.id] + [o.id for o in reversed(drafts)]
    assert ids("state=completed") == [done.id]
    assert ids("state=failed") == [] and "no orders in state failed" in client.get("/ui/orders?state=failed").text
    page = dom(client.get("/ui/orders?limit=2").text)
    assert len(page.all("order-row")) == 2 and page.all("prev") == []
    assert page.one("next").attrs["href"] == "/ui/orders?limit=2&offset=2"
    r = client.get("/ui/orders?limit=2&offset=2", headers={"HX-Request": "true", "HX-Target": "orders"})
    assert r.text.lstrip().startswith('<div id="orders"')
    page = dom(r.text)
    assert [int(x.attrs["data-order-id"]) for x in page.all("order-row")] == [drafts[1].id, drafts[0].id]
    assert page.one("prev").attrs["href"] == "/ui/orders?limit=2&offset=0" and page.all("next") == []
    r = client.get("/ui/orders?state=exploded")
    assert r.status_code == 422 and "state: expected one of draft" in r.text
    r = client.get("/ui/orders?limit=100000")
    assert r.status_code == 422 and "limit" in r.text
    assert client.get("/ui/orders/999999").status_code == 404


def test_hostile_strings_in_orders_render_inert(web, session):
    device = make_device(session, "sw-" + XSS[:100])
    hostile_diff = f"--- running\n+++ planned\n@@ -1 +1,2 @@\n description {XSS}\n+interface {XSS}\n-{XSS}\n"
    order = _order(session, customer=XSS[:120], items=[{"device_id": device.id, "diff": hostile_diff}])
    client = web("viewer")
    for html in (client.get("/ui/orders").text, client.get(f"/ui/orders/{order.id}").text):
        assert "<script>alert" not in html and "<img src=x" not in html
        assert "&lt;script&gt;" in html
    page = dom(client.get(f"/ui/orders/{order.id}").text)
    diff = page.one("order-diff")
    kinds = [(s.attrs["class"], s.text) for s in diff.all(tag="span")]
    assert kinds[:3] == [("file", "--- running"), ("file", "+++ planned"), ("hunk", "@@ -1 +1,2 @@")]
    assert ("add", f"+interface {XSS}") in kinds and ("del", f"-{XSS}") in kinds
    assert page.all(tag="img") == [] and page.one("order-customer").text == XSS[:120]


def test_planned_diff_context_stays_encrypted_and_hidden_from_roles_without_config_access(
    web, client, auth, session, vault
):
    """Issue 15 item 6: the context lines of a planned diff are the device's running config (here a
    community and a password hash). The row holds them only encrypted; a viewer or technician gets
    the changed lines alone, through the JSON API and on the dashboard page."""
    from collectors.backup import store_backup
    from inventory import queries

    device = inventory.create_device(
        session,
        vault,
        DeviceIn.model_validate(
            {"hostname": "sw8", "address": "127.0.0.18", "role": "access", "device_type": "cisco_ios"}
        ),
        actor="t",
    )
    running = (
        "hostname sw8\n"
        "snmp-server community CTX-COMMUNITY RO\n"
        "interface GigabitEthernet0/2\n description old-port\n"
        "username ops secret 5 CTX-HASH\n"
    )
    store_backup(session, vault, device=queries.device(session, device.id), text=running, trigger="on_demand",
                 actor="t")  # fmt: skip
    session.commit()
    prov = auth("provisioner")
    client.post("/api/v1/vlan-pools", json={"name": "metro-1", "vlan_min": 300, "vlan_max": 399}, headers=prov)
    body = {
        "service_type": "l2_vlan", "customer": "ACME", "params": {"vlan_name": "ACME-L2", "description": "ACME L2"},
        "targets": [{"device": "sw8", "params": {"interface": "GigabitEthernet0/2"}}], "vlan_pool": "metro-1",
    }  # fmt: skip
    order_id = client.post("/api/v1/orders", json=body, headers=prov).json()["id"]
    r = client.post(f"/api/v1/orders/{order_id}/plan", headers=prov)
    assert r.status_code == 200, r.text
    full = r.json()["items"][0]["diff"]
    context = [line for line in full.splitlines() if line.startswith(" ")]
    assert " snmp-server community CTX-COMMUNITY RO" in context and " username ops secret 5 CTX-HASH" in context

    # the row: no plaintext diff, and the token is not the text in another encoding
    session.expire_all()
    stored = session.execute(
        select(OrderItem.diff, OrderItem.diff_encrypted).where(OrderItem.order_id == order_id)
    ).one()
    assert stored.diff == "" and stored.diff_encrypted is not None
    assert b"CTX-" not in stored.diff_encrypted and "CTX-" not in stored.diff_encrypted.decode("latin-1")
    assert vault.decrypt(stored.diff_encrypted) == full

    for role in ("viewer", "technician"):
        api = client.get(f"/api/v1/orders/{order_id}", headers=auth(role))
        assert api.status_code == 200 and "CTX-" not in api.text, role
        diff = api.json()["items"][0]["diff"]
        assert "+vlan 300" in diff.splitlines() and not [line for line in diff.splitlines() if line.startswith(" ")]
        html = web(role).get(f"/ui/orders/{order_id}")
        assert html.status_code == 200 and "CTX-" not in html.text, role
        spans = dom(html.text).one("order-diff").all(tag="span")
        assert "+vlan 300" in [s.text for s in spans]
        assert [s.text for s in spans if s.attrs["class"] not in ("add", "del", "file", "hunk")] == [], role
    # a config reader sees the context on the page as in the API
    noc_page = dom(web("noc").get(f"/ui/orders/{order_id}").text).one("order-diff")
    assert ("ctx", "snmp-server community CTX-COMMUNITY RO") in [
        (s.attrs["class"], s.text.strip()) for s in noc_page.all(tag="span")
    ]
