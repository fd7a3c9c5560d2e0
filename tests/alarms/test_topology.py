"""Topology root cause as pure functions, with Hypothesis properties."""

from collections import deque

from hypothesis import given, settings
from hypothesis import strategies as st

from alarms.topology import Cause, Graph, causes, reachable


def chain() -> Graph:
    g = Graph()
    g.add_link(1, ("core", "p1"), ("agg", "u"))
    g.add_link(2, ("agg", "d1"), ("acc1", "u"))
    g.add_link(3, ("agg", "d2"), ("acc2", "u"))
    g.add_link(4, ("acc2", "d"), ("cpe", "u"))
    g.roots = frozenset({"core"})
    return g


def test_failed_device_is_the_cause_of_everything_behind_it():
    g = chain()
    result = causes(g, {"agg", "acc1", "cpe"}, set(), ["agg", "acc1", "acc2", "cpe", "core"])
    assert result == {
        "agg": ("device", "agg"),
        "acc1": ("device", "agg"),
        "acc2": ("device", "agg"),
        "cpe": ("device", "agg"),
        "core": None,
    }


def test_failed_link_cuts_off_the_far_side_only():
    g = chain()
    assert causes(g, set(), {3}, ["acc1", "acc2", "cpe"]) == {"acc1": None, "acc2": ("link", 3), "cpe": ("link", 3)}


def test_redundant_uplinks():
    g = chain()
    g.add_link(5, ("core", "p2"), ("acc2", "u2"))
    assert causes(g, set(), {3}, ["acc2", "cpe"]) == {"acc2": None, "cpe": None}
    assert causes(g, set(), {3, 5}, ["acc2", "cpe"])["cpe"] in {("link", 3), ("link", 5)}


def test_declared_dependency_counts_as_a_path_and_a_failed_root():
    g = Graph()
    g.add_dependency("server", "switch")
    g.add_dependency("switch", "gw")
    g.roots = frozenset({"gw"})
    assert causes(g, {"switch"}, set(), ["server"]) == {"server": ("device", "switch")}
    assert causes(g, {"gw"}, set(), ["server"]) == {"server": ("device", "gw")}


def test_no_roots_means_no_correlation():
    g = chain()
    g.roots = frozenset()
    assert causes(g, {"agg"}, set(), ["acc1"]) == {"acc1": None}


@st.composite
def graphs(draw):
    n = draw(st.integers(2, 12))
    names = [f"d{i}" for i in range(n)]
    g = Graph()
    for name in names:
        g.add_device(name)
    link_id = 0
    for i in range(1, n):  # a spanning tree, then extra links for redundancy
        parent = draw(st.integers(0, i - 1))
        link_id += 1
        g.add_link(link_id, (names[parent], f"to{i}"), (names[i], f"up{link_id}"))
    for _ in range(draw(st.integers(0, n))):
        a, b = draw(st.integers(0, n - 1)), draw(st.integers(0, n - 1))
        if a != b:
            link_id += 1
            g.add_link(link_id, (names[a], f"x{link_id}"), (names[b], f"y{link_id}"))
    g.roots = frozenset({names[0]})
    failed_devices = set(draw(st.lists(st.sampled_from(names), max_size=n)))
    failed_links = set(draw(st.lists(st.integers(1, link_id), max_size=link_id)))
    return g, failed_devices, failed_links


@settings(max_examples=200, deadline=None)
@given(graphs())
def test_every_cut_off_device_has_a_failed_cause_on_the_boundary(case):
    g, failed_devices, failed_links = case
    reach = reachable(g, failed_devices, failed_links)
    result = causes(g, failed_devices, failed_links, list(g.adjacency))
    for device, cause in result.items():
        if device in reach:
            assert cause is None
            continue
        assert cause is not None, device
        kind, what = cause
        if kind == "device":
            assert what in failed_devices
            # next to the reachable part, or a failed root
            assert what in g.roots or any(e.neighbor in reach for e in g.adjacency[what])
        else:
            assert what in failed_links
            ends = g.link_ends[what]
            assert ends[0][0] in reach or ends[1][0] in reach


