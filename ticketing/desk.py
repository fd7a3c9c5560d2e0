"""Customer-reported faults (the service desk): meet them with the alarms, or open a ticket to diagnose.

A report names a customer's service. Its resources (device, interface) are looked up against
the active alarms at once:

- an alarm on the service's device (the whole device, or the service's own interface) that is
  on an open ticket: the report joins that ticket (``correlated``); a resolved ticket is reopened,
  since the customer says the service is still down;
- such an alarm with no ticket yet (younger than the policy's ``min_active_s``, or below its
  severity): the customer's word is the confirmation, so the alarm's root cause gets its ticket now;
- nothing on the network: a ticket for diagnosis, with the service's resources pre-filled; the
  caller runs a first automatic test and records it with ``record_auto_test``.

The service comes as a record the caller read (``provisioning.queries`` through the API layer):
ticketing does not import provisioning, it only knows the shape below. The customer sees a
reference and a status in customer terms (``CUSTOMER_STATUS``), never ticket or alarm details.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from alarms import queries as alarm_queries
from alarms.queries import AlarmRecord
from faultloop.errors import InvalidInput, NotFound
from faultloop.events import after_commit
from ticketing import metrics
from ticketing.models import FaultReport, Ticket, TicketAlarm, TicketEvent
from ticketing.policy import OPEN_STATES, Policy
from ticketing.schemas import REPORT_CHANNELS
from ticketing.service import (
    SYSTEM,
    Actor,
    _device_context,
    _new_ticket,
    _record,
    _text,
    changed,
    open_for_alarm,
    transition,
)  # fmt: skip

CHANNELS = REPORT_CHANNELS  # the schema documents them (ticketing.schemas)

# a ticket's state as the customer is told it
CUSTOMER_STATUS: dict[str, str] = {
    "new": "received",
    "acknowledged": "received",
    "diagnosed": "being_repaired",
    "dispatched": "being_repaired",
    "accepted": "being_repaired",
    "en_route": "being_repaired",
    "waiting": "being_repaired",
    "on_site": "technician_on_site",
    "resolved": "restored",
    "verified": "restored",
    "closed": "closed",
    "cancelled": "closed",
}
STATUS_LABELS = {
    "received": "Received",
    "being_repaired": "Being repaired",
    "technician_on_site": "Technician on site",
    "restored": "Restored",
    "closed": "Closed",
}


class ServiceResourceView(Protocol):
    @property
    def device_id(self) -> int: ...
    @property
    def hostname(self) -> str: ...
    @property
    def site(self) -> str: ...
    @property
    def interface(self) -> str: ...
    @property
    def vlan(self) -> int | None: ...


class CustomerService(Protocol):
    """A customer's service as the service inventory gives it (provisioning.queries.ServiceRecord)."""

    @property
    def id(self) -> int: ...
    @property
    def customer(self) -> str: ...
    @property
    def service_type(self) -> str: ...
    @property
    def state(self) -> str: ...
    @property
    def customer_ref(self) -> str: ...
    @property
    def created_at(self) -> datetime: ...
    @property
    def updated_at(self) -> datetime: ...
    @property
    def resources(self) -> Sequence[ServiceResourceView]: ...


@dataclass(frozen=True, slots=True)
class ReportIn:
    symptom: str
    contact: str
    channel: str


def check_report(data: dict[str, Any]) -> ReportIn:
    """The report's own fields, checked before anything is read or written."""
    symptom = _text(data, "symptom", required=True, max_len=2000)
    contact = _text(data, "contact", required=True, max_len=200)
    channel = _text(data, "channel", required=True, max_len=10)
    if channel not in CHANNELS:
        raise InvalidInput(f"channel: expected one of {', '.join(CHANNELS)}", field="channel")
    for name, value in (("symptom", symptom), ("contact", contact)):
        if any(not ch.isprintable() and ch not in "\n\t" for ch in value):
            raise InvalidInput(f"{name}: control characters are not allowed", field=name)
    return ReportIn(symptom=symptom, contact=contact, channel=channel)


