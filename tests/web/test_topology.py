"""Topology map: the layout function's properties, and the page over real inventory data."""

from __future__ import annotations

import random
import re
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import event

from api.web import topology
from api.web.topology import SLOT_H, SLOT_W, EdgeIn, NodeIn, layout
from collectors.snmp_poll import InterfaceState
from faultloop import clock
from lab.topology import generate_topology
from tests.ticketing.conftest import make_alarm
from tests.web import netdata

# ---- the layout function -----------------------------------------------------------------


def assert_no_overlap(geo: topology.Layout) -> None:
    """Every node owns a SLOT_W x SLOT_H cell: two centres closer than that on both axes overlap."""
    points = sorted((p.x, p.y) for p in geo.nodes.values())
    by_row: dict[float, list[float]] = {}
    for x, y in points:
        by_row.setdefault(y, []).append(x)
    for xs in by_row.values():
        assert all(b - a >= SLOT_W - 1e-6 for a, b in zip(xs, xs[1:], strict=False))
    ys = sorted(by_row)
    assert all(b - a >= SLOT_H - 1e-6 for a, b in zip(ys, ys[1:], strict=False))
    for p in geo.nodes.values():  # inside the canvas
        assert 0 < p.x < geo.width and 0 < p.y < geo.height


def assert_edges_between_their_nodes(geo: topology.Layout, edges: list[EdgeIn]) -> None:
    drawable = [e for e in edges if e.a in geo.nodes and e.b in geo.nodes and e.a != e.b]
    assert sorted(e.key for e in geo.edges) == sorted(e.key for e in drawable)
    for line in geo.edges:
        a, b = geo.nodes[line.a], geo.nodes[line.b]
        assert (line.x1, line.y1, line.x2, line.y2) == (a.x, a.y, b.x, b.y)


def lab_graph(n: int) -> tuple[list[NodeIn], list[EdgeIn]]:
    topo = generate_topology(n)
    ids = {d.name: i for i, d in enumerate(topo.devices, start=1)}
    nodes = [NodeIn(ids[d.name], d.name, d.role, d.site) for d in topo.devices]
    edges = [EdgeIn(k, ids[a], ids[b]) for k, (a, _ai, b, _bi) in enumerate(topo.links, start=1)]
    return nodes, edges


def test_lab_network_of_500_devices_lays_out_in_role_tiers_grouped_by_site() -> None:
    nodes, edges = lab_graph(500)
    geo = layout(nodes, edges)
    assert len(geo.nodes) == 500
    assert_no_overlap(geo)
    assert_edges_between_their_nodes(geo, edges)
    assert len(geo.edges) == len(edges) > 500
    # tiers top to bottom: every core node above every distribution node, and so on
    lowest_of_tier: dict[int, float] = {}
    highest_of_tier: dict[int, float] = {}
    for n in nodes:
        t, y = topology.tier_of(n.role), geo.nodes[n.id].y
        lowest_of_tier[t] = max(lowest_of_tier.get(t, y), y)
        highest_of_tier[t] = min(highest_of_tier.get(t, y), y)
    tiers = sorted(lowest_of_tier)
    assert tiers == [0, 1, 2, 3]
    for upper, lower in zip(tiers, tiers[1:], strict=False):
        assert lowest_of_tier[upper] < highest_of_tier[lower]
    assert [t.label for t in geo.tiers] == ["core", "distribution", "access", "CPE and other"]
    # each site's nodes of a tier sit inside that site's block, and blocks never overlap
    boxes = {(g.tier, g.site): g for g in geo.groups}
    for n in nodes:
        g, p = boxes[(topology.tier_of(n.role), n.site)], geo.nodes[n.id]
        assert g.x < p.x < g.x + g.width and g.y < p.y < g.y + g.height
    for i, g in enumerate(geo.groups):
        for h in geo.groups[i + 1 :]:
            apart = g.x + g.width <= h.x or h.x + h.width <= g.x or g.y + g.height <= h.y or h.y + h.height <= g.y
            assert apart, (g, h)
    # bounded width: a few hundred devices wrap onto shelves instead of one endless row
    assert geo.width <= 24 * SLOT_W + 2 * topology.MARGIN


def test_layout_is_deterministic_whatever_the_input_order() -> None:
    nodes, edges = lab_graph(60)
    first = layout(nodes, edges)
    rng = random.Random(7)
    for _ in range(3):
        rng.shuffle(nodes)
        rng.shuffle(edges)
        again = layout(nodes, edges)
        assert again.nodes == first.nodes and again.edges == first.edges and again.groups == first.groups


