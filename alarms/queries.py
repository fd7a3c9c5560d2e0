"""The alarms' read API for the package that follows them (ticketing): frozen snapshots.

Ticketing decides from these which alarms open, join and verify its tickets, inside its own
session and transaction. It never imports ``alarms.models`` and never writes an alarm
table: what it notes on an alarm goes through ``alarms.service.TicketNotes``, which the
composition root hands it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from alarms.maintenance import Window
from alarms.models import Alarm, AlarmServiceImpact, MaintenanceWindow, ServiceStatePeriod


@dataclass(frozen=True, slots=True)
class AlarmRecord:
    id: int
    reduction_key: str
    alarm_type: str
    device: str
    managed_object: str
    description: str
    severity: str
    state: str  # active, cleared
    first_occurrence: datetime
    cleared_at: datetime | None
    parent_id: int | None  # the root cause it is correlated under
    muted: bool
    services_affected: int = 0  # customer services it affects (impact), and their customers
    customers_affected: int = 0


@dataclass(frozen=True, slots=True)
class ImpactRecord:
    """One customer service an alarm affects (``how``: direct, topology or child; ``level``: down or degraded)."""

    alarm_id: int
    service_id: int
    customer: str
    service_type: str
    sla_class: str | None
    how: str
    level: str


_COLUMNS = (
    Alarm.id, Alarm.reduction_key, Alarm.alarm_type, Alarm.device, Alarm.managed_object, Alarm.description,
    Alarm.severity, Alarm.state, Alarm.first_occurrence, Alarm.cleared_at, Alarm.parent_id, Alarm.muted,
    Alarm.services_affected, Alarm.customers_affected,
)  # fmt: skip


def _records(session: Session, query: Any) -> list[AlarmRecord]:
    return [AlarmRecord(*row) for row in session.execute(query)]


def alarm(session: Session, alarm_id: int) -> AlarmRecord | None:
    found = _records(session, select(*_COLUMNS).where(Alarm.id == alarm_id))
    return found[0] if found else None


def alarms(session: Session, ids: Iterable[int]) -> dict[int, AlarmRecord]:
    """{id: alarm} of those of ``ids`` that exist."""
    wanted = sorted(set(ids))
    out: dict[int, AlarmRecord] = {}
    for start in range(0, len(wanted), 500):
        for record in _records(session, select(*_COLUMNS).where(Alarm.id.in_(wanted[start : start + 500]))):
            out[record.id] = record
    return out


def active_since(session: Session, *, first_before: datetime) -> list[AlarmRecord]:
    """Active alarms first seen at or before ``first_before``, oldest id first."""
    query = select(*_COLUMNS).where(Alarm.state == "active", Alarm.first_occurrence <= first_before)
    return _records(session, query.order_by(Alarm.id))


def active_children(session: Session, alarm_id: int) -> list[AlarmRecord]:
    """The active alarms correlated under this one."""
    query = select(*_COLUMNS).where(Alarm.parent_id == alarm_id, Alarm.state == "active")
    return _records(session, query.order_by(Alarm.id))


def active_on(session: Session, *, alarm_type: str, device: str, managed_object: str) -> list[int]:
    """Ids of the active alarms of this type on this device's managed object."""
    query = select(Alarm.id).where(
        Alarm.state == "active", Alarm.alarm_type == alarm_type, Alarm.device == device,
        Alarm.managed_object == managed_object,
    )  # fmt: skip
    return list(session.scalars(query.order_by(Alarm.id)))


def active_on_devices(session: Session, hostnames: Iterable[str]) -> list[AlarmRecord]:
    """The active alarms of these devices, on any managed object, oldest id first."""
    wanted = sorted(set(hostnames))
    if not wanted:
        return []
    query = select(*_COLUMNS).where(Alarm.state == "active", Alarm.device.in_(wanted))
    return _records(session, query.order_by(Alarm.id))


def impact(session: Session, alarm_ids: Iterable[int]) -> list[ImpactRecord]:
    """The customer services these alarms affect (as the alarm engine last computed it)."""
    wanted = sorted(set(alarm_ids))
    out: list[ImpactRecord] = []
    i = AlarmServiceImpact
    for start in range(0, len(wanted), 500):
        query = (
            select(i.alarm_id, i.service_id, i.customer, i.service_type, i.sla_class, i.how, i.level)
            .where(i.alarm_id.in_(wanted[start : start + 500]))
            .order_by(i.alarm_id, i.service_id)
        )
        out += [ImpactRecord(*row) for row in session.execute(query)]
    return out


