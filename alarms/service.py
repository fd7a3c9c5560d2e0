"""Alarm operations for the API and the CLI: plain functions that flush and never commit.

Every operator action (ack, unack, comment, clear, severity change) is written to the
alarm's journal and to the audit log. The engine notices these journal entries on its
next tick and publishes them to subscribers, after this transaction has committed.
What ticketing notes on alarms (``ticket_attached``, ``ticket_archived``) is written here too.
Writers registered in ``OUTBOX`` (the TMF hub) run inside the transaction of each operator action.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import ColumnElement, Table, and_, bindparam, case, delete, func, insert, or_, select, update
from sqlalchemy.orm import Session, aliased

from alarms.maintenance import Window, horizon_problem, validate_recurrence
from alarms.models import Alarm, AlarmJournal, AlarmServiceImpact, EventRecord, MaintenanceWindow
from alarms.schemas import AlertmanagerPayload, EventIn, MaintenanceIn
from faultloop import clock
from faultloop.audit import service as audit
from faultloop.db import like_literal
from faultloop.errors import Conflict, InvalidInput, NotFound
from faultloop.events import Event
from inventory import queries as inventory

ALERT_SEVERITY = {
    "critical": "critical",
    "page": "critical",
    "major": "major",
    "error": "major",
    "high": "major",
    "minor": "minor",
    "warning": "warning",
    "warn": "warning",
    "info": "indeterminate",
    "none": "indeterminate",
}


# Operator actions for outboxes that must commit with them (the TMF hub's events): the composition
# root registers a writer here; each runs INSIDE the transaction of the action, after its journal
# entry, with the alarm and the journal action (acknowledged, unacknowledged, comment, cleared,
# severity_changed). The engine still publishes the action on its bus after the commit.
AlarmOutbox = Callable[[Session, Alarm, str], None]
OUTBOX: dict[str, AlarmOutbox] = {}


# ---- alarms --------------------------------------------------------------------------------


def list_alarms(
    session: Session,
    *,
    limit: int,
    offset: int,
    state: str | None = "active",
    severity: str | None = None,
    device: str | None = None,
    root_only: bool = False,
    include_muted: bool = True,
    customer: str | None = None,
    service_id: int | None = None,
) -> tuple[list[Alarm], int]:
    query = select(Alarm)
    if customer is not None:
        hurt = select(AlarmServiceImpact.alarm_id).where(AlarmServiceImpact.customer == customer)
        query = query.where(Alarm.id.in_(hurt))
    if service_id is not None:
        hurt = select(AlarmServiceImpact.alarm_id).where(AlarmServiceImpact.service_id == service_id)
        query = query.where(Alarm.id.in_(hurt))
    if state:
        query = query.where(Alarm.state == state)
    if severity:
        query = query.where(Alarm.severity == severity)
    if device:
        query = query.where(Alarm.device == device)
    if root_only:
        query = query.where(Alarm.parent_id.is_(None))
    if not include_muted:
        query = query.where(Alarm.muted.is_(False))
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(query.order_by(Alarm.last_occurrence.desc(), Alarm.id.desc()).limit(limit).offset(offset))
    return list(rows), total


def affected_services(session: Session, alarm_id: int) -> list[AlarmServiceImpact]:
    query = select(AlarmServiceImpact).where(AlarmServiceImpact.alarm_id == alarm_id)
    return list(session.scalars(query.order_by(AlarmServiceImpact.customer, AlarmServiceImpact.service_id)))


def get_alarm(session: Session, alarm_id: int) -> Alarm:
    alarm = session.get(Alarm, alarm_id)
    if alarm is None:
        raise NotFound(f"alarm {alarm_id} not found")
    return alarm


def journal(session: Session, alarm_id: int) -> list[AlarmJournal]:
    return list(
        session.scalars(select(AlarmJournal).where(AlarmJournal.alarm_id == alarm_id).order_by(AlarmJournal.id))
    )


def children(session: Session, alarm_id: int) -> list[int]:
    return list(session.scalars(select(Alarm.id).where(Alarm.parent_id == alarm_id, Alarm.state == "active")))


def _record(session: Session, alarm: Alarm, *, actor: str, action: str, **detail: Any) -> None:
    session.add(AlarmJournal(alarm_id=alarm.id, at=clock.now(), actor=actor, action=action, detail=detail))
    audit.record(
        session,
        actor=actor,
        action=f"alarm.{action}",
        object_type="alarm",
        object_id=alarm.id,
        after={"reduction_key": alarm.reduction_key, **detail},
    )
    session.flush()
    for write in list(OUTBOX.values()):
        write(session, alarm, action)


def acknowledge(session: Session, alarm_id: int, *, actor: str) -> Alarm:
    alarm = get_alarm(session, alarm_id)
    if alarm.acknowledged:
        raise Conflict(f"alarm {alarm_id} is already acknowledged by {alarm.ack_by}")
    alarm.acknowledged, alarm.ack_by, alarm.ack_at = True, actor, clock.now()
    _record(session, alarm, actor=actor, action="acknowledged")
    return alarm


def unacknowledge(session: Session, alarm_id: int, *, actor: str) -> Alarm:
    alarm = get_alarm(session, alarm_id)
    if not alarm.acknowledged:
        raise Conflict(f"alarm {alarm_id} is not acknowledged")
    previous = alarm.ack_by
    alarm.acknowledged, alarm.ack_by, alarm.ack_at = False, None, None
    _record(session, alarm, actor=actor, action="unacknowledged", previous_ack_by=previous)
    return alarm


def comment(session: Session, alarm_id: int, *, actor: str, text: str) -> Alarm:
    alarm = get_alarm(session, alarm_id)
    _record(session, alarm, actor=actor, action="comment", text=text)
    return alarm


def clear(session: Session, alarm_id: int, *, actor: str, reason: str) -> Alarm:
    alarm = get_alarm(session, alarm_id)
    if alarm.state != "active":
        raise Conflict(f"alarm {alarm_id} is already cleared")
    alarm.state, alarm.cleared_at, alarm.flapping = "cleared", clock.now(), False
    _record(session, alarm, actor=actor, action="cleared", reason=reason, manual=True)
    return alarm


def set_severity(session: Session, alarm_id: int, *, actor: str, severity: str) -> Alarm:
    alarm = get_alarm(session, alarm_id)
    if alarm.state != "active":
        raise Conflict(f"alarm {alarm_id} is cleared; its severity cannot change")
    if alarm.severity == severity:
        raise Conflict(f"alarm {alarm_id} already has severity {severity}")
    previous, alarm.severity = alarm.severity, severity
    _record(session, alarm, actor=actor, action="severity_changed", **{"from": previous, "to": severity})
    return alarm


# ---- what ticketing notes on alarms ----------------------------------------------------------
# Ticketing keeps its own alarm links (``ticket_alarms``) and never writes these tables; what the
# alarm side shows of them is written here. The engine publishes the journal note like any
# operator entry, after this transaction commits (its journal cursor), in whichever process runs it.

ARCHIVED = "archived"  # the journal action of a closed ticket's note


def ticket_attached(session: Session, *, alarm_id: int, ticket_id: int) -> None:
    """The alarm is now worked under ticket ``ticket_id`` (``Alarm.ticket_id``: the alarm API and console)."""
    session.execute(update(Alarm).where(Alarm.id == alarm_id).values(ticket_id=ticket_id))


def tickets_attached(session: Session, *, alarm_ids: Sequence[int], ticket_id: int) -> None:
    """``ticket_attached`` for many alarms at once."""
    ids = sorted(set(alarm_ids))
    for start in range(0, len(ids), 1000):
        session.execute(update(Alarm).where(Alarm.id.in_(ids[start : start + 1000])).values(ticket_id=ticket_id))


def alarms_ticketed(session: Session, tickets: Mapping[int, int]) -> None:
    """``ticket_attached`` for many alarms (alarm id -> ticket id): one executemany, the rows in
    ascending id order (the alarm engine updates in that order too: the two never deadlock)."""
    rows = [{"aid": alarm_id, "tid": ticket_id} for alarm_id, ticket_id in sorted(tickets.items())]
    if rows:
        table = cast(Table, Alarm.__table__)
        session.execute(update(table).where(table.c.id == bindparam("aid")).values(ticket_id=bindparam("tid")), rows)


def ticket_archived(session: Session, *, alarm_id: int, ticket_id: int, actor: str, at: datetime) -> bool:
    """Journal, once, that closing ticket ``ticket_id`` archived the alarm: False when it was noted
    before or the alarm is gone."""
    if session.scalar(select(Alarm.id).where(Alarm.id == alarm_id)) is None:
        return False
    noted = session.scalars(
        select(AlarmJournal.detail).where(AlarmJournal.alarm_id == alarm_id, AlarmJournal.action == ARCHIVED)
    )
    if any((detail or {}).get("ticket_id") == ticket_id for detail in noted):
        return False
    session.add(AlarmJournal(alarm_id=alarm_id, at=at, actor=actor, action=ARCHIVED, detail={"ticket_id": ticket_id}))
    session.flush()
    return True


# ---- the alarm console (dashboard) -----------------------------------------------------------

SEVERITY_RANK = {"critical": 5, "major": 4, "minor": 3, "warning": 2, "indeterminate": 1}
CONSOLE_STATES = ("active", "unacknowledged", "acknowledged", "cleared", "all")
CONSOLE_SORTS = ("severity", "time", "first_seen", "device", "count")


@dataclass(frozen=True)
class ConsoleFilter:
    """What the console shows. ``state``: active, unacknowledged / acknowledged (active ones),
    cleared, or all; ``q`` is a literal substring of the device, object, type or text."""

    state: str = "active"
    severity: str | None = None
    site: str | None = None
    device: str | None = None
    q: str | None = None
    hide_muted: bool = False
    customer: str | None = None  # only alarms that affect a service of this customer (impact)


@dataclass
class ConsoleRow:
    alarm: Alarm
    device_id: int | None  # the inventory device, when the alarm's device is known
    site: str | None
    children: int = 0  # correlated children in the filtered set


@dataclass
class ConsolePage:
    rows: list[ConsoleRow]
    total: int  # top-level rows in the filtered set: what the pager pages over
    matching: int  # alarms in the filtered set, correlated children included
    by_severity: dict[str, int]  # the filtered set per severity, ignoring the severity filter itself
    children: dict[int, list[ConsoleRow]] = field(default_factory=dict)  # rows under expanded roots


def _console_where(
    a: Any, f: ConsoleFilter, site_hosts: list[str] | None, *, with_severity: bool = True
) -> list[ColumnElement[bool]]:
    """The filter as conditions on the alarm entity ``a`` (the table or an alias of it);
    ``site_hosts``: the hostnames at ``f.site`` (``_site_hosts``)."""
    where: list[ColumnElement[bool]] = []
    if f.state == "active":
        where.append(a.state == "active")
    elif f.state == "unacknowledged":
        where += [a.state == "active", a.acknowledged.is_(False)]
    elif f.state == "acknowledged":
        where += [a.state == "active", a.acknowledged.is_(True)]
    elif f.state == "cleared":
        where.append(a.state == "cleared")
    elif f.state != "all":
        raise InvalidInput(f"state: expected one of {', '.join(CONSOLE_STATES)}", field="state")
    if with_severity and f.severity:
        where.append(a.severity == f.severity)
    if f.device:
        where.append(a.device == f.device)
    if f.site:
        where.append(a.device.in_(site_hosts or []))
    if f.q:
        pattern = f"%{like_literal(f.q)}%"
        columns = (a.device, a.managed_object, a.alarm_type, a.specific_problem, a.probable_cause, a.description)
        where.append(or_(*(c.ilike(pattern, escape="\\") for c in columns)))
    if f.hide_muted:
        where.append(a.muted.is_(False))
    if f.customer:
        # an uncorrelated IN over the impact table's (customer, alarm_id) index: no extra statement
        hurt = select(AlarmServiceImpact.alarm_id).where(AlarmServiceImpact.customer == f.customer)
        where.append(a.id.in_(hurt))
    return where


def _site_hosts(session: Session, f: ConsoleFilter) -> list[str] | None:
    return inventory.hostnames_at_site(session, f.site) if f.site else None


def _console_order(sort: str, descending: bool) -> list[Any]:
    rank = case(SEVERITY_RANK, value=Alarm.severity, else_=0)
    primary = {
        "severity": rank,
        "time": Alarm.last_occurrence,
        "first_seen": Alarm.first_occurrence,
        "device": Alarm.device,
        "count": Alarm.count,
    }.get(sort)
    if primary is None:
        raise InvalidInput(f"sort: expected one of {', '.join(CONSOLE_SORTS)}", field="sort")
    direction = (lambda c: c.desc()) if descending else (lambda c: c.asc())
    # Ties: the most recent first (the severity and device views), then id, so pages never overlap.
    tie = [] if sort in ("time", "first_seen") else [Alarm.last_occurrence.desc()]
    return [direction(primary), *tie, direction(Alarm.id)]


def _console_rows(session: Session, where: Iterable[ColumnElement[bool]], order: list[Any], *,
                  limit: int, offset: int = 0) -> list[ConsoleRow]:  # fmt: skip
    """Alarms with their inventory device id and site name, in one statement."""
    # Sort and cut the page on the alarms alone (narrow rows), then join the page's few rows.
    page = select(Alarm.id).where(*where).order_by(*order).limit(limit).offset(offset)
    places = inventory.device_places()
    query = (
        select(Alarm, places.c.device_id, places.c.site)
        .outerjoin(places, and_(places.c.hostname == Alarm.device, Alarm.device != ""))
        .where(Alarm.id.in_(page))
        .order_by(*order)
    )
    return [ConsoleRow(alarm=a, device_id=d, site=s) for a, d, s in session.execute(query)]


def console(
    session: Session,
    *,
    filters: ConsoleFilter,
    sort: str = "severity",
    descending: bool = True,
    limit: int = 50,
    offset: int = 0,
    expand: Iterable[int] = (),
    children_limit: int = 500,
) -> ConsolePage:
    """One page of the alarm console, in a fixed number of statements whatever the page size:
    severity counts and the top-level total (one GROUP BY), the page, the rows under expanded
    roots, and the children counts of every shown row.

    Root causes fold their correlated children: a row is top-level when it has no parent or
    its parent is not in the filtered set (so a filter never hides a matching child)."""
    site_hosts = _site_hosts(session, filters)
    where = _console_where(Alarm, filters, site_hosts)
    # Parents in the filtered set as an uncorrelated NOT IN: one hashed set on PostgreSQL and one
    # ephemeral index on SQLite, whatever the table statistics say (a correlated EXISTS or a join ran
    # per row, for seconds, on a table not analyzed yet).
    parent = aliased(Alarm)
    in_set = select(parent.id).where(*_console_where(parent, filters, site_hosts))
    top_level = or_(Alarm.parent_id.is_(None), Alarm.parent_id.not_in(in_set))
    # One pass for the chips (every filter but the severity) and the pager's total (the top-level
    # rows of the fully filtered set).
    in_page_set = and_(Alarm.severity == filters.severity, top_level) if filters.severity else top_level
    by_severity = {sev: 0 for sev in SEVERITY_RANK}
    total = 0
    for sev, n, top in session.execute(
        select(Alarm.severity, func.count(), func.sum(case((in_page_set, 1), else_=0)))
        .where(*_console_where(Alarm, filters, site_hosts, with_severity=False))
        .group_by(Alarm.severity)
    ):
        by_severity[sev] = by_severity.get(sev, 0) + n
        total += int(top or 0)
    matching = by_severity.get(filters.severity, 0) if filters.severity else sum(by_severity.values())
    order = _console_order(sort, descending)
    rows = _console_rows(session, [*where, top_level], order, limit=limit, offset=offset)

    children: dict[int, list[ConsoleRow]] = {}
    opened = set(expand) & {r.alarm.id for r in rows}
    if opened:
        for row in _console_rows(
            session, [*where, Alarm.parent_id.in_(opened)], order, limit=children_limit * len(opened)
        ):
            assert row.alarm.parent_id is not None
            bucket = children.setdefault(row.alarm.parent_id, [])
            if len(bucket) < children_limit:
                bucket.append(row)
    shown = rows + [r for bucket in children.values() for r in bucket]
    if shown:
        counts = dict(
            session.execute(  # type: ignore[arg-type]
                select(Alarm.parent_id, func.count())
                .where(*where, Alarm.parent_id.in_([r.alarm.id for r in shown]))
                .group_by(Alarm.parent_id)
            ).all()
        )
        for row in shown:
            row.children = counts.get(row.alarm.id, 0)
    return ConsolePage(rows=rows, total=total, matching=matching, by_severity=by_severity, children=children)


@dataclass
class ConsoleDetail:
    row: ConsoleRow
    parent: ConsoleRow | None
    children: list[ConsoleRow]  # every correlated child, active ones first
    journal: list[AlarmJournal]
    affected: list[AlarmServiceImpact] = field(default_factory=list)  # the customer services it hurts


def console_detail(session: Session, alarm_id: int, *, children_limit: int = 500) -> ConsoleDetail:
    """One alarm for the console's detail view: its row, its parent, its children, its journal."""
    alarm = get_alarm(session, alarm_id)
    ids = [alarm.id] if alarm.parent_id is None else [alarm.id, alarm.parent_id]
    by_id = {r.alarm.id: r for r in _console_rows(session, [Alarm.id.in_(ids)], [Alarm.id], limit=2)}
    order = [case((Alarm.state == "active", 0), else_=1), *_console_order("severity", True)]
    kids = _console_rows(session, [Alarm.parent_id == alarm.id], order, limit=children_limit)
    row = by_id[alarm.id]
    row.children = len(kids)
    parent = by_id.get(alarm.parent_id) if alarm.parent_id is not None else None
    affected = affected_services(session, alarm_id) if alarm.services_affected else []
    return ConsoleDetail(row=row, parent=parent, children=kids, journal=journal(session, alarm_id), affected=affected)


