"""Topology root cause as pure functions, with Hypothesis properties."""

from hypothesis import given, settings
from hypothesis import strategies as st

from alarms.topology import Graph, causes, reachable


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
