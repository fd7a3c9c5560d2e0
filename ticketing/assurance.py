"""Service assurance figures over a period: MTTA, MTTR, SLA compliance and availability of
customer services, per customer, per site or per service class (the catalog's ``sla_class`` of
the service's type, handed in by the caller; a type without one groups under ``""``).

Which tickets hurt which service:
- a ticket carrying a customer's fault report hurts the reported service;
- a ticket whose root alarm is on a service's resource (the device, or the service's own
  interface: ``desk.affects``) hurts that service;
- a ticket with no root alarm (manual) on a device hurts every service on that device.
Cancelled tickets hurt nothing.

Per group (a service spanning two sites counts under both):
- ``tickets``: distinct tickets hurting its services, created in the period;
- ``mtta_s``: mean of created -> acknowledged; ``mttr_s``: mean of created -> resolved (restored);
- SLA compliance: of those tickets whose SLA is decided (resolved, or a clock breached), the share
  that breached neither the response nor the restore clock;
- availability: 1 - downtime / service time. A service's downtime is the union of its tickets'
  outages (created -> resolved, or still open) within the period; its service time is the part
  of the period it existed (from creation; a terminated service until its last change).

From the service state history the alarm engine keeps (``alarms.queries.state_history``):
- ``maintenance_s``: the part of the service time inside a maintenance window covering one of the
  service's resources (its device, the device's site or tags, or its own ``host:interface``),
  evaluated as the engine does (``alarms.maintenance.intervals``);
- ``down_s`` / ``degraded_s``: the time the service was down / degraded outside maintenance;
- ``service_availability_pct``: 1 - down_s / (service time - maintenance_s). Degraded is available.
``availability_report`` gives these per service or per customer for each calendar month (UTC).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from alarms import queries as alarm_queries
from alarms.maintenance import Window, intervals
from faultloop import csvsafe
from faultloop.errors import InvalidInput
from inventory import queries as inventory
from ticketing.desk import CustomerService, affects
from ticketing.models import FaultReport, Ticket

FIELDS = (
    "key", "services", "tickets", "acknowledged", "mtta_s", "resolved", "mttr_s", "sla_met", "sla_decided",
    "sla_compliance_pct", "downtime_s", "service_s", "availability_pct", "maintenance_s", "down_s", "degraded_s",
    "service_availability_pct",
)  # fmt: skip
GROUPS = ("customer", "site", "sla_class")
AVAILABILITY_GROUPS = ("service", "customer")
AVAILABILITY_FIELDS = (
    "month", "key", "customer", "services", "service_type", "sla_class", "service_minutes", "maintenance_minutes",
    "down_minutes", "degraded_minutes", "availability_pct",
)  # fmt: skip


def csv_safe(value: Any) -> Any:
    """A text cell a spreadsheet would run as a formula (=, +, -, @) is prefixed with a quote."""
    return csvsafe.neutralize(value)


def _union_seconds(intervals: list[tuple[datetime, datetime]]) -> float:
    total = 0.0
    current: tuple[datetime, datetime] | None = None
    for begin, finish in sorted(intervals):
        if current is None or begin > current[1]:
            if current is not None:
                total += (current[1] - current[0]).total_seconds()
            current = (begin, finish)
        elif finish > current[1]:
            current = (current[0], finish)
    if current is not None:
        total += (current[1] - current[0]).total_seconds()
    return total


def _service_window(
    service: CustomerService, start: datetime, end: datetime, now: datetime
) -> tuple[datetime, datetime]:
    begin = max(start, service.created_at)
    finish = min(end, now)
    if service.state == "terminated":
        finish = min(finish, service.updated_at)
    return begin, finish


def _tickets_by_service(
    session: Session, services: Sequence[CustomerService], start: datetime, end: datetime
) -> tuple[dict[int, set[int]], dict[int, Ticket]]:
    """{service id: ids of the tickets hurting it} and the tickets, for tickets alive in the period."""
    by_service: dict[int, set[int]] = {s.id: set() for s in services}
    hostnames = sorted({r.hostname for s in services for r in s.resources if r.hostname})
    reports = list(session.execute(select(FaultReport.ticket_id, FaultReport.service_id)))
    reported = {t for t, _ in reports}
    alive = (
        select(Ticket)
        .where(Ticket.state != "cancelled", Ticket.created_at < end)
        .where(or_(Ticket.resolved_at.is_(None), Ticket.resolved_at > start))
        .where(or_(Ticket.device.in_(hostnames), Ticket.id.in_(sorted(reported))))
    )
    tickets = {t.id: t for t in session.scalars(alive)}
    for ticket_id, service_id in reports:
        if ticket_id in tickets and service_id in by_service:
            by_service[service_id].add(ticket_id)
    roots = alarm_queries.alarms(session, (t.root_alarm_id for t in tickets.values() if t.root_alarm_id))
    on_device: dict[str, list[tuple[CustomerService, Any]]] = defaultdict(list)
    for s in services:
        for r in s.resources:
            on_device[r.hostname].append((s, r))
    for t in tickets.values():
        root = roots.get(t.root_alarm_id) if t.root_alarm_id else None
        for s, r in on_device.get(t.device, []):
            if root is not None and not affects(root, r):
                continue
            if root is None and t.root_alarm_id is None and t.source == "customer":
                continue  # a diagnosis ticket hurts the reported service only
            by_service[s.id].add(t.id)
    return by_service, tickets


@dataclass(frozen=True, slots=True)
class StateTimes:
    """Seconds of one service over one stretch: its service time, the part in maintenance, and the time
    down / degraded outside maintenance."""

    service_s: float = 0.0
    maintenance_s: float = 0.0
    down_s: float = 0.0
    degraded_s: float = 0.0

    def __add__(self, other: StateTimes) -> StateTimes:
        return StateTimes(self.service_s + other.service_s, self.maintenance_s + other.maintenance_s,
                          self.down_s + other.down_s, self.degraded_s + other.degraded_s)  # fmt: skip

    def availability_pct(self) -> float | None:
        scheduled = self.service_s - self.maintenance_s
        return round(100.0 * (1 - self.down_s / scheduled), 4) if scheduled > 0 else None


class _StateBook:
    """The state periods and maintenance windows of a set of services over [start, end), read once."""

    def __init__(self, session: Session, services: Sequence[CustomerService], start: datetime, end: datetime):
        self.periods: dict[int, list[alarm_queries.StatePeriod]] = defaultdict(list)
        for p in alarm_queries.state_history(session, service_ids=[s.id for s in services], start=start, end=end):
            self.periods[p.service_id].append(p)
        self.windows: list[Window] = alarm_queries.maintenance_windows(session, start=start, end=end)
        self.start, self.end = start, end
        self._active: dict[int, list[tuple[datetime, datetime]]] = {}  # window id -> its stretches in the period
        device_ids = {r.device_id for s in services for r in s.resources}
        self.tags = {d.id: d.tags for d in inventory.devices(session, ids=device_ids)} if self.windows else {}

    def times(self, service: CustomerService, begin: datetime, finish: datetime) -> StateTimes:
        if finish <= begin:
            return StateTimes()
        maintenance: list[tuple[datetime, datetime]] = []
        for w in self.windows:
            if any(
                w.in_scope(r.hostname, f"interface:{r.interface}" if r.interface else "", r.site or None,
                           self.tags.get(r.device_id, ()))
                for r in service.resources
            ):  # fmt: skip
                if w.id not in self._active:
                    self._active[w.id] = intervals(w, self.start, self.end)
                maintenance += [
                    (max(a, begin), min(b, finish)) for a, b in self._active[w.id] if b > begin and a < finish
                ]
        in_maintenance = _union_seconds(list(maintenance))
        spent: dict[str, float] = {}
        for state in ("down", "degraded"):
            stretches = [
                (max(p.started_at, begin), min(p.ended_at or finish, finish))
                for p in self.periods.get(service.id, ())
                if p.state == state
            ]
            stretches = [(a, b) for a, b in stretches if b > a]
            # the time in this state outside maintenance: |state U maintenance| - |maintenance|
            spent[state] = _union_seconds(stretches + maintenance) - in_maintenance if stretches else 0.0
        return StateTimes((finish - begin).total_seconds(), in_maintenance, spent["down"], spent["degraded"])


def _months(start: datetime, end: datetime) -> list[tuple[str, datetime, datetime]]:
    """The calendar months (UTC) [start, end) touches, each cut to the period: (YYYY-MM, begin, finish)."""
    out = []
    at = datetime(start.year, start.month, 1, tzinfo=UTC)
    while at < end:
        following = datetime(at.year + at.month // 12, at.month % 12 + 1, 1, tzinfo=UTC)
        out.append((f"{at:%Y-%m}", max(at, start), min(following, end)))
        at = following
    return out


def availability_report(
    session: Session,
    *,
    services: Sequence[CustomerService],
    sla_classes: Mapping[str, str | None],
    by: str,
    start: datetime,
    end: datetime,
    now: datetime,
) -> list[dict[str, Any]]:
    """Availability per service or per customer for each calendar month (UTC) of [start, end): the
    minutes it existed, those inside maintenance, the minutes down and degraded outside maintenance,
    and 1 - down / (existed - maintenance) (see the module's docstring). Ordered by month, then key."""
    if by not in AVAILABILITY_GROUPS:
        raise InvalidInput("by: expected service or customer", field="by")
    services = [s for s in services if s.created_at < end]
    book = _StateBook(session, services, start, end)
    rows = []
    for month, m_begin, m_finish in _months(start, end):
        per_service = {s.id: book.times(s, *_service_window(s, m_begin, m_finish, now)) for s in services}
        live = [s for s in services if per_service[s.id].service_s > 0]
        if by == "service":
            groups = [(str(s.id), [s]) for s in live]
        else:
            by_customer: dict[str, list[CustomerService]] = defaultdict(list)
            for s in live:
                by_customer[s.customer].append(s)
            groups = sorted(by_customer.items())
        for key, members in groups:
            total = sum((per_service[s.id] for s in members), StateTimes())
            one = members[0] if by == "service" else None
            rows.append({
                "month": month,
                "key": key,
                "customer": members[0].customer,
                "services": len(members),
                "service_type": one.service_type if one else None,
                "sla_class": sla_classes.get(one.service_type) if one else None,
                "service_minutes": round(total.service_s / 60, 2),
                "maintenance_minutes": round(total.maintenance_s / 60, 2),
                "down_minutes": round(total.down_s / 60, 2),
                "degraded_minutes": round(total.degraded_s / 60, 2),
                "availability_pct": total.availability_pct(),
            })  # fmt: skip
    return rows


def service_report(
    session: Session,
    *,
    services: Sequence[CustomerService],
    by: str,
    start: datetime,
    end: datetime,
    now: datetime,
    sla_classes: Mapping[str, str | None] | None = None,
) -> list[dict[str, Any]]:
    """One row per customer, site or service class (see the module's docstring), sorted by key."""
    if by not in GROUPS:
        raise InvalidInput("by: expected customer, site or sla_class", field="by")
    classes = sla_classes or {}
    services = [s for s in services if s.created_at < end]
    by_service, tickets = _tickets_by_service(session, services, start, end)
    book = _StateBook(session, services, start, end)
    groups: dict[str, list[CustomerService]] = defaultdict(list)
    for s in services:
        if by == "customer":
            keys = {s.customer}
        elif by == "site":
            keys = {r.site for r in s.resources} or {""}
        else:
            keys = {classes.get(s.service_type) or ""}
        for key in keys:
            groups[key].append(s)
    rows = []
    for key in sorted(groups):
        members = groups[key]
        ids: set[int] = set().union(*(by_service[s.id] for s in members))
        in_period = [tickets[i] for i in sorted(ids) if start <= tickets[i].created_at < end]
        acked = [(t.acknowledged_at - t.created_at).total_seconds() for t in in_period if t.acknowledged_at]
        restored = [(t.resolved_at - t.created_at).total_seconds() for t in in_period if t.resolved_at]
        breached = [t for t in in_period if t.response_breached or t.restore_breached]
        decided = [t for t in in_period if t.resolved_at is not None or t.response_breached or t.restore_breached]
        met = len(decided) - len(breached)
        downtime = service_time = 0.0
        states = StateTimes()
        for s in members:
            begin, finish = _service_window(s, start, end, now)
            if finish <= begin:
                continue
            states += book.times(s, begin, finish)
            service_time += (finish - begin).total_seconds()
            outages = []
            for tid in by_service[s.id]:
                t = tickets[tid]
                o_begin, o_end = max(t.created_at, begin), min(t.resolved_at or finish, finish)
                if o_end > o_begin:
                    outages.append((o_begin, o_end))
            downtime += _union_seconds(outages)
        rows.append({
            "key": key,
            "services": len(members),
            "tickets": len(in_period),
            "acknowledged": len(acked),
            "mtta_s": round(sum(acked) / len(acked), 1) if acked else None,
            "resolved": len(restored),
            "mttr_s": round(sum(restored) / len(restored), 1) if restored else None,
            "sla_met": met,
            "sla_decided": len(decided),
            "sla_compliance_pct": round(100.0 * met / len(decided), 2) if decided else None,
            "downtime_s": round(downtime, 1),
            "service_s": round(service_time, 1),
            "availability_pct": round(100.0 * (1 - downtime / service_time), 4) if service_time else None,
            "maintenance_s": round(states.maintenance_s, 1),
            "down_s": round(states.down_s, 1),
            "degraded_s": round(states.degraded_s, 1),
            "service_availability_pct": states.availability_pct(),
        })  # fmt: skip
    return rows
