"""Alarm operations for the API and the CLI: plain functions that flush and never commit.

Every operator action (ack, unack, comment, clear, severity change) is written to the
alarm's journal and to the audit log. The engine notices these journal entries on its
next tick and publishes them to subscribers, after this transaction has committed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session

from alarms.maintenance import Window, validate_recurrence
from alarms.models import Alarm, AlarmJournal, EventRecord, MaintenanceWindow
from alarms.schemas import AlertmanagerPayload, EventIn, MaintenanceIn
from faultloop import clock
from faultloop.audit import service as audit
from faultloop.errors import Conflict, InvalidInput, NotFound

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
) -> tuple[list[Alarm], int]:
    query = select(Alarm)
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


# ---- event ingest (the durable queue) -------------------------------------------------------


def store_events(session: Session, events: Sequence[EventIn], *, now: datetime) -> tuple[int, int]:
    """Store a validated batch as pending events; the engine processes them. Returns (first id, last id)."""
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
            "raw": e.raw,
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