def affects(alarm: AlarmRecord, resource: ServiceResourceView) -> bool:
    """An alarm hurts a resource when it is on the resource's device and not on another port of it."""
    if alarm.device != resource.hostname:
        return False
    if not alarm.managed_object.startswith("interface:") or not resource.interface:
        return True
    return alarm.managed_object == f"interface:{resource.interface}"


def affecting_alarms(session: Session, service: CustomerService) -> list[AlarmRecord]:
    """The active alarms on the service's resources, oldest first."""
    found = alarm_queries.active_on_devices(session, (r.hostname for r in service.resources if r.hostname))
    return [a for a in found if any(affects(a, r) for r in service.resources)]


def _root(session: Session, alarm: AlarmRecord) -> AlarmRecord:
    seen = {alarm.id}
    while alarm.parent_id is not None and alarm.parent_id not in seen:
        parent = alarm_queries.alarm(session, alarm.parent_id)
        if parent is None:
            break
        seen.add(parent.id)
        alarm = parent
    return alarm


def _open_ticket_of(session: Session, alarm_ids: set[int]) -> Ticket | None:
    if not alarm_ids:
        return None
    return session.scalar(
        select(Ticket)
        .join(TicketAlarm, TicketAlarm.ticket_id == Ticket.id)
        .where(Ticket.state.in_(OPEN_STATES), TicketAlarm.alarm_id.in_(sorted(alarm_ids)))
        .order_by(Ticket.id)
        .limit(1)
    )


def _new_ref(session: Session) -> str:
    while True:
        ref = "FR-" + secrets.token_hex(5).upper()
        if session.scalar(select(FaultReport.id).where(FaultReport.ref == ref)) is None:
            return ref


def _resources_text(service: CustomerService) -> str:
    parts = []
    for r in service.resources:
        where = " ".join(p for p in (r.hostname, r.interface, f"vlan {r.vlan}" if r.vlan is not None else "") if p)
        parts.append(where)
    return "; ".join(parts)


def _diagnosis_ticket(
    session: Session, *, policy: Policy, service: CustomerService, report: ReportIn, ref: str, actor: Actor,
    now: datetime,
) -> Ticket:  # fmt: skip
    device = next((r.hostname for r in service.resources if r.hostname), "")
    role, site = _device_context(session, device)
    prio = policy.priority(severity="major", role=role, site=site, impact=0)
    title = f"Customer fault {ref}: {service.customer} service {service.id} ({service.service_type})"
    description = f"{report.symptom}\n\nResources: {_resources_text(service) or 'none recorded'}"
    ticket = _new_ticket(policy, title=title, description=description[:4000], severity="major", priority=prio,
                         source="customer", device=device, site=site, actor=actor, now=now)  # fmt: skip
    session.add(ticket)
    session.flush()
    resources = [{"device": r.hostname, "interface": r.interface, "vlan": r.vlan} for r in service.resources]
    _record(session, ticket, actor=actor, action="create", now=now, to_state="new", priority=prio, source="customer",
            fault_report=ref, service_id=service.id, resources=resources)  # fmt: skip
    session.flush()
    changed(session, ticket, "created", {"source": "customer", "actor": actor.username})
    after_commit(session, lambda: metrics.CREATED.labels(source="customer", priority=prio).inc())
    return ticket


@dataclass(frozen=True, slots=True)
class ReportOutcome:
    report: FaultReport
    ticket: Ticket
    correlated: bool
    alarms: int  # active alarms found on the service's resources


