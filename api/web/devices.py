"""Dashboard pages: the topology map, the device list, the device page and config diffs.

Reads go through the domain services (inventory, collectors, alarms, ticketing) where
they exist, and the inventory's tables only through ``inventory.queries`` and
``inventory.service``; the few bulk projections the map and the list need (reachability,
worst active alarm, links with both ends) are one query each, never one per device.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Annotated, Any, get_args
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from alarms import queries as alarm_queries
from alarms import service as alarms
from alarms.models import Alarm
from alarms.rules import SEVERITY_RANK
from alarms.topology import interface_of
from api.deps import PageDep, SessionDep, UserDep, runtime
from api.params import MAX_ID, Id
from api.rbac import allowed_roles
from api.web import topology
from api.web.render import diff_lines, page
from collectors import backup
from collectors import service as collectors
from collectors.models import DevicePollState
from faultloop import clock
from faultloop.accounts.models import Role, User
from faultloop.errors import InvalidInput
from faultloop.runtime import Runtime
from inventory import queries
from inventory import service as inventory
from inventory.schemas import DeviceIn
from ticketing import service as ticketing

router = APIRouter(include_in_schema=False)
RuntimeDep = Annotated[Runtime, Depends(runtime)]

ROLES: tuple[str, ...] = get_args(DeviceIn.model_fields["role"].annotation)
DIFF_ROUTE = "/ui/devices/{device_id}/config-backups/{backup_id}/diff"
GRAPH_WINDOW = timedelta(hours=1)
GRAPH_W, GRAPH_H = 300, 64
GRAPH_COUNT = 8  # traffic graphs of the busiest interfaces
SAMPLE_CAP = 100_000  # samples per page; beyond, the oldest of the hour are left out
IN_BPS, OUT_BPS = "interface_in_bits_per_second", "interface_out_bits_per_second"
# fallback fill colours (devices.css sets the same through classes)
SEVERITY_FILL = {
    "critical": "#ff4d4f",
    "major": "#ff8c1a",
    "minor": "#f2c94c",
    "warning": "#56b6f7",
    "indeterminate": "#a0a7b0",
    None: "#3fb950",
}
RoleQuery = Annotated[str, Query(max_length=20, description="core, distribution, access, cpe, server, other")]
SiteQuery = Annotated[str, Query(max_length=100)]


# ---- bulk projections (one query each) ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class AlarmSummary:
    worst: str | None = None
    count: int = 0


@dataclass(frozen=True, slots=True)
class Reach:
    reachable: bool | None = None
    last_poll_at: datetime | None = None


def alarm_summaries(session: Session, hostnames: list[str] | None = None) -> dict[str, AlarmSummary]:
    """Worst severity and count of the active, unmuted alarms per device (all devices, or these)."""
    query = (
        select(Alarm.device, Alarm.severity, func.count())
        .where(Alarm.state == "active", Alarm.muted.is_(False), Alarm.device != "")
        .group_by(Alarm.device, Alarm.severity)
    )
    if hostnames is not None:
        if not hostnames:
            return {}
        query = query.where(Alarm.device.in_(hostnames))
    worst: dict[str, str] = {}
    counts: dict[str, int] = defaultdict(int)
    for device, severity, count in session.execute(query):
        counts[device] += count
        if SEVERITY_RANK.get(severity, 0) > SEVERITY_RANK.get(worst.get(device, "cleared"), 0):
            worst[device] = severity
    return {d: AlarmSummary(worst.get(d), c) for d, c in counts.items()}


def reachability(session: Session, device_ids: list[int] | None = None) -> dict[int, Reach]:
    query = select(DevicePollState.device_id, DevicePollState.reachable, DevicePollState.last_poll_at)
    if device_ids is not None:
        if not device_ids:
            return {}
        query = query.where(DevicePollState.device_id.in_(device_ids))
    return {row[0]: Reach(row[1], row[2]) for row in session.execute(query)}


def _check_role(role: str) -> str | None:
    if not role:
        return None
    if role not in ROLES:
        raise InvalidInput(f"role: expected one of {', '.join(ROLES)}", field="role")
    return role


def _check_site(session: Session, site: str) -> str | None:
    if not site:
        return None
    return inventory.site_by_name(session, site, field="site").name


# ---- topology ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MapNode:
    id: int
    hostname: str
    label: str
    role: str
    site: str | None
    vendor: str
    platform: str
    x: float
    y: float
    severity: str | None
    alarm_count: int
    reachable: bool | None
    services_hurt: int = 0  # customer services its active alarms affect
    customers_hurt: int = 0

    @property
    def fill(self) -> str:
        return SEVERITY_FILL.get(self.severity, SEVERITY_FILL[None])

    @property
    def css(self) -> str:
        parts = [f"sev-{self.severity}" if self.severity else "sev-none"]
        parts.append({True: "reachable", False: "unreachable", None: "unpolled"}[self.reachable])
        if self.services_hurt:
            parts.append("impact")
        return " ".join(parts)

    @property
    def tooltip(self) -> str:
        kind = f"{self.vendor} {self.platform}".strip()
        where = " · ".join(p for p in (self.site or "no site", self.role, kind) if p)
        reach = {True: "reachable", False: "UNREACHABLE", None: "not polled yet"}[self.reachable]
        alarm = f"{self.alarm_count} active alarm(s), worst {self.severity}" if self.severity else "no active alarms"
        text = f"{self.hostname}\n{where}\n{reach}\n{alarm}"
        if self.services_hurt:
            text += f"\naffects {_services(self.services_hurt, self.customers_hurt)}"
        return text


def _services(services: int, customers: int) -> str:
    return f"{services} service{'' if services == 1 else 's'} / {customers} customer{'' if customers == 1 else 's'}"


@dataclass(frozen=True, slots=True)
class MapEdge:
    x1: float
    y1: float
    x2: float
    y2: float
    css: str
    tooltip: str
    services_hurt: int = 0  # customer services the alarms on its two ends affect
    mx: float = 0.0  # where its impact count is drawn
    my: float = 0.0


def _impact_maps(
    session: Session,
) -> tuple[dict[str, dict[int, str]], dict[tuple[str, str], dict[int, str]]]:
    """Services (id -> customer) hurt by the active alarms, per device and per (device, interface)."""
    by_device: dict[str, dict[int, str]] = defaultdict(dict)
    by_port: dict[tuple[str, str], dict[int, str]] = defaultdict(dict)
    for hit in alarm_queries.active_impact_by_object(session):
        by_device[hit.device][hit.service_id] = hit.customer
        port = interface_of(hit.managed_object)
        if port is not None:
            by_port[(hit.device, port)][hit.service_id] = hit.customer
    return by_device, by_port


@router.get("/ui/topology", response_class=HTMLResponse)
def topology_page(
    request: Request,
    session: SessionDep,
    user: UserDep,
    site: SiteQuery = "",
    fit: Annotated[bool, Query(description="scale the map to the window")] = False,
) -> HTMLResponse:
    site_name = _check_site(session, site)
    devices = queries.devices_by_name(session, site=site_name)
    reach = reachability(session)
    alarm = alarm_summaries(session)
    links = queries.links(session)
    hurt_devices, hurt_ports = _impact_maps(session)
    geo = topology.layout(
        [topology.NodeIn(d.id, d.hostname, d.role, d.site) for d in devices],
        [topology.EdgeIn(link.id, link.a.device_id, link.b.device_id) for link in links],
    )
    names = {d.id: d.hostname for d in devices}
    nodes = []
    for d in devices:
        p = geo.nodes[d.id]
        s = alarm.get(d.hostname, AlarmSummary())
        r = reach.get(d.id, Reach())
        hurt = hurt_devices.get(d.hostname, {})
        nodes.append(
            MapNode(
                d.id,
                d.hostname,
                topology.label(d.hostname),
                d.role,
                d.site,
                d.vendor,
                d.platform,
                p.x,
                p.y,
                s.worst,
                s.count,
                r.reachable,
                len(hurt),
                len(set(hurt.values())),
            )  # fmt: skip
        )
    by_id = {link.id: link for link in links}
    edges = []
    for e in geo.edges:
        link = by_id[e.key]
        a, b = link.a, link.b
        down = "down" in (a.oper_status, b.oper_status)
        hurt = {**hurt_ports.get((names[a.device_id], a.name), {}), **hurt_ports.get((names[b.device_id], b.name), {})}
        css = " ".join(
            c
            for c in ("link", "link-down" if down else "link-up", "stale" if link.state != "active" else "",
                      "impact" if hurt else "")
            if c
        )  # fmt: skip
        tip = (
            f"{names[a.device_id]} {a.name} ({a.oper_status}) ↔ "
            f"{names[b.device_id]} {b.name} ({b.oper_status})\n{link.source} link, {link.state}"
        )
        if hurt:
            tip += f"\nits alarms affect {_services(len(hurt), len(set(hurt.values())))}"
        mx, my = (e.x1 + e.x2) / 2, (e.y1 + e.y2) / 2
        edges.append(MapEdge(e.x1, e.y1, e.x2, e.y2, css, tip, len(hurt), mx, my))
    edges.sort(key=lambda e: "link-down" in e.css)  # down links drawn last, on top
    counts = {
        "devices": len(nodes),
        "unreachable": sum(1 for n in nodes if n.reachable is False),
        "alarmed": sum(1 for n in nodes if n.severity),
        "links": len(edges),
        "links_down": sum(1 for e in edges if "link-down" in e.css),
        "impacting": sum(1 for n in nodes if n.services_hurt) + sum(1 for e in edges if e.services_hurt),
        "services_hurt": len({sid for hurt in hurt_devices.values() for sid in hurt}),
    }
    return page(
        request,
        "topology.html",
        user,
        geo=geo,
        nodes=nodes,
        edges=edges,
        counts=counts,
        sites=[s.name for s in inventory.list_sites(session)],
        site=site_name or "",
        fit=fit,
        r=topology.NODE_R,
    )


# ---- device list -------------------------------------------------------------------------


@router.get("/ui/devices", response_class=HTMLResponse)
def device_list(
    request: Request,
    session: SessionDep,
    user: UserDep,
    paging: PageDep,
    site: SiteQuery = "",
    role: RoleQuery = "",
    q: Annotated[str, Query(max_length=100, description="part of a hostname or address")] = "",
) -> HTMLResponse:
    role_name = _check_role(role)
    site_name = _check_site(session, site)
    rows, total = inventory.list_devices(
        session, limit=paging.limit, offset=paging.offset, site=site_name, role=role_name, q=q or None
    )
    reach = reachability(session, [d.id for d in rows])
    alarm = alarm_summaries(session, [d.hostname for d in rows])
    filters = {k: v for k, v in (("site", site_name), ("role", role_name), ("q", q)) if v}

    def href(offset: int) -> str:
        return "/ui/devices?" + urlencode({**filters, "limit": paging.limit, "offset": offset})

    pager = {
        "first": paging.offset + 1 if rows else 0,
        "last": paging.offset + len(rows),
        "total": total,
        "prev": href(max(0, paging.offset - paging.limit)) if paging.offset > 0 else None,
        "next": href(paging.offset + paging.limit) if paging.offset + len(rows) < total else None,
    }
    context: dict[str, Any] = {
        "devices": [(d, reach.get(d.id, Reach()), alarm.get(d.hostname, AlarmSummary())) for d in rows],
        "pager": pager,
        "filters": filters,
        "limit": paging.limit,
    }
    if request.headers.get("hx-request") == "true" and request.headers.get("hx-target") == "device-table":
        return page(request, "_device_rows.html", user, **context)
    return page(
        request,
        "devices.html",
        user,
        sites=[s.name for s in inventory.list_sites(session)],
        roles=ROLES,
        site=site_name or "",
        role=role_name or "",
        q=q,
        **context,
    )


# ---- device page -------------------------------------------------------------------------


@dataclass(slots=True)
class Series:
    times: list[datetime] = field(default_factory=list)
    values: list[float] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Graph:
    interface: str
    in_points: str
    out_points: str
    peak: float
    in_now: float | None
    out_now: float | None


def polyline(series: Series, *, start: datetime, end: datetime, peak: float, width: int, height: int) -> str:
    """SVG polyline points of ``series`` on a [start, end] x [0, peak] frame of width x height."""
    span = (end - start).total_seconds() or 1.0
    top = peak if peak > 0 else 1.0
    points = []
    for t, v in zip(series.times, series.values, strict=True):
        x = (t - start).total_seconds() / span * width
        y = height - min(max(v, 0.0), top) / top * height
        points.append(f"{min(max(x, 0.0), width):.1f},{y:.1f}")
    return " ".join(points)


def traffic(session: Session, device_id: int, *, now: datetime) -> tuple[dict[str, Series], dict[str, Series]]:
    """In and out bit rates of the last GRAPH_WINDOW per interface, from the stored samples."""
    rx: dict[str, Series] = defaultdict(Series)
    tx: dict[str, Series] = defaultdict(Series)
    rows = collectors.recent_series(
        session, device_id=device_id, metrics=(IN_BPS, OUT_BPS), since=now - GRAPH_WINDOW, limit=SAMPLE_CAP
    )
    for metric, interface, time, value in rows:
        series = (rx if metric == IN_BPS else tx)[interface]
        series.times.append(time)
        series.values.append(value)
    return rx, tx


def _graphs(rx: dict[str, Series], tx: dict[str, Series], *, now: datetime) -> list[Graph]:
    def current(series: Series | None) -> float | None:
        return series.values[-1] if series and series.values else None

    names = sorted(set(rx) | set(tx), key=lambda n: (-((current(rx.get(n)) or 0) + (current(tx.get(n)) or 0)), n))
    graphs = []
    start = now - GRAPH_WINDOW
    for name in names[:GRAPH_COUNT]:
        a, b = rx.get(name, Series()), tx.get(name, Series())
        peak = max([*a.values, *b.values, 1.0])
        graphs.append(
            Graph(
                name,
                polyline(a, start=start, end=now, peak=peak, width=GRAPH_W, height=GRAPH_H),
                polyline(b, start=start, end=now, peak=peak, width=GRAPH_W, height=GRAPH_H),
                peak,
                current(a),
                current(b),
            )
        )
    return graphs


def can_read_configs(user: User) -> bool:
    return user.role in (allowed_roles("GET", DIFF_ROUTE) or frozenset())


@router.get("/ui/devices/{device_id}", response_class=HTMLResponse)
def device_page(device_id: Id, request: Request, session: SessionDep, user: UserDep) -> HTMLResponse:
    device = inventory.get_device(session, device_id)  # 404 for an unknown id
    status = collectors.device_status(session, device_id=device_id)
    status.interfaces.sort(key=lambda i: topology.natural(i.name))  # Gi0/2 before Gi0/10
    now = clock.now()
    rx, tx = traffic(session, device_id, now=now)
    rates = {
        name: (rx[name].values[-1] if name in rx else None, tx[name].values[-1] if name in tx else None)
        for name in set(rx) | set(tx)
    }
    active, active_total = alarms.list_alarms(session, limit=100, offset=0, state="active", device=device.hostname)
    technician = ticketing.Actor.of(user) if user.role == Role.technician else None
    tickets, tickets_total = ticketing.list_tickets(
        session, limit=20, offset=0, device=device.hostname, technician=technician
    )
    backups, backups_total = backup.list_backups(session, device_id=device_id, limit=20, offset=0)
    uptime = status.sys_uptime_cs / 100 if status.sys_uptime_cs is not None else None
    return page(
        request,
        "device.html",
        user,
        device=device,
        status=status,
        uptime_s=uptime,
        rates=rates,
        graphs=_graphs(rx, tx, now=now),
        graph_w=GRAPH_W,
        graph_h=GRAPH_H,
        window_min=int(GRAPH_WINDOW.total_seconds() // 60),
        alarms=active,
        alarms_total=active_total,
        tickets=tickets,
        tickets_total=tickets_total,
        backups=backups,
        backups_total=backups_total,
        can_diff=can_read_configs(user),
    )


@router.get(DIFF_ROUTE, response_class=HTMLResponse)
def backup_diff(
    device_id: Id,
    backup_id: Id,
    request: Request,
    session: SessionDep,
    user: UserDep,
    rt: RuntimeDep,
    against: Annotated[
        int | None, Query(ge=1, le=MAX_ID, description="id of the older version (default: the one before)")
    ] = None,
) -> HTMLResponse:
    diff = backup.diff_backups(session, rt.vault, device_id=device_id, backup_id=backup_id, against=against)
    lines = diff_lines(diff.text)
    return page(
        request,
        "device_diff.html",
        user,
        device_id=device_id,
        diff=diff,
        lines=lines,
        added=sum(1 for k, _ in lines if k == "add"),
        removed=sum(1 for k, _ in lines if k == "del"),
    )
