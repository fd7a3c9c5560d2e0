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
    search = _Search(graph, reach, failed_devices, failed_links)
    result: dict[str, Cause | None] = {}
    for device in devices:
        if device in reach or device not in graph.adjacency or not graph.roots:
            result[device] = None
            continue
        result[device] = search.nearest_cause(device)
    return result


class _Search:
    """The nearest-cause searches of one correlation, sharing what does not depend on the start.

    Each search is breadth first from its device over unreachable devices (neighbours in name
    order); the first node with a boundary failure (a failed root, or a failed device or link
    next to what the poller reaches) gives the cause. One BFS from the boundary gives every
    unreachable device's distance to it, and a search follows only neighbours one hop nearer:
    it finds the same node as the full search (each node of the full search that precedes that
    one at its depth, or discovers it, lies on such a path), without walking the whole cut-off
    part. A storm of 2,000 devices below a core router walked every sibling of every device,
    O(n^2): seconds per correlation round."""

    def __init__(self, graph: Graph, reach: set[str], failed_devices: set[str], failed_links: set[int]) -> None:
        self.graph = graph
        self.reach = reach
        self.failed_devices = failed_devices
        self.failed_links = failed_links
        self._candidates: dict[str, list[Cause]] = {}
        self._nearer: dict[str, list[str]] = {}
        self.distance: dict[str, int] = {}
        queue: deque[str] = deque()
        for node in graph.adjacency:
            if node in reach:
                continue
            if (node in failed_devices and node in graph.roots) or self.candidates(node):
                self.distance[node] = 0
                queue.append(node)
        while queue:
            node = queue.popleft()
            for edge in graph.adjacency.get(node, ()):
                if edge.neighbor not in self.distance and edge.neighbor not in reach:
                    self.distance[edge.neighbor] = self.distance[node] + 1
                    queue.append(edge.neighbor)

    def candidates(self, node: str) -> list[Cause]:
        found = self._candidates.get(node)
        if found is None:
            found = []
            for edge in sorted(self.graph.adjacency.get(node, ()), key=lambda e: (e.neighbor, e.link_id or 0)):
                if edge.neighbor in self.reach:
                    if node in self.failed_devices:
                        found.append(("device", node))
                    if edge.link_id is not None and edge.link_id in self.failed_links:
                        found.append(("link", edge.link_id))
            self._candidates[node] = found
        return found

    def nearer(self, node: str) -> list[str]:
        """The neighbours one hop nearer the boundary, in the full search's order."""
        found = self._nearer.get(node)
        if found is None:
            want = self.distance[node] - 1
            found = [
                e.neighbor
                for e in sorted(self.graph.adjacency.get(node, ()), key=lambda e: e.neighbor)
                if self.distance.get(e.neighbor) == want
            ]
            self._nearer[node] = found
        return found

    def nearest_cause(self, start: str) -> Cause | None:
        if start not in self.distance:
            return None  # no failure on the way to the poller: nothing explains it
        seen = {start}
        queue = deque([start])
        while queue:
            node = queue.popleft()
            if node in self.failed_devices and node in self.graph.roots:
                return ("device", node)
            candidates = self.candidates(node)
            if candidates:
                # A failed device beats its own links: the links of a dead box are symptoms.
                devices = [c for c in candidates if c[0] == "device"]
                return devices[0] if devices else candidates[0]
            for neighbor in self.nearer(node):
                if neighbor not in seen:
                    seen.add(neighbor)
                    queue.append(neighbor)
        return None


def interface_of(managed_object: str) -> str | None:
    """'interface:Gi0/1' -> 'Gi0/1'; anything else -> None."""
    kind, sep, name = managed_object.partition(":")
    return name if sep and kind == "interface" and name else None