# ---- event ingest (the durable queue) -------------------------------------------------------


def store_events(session: Session, events: Sequence[EventIn] | Sequence[Event], *, now: datetime) -> tuple[int, int]:
    """Store a batch as pending events, validated (``EventIn``, from API clients) or from faultloop
    itself (``Event``); the engine processes them. Returns (first id, last id)."""
    rows = [
        {
            "received_at": now,
            "time": e.time or now,
            "source": e.source,
            "device": e.device,
            "managed_object": e.managed_object,
            "event_type": e.event_type,
            "severity": e.severity,
            "probable_cause": e.probable_cause,
            "specific_problem": e.specific_problem,
            "description": e.description,
            "raw": dict(e.raw),
            "processed": False,
            "action": "pending",
            "reduction_key": None,
            "alarm_id": None,
        }
        for e in events
    ]
    ids = session.execute(insert(EventRecord).returning(EventRecord.id, sort_by_parameter_order=True), rows).scalars()
    got = list(ids)
    return got[0], got[-1]


def alertmanager_events(payload: AlertmanagerPayload, *, now: datetime) -> list[EventIn]:
    """Prometheus alerts as events: firing raises, resolved clears the same key."""
    out = []
    for alert in payload.alerts:
        labels = alert.labels
        instance = labels.get("device") or labels.get("instance", "")
        host = instance.rsplit(":", 1)[0] if instance.count(":") == 1 else instance
        identity = (
            alert.fingerprint
            or hashlib.sha1(  # noqa: S324 - an identity, not security
                repr(sorted(labels.items())).encode()
            ).hexdigest()[:16]
        )
        managed_object = f"interface:{labels['interface']}" if labels.get("interface") else f"alert:{identity}"
        severity = ALERT_SEVERITY.get(labels.get("severity", "").lower(), "major")
        out.append(
            EventIn(
                source="alertmanager",
                device=host[:255],
                event_type=labels["alertname"][:100] if _safe_type(labels["alertname"]) else "prometheus_alert",
                severity="cleared" if alert.status == "resolved" else severity,  # type: ignore[arg-type]
                time=(alert.endsAt if alert.status == "resolved" else alert.startsAt) or now,
                managed_object=managed_object[:255],
                probable_cause="",
                specific_problem=alert.annotations.get("summary", "")[:255],
                description=alert.annotations.get("description", "")[:4000],
                raw={"labels": labels, "annotations": alert.annotations, "fingerprint": alert.fingerprint},
            )
        )
    return out


