"""Service assurance figures over a period: MTTA, MTTR, SLA compliance and availability of
customer services, per customer or per site.

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

Reports per service class come once services carry one (``sla_class``): the service inventory
on this branch has none, so the groups are customer and site.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from alarms import queries as alarm_queries
from faultloop.errors import InvalidInput
from ticketing.desk import CustomerService, affects
from ticketing.models import FaultReport, Ticket

FIELDS = (
    "key", "services", "tickets", "acknowledged", "mtta_s", "resolved", "mttr_s", "sla_met", "sla_decided",
    "sla_compliance_pct", "downtime_s", "service_s", "availability_pct",
)  # fmt: skip
GROUPS = ("customer", "site")


def csv_safe(value: Any) -> Any:
    """A text cell a spreadsheet would run as a formula (=, +, -, @) is prefixed with a quote."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


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


def service_report(
    session: Session, *, services: Sequence[CustomerService], by: str, start: datetime, end: datetime, now: datetime
) -> list[dict[str, Any]]:
    """One row per customer or site (see the module's docstring), sorted by key."""
    if by not in GROUPS:
        raise InvalidInput("by: expected customer or site", field="by")
    services = [s for s in services if s.created_at < end]
    by_service, tickets = _tickets_by_service(session, services, start, end)
    groups: dict[str, list[CustomerService]] = defaultdict(list)
    for s in services:
        keys = {s.customer} if by == "customer" else {r.site for r in s.resources} or {""}
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
        for s in members:
            begin, finish = _service_window(s, start, end, now)
            if finish <= begin:
                continue
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
        })  # fmt: skip
    return rows