def test_edges_to_nodes_not_shown_and_self_loops_are_left_out() -> None:
    nodes = [NodeIn(1, "c1", "core", "pop"), NodeIn(2, "a1", "access", None)]
    edges = [EdgeIn(10, 1, 2), EdgeIn(11, 1, 99), EdgeIn(12, 2, 2)]
    geo = layout(nodes, edges)
    assert [e.key for e in geo.edges] == [10]
    assert_edges_between_their_nodes(geo, edges)
    assert {g.site for g in geo.groups} == {"pop", topology.NO_SITE}
    assert layout([], []).nodes == {}
    with pytest.raises(ValueError, match="max_cols"):
        layout(nodes, edges, max_cols=0)


ROLES = ["core", "distribution", "access", "cpe", "server", "other", "unknown-role"]


@settings(max_examples=150, deadline=None, derandomize=True)
@given(
    st.lists(
        st.tuples(st.sampled_from(ROLES), st.one_of(st.none(), st.sampled_from(["a", "b", "c", "d", "e"]))),
        max_size=120,
    ),
    st.lists(st.tuples(st.integers(0, 130), st.integers(0, 130)), max_size=150),
    st.integers(1, 30),
)
def test_layout_properties(specs, pairs, max_cols) -> None:
    nodes = [NodeIn(i, f"d{i}", role, site) for i, (role, site) in enumerate(specs)]
    edges = [EdgeIn(k, a, b) for k, (a, b) in enumerate(pairs)]
    geo = layout(nodes, edges, max_cols=max_cols)
    assert set(geo.nodes) == {n.id for n in nodes}
    assert_no_overlap(geo)
    assert_edges_between_their_nodes(geo, edges)
    assert geo.width <= max(max_cols * SLOT_W, 0) + 2 * topology.MARGIN + 1e-6


def test_site_blocks_follow_their_uplinks_and_hostnames_sort_naturally() -> None:
    nodes = [
        NodeIn(1, "core1", "core", "p"),
        NodeIn(2, "core2", "core", "p"),
        NodeIn(3, "d-a", "distribution", "a-site"),  # hangs off core2 (right)
        NodeIn(4, "d-b", "distribution", "b-site"),  # hangs off core1 (left)
        NodeIn(5, "acc10", "access", "b-site"),
        NodeIn(6, "acc9", "access", "b-site"),
    ]
    geo = layout(nodes, [EdgeIn(1, 2, 3), EdgeIn(2, 1, 4), EdgeIn(3, 4, 5)])
    assert geo.nodes[1].x < geo.nodes[2].x
    assert geo.nodes[4].x < geo.nodes[3].x  # b-site before a-site: below its uplink
    assert geo.nodes[6].x < geo.nodes[5].x  # acc9 before acc10
    assert topology.natural("acc9") < topology.natural("acc10") < topology.natural("acc10b")


def test_labels_fit_their_slot() -> None:
    assert topology.label("core1") == "core1"
    assert topology.label("a-very-long-hostname.example.net") == "a-very-long-…"


# ---- the page ----------------------------------------------------------------------------


