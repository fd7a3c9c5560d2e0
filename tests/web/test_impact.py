"""Customer service impact in the dashboard (issue 16 item 1): the alarm console's "N services / M
customers" per row and its customer filter, the alarm detail and the ticket page listing the affected
services and customers (linked), and the topology map marking what hurts customers; on SQLite and
PostgreSQL, with the impact computed by the real engine from provisioning's service inventory."""

from __future__ import annotations

import re
from urllib.parse import quote

import pytest
from sqlalchemy import select

from alarms import queries as alarm_queries
from alarms.bus import AlarmBus
from alarms.models import Alarm
from alarms.runner import AlarmEngine
from faultloop import clock
from faultloop.events import Event
from inventory import queries as inventory_queries
from provisioning.models import ServiceInstance, ServiceResource
from tests.alarms.test_impact import build_network, source
from tests.web.test_alarms import frozen, ids, statements  # noqa: F401 - the fixture
from tests.web.test_tickets import dom
from ticketing import service as tickets
from ticketing.policy import load_policy

HOSTILE = '<script>alert("cust")</script>'


@pytest.fixture
def net(runtime, session, frozen):  # noqa: F811 - the imported fixture
    """The network of tests/alarms/test_impact.py (acme, zeta, bolt services) plus a service on acc1
    Gi0/7 whose customer name is hostile markup."""
    made = build_network(session)
    acc1 = inventory_queries.device_by_hostname(session, "acc1")
    assert acc1 is not None
    now = clock.now()
    hostile = ServiceInstance(service_type="l2_vlan", customer=HOSTILE, state="active", params={},
                              created_at=now, updated_at=now)  # fmt: skip
    session.add(hostile)
    session.flush()
    session.add(ServiceResource(service_id=hostile.id, device_id=acc1.id, interface="Gi0/7", vlan=None))
    session.commit()
    made["hostile"] = hostile.id
    engine = AlarmEngine(runtime, AlarmBus(), services=source)
    engine.load()
    return engine, made


def raise_(engine, *events: tuple[str, str, str, str]) -> None:
    engine.submit_events([
        Event(source="trap", device=d, event_type=t, severity=sev, time=clock.now(), managed_object=mo)
        for t, d, mo, sev in events
    ])  # fmt: skip
    engine.run_once()


def alarm_of(session, device: str, alarm_type: str) -> Alarm:
    session.expire_all()
    alarm = session.scalars(select(Alarm).where(Alarm.device == device, Alarm.alarm_type == alarm_type)).first()
    assert alarm is not None
    return alarm


def impact_chips(html: str) -> dict[int, str]:
    """alarm id -> the text of its impact chip, for the console rows that have one."""
    page = dom(html)
    return {
        int(row.attrs["data-alarm-id"]): row.one("impact").text.strip()
        for row in page.all("alarm-row")
        if row.all("impact")
    }


def test_console_rows_say_how_many_services_and_customers_each_alarm_hurts(web, net, session):
    engine, s = net
    raise_(engine, ("linkDown", "acc1", "interface:Gi0/5", "major"),  # acme's s1
           ("linkDown", "acc2", "interface:Gi0/8", "major"),  # nothing there
           ("device_unreachable", "agg", "", "critical"))  # agg: s3; acc1 behind it: s1, s4, hostile
    agg, port, idle = (alarm_of(session, "agg", "device_down"), alarm_of(session, "acc1", "link_down"),
                       alarm_of(session, "acc2", "link_down"))  # fmt: skip
    assert (agg.services_affected, agg.customers_affected) == (4, 3)  # acme twice, zeta, the hostile one
    noc = web("noc")
    html = noc.get(f"/?state=all&expand={agg.id}").text
    chips = impact_chips(html)
    assert chips[agg.id] == "4 services / 3 customers"
    assert chips[port.id] == "1 service / 1 customer"
    assert idle.id not in chips and idle.id in ids(html)
    chip = dom(html).one("impact", data_services="4")
    assert chip.attrs["data-customers"] == "3" and chip.attrs["href"] == f"/ui/alarms/{agg.id}"
    # the live refresh (the table fragment) carries them too
    assert impact_chips(noc.get("/ui/alarms/rows?state=all", headers={"hx-request": "true"}).text)[agg.id] == (
        "4 services / 3 customers"
    )


