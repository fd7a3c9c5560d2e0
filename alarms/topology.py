"""Topology root cause, as pure functions over a small graph.

Nodes are device hostnames; edges are links (manual and LLDP-discovered, state active)
and declared dependencies. The poller sits behind the *root* devices. A device is cut
off when every path from a root to it crosses a failed device or a failed link; its
cause is the nearest failure on the boundary between what the poller still reaches and
what it does not. Redundancy falls out of the reachability: a device with two uplinks is
cut off only when both are down.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Edge:
    neighbor: str
    link_id: int | None  # None for a declared dependency


@dataclass
class Graph:
    adjacency: dict[str, list[Edge]] = field(default_factory=dict)
    roots: frozenset[str] = frozenset()
    # (hostname, interface name) -> link id, and link id -> its two ends
    interface_link: dict[tuple[str, str], int] = field(default_factory=dict)
    link_ends: dict[int, tuple[tuple[str, str], tuple[str, str]]] = field(default_factory=dict)
    device_site: dict[str, str] = field(default_factory=dict)
    device_tags: dict[str, frozenset[str]] = field(default_factory=dict)

    def add_device(self, name: str) -> None:
        self.adjacency.setdefault(name, [])

    def add_link(self, link_id: int, a: tuple[str, str], b: tuple[str, str]) -> None:
        self.add_device(a[0])
        self.add_device(b[0])
        self.adjacency[a[0]].append(Edge(b[0], link_id))
        self.adjacency[b[0]].append(Edge(a[0], link_id))
        self.interface_link[a] = link_id
        self.interface_link[b] = link_id
        self.link_ends[link_id] = (a, b)

    def add_dependency(self, child: str, parent: str) -> None:
        self.add_device(child)
        self.add_device(parent)
        self.adjacency[child].append(Edge(parent, None))
        self.adjacency[parent].append(Edge(child, None))


Cause = tuple[str, str | int]  # ("device", hostname) or ("link", link id)


def reachable(graph: Graph, failed_devices: set[str], failed_links: set[int]) -> set[str]:
    """Devices the poller still reaches: BFS from healthy roots over healthy links and devices."""
    seen = {r for r in graph.roots if r not in failed_devices and r in graph.adjacency}
    queue = deque(seen)
    while queue:
        node = queue.popleft()
        for edge in graph.adjacency.get(node, ()):
            if edge.neighbor in seen or edge.neighbor in failed_devices:
                continue
            if edge.link_id is not None and edge.link_id in failed_links:
                continue
            seen.add(edge.neighbor)
            queue.append(edge.neighbor)
    return seen


def causes(
    graph: Graph, failed_devices: set[str], failed_links: set[int], devices: Iterable[str]
) -> dict[str, Cause | None]:
    """For each given device the poller cannot reach, the nearest failure that cut it off.

    A device the poller reaches maps to None (it is not a symptom). A failed device next
    to the reachable part (or a failed root) is its own cause: a root cause.
    """
    reach = reachable(graph, failed_devices, failed_links)
    result: dict[str, Cause | None] = {}
    for device in devices:
        if device in reach or device not in graph.adjacency or not graph.roots:
            result[device] = None
            continue
        result[device] = _nearest_cause(graph, device, reach, failed_devices, failed_links)
    return result


def _nearest_cause(
    graph: Graph, start: str, reach: set[str], failed_devices: set[str], failed_links: set[int]
) -> Cause | None:
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
            # A failed device beats its own links: the links of a dead box are symptoms.
            devices = [c for c in candidates if c[0] == "device"]
            return devices[0] if devices else candidates[0]
        for edge in sorted(graph.adjacency.get(node, ()), key=lambda e: e.neighbor):
            if edge.neighbor not in seen and edge.neighbor not in reach:
                seen.add(edge.neighbor)
                queue.append(edge.neighbor)
    return None


def interface_of(managed_object: str) -> str | None:
    """'interface:Gi0/1' -> 'Gi0/1'; anything else -> None."""
    kind, sep, name = managed_object.partition(":")
    return name if sep and kind == "interface" and name else None