@dataclass(frozen=True, slots=True)
class ObjectImpact:
    """A customer service hurt by an active, unmuted alarm on ``device`` / ``managed_object``."""

    device: str
    managed_object: str
    service_id: int
    customer: str


def active_impact_by_object(session: Session) -> list[ObjectImpact]:
    """For the topology map: which services the active, unmuted alarms hurt, per alarmed object
    (one statement; as many rows as distinct object/service pairs)."""
    i = AlarmServiceImpact
    query = (
        select(Alarm.device, Alarm.managed_object, i.service_id, i.customer)
        .join(i, i.alarm_id == Alarm.id)
        .where(Alarm.state == "active", Alarm.muted.is_(False), Alarm.device != "")
        .distinct()
    )
    return [ObjectImpact(*row) for row in session.execute(query)]


# ---- customer services' operational state (derived by the engine from the impact) ---------------


@dataclass(frozen=True, slots=True)
class StatePeriod:
    """A stretch of time a service was ``degraded`` or ``down``; ``ended_at`` None while it lasts."""

    service_id: int
    state: str
    started_at: datetime
    ended_at: datetime | None
    alarm_id: int | None


_PERIOD = (ServiceStatePeriod.service_id, ServiceStatePeriod.state, ServiceStatePeriod.started_at,
           ServiceStatePeriod.ended_at, ServiceStatePeriod.alarm_id)  # fmt: skip


def current_states(session: Session, service_ids: Iterable[int] | None = None) -> dict[int, StatePeriod]:
    """{service id: its open period} of the services that are not up (``service_ids``: only those)."""
    query = select(*_PERIOD).where(ServiceStatePeriod.ended_at.is_(None))
    if service_ids is None:
        return {row[0]: StatePeriod(*row) for row in session.execute(query)}
    wanted = sorted(set(service_ids))
    out: dict[int, StatePeriod] = {}
    for start in range(0, len(wanted), 500):
        chunk = query.where(ServiceStatePeriod.service_id.in_(wanted[start : start + 500]))
        out.update({row[0]: StatePeriod(*row) for row in session.execute(chunk)})
    return out


def state_history(
    session: Session,
    *,
    service_ids: Iterable[int] | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    limit: int | None = None,
) -> list[StatePeriod]:
    """The periods that overlap [start, end) (either bound open when None), newest first."""
    query = select(*_PERIOD)
    if start is not None:
        query = query.where(or_(ServiceStatePeriod.ended_at.is_(None), ServiceStatePeriod.ended_at > start))
    if end is not None:
        query = query.where(ServiceStatePeriod.started_at < end)
    query = query.order_by(ServiceStatePeriod.started_at.desc(), ServiceStatePeriod.id.desc())
    if service_ids is None:
        return [StatePeriod(*row) for row in session.execute(query.limit(limit))]
    wanted = sorted(set(service_ids))
    out: list[StatePeriod] = []
    for at in range(0, len(wanted), 500):
        chunk = query.where(ServiceStatePeriod.service_id.in_(wanted[at : at + 500]))
        out += [StatePeriod(*row) for row in session.execute(chunk.limit(limit))]
    out.sort(key=lambda p: p.started_at, reverse=True)
    return out[:limit] if limit is not None else out


def maintenance_windows(session: Session, *, start: datetime, end: datetime) -> list[Window]:
    """The maintenance windows that may be active somewhere in [start, end), as the engine evaluates them."""
    rows = session.scalars(
        select(MaintenanceWindow)
        .where(MaintenanceWindow.starts_at < end)
        .where(or_(MaintenanceWindow.ends_at.is_(None), MaintenanceWindow.ends_at > start))
        .order_by(MaintenanceWindow.id)
    )
    return [
        Window(id=w.id, name=w.name, starts_at=w.starts_at, ends_at=w.ends_at, rrule=w.rrule, cron=w.cron,
               duration_s=w.duration_s, devices=frozenset(w.devices or ()), sites=frozenset(w.sites or ()),
               tags=frozenset(w.tags or ()), interfaces=frozenset(w.interfaces or ()))  # fmt: skip
        for w in rows
    ]