def test_alarm_detail_lists_the_affected_services_with_the_customers_escaped(web, net, session):
    engine, s = net
    raise_(engine, ("device_unreachable", "agg", "", "critical"))
    agg = alarm_of(session, "agg", "device_down")
    html = web("viewer").get(f"/ui/alarms/{agg.id}").text
    page = dom(html)
    assert page.one("detail-impact").text.strip() == "4 services / 3 customers"
    rows = {int(r.attrs["data-service-id"]): r for r in page.all("affected-service")}
    assert set(rows) == {s["s1"], s["s3"], s["s4"], s["hostile"]}
    assert rows[s["s3"]].one("customer-link").attrs["href"] == "/?customer=acme&state=all"
    assert rows[s["s1"]].one("service-link").attrs["href"] == f"/ui/services?customer=acme#service-{s['s1']}"
    assert "down (topology)" in rows[s["s1"]].text and "down (direct)" in rows[s["s3"]].text
    assert "gold" in rows[s["s1"]].text  # its SLA class
    assert HOSTILE not in html and "&lt;script&gt;alert(&#34;cust&#34;)&lt;/script&gt;" in html
    assert rows[s["hostile"]].one("customer-link").attrs["href"] == "/?" + "customer=" + quote(
        HOSTILE, safe=""
    ).replace("%20", "+") + "&state=all"


def test_console_filters_by_customer(web, net, session):
    engine, s = net
    raise_(engine, ("linkDown", "acc1", "interface:Gi0/5", "major"),  # acme
           ("linkDown", "acc1", "interface:Gi0/6", "major"),  # zeta (Gi0/6.120 under it)
           ("linkDown", "acc2", "interface:Gi0/5", "major"),  # bolt
           ("linkDown", "acc1", "interface:Gi0/7", "major"))  # the hostile customer
    by_port = {a.managed_object + "@" + a.device: a.id for a in session.scalars(select(Alarm))}
    noc = web("noc")
    acme = ids(noc.get("/?customer=acme").text)
    assert acme == [by_port["interface:Gi0/5@acc1"]]
    assert ids(noc.get("/?customer=bolt").text) == [by_port["interface:Gi0/5@acc2"]]
    assert ids(noc.get("/?customer=" + quote(HOSTILE)).text) == [by_port["interface:Gi0/7@acc1"]]
    assert ids(noc.get("/?customer=nobody").text) == []
    assert len(ids(noc.get("/").text)) == 4  # no filter: all of them
    # the filter sits in the form, stays in the table's refresh URL, and combines with the others
    page = noc.get("/?customer=zeta").text
    assert dom(page).one("filter-customer").attrs["value"] == "zeta"
    assert "/ui/alarms/rows?customer=zeta" in page
    assert ids(noc.get("/ui/alarms/rows?customer=zeta&device=acc2", headers={"hx-request": "true"}).text) == []
    r = noc.get("/?customer=" + "x" * 121)
    assert r.status_code == 422 and "customer" in r.text


def test_the_console_stays_at_a_fixed_number_of_statements_with_impact_and_the_customer_filter(
    web, net, session, connection
):
    engine, s = net
    raise_(engine, ("linkDown", "acc1", "interface:Gi0/5", "major"))
    noc = web("noc")

    def measure(path):
        with statements(connection) as seen:
            r = noc.get(path, headers={"hx-request": "true"})
            assert r.status_code == 200
        return sum(1 for x in seen if x.lstrip().upper().startswith("SELECT")), len(ids(r.text))

    few, shown_few = measure("/ui/alarms/rows?limit=100")
    filtered_few, _ = measure("/ui/alarms/rows?limit=100&customer=acme")
    raise_(engine, *[("linkDown", "acc2", f"interface:Gi1/{i}", "major") for i in range(1, 40)],
           ("vlan_down", "agg", "vlan:300", "major"),  # acme's s3
           ("linkDown", "acc2", "interface:Gi0/5", "major"))  # bolt # fmt: skip
    many, shown_many = measure("/ui/alarms/rows?limit=100")
    filtered_many, shown_filtered = measure("/ui/alarms/rows?limit=100&customer=acme")
    assert (shown_few, shown_many, shown_filtered) == (1, 42, 2)
    # 4 SELECTs a render (the session's token; the severity counts and total; the page; the children
    # counts), as without impact: the counts ride on the alarm rows
    assert many == few == 4, (few, many)
    assert filtered_many == filtered_few == few  # the filter is a sub-select, not a statement


