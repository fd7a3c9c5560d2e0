"""Topology map layout: a pure, deterministic function from devices and links to coordinates.

Devices sit in horizontal tiers by role (core on top, then distribution, access, and
everything else); inside a tier, each site is a block of slots (a grid of at most
``max_cols`` columns, devices in natural hostname order) and blocks are packed left to
right onto shelves that wrap, ordered by where their neighbours in the tiers above sit
(the barycentre heuristic of layered graph drawing, so links cross less). Every
node owns one slot and every block its own rectangle, so no two nodes overlap whatever
the input; a few hundred devices give a map a NOC can still scroll through.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

TIER_OF_ROLE = {"core": 0, "distribution": 1, "access": 2}
TIER_LABELS = ("core", "distribution", "access", "CPE and other")
OTHER_TIER = 3

SLOT_W = 96  # one node's cell: circle, and its label below
SLOT_H = 58
NODE_R = 9
GROUP_LABEL_H = 18  # the site name above its block
GROUP_GAP = 28  # horizontal space between site blocks on a shelf
SHELF_GAP = 10
TIER_LABEL_H = 24
TIER_GAP = 18
MARGIN = 16
NO_SITE = "(no site)"


@dataclass(frozen=True, slots=True)
class NodeIn:
    id: int
    hostname: str
    role: str
    site: str | None


@dataclass(frozen=True, slots=True)
class EdgeIn:
    key: int  # e.g. the link id
    a: int  # device ids
    b: int


@dataclass(frozen=True, slots=True)
class PlacedNode:
    id: int
    x: float  # centre of the circle
    y: float


@dataclass(frozen=True, slots=True)
class PlacedEdge:
    key: int
    a: int
    b: int
    x1: float
    y1: float
    x2: float
    y2: float


@dataclass(frozen=True, slots=True)
class GroupBox:
    """A site's block inside a tier: the rectangle its nodes' slots fill, label included."""

    tier: int
    site: str
    x: float
    y: float
    width: float
    height: float


@dataclass(frozen=True, slots=True)
class TierBand:
    tier: int
    label: str
    y: float  # top of the tier (its label's line)
    height: float


@dataclass(frozen=True, slots=True)
class Layout:
    width: float
    height: float
    nodes: dict[int, PlacedNode]
    edges: list[PlacedEdge]
    groups: list[GroupBox]
    tiers: list[TierBand]


def tier_of(role: str) -> int:
    return TIER_OF_ROLE.get(role, OTHER_TIER)


def layout(nodes: Sequence[NodeIn], edges: Sequence[EdgeIn], *, max_cols: int = 24) -> Layout:
    """Place ``nodes`` and draw ``edges`` between them; edges with an end not in ``nodes``
    (or from a node to itself) are left out. The result depends only on the input set,
    never on its order."""
    if max_cols < 1:
        raise ValueError("max_cols: expected at least 1")
    by_tier: dict[int, dict[str | None, list[NodeIn]]] = {}
    for n in sorted(nodes, key=lambda n: (tier_of(n.role), natural(n.hostname), n.hostname, n.id)):
        by_tier.setdefault(tier_of(n.role), {}).setdefault(n.site, []).append(n)
    neighbours: dict[int, set[int]] = {}
    for e in edges:
        if e.a != e.b:
            neighbours.setdefault(e.a, set()).add(e.b)
            neighbours.setdefault(e.b, set()).add(e.a)

    placed: dict[int, PlacedNode] = {}
    groups: list[GroupBox] = []
    tiers: list[TierBand] = []
    shelf_limit = max_cols * SLOT_W
    width = 0.0
    y = float(MARGIN)
    # Tiers top to bottom; inside a tier, the site blocks in the order of where their
    # devices' neighbours above sit (barycentre), so that links cross less. Each shelf is
    # centred on the widest possible one, then everything shifts once the real width is known.
    for tier in sorted(by_tier):
        top = y
        y += TIER_LABEL_H

        def pull(site: str | None, members: list[NodeIn]) -> tuple[float, tuple[tuple[int, int | str], ...], str]:
            xs = sorted(placed[m].x for n in members for m in neighbours.get(n.id, ()) if m in placed)
            centre = sum(xs) / len(xs) if xs else math.inf  # sorted: the same float sum whatever the input order
            return (centre, natural(site or "~"), site or "")

        blocks = sorted(by_tier[tier].items(), key=lambda kv: pull(*kv))
        shelves: list[list[tuple[str | None, list[NodeIn], int, int]]] = [[]]
        used = 0.0
        for site, members in blocks:
            cols = min(len(members), max_cols)
            block_rows = math.ceil(len(members) / cols)
            block_w = cols * SLOT_W
            if shelves[-1] and used + GROUP_GAP + block_w > shelf_limit:
                shelves.append([])
                used = 0.0
            used += (GROUP_GAP if shelves[-1] else 0) + block_w
            shelves[-1].append((site, members, cols, block_rows))
            width = max(width, used)
        for i, shelf in enumerate(shelves):
            if i:
                y += SHELF_GAP
            shelf_w = sum(cols * SLOT_W for _s, _m, cols, _r in shelf) + GROUP_GAP * (len(shelf) - 1)
            # provisional x (centred on the running width); shifted to the final width below
            x = MARGIN + (shelf_limit - shelf_w) / 2
            shelf_h = 0.0
            for site, members, cols, block_rows in shelf:
                block_h = GROUP_LABEL_H + block_rows * SLOT_H
                groups.append(GroupBox(tier, NO_SITE if site is None else site, x, y, cols * SLOT_W, block_h))
                for k, n in enumerate(members):
                    row, col = divmod(k, cols)
                    cx = x + col * SLOT_W + SLOT_W / 2
                    cy = y + GROUP_LABEL_H + row * SLOT_H + NODE_R + 6
                    placed[n.id] = PlacedNode(n.id, cx, cy)
                x += cols * SLOT_W + GROUP_GAP
                shelf_h = max(shelf_h, block_h)
            y += shelf_h
        tiers.append(TierBand(tier, TIER_LABELS[tier], top, y - top))
        y += TIER_GAP

    # Every shelf was centred on the widest possible shelf; centre on the widest real one.
    shift = (width - shelf_limit) / 2
    if shift:
        placed = {k: PlacedNode(p.id, p.x + shift, p.y) for k, p in placed.items()}
        groups = [GroupBox(g.tier, g.site, g.x + shift, g.y, g.width, g.height) for g in groups]

    lines = []
    for e in sorted(edges, key=lambda e: e.key):
        a, b = placed.get(e.a), placed.get(e.b)
        if a is None or b is None or e.a == e.b:
            continue
        lines.append(PlacedEdge(e.key, e.a, e.b, a.x, a.y, b.x, b.y))
    height = y - TIER_GAP + MARGIN if by_tier else 2.0 * MARGIN
    return Layout(width + 2 * MARGIN, height, placed, lines, groups, tiers)


def natural(text: str) -> tuple[tuple[int, int | str], ...]:
    """Sort key: "acc2" before "acc10"."""
    return tuple((0, int(part)) if part.isdigit() else (1, part) for part in re.split(r"(\d+)", text) if part)


def label(hostname: str, limit: int = 13) -> str:
    """A node's caption fits its slot; the full name is in the tooltip."""
    return hostname if len(hostname) <= limit else hostname[: limit - 1] + "…"