def report_fault(
    session: Session, *, policy: Policy, service: CustomerService, report: ReportIn, customer_ref: str,
    actor: Actor, now: datetime, reopen_window_s: float = 7 * 86400,
) -> ReportOutcome:  # fmt: skip
    """Record a customer's report and put it on a ticket (see the module's docstring)."""
    ref = _new_ref(session)
    alarms = affecting_alarms(session, service)
    roots = {a.id: a for a in (_root(session, a) for a in alarms)}
    ticket = _open_ticket_of(session, {a.id for a in alarms} | set(roots))
    correlated = ticket is not None
    if ticket is None and roots:
        root = min(roots.values(), key=lambda a: a.id)
        ticket = open_for_alarm(session, policy=policy, alarm=root, now=now)
        if ticket is None:  # opened meanwhile for the same root cause
            ticket = session.scalar(select(Ticket).where(Ticket.active_key == root.reduction_key))
        correlated = ticket is not None
    if ticket is None:
        ticket = _diagnosis_ticket(session, policy=policy, service=service, report=report, ref=ref, actor=actor,
                                   now=now)  # fmt: skip
    row = FaultReport(ref=ref, customer=service.customer, service_id=service.id, customer_ref=customer_ref[:120],
                      symptom=report.symptom, contact=report.contact, channel=report.channel, ticket_id=ticket.id,
                      correlated=correlated, created_by=actor.username, created_at=now)  # fmt: skip
    session.add(row)
    _record(session, ticket, actor=actor, action="fault_report", now=now, ref=ref, customer=service.customer,
            service_id=service.id, channel=report.channel, symptom=report.symptom,
            correlated=correlated, alarms=[a.id for a in alarms])  # fmt: skip
    session.flush()
    if correlated and ticket.state in ("resolved", "verified"):
        # the network says repaired, the customer says not: the repair is not verified
        ticket = transition(session, policy=policy, ticket_id=ticket.id, action="reopen", actor=SYSTEM, now=now,
                            data={"reason": f"customer fault report {ref}: service still down"},
                            reopen_window_s=reopen_window_s)  # fmt: skip
    session.flush()
    return ReportOutcome(report=row, ticket=ticket, correlated=correlated, alarms=len(alarms))


def record_auto_test(session: Session, *, ticket_id: int, ref: str, now: datetime, **result: Any) -> None:
    """Put the first automatic test's result (or why none ran) on the ticket's timeline."""
    ticket = session.get(Ticket, ticket_id)
    if ticket is None:
        raise NotFound(f"ticket {ticket_id} not found")
    _record(session, ticket, actor=SYSTEM, action="auto_test", now=now, fault_report=ref, **result)
    session.flush()


# ---- what the customer sees ------------------------------------------------------------------


def get_report(session: Session, *, ref: str, customer: str) -> FaultReport:
    """The report with this reference, if it is this customer's: another customer's is not found."""
    row = session.scalar(select(FaultReport).where(FaultReport.ref == ref.strip().upper()))
    if row is None or row.customer != customer:
        raise NotFound(f"fault report {ref} not found")
    return row


def customer_view(session: Session, row: FaultReport) -> dict[str, Any]:
    """The report's status in customer terms, with its history since the report; no internal details."""
    ticket = session.get(Ticket, row.ticket_id)
    state = ticket.state if ticket is not None else "closed"
    entries = session.scalars(
        select(TicketEvent)
        .where(TicketEvent.ticket_id == row.ticket_id, TicketEvent.to_state.is_not(None))
        .order_by(TicketEvent.id)
    )
    at_report = "new"
    history: list[dict[str, Any]] = []
    for entry in entries:
        if entry.at <= row.created_at:
            at_report = entry.to_state or at_report
            continue
        status = CUSTOMER_STATUS.get(entry.to_state or "", "received")
        if not history or history[-1]["status"] != status:
            history.append({"status": status, "label": STATUS_LABELS[status], "at": entry.at})
    first = CUSTOMER_STATUS.get(at_report, "received")
    history.insert(0, {"status": first, "label": STATUS_LABELS[first], "at": row.created_at})
    history = [h for i, h in enumerate(history) if i == 0 or h["status"] != history[i - 1]["status"]]
    status = CUSTOMER_STATUS.get(state, "received")
    return {
        "ref": row.ref,
        "customer": row.customer,
        "service_id": row.service_id,
        "customer_ref": row.customer_ref,
        "symptom": row.symptom,
        "channel": row.channel,
        "received_at": row.created_at,
        "status": status,
        "status_label": STATUS_LABELS[status],
        "updated_at": history[-1]["at"],
        "history": history,
    }


def list_reports(session: Session, *, customer: str, limit: int, offset: int) -> list[FaultReport]:
    query = select(FaultReport).where(FaultReport.customer == customer).order_by(FaultReport.id.desc())
    return list(session.scalars(query.limit(limit).offset(offset)))