def test_ticket_page_shows_the_affected_services_and_customers_linked(web, net, session):
    engine, s = net
    raise_(engine, ("linkDown", "agg", "interface:d1", "critical"))  # acc1's only uplink: s1, s4, hostile
    link = alarm_of(session, "agg", "link_down")
    record = alarm_queries.alarm(session, link.id)
    assert record is not None
    ticket = tickets.open_for_alarm(session, policy=load_policy(), alarm=record, now=clock.now())
    assert ticket is not None
    session.commit()
    html = web("noc").get(f"/ui/tickets/{ticket.id}").text
    section = dom(html).one("ticket-impact")
    assert "Affected customer services (3 services / 3 customers)" in section.text
    rows = {int(r.attrs["data-service-id"]): r for r in section.all("affected-service")}
    assert set(rows) == {s["s1"], s["s4"], s["hostile"]}
    assert rows[s["s1"]].one("customer-link").attrs["href"] == "/?customer=acme&state=all"
    assert rows[s["s4"]].one("service-link").attrs["href"] == f"/ui/services?customer=zeta#service-{s['s4']}"
    assert "zeta" in rows[s["s4"]].text and "silver" in rows[s["s4"]].text
    assert HOSTILE not in html and "&lt;script&gt;alert(&#34;cust&#34;)&lt;/script&gt;" in html
    # a ticket whose alarms hurt nobody says so
    raise_(engine, ("linkDown", "acc2", "interface:Gi0/8", "critical"))
    quiet = alarm_queries.alarm(session, alarm_of(session, "acc2", "link_down").id)
    assert quiet is not None
    other = tickets.open_for_alarm(session, policy=load_policy(), alarm=quiet, now=clock.now())
    assert other is not None
    session.commit()
    page = dom(web("noc", "noc2").get(f"/ui/tickets/{other.id}").text)
    assert page.one("ticket-impact").all("affected-service") == [] and page.all("no-impact")


def test_topology_map_marks_devices_and_links_whose_alarms_hurt_customers(web, net, session, connection):
    engine, s = net
    viewer = web("viewer")

    def selects() -> int:
        with statements(connection) as seen:
            assert viewer.get("/ui/topology").status_code == 200
        return sum(1 for x in seen if x.lstrip().upper().startswith("SELECT"))

    quiet = selects()
    raise_(engine, ("linkDown", "agg", "interface:d1", "critical"),  # acc1's only uplink: 3 services
           ("linkDown", "acc2", "interface:Gi0/5", "major"))  # bolt's port, no link there
    assert selects() == quiet  # the impact is one statement, however many alarms and services
    html = viewer.get("/ui/topology").text
    page = dom(html)
    devices = {d.hostname: d.id for d in inventory_queries.devices(session)}
    nodes = {int(n.attrs["data-device-id"]): n for n in page.all("topo-node")}
    agg, core = nodes[devices["agg"]], nodes[devices["core"]]
    # the counts sit beside the nodes (outside their links: a node's click target stays its circle)
    counts = {int(t.attrs["data-device-id"]): t for t in page.all("topo-node-impact")}
    assert set(counts) == {devices["agg"], devices["acc2"]}
    assert "impact" in agg.attrs["class"].split() and counts[devices["agg"]].attrs["data-services"] == "3"
    assert counts[devices["agg"]].attrs["data-customers"] == "3"
    assert "affects 3 services / 3 customers" in agg.one(tag="title").text
    assert counts[devices["acc2"]].text.strip() == "1 svc"
    assert "impact" not in core.attrs["class"].split() and agg.all("topo-node-impact") == []
    marked = [e for e in page.all("topo-link") if "impact" in e.attrs["class"].split()]
    assert [e.attrs["data-services"] for e in marked] == ["3"]  # agg d1 - acc1 u
    assert "its alarms affect 3 services / 3 customers" in marked[0].one(tag="title").text
    assert [t.attrs["data-services"] for t in page.all("topo-link-impact")] == ["3"]
    assert re.search(r"4 customer services\s+affected", page.one("topo-impact-summary").text)
    assert HOSTILE not in html