@settings(max_examples=200, deadline=None)
@given(graphs(), st.data())
def test_more_failures_never_reach_more(case, data):
    g, failed_devices, failed_links = case
    extra = data.draw(st.sets(st.sampled_from(sorted(g.adjacency))))
    assert reachable(g, failed_devices | extra, failed_links) <= reachable(g, failed_devices, failed_links)


def storm_graph(per_agg: int, aggs: int = 20) -> Graph:
    """The scale bench's storm tree: gw -> core -> aggregation routers -> access devices."""
    g = Graph()
    g.add_link(1, ("storm-gw", "Gi0/1"), ("storm-core", "Gi0/0"))
    link = 2
    for a in range(aggs):
        g.add_link(link, ("storm-core", f"Gi1/{a + 1}"), (f"storm-agg{a + 1}", "Gi0/0"))
        link += 1
        for i in range(per_agg):
            g.add_link(link, (f"storm-agg{a + 1}", f"Gi0/{i + 1}"), (f"storm-acc{a + 1}-{i + 1}", "Gi0/0"))
            link += 1
    g.roots = frozenset({"storm-gw"})
    return g


def test_a_storm_of_10000_devices_below_a_core_router_is_correlated_in_linear_time():
    """Scale bench (issue 14): each symptom's search for its cause walked every sibling below its
    aggregation router before reaching the core, O(n^2): 0.36 s per correlation for 2,000 devices
    (9 s from the last symptom to the root and ticket); 10,000 devices took 5 s. The searches now
    follow shortest paths to the boundary only."""
    import time

    g = storm_graph(per_agg=500)
    failed = set(g.adjacency) - {"storm-gw"}
    started = time.process_time()
    result = causes(g, failed, {1}, sorted(failed))
    took = time.process_time() - started
    assert set(result.values()) == {("device", "storm-core")}
    assert took < 0.5, f"{took:.2f} s CPU for one correlation of {len(failed)} devices"


def _nearest_cause(
    graph: Graph, start: str, reach: set[str], failed_devices: set[str], failed_links: set[int]
) -> Cause | None:
    """The full search from ``start`` (before issue 14's shortcut: the definition it must agree with)."""
    seen = {start}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        if node in failed_devices and node in graph.roots:
            return ("device", node)
        candidates: list[Cause] = []
        for edge in sorted(graph.adjacency.get(node, ()), key=lambda e: (e.neighbor, e.link_id or 0)):
            if edge.neighbor in reach:
                if node in failed_devices:
                    candidates.append(("device", node))
                if edge.link_id is not None and edge.link_id in failed_links:
                    candidates.append(("link", edge.link_id))
        if candidates:
            devices = [c for c in candidates if c[0] == "device"]
            return devices[0] if devices else candidates[0]
        for edge in sorted(graph.adjacency.get(node, ()), key=lambda e: e.neighbor):
            if edge.neighbor not in seen and edge.neighbor not in reach:
                seen.add(edge.neighbor)
                queue.append(edge.neighbor)
    return None


def _nearest_cause_everywhere(g: Graph, failed: set[str], failed_links: set[int]) -> dict[str, object]:
    reach = reachable(g, failed, failed_links)
    return {
        d: (None if d in reach or not g.roots else _nearest_cause(g, d, reach, failed, failed_links))
        for d in g.adjacency
    }


@settings(max_examples=300, deadline=None)
@given(
    edges=st.lists(st.tuples(st.integers(0, 11), st.integers(0, 11), st.booleans()), min_size=1, max_size=30),
    failed=st.sets(st.integers(0, 11)),
    failed_links=st.sets(st.integers(0, 29)),
    roots=st.sets(st.integers(0, 11), min_size=1, max_size=3),
)
def test_the_shortest_path_search_finds_the_same_cause_as_the_full_search(edges, failed, failed_links, roots):
    g = Graph()
    for i, (a, b, dependency) in enumerate(edges):
        if a == b:
            continue
        if dependency:
            g.add_dependency(f"d{a}", f"d{b}")
        else:
            g.add_link(i, (f"d{a}", f"p{i}"), (f"d{b}", f"q{i}"))
    g.roots = frozenset(f"d{r}" for r in roots)
    failed_devices = {f"d{f}" for f in failed}
    assert causes(g, failed_devices, failed_links, list(g.adjacency)) == _nearest_cause_everywhere(
        g, failed_devices, failed_links
    )