@pytest.fixture
def frozen():
    c = clock.FrozenClock(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
    with clock.use(c):
        yield c


def small_network(session, vault):
    for s in ("pop-north", "pop-south"):
        netdata.site(session, s)
    c1 = netdata.device(session, vault, "core1", role="core", site="pop-north", ports=3)
    c2 = netdata.device(session, vault, "core2", role="core", site="pop-south", ports=3)
    d1 = netdata.device(session, vault, "dist1", role="distribution", site="pop-north", ports=3)
    a1 = netdata.device(session, vault, "acc1", role="access", site="pop-north", ports=3)
    cpe = netdata.device(session, vault, "cpe1", role="cpe", ports=1)
    netdata.link(session, "core1", "Gi0/1", "core2", "Gi0/1")
    netdata.link(session, "core1", "Gi0/2", "dist1", "Gi0/1")
    netdata.link(session, "dist1", "Gi0/2", "acc1", "Gi0/1")
    lldp = netdata.discovered_link(session, a1, "Gi0/2", 2, "cpe1", "Gi0/1")
    # acc1's uplink port is down: the dist1-acc1 link is drawn as down
    netdata.poll(
        session,
        a1,
        interfaces=[
            InterfaceState(1, "Gi0/1", admin_status="up", oper_status="down"),
            InterfaceState(2, "Gi0/2", admin_status="up", oper_status="up"),
        ],
    )
    netdata.poll(session, c1)
    netdata.failed_poll(session, c2)
    make_alarm(session, device="dist1", severity="minor")
    make_alarm(session, device="dist1", severity="critical")
    make_alarm(session, device="acc1", severity="warning")
    make_alarm(session, device="core1", severity="critical", muted=True)  # muted: does not colour
    session.commit()
    return {"core1": c1, "core2": c2, "dist1": d1, "acc1": a1, "cpe1": cpe, "lldp": lldp}


NODE_RE = re.compile(r"<a href=\"/ui/devices/(\d+)\" class=\"topo-node ([^\"]*)\" data-testid=\"topo-node\" "
                     r"data-device-id=\"(\d+)\" data-severity=\"([a-z]+)\" data-reachable=\"([a-z]+)\">")  # fmt: skip


def nodes_of(html: str) -> dict[int, tuple[str, str, str]]:
    found = {}
    for href_id, css, dev_id, severity, reach in NODE_RE.findall(html):
        assert href_id == dev_id
        found[int(dev_id)] = (severity, reach, css)
    return found


def test_map_shows_every_device_coloured_by_worst_alarm_and_reachability(web, session, vault, frozen) -> None:
    net = small_network(session, vault)
    r = web("viewer").get("/ui/topology")
    assert r.status_code == 200, r.text
    assert 'data-testid="topology"' in r.text
    nodes = nodes_of(r.text)
    assert set(nodes) == {d.id for k, d in net.items() if k != "lldp"}
    assert nodes[net["dist1"].id][:2] == ("critical", "unknown")
    assert nodes[net["acc1"].id][:2] == ("warning", "yes")
    assert nodes[net["core1"].id][:2] == ("none", "yes")  # its only alarm is muted
    assert nodes[net["core2"].id][:2] == ("none", "no")
    assert "unreachable" in nodes[net["core2"].id][2]
    assert nodes[net["cpe1"].id][:2] == ("none", "unknown")
    # four links (three manual, one LLDP-discovered); the one with acc1's down port is marked
    lines = re.findall(r'<line class="(link [^"]*)"[^>]*data-testid="topo-link"><title>([^<]*)</title>', r.text)
    assert len(lines) == 4
    down = [title for css, title in lines if "link-down" in css]
    assert len(down) == 1 and "dist1 Gi0/2" in down[0] and "acc1 Gi0/1 (down)" in down[0]
    assert any("discovered link" in title for _css, title in lines)
    # tooltips, and no inline styles anywhere (CSP style-src 'self')
    assert "dist1\npop-north · distribution · cisco ios\nnot polled yet\n2 active alarm(s), worst critical" in r.text
    assert "style=" not in r.text
    assert "4 links" in r.text and "1 unreachable" in r.text


def test_map_site_filter_and_bad_site(web, session, vault, frozen) -> None:
    net = small_network(session, vault)
    client = web("technician")
    r = client.get("/ui/topology", params={"site": "pop-north"})
    assert r.status_code == 200
    assert set(nodes_of(r.text)) == {net["core1"].id, net["dist1"].id, net["acc1"].id}
    r = client.get("/ui/topology", params={"site": "atlantis"})
    assert r.status_code == 422 and "site" in r.text and "atlantis" in r.text
    r = client.get("/ui/topology", params={"site": "x" * 101})
    assert r.status_code == 422 and "site" in r.text
    r = client.get("/ui/topology", params={"fit": "true"})
    assert r.status_code == 200 and 'class="topology fit"' in r.text
    r = client.get("/ui/topology", params={"fit": "maybe"})
    assert r.status_code == 422 and "fit" in r.text


def test_site_names_are_escaped_on_the_map(web, session, vault, frozen) -> None:
    netdata.site(session, '<script>alert("s")</script>')
    netdata.device(session, vault, "evil1", role="core", site='<script>alert("s")</script>')
    session.commit()
    r = web("noc").get("/ui/topology")
    assert r.status_code == 200
    assert '<script>alert("s")' not in r.text
    assert "&lt;script&gt;alert(&#34;s&#34;)&lt;/script&gt;" in r.text


def count_statements(runtime):
    statements: list[str] = []

    def before(conn, cursor, statement, *args):
        statements.append(statement)

    event.listen(runtime.engine, "before_cursor_execute", before)
    return statements, lambda: event.remove(runtime.engine, "before_cursor_execute", before)


def test_map_queries_do_not_grow_with_the_number_of_devices(web, session, vault, runtime, frozen) -> None:
    client = web("noc")
    netdata.site(session, "pop")

    def grow(start: int, n: int) -> None:
        for i in range(start, start + n):
            dev = netdata.device(session, vault, f"sw{i}", role="access", site="pop", ports=2)
            netdata.poll(session, dev, interfaces=[InterfaceState(1, "Gi0/1", oper_status="up")])
            make_alarm(session, device=dev.hostname, severity="major")
            if i > 0:
                netdata.link(session, f"sw{i - 1}", "Gi0/2", f"sw{i}", "Gi0/1")
        session.commit()

    grow(0, 3)
    statements, stop = count_statements(runtime)
    try:
        assert client.get("/ui/topology").status_code == 200
        few = len(statements)
        grow(3, 12)
        statements.clear()
        r = client.get("/ui/topology")
        assert r.status_code == 200 and len(nodes_of(r.text)) == 15
        assert len(statements) == few, statements
    finally:
        stop()
