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

from sqlalchemy import select
from sqlalchemy.orm import Session

from alarms.models import Alarm, AlarmServiceImpact


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