def _safe_type(name: str) -> bool:
    return bool(name) and all(c.isalnum() or c in "_.:-/" for c in name)


def pending_events(session: Session) -> int:
    return session.scalar(select(func.count()).where(EventRecord.processed.is_(False))) or 0


def purge_events(session: Session, *, older_than: datetime) -> int:
    """Retention: processed events received before the cutoff."""
    result = session.execute(
        delete(EventRecord).where(EventRecord.received_at < older_than, EventRecord.processed.is_(True))
    )
    return int(getattr(result, "rowcount", 0) or 0)


# ---- maintenance windows ----------------------------------------------------------------------


def create_window(session: Session, data: MaintenanceIn, *, actor: str) -> MaintenanceWindow:
    problem = validate_recurrence(rrule=data.rrule, cron=data.cron, starts_at=data.starts_at)
    if problem:
        raise InvalidInput(f"{'rrule' if data.rrule else 'cron'}: {problem}", field="rrule" if data.rrule else "cron")
    if data.rrule or data.cron:
        problem = horizon_problem(data.starts_at, clock.now())
        if problem:
            raise InvalidInput(f"starts_at: {problem}", field="starts_at")
    window = MaintenanceWindow(**data.model_dump(), created_by=actor, created_at=clock.now())
    session.add(window)
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="maintenance.create",
        object_type="maintenance_window",
        object_id=window.id,
        after=data.model_dump(mode="json"),
    )
    return window


