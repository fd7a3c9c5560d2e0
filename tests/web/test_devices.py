"""Device list, device page and config diff pages over real inventory, poll, sample,
alarm, ticket and backup rows made through the domain services."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from collectors.snmp_poll import InterfaceState
from faultloop import clock
from tests.ticketing.conftest import make_alarm
from tests.web import netdata
from tests.web.test_topology import count_statements
from ticketing import dispatch
from ticketing import service as ticketing
from ticketing.policy import load_policy

XSS = '<img src=x onerror=alert("x")>'
XSS_ESCAPED = "&lt;img src=x onerror=alert(&#34;x&#34;)&gt;"

CONFIG_V1 = "hostname r1\n!\ninterface Gi0/1\n description uplink\n!\nsnmp-server community s3cret RO\nend\n"
CONFIG_V2 = "hostname r1\n!\ninterface Gi0/1\n description <b>CUST-42</b>\n!\nend\n"


@pytest.fixture
def frozen():
    c = clock.FrozenClock(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
    with clock.use(c):
        yield c


def ticket(session, device: str, title: str):
    admin = ticketing.Actor("test-admin", "admin")
    return ticketing.create_manual(
        session, policy=load_policy(), actor=admin, title=title, device=device, now=clock.now()
    )


def dispatch_to(session, ticket_id: int, technician: str) -> None:
    noc = ticketing.Actor("test-noc", "noc")
    policy = load_policy()
    for action, data in (
        ("acknowledge", {}),
        ("diagnose", {"diagnosis": "LOS", "fault_category": "transmission"}),
        ("dispatch", {"technician": technician}),
    ):
        ticketing.transition(
            session, policy=policy, ticket_id=ticket_id, action=action, actor=noc, data=data, now=clock.now()
        )


def rich_device(session, vault):
    """r1 with status, three interfaces (one down), traffic, alarms, tickets and two config versions."""
    netdata.site(session, "pop-north")
    dev = netdata.device(session, vault, "r1", role="distribution", site="pop-north", ports=3)
    netdata.poll(
        session,
        dev,
        sys_descr="Cisco IOS Software, Version 15.2",
        sys_location="Main St 1, rack 4",
        interfaces=[
            InterfaceState(1, "Gi0/1", alias="uplink", admin_status="up", oper_status="up", speed_bps=10**9),
            InterfaceState(2, "Gi0/2", admin_status="up", oper_status="down", speed_bps=10**9),
            InterfaceState(3, "Gi0/3", admin_status="down", oper_status="down"),
        ],
        uptime_cs=8_640_000 + 360_000,  # 1 day 1 hour
    )
    netdata.traffic(session, dev, "Gi0/1", in_bps=250e6, out_bps=40e6)
    netdata.traffic(session, dev, "Gi0/2", in_bps=2e3, out_bps=1e3, minutes=10)
    alarm = make_alarm(session, device="r1", severity="major", alarm_type="linkDown")
    other_alarm = make_alarm(session, device="r2", severity="critical")
    t = ticket(session, "r1", "r1 uplink flapping")
    v1 = netdata.config(session, vault, dev, CONFIG_V1)
    v2 = netdata.config(session, vault, dev, CONFIG_V2, actor="alice")
    session.commit()
    return {"dev": dev, "alarm": alarm, "other_alarm": other_alarm, "ticket": t, "v1": v1, "v2": v2}


# ---- device page -------------------------------------------------------------------------


def test_device_page_shows_status_interfaces_rates_graphs_alarms_tickets_backups(web, session, vault, frozen) -> None:
    data = rich_device(session, vault)
    dev = data["dev"]
    r = web("noc").get(f"/ui/devices/{dev.id}")
    assert r.status_code == 200, r.text
    html = r.text
    status = html[html.index('data-testid="device-status"') :]
    status = status[: status.index("</section>")]
    assert 'data-reachable="yes"' in status and "reachable" in status
    assert "2026-03-02 09:00:00 UTC" in status  # last poll
    assert "1d 1h" in status  # uptime
    assert "Cisco IOS Software, Version 15.2" in status and ">r1<" in status  # sysDescr, sysName
    assert '<dd data-testid="sys-location">Main St 1, rack 4</dd>' in status
    rows = re.findall(r'<tr data-testid="interface-row" data-interface="([^"]+)" data-oper="([a-z]+)">', html)
    assert rows == [("Gi0/1", "up"), ("Gi0/2", "down"), ("Gi0/3", "down")]
    gi1 = html[html.index('data-interface="Gi0/1" data-oper') :].split("</tr>")[0]
    assert "250.0 Mb/s" in gi1 and "40.0 Mb/s" in gi1 and "1.0 Gb/s" in gi1
    # graphs: the busiest interface first, polylines of 31 points inside the frame
    graphs = re.findall(r'data-testid="traffic-graph" data-interface="([^"]+)"', html)
    assert graphs == ["Gi0/1", "Gi0/2"]
    points = re.findall(r'<polyline class="rx" points="([^"]*)"', html)[0].split()
    assert len(points) == 31
    xy = [tuple(map(float, p.split(","))) for p in points]
    assert all(0 <= x <= 300 and 0 <= y <= 64 for x, y in xy)
    assert xy[-1] == (300.0, 0.0)  # now, at the peak
    assert xy == sorted(xy, key=lambda p: p[0])
    # alarms of this device only, linked to the alarm page
    assert f'href="/ui/alarms/{data["alarm"].id}"' in html
    assert f'/ui/alarms/{data["other_alarm"].id}"' not in html
    assert f'href="/ui/tickets/{data["ticket"].id}"' in html and "r1 uplink flapping" in html
    # backups, newest first, with diff links for a config reader
    assert re.findall(r'<tr data-backup-id="(\d+)">', html) == [str(data["v2"]), str(data["v1"])]
    assert f'href="/ui/devices/{dev.id}/config-backups/{data["v2"]}/diff"' in html
    assert 'href="/ui/devices?site=pop-north"' in html and 'href="/ui/topology?site=pop-north"' in html
    assert "style=" not in html and "s3cret" not in html


def test_device_page_of_a_device_never_polled(web, session, vault, frozen) -> None:
    dev = netdata.device(session, vault, "fresh1", ports=0)
    session.commit()
    r = web("viewer").get(f"/ui/devices/{dev.id}")
    assert r.status_code == 200
    assert 'data-reachable="unknown"' in r.text and "never" in r.text
    assert "No interfaces known." in r.text and "No traffic samples" in r.text and "No config backups." in r.text


def test_unreachable_device_page_says_so(web, session, vault, frozen) -> None:
    dev = netdata.device(session, vault, "dead1")
    netdata.failed_poll(session, dev, failures=4)
    session.commit()
    r = web("viewer").get(f"/ui/devices/{dev.id}")
    assert 'data-reachable="no"' in r.text and "4 failed polls" in r.text and "timeout" in r.text


def test_unknown_device_is_an_html_404(web) -> None:
    client = web("viewer")
    r = client.get("/ui/devices/999999")
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("text/html")
    assert "device 999999 not found" in r.text
    r = client.get("/ui/devices/abc")
    assert r.status_code == 422 and "device_id" in r.text


@pytest.mark.parametrize("role", ["viewer", "technician"])
def test_roles_that_cannot_read_configs_see_no_diff_links_and_get_403(web, session, vault, frozen, role) -> None:
    data = rich_device(session, vault)
    dev = data["dev"]
    client = web(role)
    r = client.get(f"/ui/devices/{dev.id}")
    assert r.status_code == 200
    assert "config-backups" in r.text  # the list of versions is not secret
    assert "/diff" not in r.text and 'data-testid="backup-diff-link"' not in r.text
    r = client.get(f"/ui/devices/{dev.id}/config-backups/{data['v2']}/diff")
    assert r.status_code == 403 and r.headers["content-type"].startswith("text/html")
    assert "CUST-42" not in r.text and "s3cret" not in r.text


@pytest.mark.parametrize("role", ["admin", "noc", "provisioner"])
def test_config_readers_see_the_diff_coloured_and_escaped(web, session, vault, frozen, role) -> None:
    data = rich_device(session, vault)
    dev = data["dev"]
    client = web(role)
    assert f"/config-backups/{data['v2']}/diff" in client.get(f"/ui/devices/{dev.id}").text
    r = client.get(f"/ui/devices/{dev.id}/config-backups/{data['v2']}/diff")
    assert r.status_code == 200, r.text
    body = r.text[r.text.index('data-testid="config-diff"') :]
    assert '<span class="hunk">@@' in body
    assert '<span class="del">- description uplink</span>' in body
    assert '<span class="del">-snmp-server community s3cret RO</span>' in body
    assert '<span class="add">+ description &lt;b&gt;CUST-42&lt;/b&gt;</span>' in body
    assert "<b>CUST-42" not in r.text
    assert '<span class="ctx"> hostname r1</span>' in body
    assert "+1" in r.text and "-2" in r.text


def test_first_version_diff_and_an_explicit_against(web, session, vault, frozen) -> None:
    data = rich_device(session, vault)
    dev = data["dev"]
    client = web("noc")
    r = client.get(f"/ui/devices/{dev.id}/config-backups/{data['v1']}/diff")
    assert r.status_code == 200 and "Nothing before" in r.text
    assert '<span class="add">+hostname r1</span>' in r.text
    r = client.get(f"/ui/devices/{dev.id}/config-backups/{data['v1']}/diff", params={"against": data["v1"]})
    assert r.status_code == 200 and "No difference." in r.text


def test_diff_bad_input(web, session, vault, frozen) -> None:
    data = rich_device(session, vault)
    dev = data["dev"]
    other = netdata.device(session, vault, "r2")
    other_backup = netdata.config(session, vault, other, "hostname r2\n")
    session.commit()
    client = web("admin")
    base = f"/ui/devices/{dev.id}/config-backups"
    r = client.get(f"{base}/{data['v2']}/diff", params={"against": "abc"})
    assert r.status_code == 422 and "against" in r.text
    r = client.get(f"{base}/{data['v2']}/diff", params={"against": 0})
    assert r.status_code == 422 and "against" in r.text
    r = client.get(f"{base}/{data['v2']}/diff", params={"against": other_backup})
    assert r.status_code == 422 and "against" in r.text and "hostname r2" not in r.text
    r = client.get(f"{base}/{other_backup}/diff")  # a backup of another device
    assert r.status_code == 404 and "no config backup" in r.text
    r = client.get(f"/ui/devices/999999/config-backups/{data['v2']}/diff")
    assert r.status_code == 404


def test_technician_sees_only_their_tickets_of_the_device(web, session, vault, frozen) -> None:
    data = rich_device(session, vault)
    dev = data["dev"]
    tech_a = web("technician", username="tech-a")
    dispatch.upsert_profile(session, username="tech-a", skills=["fiber"], sites=["*"], team="", tier=1, on_shift=True)
    mine = ticket(session, "r1", "fibre cut near r1")
    dispatch_to(session, mine.id, "tech-a")
    session.commit()
    client = web("technician", username="tech-b")
    r = client.get(f"/ui/devices/{dev.id}")
    assert "fibre cut near r1" not in r.text and "r1 uplink flapping" not in r.text
    assert "No tickets." in r.text
    # the same page for the assignee shows their ticket only; the NOC sees both
    html = tech_a.get(f"/ui/devices/{dev.id}").text
    assert re.findall(r'<tr data-ticket-id="(\d+)">', html) == [str(mine.id)]
    html = web("noc").get(f"/ui/devices/{dev.id}").text
    assert re.findall(r'<tr data-ticket-id="(\d+)">', html) == [str(mine.id), str(data["ticket"].id)]


def test_device_supplied_strings_are_escaped(web, session, vault, frozen) -> None:
    netdata.site(session, XSS)
    dev = netdata.device(session, vault, "x1", site=XSS, ports=0, vendor=XSS, platform=XSS)
    # strings that come from the device over SNMP: sysName, sysDescr, a new port's ifName/ifAlias
    netdata.poll(
        session,
        dev,
        sys_name=XSS,
        sys_descr=XSS,
        sys_location=XSS,
        interfaces=[InterfaceState(7, XSS, alias=XSS, admin_status="up", oper_status="up")],
    )
    netdata.traffic(session, dev, XSS, in_bps=1e6, out_bps=1e6, minutes=2)
    make_alarm(session, device="x1", severity="major", alarm_type=XSS)
    ticket(session, "x1", XSS)
    session.commit()
    client = web("noc")
    for path in (f"/ui/devices/{dev.id}", "/ui/devices", "/ui/topology"):
        r = client.get(path)
        assert r.status_code == 200, path
        assert XSS not in r.text, path
        assert XSS_ESCAPED in r.text, path
    html = client.get(f"/ui/devices/{dev.id}").text
    assert html.count(XSS_ESCAPED) >= 9  # sysName, sysDescr, sysLocation, ifName, ifAlias, graph, site, vendor, ...


# ---- device list -------------------------------------------------------------------------


def fleet(session, vault):
    netdata.site(session, "pop-a")
    netdata.site(session, "pop-b")
    made = {}
    for name, role, site in (
        ("core-a1", "core", "pop-a"),
        ("dist-a1", "distribution", "pop-a"),
        ("acc-a1", "access", "pop-a"),
        ("acc-a2", "access", "pop-a"),
        ("acc-b1", "access", "pop-b"),
        ("cpe-x1", "cpe", None),
    ):
        made[name] = netdata.device(session, vault, name, role=role, site=site, ports=1)
    netdata.poll(session, made["core-a1"])
    netdata.failed_poll(session, made["acc-a2"])
    make_alarm(session, device="acc-a2", severity="critical")
    make_alarm(session, device="acc-a2", severity="minor")
    make_alarm(session, device="dist-a1", severity="warning")
    session.commit()
    return made


def listed(html: str) -> list[str]:
    return re.findall(r'<td><a href="/ui/devices/\d+">([^<]+)</a></td>', html)


def test_device_list_with_reachability_worst_alarm_filters_and_pages(web, session, vault, frozen) -> None:
    made = fleet(session, vault)
    client = web("viewer")
    r = client.get("/ui/devices")
    assert r.status_code == 200, r.text
    assert listed(r.text) == ["acc-a1", "acc-a2", "acc-b1", "core-a1", "cpe-x1", "dist-a1"]
    row = r.text[r.text.index(f'data-device-id="{made["acc-a2"].id}"') :].split("</tr>")[0]
    assert "unreachable" in row and "sev-critical" in row and ">2<" in row
    row = r.text[r.text.index(f'data-device-id="{made["core-a1"].id}"') :].split("</tr>")[0]
    assert ">reachable<" in row and ">none<" in row
    assert "1–6 of 6" in r.text

    assert listed(client.get("/ui/devices", params={"site": "pop-a"}).text) == [
        "acc-a1",
        "acc-a2",
        "core-a1",
        "dist-a1",
    ]
    assert listed(client.get("/ui/devices", params={"role": "access"}).text) == ["acc-a1", "acc-a2", "acc-b1"]
    assert listed(client.get("/ui/devices", params={"role": "access", "site": "pop-b"}).text) == ["acc-b1"]
    assert listed(client.get("/ui/devices", params={"q": "a1"}).text) == ["acc-a1", "core-a1", "dist-a1"]
    assert listed(client.get("/ui/devices", params={"q": "%"}).text) == []  # literal, not a wildcard
    # empty filters (an unset <select>) mean "all"
    assert len(listed(client.get("/ui/devices", params={"site": "", "role": "", "q": ""}).text)) == 6

    r = client.get("/ui/devices", params={"limit": 2, "offset": 2, "role": "access"})
    assert listed(r.text) == ["acc-b1"] and "3–3 of 3" in r.text
    assert 'href="/ui/devices?role=access&amp;limit=2&amp;offset=0"' in r.text
    r = client.get("/ui/devices", params={"limit": 2})
    assert listed(r.text) == ["acc-a1", "acc-a2"]
    assert 'href="/ui/devices?limit=2&amp;offset=2"' in r.text and "previous" not in r.text


def test_device_list_htmx_filter_returns_the_table_only(web, session, vault, frozen) -> None:
    fleet(session, vault)
    client = web("noc")
    r = client.get("/ui/devices", params={"role": "core"}, headers={"HX-Request": "true", "HX-Target": "device-table"})
    assert r.status_code == 200
    assert "<html" not in r.text and listed(r.text) == ["core-a1"]
    # a history restore (no target) gets the whole page
    r = client.get("/ui/devices", params={"role": "core"}, headers={"HX-Request": "true"})
    assert "<html" in r.text


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"role": "edge"}, "role"),
        ({"site": "atlantis"}, "site"),
        ({"limit": 0}, "limit"),
        ({"limit": 100000}, "limit"),
        ({"offset": -1}, "offset"),
        ({"limit": "many"}, "limit"),
        ({"q": "x" * 101}, "q"),
    ],
)
def test_device_list_bad_query_params_name_the_field(web, params, field) -> None:
    r = web("viewer").get("/ui/devices", params=params)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("text/html")
    assert re.search(rf"\b{field}\b", r.text)


def test_device_list_and_page_queries_do_not_grow(web, session, vault, runtime, frozen) -> None:
    client = web("noc")
    netdata.site(session, "pop")

    def add(n: int, start: int, ports: int) -> list:
        devs = []
        for i in range(start, start + n):
            dev = netdata.device(session, vault, f"n{i:03d}", site="pop", ports=ports)
            netdata.poll(
                session, dev, interfaces=[InterfaceState(k, f"Gi0/{k}", oper_status="up") for k in range(1, ports + 1)]
            )
            for k in range(1, ports + 1):
                netdata.traffic(session, dev, f"Gi0/{k}", in_bps=1e6 * k, out_bps=1e5, minutes=3)
            make_alarm(session, device=dev.hostname, severity="minor")
            ticket(session, dev.hostname, f"ticket of {dev.hostname}")
            netdata.config(session, vault, dev, f"hostname {dev.hostname}\n")
            devs.append(dev)
        session.commit()
        return devs

    small = add(2, 0, ports=2)[0]
    statements, stop = count_statements(runtime)
    try:
        client.get("/ui/devices")
        list_few = len(statements)
        statements.clear()
        client.get(f"/ui/devices/{small.id}")
        page_few = len(statements)
        big = add(10, 2, ports=12)[-1]
        statements.clear()
        r = client.get("/ui/devices")
        assert len(listed(r.text)) == 12 and len(statements) == list_few
        statements.clear()
        r = client.get(f"/ui/devices/{big.id}")
        assert r.text.count('data-testid="interface-row"') == 12
        assert len(statements) == page_few, statements
    finally:
        stop()