def list_windows(session: Session, *, include_past: bool = False) -> list[MaintenanceWindow]:
    query = select(MaintenanceWindow).order_by(MaintenanceWindow.starts_at, MaintenanceWindow.id)
    if not include_past:
        query = query.where((MaintenanceWindow.ends_at.is_(None)) | (MaintenanceWindow.ends_at > clock.now()))
    return list(session.scalars(query))


def get_window(session: Session, window_id: int) -> MaintenanceWindow:
    window = session.get(MaintenanceWindow, window_id)
    if window is None:
        raise NotFound(f"maintenance window {window_id} not found")
    return window


def delete_window(session: Session, window_id: int, *, actor: str) -> None:
    window = get_window(session, window_id)
    audit.record(
        session,
        actor=actor,
        action="maintenance.delete",
        object_type="maintenance_window",
        object_id=window.id,
        before={"name": window.name},
    )
    session.delete(window)
    session.flush()


def window_active(window: MaintenanceWindow, at: datetime) -> bool:
    return Window(
        id=window.id,
        name=window.name,
        starts_at=window.starts_at,
        ends_at=window.ends_at,
        rrule=window.rrule,
        cron=window.cron,
        duration_s=window.duration_s,
        devices=frozenset(),
        sites=frozenset(),
        tags=frozenset(),
        interfaces=frozenset(),
    ).active_at(at)


def retention_cutoff(now: datetime, days: int) -> datetime:
    return now - timedelta(days=days)
