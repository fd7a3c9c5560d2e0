"""Ticket operations: plain functions over a session; they flush, never commit.

Every state change goes through ``transition`` (which asks ``policy.check``), records one
timeline entry and advances the SLA clocks. Metrics and notifications run after the
surrounding transaction commits (``_after_commit``).
"""

from __future__ import annotations

import csv
import functools
import hashlib
import io
import json
import logging
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import ColumnElement, CursorResult, Table, bindparam, func, insert, select, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import flag_modified, set_committed_value
from sqlalchemy.orm.exc import StaleDataError

from alarms import queries as alarm_queries
from alarms import service as alarm_notes
from alarms.queries import AlarmRecord
from faultloop import csvsafe
from faultloop.accounts.models import User
from faultloop.db import database_locked
from faultloop.errors import Conflict, Forbidden, InvalidInput, NotFound
from faultloop.events import AlarmChange, after_commit
from inventory import queries as inventory
from ticketing import dispatch, metrics, sla
from ticketing.errors import DatabaseBusy, IdempotencyInProgress, StaleVersion
from ticketing.models import IdempotencyKey, Ticket, TicketAlarm, TicketEvent
from ticketing.policy import OPEN_STATES, PRIORITIES, SELF_HEALED, SEVERITY_RANK, Policy, SlaTarget, check

log = logging.getLogger("faultloop.ticketing")

CAUSE_CATEGORIES = (
    "fiber_cut", "hardware", "power", "software", "configuration", "third_party", "environment", "unknown"
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Actor:
    username: str
    role: str  # admin, noc, technician, viewer, ..., or "system"
    user_id: int | None = None

    @classmethod
    def of(cls, user: User) -> Actor:
        return cls(user.username, user.role.value, user.id)


SYSTEM = Actor("system", "system")

# ---- after-commit effects -------------------------------------------------------------------

# Ticket events for the notification outbox: the composition root registers the ticket notifier's
# enqueue here (ticketing/notify.py); each writer runs INSIDE the transaction of the ticket change,
# so a change never commits without its notifications.
TicketOutbox = Callable[[Session, Ticket, str, dict[str, Any]], None]
OUTBOX: dict[str, TicketOutbox] = {}
# the state machine's actions that are ticket events (the others, en_route, on_site, wait, ..., notify nobody)
ACTION_EVENTS: dict[str, str] = {
    "acknowledge": "acknowledged", "dispatch": "dispatched", "reassign": "dispatched", "accept": "accepted",
    "escalate": "escalated", "resolve": "resolved", "resolve_external": "resolved", "verify": "verified",
    "reopen": "reopened", "close": "closed",
    "cancel": "cancelled",
}  # fmt: skip


def _emit(session: Session, ticket: Ticket, event: str, detail: dict[str, Any]) -> None:
    for write in list(OUTBOX.values()):
        write(session, ticket, event, detail)


# Every change of a ticket that an outside view mirrors (the TM Forum API's events, an external service
# desk): ``created``, each state machine action by its name, ``note``; the hooks run INSIDE the transaction
# of the change, after it was flushed (they may read the ticket's timeline). OUTBOX above carries only
# the notification events (no wait, resume, note, ...): notification routes with no event filter take
# every event they are given, so its set stays as it is.
TicketChange = Callable[[Session, Ticket, str, dict[str, Any]], None]
CHANGES: dict[str, TicketChange] = {}


def changed(session: Session, ticket: Ticket, change: str, detail: dict[str, Any]) -> None:
    for hook in list(CHANGES.values()):
        hook(session, ticket, change, detail)


Notifier = Callable[[dict[str, Any]], None]
NOTIFIERS: list[Notifier] = []  # wiring adds channels; a breach is always logged


def _count_breach(clock_name: str, priority: str) -> None:
    metrics.SLA_BREACHES.labels(clock=clock_name, priority=priority).inc()


def notify(payload: dict[str, Any]) -> None:
    log.warning("ticket notification: %s", json.dumps(payload, default=str))
    for channel in list(NOTIFIERS):
        channel(payload)


# ---- reading ---------------------------------------------------------------------------------


def get(session: Session, ticket_id: int) -> Ticket:
    ticket = session.get(Ticket, ticket_id)
    if ticket is None:
        raise NotFound(f"ticket {ticket_id} not found")
    return ticket


def is_assignee(session: Session, ticket: Ticket, actor: Actor) -> bool:
    """The assigned technician, or a technician of the team the ticket is dispatched to."""
    if actor.user_id is None or actor.role != "technician":
        return False
    if ticket.assignee_id == actor.user_id:
        return True
    if ticket.team:
        prof = dispatch.profile_of(session, actor.user_id)
        return prof is not None and prof.team == ticket.team
    return False


def get_visible(session: Session, ticket_id: int, actor: Actor) -> Ticket:
    ticket = get(session, ticket_id)
    if actor.role == "technician" and not is_assignee(session, ticket, actor):
        # the same answer as a missing ticket: a technician learns nothing about others' tickets
        raise NotFound(f"ticket {ticket_id} not found")
    return ticket


def _conditions(
    session: Session,
    *,
    state: str | None = None,
    priority: str | None = None,
    site: str | None = None,
    device: str | None = None,
    open_only: bool = False,
    technician: Actor | None = None,
) -> list[ColumnElement[bool]]:
    """The WHERE clauses of a ticket list; a technician sees their own and their team's."""
    where: list[ColumnElement[bool]] = []
    if state:
        where.append(Ticket.state == state)
    if open_only:
        where.append(Ticket.state.in_(OPEN_STATES))
    if priority:
        where.append(Ticket.priority == priority)
    if site:
        where.append(Ticket.site == site)
    if device:
        where.append(Ticket.device == device)
    if technician is not None:
        prof = dispatch.profile_of(session, technician.user_id or -1)
        mine = Ticket.assignee_id == technician.user_id
        where.append(mine | (Ticket.team == prof.team) if prof is not None and prof.team else mine)
    return where


def _count(session: Session, where: list[ColumnElement[bool]]) -> int:
    return int(session.scalar(select(func.count()).select_from(Ticket).where(*where)) or 0)


def list_tickets(session: Session, *, limit: int, offset: int, **filters: Any) -> tuple[list[Ticket], int]:
    """Tickets newest first, filtered as ``_conditions`` says; and the total they match."""
    where = _conditions(session, **filters)
    rows = session.scalars(select(Ticket).where(*where).order_by(Ticket.id.desc()).limit(limit).offset(offset))
    return list(rows), _count(session, where)


# The columns a ticket list shows, read without building ORM objects (the technician's phone
# polls this list: loading 40-column ORM rows and copying them into models was most of its cost).
LIST_COLUMNS = tuple(c for c in Ticket.__table__.columns if c.key not in ("assignee_id", "sla_checked_at"))


def list_ticket_rows(session: Session, *, limit: int, offset: int, **filters: Any) -> tuple[list[dict[str, Any]], int]:
    """As ``list_tickets``, as plain dicts with the assignee's username, in one query."""
    where = _conditions(session, **filters)
    page = (
        select(*LIST_COLUMNS, User.username.label("assignee"))
        .outerjoin(User, User.id == Ticket.assignee_id)
        .where(*where)
        .order_by(Ticket.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return [dict(row._mapping) for row in session.execute(page)], _count(session, where)


def timeline(session: Session, ticket_id: int) -> list[TicketEvent]:
    return list(session.scalars(select(TicketEvent).where(TicketEvent.ticket_id == ticket_id).order_by(TicketEvent.id)))


def linked_alarms(session: Session, ticket_id: int) -> list[TicketAlarm]:
    return list(session.scalars(select(TicketAlarm).where(TicketAlarm.ticket_id == ticket_id).order_by(TicketAlarm.id)))


TIMELINE_FIELDS = ("id", "ticket_id", "at", "actor", "action", "from_state", "to_state", "detail")


def timeline_csv(entries: Sequence[TicketEvent]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(TIMELINE_FIELDS)
    for e in entries:
        detail = json.dumps(e.detail, sort_keys=True, default=str)
        row = [e.id, e.ticket_id, e.at.isoformat(), e.actor, e.action, e.from_state or "", e.to_state or "", detail]
        writer.writerow([csvsafe.neutralize(cell) for cell in row])
    return out.getvalue()


# ---- writing ----------------------------------------------------------------------------------


def _record(
    session: Session, ticket: Ticket, *, actor: Actor, action: str, now: datetime,
    from_state: str | None = None, to_state: str | None = None, **detail: Any,
) -> None:  # fmt: skip
    session.add(
        TicketEvent(
            ticket_id=ticket.id,
            at=now,
            actor=actor.username,
            action=action,
            from_state=from_state,
            to_state=to_state,
            detail=detail,
        )  # fmt: skip
    )


def _flush(session: Session, ticket_id: int, *, client_version: bool = True) -> None:
    """Flush; a lost race on the version is the client's 409 when it sent a version, else a retry (busy)."""
    try:
        session.flush()
    except StaleDataError:
        error = StaleVersion if client_version else DatabaseBusy
        raise error(f"ticket {ticket_id} was changed by someone else; reload it and retry") from None
    except OperationalError as exc:
        if database_locked(exc):
            raise DatabaseBusy(f"ticket {ticket_id} is being changed by someone else; reload it and retry") from None
        raise


def _text(data: dict[str, Any], key: str, *, required: bool = False, max_len: int = 4000) -> str:
    value = data.get(key, "")
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise InvalidInput(f"{key}: expected text", field=key)
    value = value.strip()
    if required and not value:
        raise InvalidInput(f"{key}: required for this action", field=key)
    if len(value) > max_len:
        raise InvalidInput(f"{key}: expected at most {max_len} characters", field=key)
    return value


def create_manual(
    session: Session,
    *,
    policy: Policy,
    actor: Actor,
    title: str,
    description: str = "",
    severity: str = "major",
    priority: str | None = None,
    device: str = "",
    site: str = "",
    now: datetime,
) -> Ticket:
    if severity not in SEVERITY_RANK or severity == "cleared":
        raise InvalidInput("severity: expected critical, major, minor, warning or indeterminate", field="severity")
    if priority is not None and priority not in PRIORITIES:
        raise InvalidInput("priority: expected P1, P2, P3 or P4", field="priority")
    role = ""
    if device:
        scope = inventory.device_scope(session, device)
        if scope is None:
            raise InvalidInput(f"device: no device with hostname {device!r}", field="device")
        role = scope.role
        site = site or (scope.site or "")
    prio = priority or policy.priority(severity=severity, role=role, site=site, impact=0)
    ticket = _new_ticket(policy, title=title, description=description, severity=severity, priority=prio,
                         source="manual", device=device, site=site, actor=actor, now=now)  # fmt: skip
    session.add(ticket)
    session.flush()
    _record(session, ticket, actor=actor, action="create", now=now, to_state="new", priority=prio, source="manual")
    _emit(session, ticket, "created", {"source": "manual", "actor": actor.username})
    session.flush()
    changed(session, ticket, "created", {"source": "manual", "actor": actor.username})
    after_commit(session, lambda: metrics.CREATED.labels(source="manual", priority=prio).inc())
    return ticket


def _new_ticket(policy: Policy, *, title: str, description: str, severity: str, priority: str, source: str,
                device: str, site: str, actor: Actor, now: datetime, target: SlaTarget | None = None,
                **extra: Any) -> Ticket:  # fmt: skip
    target = target or policy.target(priority)
    return Ticket(
        title=title[:300], description=description, state="new", priority=priority, severity=severity,
        source=source, device=device, site=site, created_by=actor.username, created_at=now, updated_at=now,
        response_target_s=target.response_s, restore_target_s=target.restore_s,
        business_hours=target.business_hours, sla_checked_at=now, tier=1, parts_used=[],
        response_elapsed_s=0.0, restore_elapsed_s=0.0, **extra,
    )  # fmt: skip


def _device_context(session: Session, hostname: str) -> tuple[str, str]:
    scope = inventory.device_scope(session, hostname) if hostname else None
    if scope is None:
        return "", ""
    return scope.role, scope.site or ""


def open_for_alarm(
    session: Session, *, policy: Policy, alarm: AlarmRecord, now: datetime, key_free: bool = False
) -> Ticket | None:
    """Open THE ticket for a root-cause alarm; None (and no write) when one is already open for its
    key. ``key_free``: the caller has just read that no ticket holds the key (a concurrent opener
    still loses on the unique key)."""
    if not key_free and session.scalar(select(Ticket.id).where(Ticket.active_key == alarm.reduction_key)) is not None:
        return None
    role, site = _device_context(session, alarm.device)
    children = alarm_queries.active_children(session, alarm.id)
    prio = policy.priority(severity=alarm.severity, role=role, site=site, impact=len(children))
    # the customer services it hurts: their highest SLA class sets priority and targets (device rules otherwise)
    service_class = policy.service_class(
        r.sla_class for r in alarm_queries.impact(session, [alarm.id, *(c.id for c in children)])
    )
    if service_class is not None:
        prio = service_class.priority
    what = f"{alarm.alarm_type} on {alarm.device}" + (f" {alarm.managed_object}" if alarm.managed_object else "")
    ticket = _new_ticket(
        policy, title=what, description=alarm.description[:4000], severity=alarm.severity, priority=prio,
        source="alarm", device=alarm.device, site=site, actor=SYSTEM, now=now, alarm_type=alarm.alarm_type,
        root_key=alarm.reduction_key, active_key=alarm.reduction_key, root_alarm_id=alarm.id,
        required_skill=policy.skills.get(alarm.alarm_type, ""),
        target=service_class.target if service_class is not None else None,
        sla_class=service_class.name if service_class is not None else None,
    )  # fmt: skip
    try:
        with session.begin_nested():  # a concurrent opener (another process) may win the unique key
            session.add(ticket)
            session.flush()
    except IntegrityError:
        return None
    _record(session, ticket, actor=SYSTEM, action="create", now=now, to_state="new", priority=prio,
            source="alarm", alarm_id=alarm.id, reduction_key=alarm.reduction_key)  # fmt: skip
    _attach_to_new(session, ticket, [alarm], role="root", now=now)  # a new ticket: no link to look for first
    _attach_to_new(session, ticket, [c for c in children if c.id != alarm.id], role="child", now=now)
    _emit(session, ticket, "created", {"source": "alarm", "alarm_id": alarm.id})
    session.flush()
    changed(session, ticket, "created", {"source": "alarm", "alarm_id": alarm.id})
    after_commit(session, lambda: metrics.CREATED.labels(source="alarm", priority=prio).inc())
    return ticket


_NOTES_LAST = "faultloop_ticketing_alarm_notes_last"


@contextmanager
def alarm_notes_last(session: Session) -> Iterator[None]:
    """Inside: which ticket an alarm is worked under (``Alarm.ticket_id``) is written when the
    block ends, in one statement, not as each ticket is opened or attached. The alarm engine
    updates the alarm rows in every batch of a flood; a ticket round that opened hundreds of
    tickets held those rows' locks from its first ticket to its commit (seconds, with the
    engine's batches waiting all that time). Written last, they are held only until the commit."""
    notes: dict[int, int] = {}
    session.info[_NOTES_LAST] = notes
    try:
        yield
    finally:
        session.info.pop(_NOTES_LAST, None)
    alarm_notes.alarms_ticketed(session, notes)


def _note_attached(session: Session, alarm_ids: Sequence[int], ticket_id: int) -> None:
    notes: dict[int, int] | None = session.info.get(_NOTES_LAST)
    if notes is not None:
        notes.update(dict.fromkeys(alarm_ids, ticket_id))
    elif len(alarm_ids) == 1:
        alarm_notes.ticket_attached(session, alarm_id=alarm_ids[0], ticket_id=ticket_id)
    else:
        alarm_notes.tickets_attached(session, alarm_ids=alarm_ids, ticket_id=ticket_id)


def _attach_to_new(
    session: Session, ticket: Ticket, alarms: Sequence[AlarmRecord], *, role: str, now: datetime
) -> None:
    """``attach`` of many alarms to a ticket just created (none of them linked yet), in bulk: one
    storm's ticket took 2,000 attaches of four round trips each, seconds before it committed."""
    if not alarms:
        return
    session.flush()  # the ticket's own rows first
    session.execute(
        insert(TicketAlarm),
        [{"ticket_id": ticket.id, "alarm_id": a.id, "reduction_key": a.reduction_key, "role": role, "attached_at": now,
          "archived_at": None} for a in alarms],
    )  # fmt: skip
    session.execute(
        insert(TicketEvent),
        [{"ticket_id": ticket.id, "at": now, "actor": SYSTEM.username, "action": "alarm_attached", "from_state": None,
          "to_state": None, "detail": {"alarm_id": a.id, "role": role, "reduction_key": a.reduction_key}}
         for a in alarms],
    )  # fmt: skip
    _note_attached(session, [a.id for a in alarms], ticket.id)


def attach(session: Session, ticket: Ticket, alarm: AlarmRecord, *, role: str, now: datetime) -> bool:
    exists = session.scalar(
        select(TicketAlarm.id).where(TicketAlarm.ticket_id == ticket.id, TicketAlarm.alarm_id == alarm.id)
    )
    if exists is not None:
        return False
    session.add(TicketAlarm(ticket_id=ticket.id, alarm_id=alarm.id, reduction_key=alarm.reduction_key, role=role,
                            attached_at=now))  # fmt: skip
    _note_attached(session, [alarm.id], ticket.id)
    _record(session, ticket, actor=SYSTEM, action="alarm_attached", now=now, alarm_id=alarm.id, role=role,
            reduction_key=alarm.reduction_key)  # fmt: skip
    return True


def transition(
    session: Session,
    *,
    policy: Policy,
    ticket_id: int,
    action: str,
    actor: Actor,
    data: dict[str, Any] | None = None,
    expected_version: int | None = None,
    now: datetime,
    reopen_window_s: float = 7 * 86400,
) -> Ticket:
    """Apply one action of the state machine table (policy.TRANSITIONS); validates the action's fields first."""
    data = data or {}
    ticket = get_visible(session, ticket_id, actor) if actor.role == "technician" else get(session, ticket_id)
    if expected_version is not None and expected_version != ticket.version:
        raise StaleVersion(
            f"ticket {ticket_id} is at version {ticket.version}, not {expected_version}; reload it and retry"
        )
    from_state = ticket.state
    to_state = check(from_state, action, role=actor.role, is_assignee=is_assignee(session, ticket, actor))
    with session.no_autoflush:  # one UPDATE per action, so the version grows by exactly one
        breaches = sla.advance(policy, ticket, now)  # time so far counts under the state it was spent in
        changes = _apply(session, policy, ticket, action, actor, data, now, reopen_window_s)
        ticket.state = to_state
        ticket.updated_at = now
        flag_modified(ticket, "updated_at")  # bump the version even when the action changes no column
        _record(session, ticket, actor=actor, action=action, now=now, from_state=from_state, to_state=to_state,
                **changes)  # fmt: skip
        if action in ACTION_EVENTS:
            detail = {**changes, "actor": actor.username, "from_state": from_state}
            _emit(session, ticket, ACTION_EVENTS[action], detail)
        _sla_effects(session, policy, ticket, breaches, now)
    _flush(session, ticket_id, client_version=expected_version is not None)
    changed(session, ticket, action, {**changes, "actor": actor.username, "from_state": from_state,
                                      "to_state": to_state})  # fmt: skip
    _observe(session, ticket, action)
    return ticket


def _apply(
    session: Session, policy: Policy, ticket: Ticket, action: str, actor: Actor, data: dict[str, Any],
    now: datetime, reopen_window_s: float,
) -> dict[str, Any]:  # fmt: skip
    """Validate and set the fields an action carries; returns what goes into the timeline entry."""
    if action == "acknowledge":
        ticket.acknowledged_at = ticket.acknowledged_at or now
        return {}
    if action == "diagnose":
        ticket.diagnosis = _text(data, "diagnosis", required=True)
        ticket.fault_category = _text(data, "fault_category", required=True, max_len=100)
        skill = _text(data, "required_skill", max_len=50)
        if skill:
            ticket.required_skill = skill
        return {"fault_category": ticket.fault_category, "diagnosis": ticket.diagnosis}
    if action in ("dispatch", "reassign", "escalate"):
        return _assign(session, ticket, action, data)
    if action == "accept":
        if ticket.assignee_id is None and actor.user_id is not None and actor.role == "technician":
            ticket.assignee_id = actor.user_id  # a team ticket becomes this member's
        return {"assignee": _username(session, ticket.assignee_id)}
    if action in ("en_route", "update", "on_site"):
        out: dict[str, Any] = {}
        if "eta" in data and data["eta"] is not None:
            eta = data["eta"]
            if not isinstance(eta, datetime) or eta.tzinfo is None:
                raise InvalidInput("eta: expected an ISO 8601 time with a timezone", field="eta")
            ticket.eta = eta
            out["eta"] = eta.isoformat()
        if "location_note" in data:
            ticket.location_note = _text(data, "location_note", max_len=500)
            out["location_note"] = ticket.location_note
        if action == "update" and not out:
            raise InvalidInput("eta or location_note: expected at least one", field="eta")
        return out
    if action == "wait":
        return {"reason": _text(data, "reason", required=True, max_len=500)}
    if action == "resume":
        return {"note": _text(data, "reason", max_len=500)} if data.get("reason") else {}
    if action == "resolve":
        cause = _text(data, "cause_category", required=True, max_len=100)
        if cause not in CAUSE_CATEGORIES:
            raise InvalidInput(f"cause_category: expected one of {', '.join(CAUSE_CATEGORIES)}", field="cause_category")
        action_taken = _text(data, "action_taken", required=True)
        parts = data.get("parts_used", []) or []
        if not isinstance(parts, list) or not all(isinstance(p, str) and 0 < len(p) <= 100 for p in parts):
            raise InvalidInput("parts_used: expected a list of part names (1-100 characters)", field="parts_used")
        ticket.cause_category, ticket.action_taken, ticket.parts_used = cause, action_taken, list(parts)
        ticket.resolution_notes = _text(data, "notes")
        ticket.resolved_at = now
        return {"cause_category": cause, "action_taken": action_taken, "parts_used": list(parts),
                "notes": ticket.resolution_notes}  # fmt: skip
    if action == "resolve_external":
        # the external service desk ran the repair: what it says is taken, what it leaves out is unknown
        cause = _text(data, "cause_category", max_len=100) or "unknown"
        if cause not in CAUSE_CATEGORIES:
            raise InvalidInput(f"cause_category: expected one of {', '.join(CAUSE_CATEGORIES)}", field="cause_category")
        ticket.cause_category = cause
        ticket.action_taken = _text(data, "action_taken") or "resolved by the external service desk"
        ticket.resolution_notes = _text(data, "notes")
        ticket.resolved_at = now
        return {"cause_category": cause, "action_taken": ticket.action_taken, "notes": ticket.resolution_notes,
                "external": True}  # fmt: skip
    if action == "verify":
        ticket.verified_at = now
        return {"how": _text(data, "how", max_len=200) or ("automatic" if actor is SYSTEM else "by hand")}
    if action == "close":
        rating = data.get("rating")
        if not isinstance(rating, int) or isinstance(rating, bool) or not 1 <= rating <= 5:
            raise InvalidInput("rating: expected an integer 1..5", field="rating")
        ticket.rating = rating
        ticket.closed_at = now
        ticket.active_key = None
        archived = _archive_alarms(session, ticket, actor, now)
        return {"rating": rating, "alarms_archived": archived}
    if action == "auto_close":
        ticket.closed_at = now
        ticket.active_key = None
        ticket.close_reason = SELF_HEALED
        archived = _archive_alarms(session, ticket, actor, now)
        priority = ticket.priority
        after_commit(session, lambda: metrics.SELF_HEALED.labels(priority=priority).inc())
        return {"reason": SELF_HEALED, "how": _text(data, "how", max_len=200), "alarms_archived": archived}
    if action == "reopen":
        reason = _text(data, "reason", required=True, max_len=500)
        if ticket.state == "closed":
            if ticket.closed_at is None or (now - ticket.closed_at).total_seconds() > reopen_window_s:
                raise Conflict(
                    f"ticket {ticket.id} was closed more than {reopen_window_s:.0f}s ago; open a new ticket",
                    field="action",
                )
            if ticket.root_key is not None:
                taken = session.scalar(select(Ticket.id).where(Ticket.active_key == ticket.root_key))
                if taken is not None:
                    raise Conflict(f"ticket {taken} is already open for this root cause", field="action")
                ticket.active_key = ticket.root_key
        ticket.reopen_count += 1
        ticket.resolved_at = ticket.verified_at = ticket.closed_at = None
        ticket.close_reason = ""
        return {"reason": reason}
    if action == "cancel":
        reason = _text(data, "reason", required=True, max_len=500)
        ticket.cancel_reason = reason
        ticket.active_key = None
        return {"reason": reason}
    raise InvalidInput(f"action: {action!r} has no handler", field="action")  # a test walks every table row


def _username(session: Session, user_id: int | None) -> str | None:
    if user_id is None:
        return None
    user = session.get(User, user_id)
    return user.username if user is not None else None


def _assign(session: Session, ticket: Ticket, action: str, data: dict[str, Any]) -> dict[str, Any]:
    previous = _username(session, ticket.assignee_id)
    if action == "escalate":
        ticket.tier += 1
    username = _text(data, "technician", max_len=64)
    team = _text(data, "team", max_len=100)
    if username:
        user = session.scalar(select(User).where(User.username == username))
        prof = dispatch.profile_of(session, user.id) if user is not None else None
        if user is None or prof is None:
            raise InvalidInput(f"technician: no technician named {username!r}", field="technician")
        ticket.assignee_id, ticket.team = user.id, team or prof.team
    elif team:
        ticket.assignee_id, ticket.team = None, team
    else:
        exclude = ticket.assignee_id if action in ("reassign", "escalate") else None
        picked = dispatch.pick(session, site=ticket.site, skill=ticket.required_skill, min_tier=ticket.tier,
                               exclude=exclude)  # fmt: skip
        if picked is None:
            raise Conflict(
                f"no on-shift technician of tier >= {ticket.tier} for site {ticket.site or '(any)'!r}"
                f" with skill {ticket.required_skill or '(any)'!r}; name a technician or a team",
                field="technician",
            )
        prof = dispatch.profile_of(session, picked.id)
        ticket.assignee_id, ticket.team = picked.id, prof.team if prof is not None else ""
    return {"from": previous, "technician": _username(session, ticket.assignee_id), "team": ticket.team,
            "tier": ticket.tier}  # fmt: skip


def _archive_alarms(session: Session, ticket: Ticket, actor: Actor, now: datetime) -> int:
    n = 0
    for link in linked_alarms(session, ticket.id):
        if link.archived_at is None:
            link.archived_at = now
            alarm_notes.ticket_archived(session, alarm_id=link.alarm_id, ticket_id=ticket.id, actor=actor.username,
                                        at=now)  # fmt: skip
            n += 1
    return n


def add_note(
    session: Session, *, ticket_id: int, actor: Actor, text: str, expected_version: int | None, now: datetime
) -> TicketEvent:
    ticket = get_visible(session, ticket_id, actor) if actor.role == "technician" else get(session, ticket_id)
    if actor.role == "technician" and ticket.state not in OPEN_STATES:
        raise Conflict(f"ticket {ticket_id} is {ticket.state}; notes are closed", field="text")
    if expected_version is not None and expected_version != ticket.version:
        raise StaleVersion(f"ticket {ticket_id} is at version {ticket.version}, not {expected_version}")
    body = _text({"text": text}, "text", required=True)
    entry = TicketEvent(ticket_id=ticket.id, at=now, actor=actor.username, action="note", detail={"text": body})
    session.add(entry)
    _flush(session, ticket_id)
    changed(session, ticket, "note", {"text": body, "actor": actor.username, "entry_id": entry.id})
    return entry


def _observe(session: Session, ticket: Ticket, action: str) -> None:
    if action == "acknowledge" and ticket.acknowledged_at is not None:
        seconds = (ticket.acknowledged_at - ticket.created_at).total_seconds()
        priority = ticket.priority
        after_commit(session, lambda: metrics.TIME_TO_ACK.labels(priority=priority).observe(seconds))
    if action in ("resolve", "resolve_external") and ticket.resolved_at is not None:
        seconds = (ticket.resolved_at - ticket.created_at).total_seconds()
        priority = ticket.priority
        after_commit(session, lambda: metrics.TIME_TO_RESTORE.labels(priority=priority).observe(seconds))


def _sla_effects(session: Session, policy: Policy, ticket: Ticket, events: list[sla.SlaEvent], now: datetime) -> None:
    for ev in events:
        _record(session, ticket, actor=SYSTEM, action=f"sla_{ev.kind}", now=now, clock=ev.clock,
                elapsed_s=round(ev.elapsed_s, 1), target_s=ev.target_s)  # fmt: skip
        payload = {"ticket_id": ticket.id, "event": f"sla_{ev.kind}", "clock": ev.clock, "priority": ev.priority,
                   "elapsed_s": round(ev.elapsed_s, 1), "target_s": ev.target_s}  # fmt: skip
        _emit(session, ticket, f"sla_{ev.kind}", {"clock": ev.clock, "elapsed_s": round(ev.elapsed_s, 1),
                                                 "target_s": ev.target_s})  # fmt: skip
        if ev.kind == "breach":
            after_commit(session, functools.partial(_count_breach, ev.clock, ev.priority))
        after_commit(session, functools.partial(notify, payload))


# ---- the timers (one tick of ticketing.jobs) ------------------------------------------------


@dataclass
class TickResult:
    opened: list[int]
    verified: list[int]
    reopened: list[int]
    escalated: list[int]
    self_healed: list[int] = field(default_factory=list)  # closed as cleared before dispatch
    service_checked: list[int] = field(default_factory=list)  # resolved tickets whose services were checked


def _clear_since(session: Session, ticket: Ticket) -> datetime | None:
    """When the last of the ticket's alarms cleared; None while one is active (or it has none)."""
    links = linked_alarms(session, ticket.id)
    alarms = list(alarm_queries.alarms(session, (link.alarm_id for link in links)).values())
    if not alarms or any(a.state == "active" for a in alarms):
        return None
    return max((a.cleared_at for a in alarms if a.cleared_at is not None), default=None)


# Asked before a resolved ticket is verified on its alarms: True when it is not verified now
# (its services are checked first, ``ticketing.verify``); the tick then leaves it resolved.
DeferVerify = Callable[[Session, Ticket, datetime], bool]


def tick(
    session: Session, *, policy: Policy, now: datetime, hold_down_s: float, verify_timeout_s: float,
    reopen_window_s: float, defer_verify: DeferVerify | None = None,
) -> TickResult:  # fmt: skip
    result = TickResult([], [], [], [])
    # 1. alarms that qualify now (root cause, severe, unmuted, active long enough) and have no open ticket
    cutoff = now - timedelta(seconds=policy.min_active_s)
    qualify = [
        alarm for alarm in alarm_queries.active_since(session, first_before=cutoff)
        if policy.opens_ticket(severity=alarm.severity, parent_id=alarm.parent_id, muted=alarm.muted,
                               active_s=(now - alarm.first_occurrence).total_seconds()) is None
    ]  # fmt: skip
    on_open_ticket = _alarms_on_open_tickets(session) if qualify else set()  # root, child or a link's other end
    due = [a for a in qualify if a.id not in on_open_ticket]
    # which of their keys a ticket holds, or a ticket closed within the window had: read for the
    # whole round, not asked twice per candidate (a flood's 500 new alarms: 1,000 statements)
    held, closed = _keys_with_tickets(session, [a.reduction_key for a in due], now - timedelta(seconds=reopen_window_s))
    for alarm in due:
        if alarm.id in on_open_ticket:
            continue  # joined an open ticket earlier in this round (the link's other end)
        existing = (
            session.scalar(select(Ticket).where(Ticket.active_key == alarm.reduction_key))
            if alarm.reduction_key in held else None
        )  # fmt: skip
        if existing is not None:
            if attach(session, existing, alarm, role="root", now=now):
                on_open_ticket.add(alarm.id)
                _recurred(session, policy, existing, alarm, now, reopen_window_s, result)
            continue
        peer_ticket = _ticket_of_link_peer(session, alarm)
        if peer_ticket is not None:  # the other end of the same link: one fault, one ticket
            attach(session, peer_ticket, alarm, role="peer", now=now)
            on_open_ticket.add(alarm.id)
            continue
        key = alarm.reduction_key
        recent = _recently_closed(session, key, now, reopen_window_s) if key in closed else None
        if recent is not None:
            attach(session, recent, alarm, role="root", now=now)
            on_open_ticket.add(alarm.id)
            reason = {"reason": f"root cause recurred (alarm {alarm.id})"}
            transition(session, policy=policy, ticket_id=recent.id, action="reopen", actor=SYSTEM, now=now,
                       data=reason, reopen_window_s=reopen_window_s)  # fmt: skip
            result.reopened.append(recent.id)
            continue
        ticket = open_for_alarm(session, policy=policy, alarm=alarm, now=now, key_free=True)
        if ticket is not None:
            result.opened.append(ticket.id)
            if policy.root_cause_only:  # the children it took are symptoms: none of them is due anyway
                on_open_ticket.add(alarm.id)
            else:
                on_open_ticket.update(link.alarm_id for link in linked_alarms(session, ticket.id))
    # 2. verification: resolved tickets whose alarms all cleared and stayed clear for the hold-down
    for ticket in list(session.scalars(select(Ticket).where(Ticket.state == "resolved"))):
        links = linked_alarms(session, ticket.id)
        alarms = list(alarm_queries.alarms(session, (link.alarm_id for link in links)).values())
        active = [a for a in alarms if a.state == "active"]
        if not active:
            last_clear = max((a.cleared_at for a in alarms if a.cleared_at is not None), default=ticket.resolved_at)
            since = max(last_clear or now, ticket.resolved_at or now)
            if (now - since).total_seconds() >= hold_down_s:
                if defer_verify is not None and defer_verify(session, ticket, now):
                    continue
                transition(session, policy=policy, ticket_id=ticket.id, action="verify", actor=SYSTEM, now=now,
                           data={"how": f"linked alarms clear for {hold_down_s:.0f}s"})  # fmt: skip
                result.verified.append(ticket.id)
        elif ticket.resolved_at is not None and (now - ticket.resolved_at).total_seconds() >= verify_timeout_s:
            keys = ", ".join(sorted(a.reduction_key for a in active))
            reason = {"reason": f"verification failed: still active after {verify_timeout_s:.0f}s: {keys}"[:500]}
            transition(session, policy=policy, ticket_id=ticket.id, action="reopen", actor=SYSTEM, now=now,
                       data=reason)  # fmt: skip
            result.reopened.append(ticket.id)
    # 2b. self-healed: nobody acknowledged it, its alarms cleared and stayed clear for the hold-down
    if policy.auto_close_self_healed:
        waiting = session.execute(
            select(Ticket.id, Ticket.root_alarm_id).where(
                Ticket.state == "new", Ticket.source == "alarm", Ticket.acknowledged_at.is_(None)
            )
        ).all()
        # cheap first cut, one query per 500 tickets: only a ticket whose root alarm cleared qualifies
        roots = alarm_queries.alarms(session, (root for _, root in waiting if root is not None))
        cutoff = now - timedelta(seconds=hold_down_s)
        for ticket_id, root_id in waiting:
            root = roots.get(root_id or -1)
            if root is None or root.state == "active" or root.cleared_at is None or root.cleared_at > cutoff:
                continue
            cleared = _clear_since(session, get(session, ticket_id))
            if cleared is not None and cleared <= cutoff:
                transition(session, policy=policy, ticket_id=ticket_id, action="auto_close", actor=SYSTEM, now=now,
                           data={"how": f"linked alarms clear for {hold_down_s:.0f}s"})  # fmt: skip
                result.self_healed.append(ticket_id)
    # 3. SLA clocks of every open ticket; a warning or breach is a change (version + 1), a breach escalates
    routine: list[Ticket] = []
    for ticket in list(session.scalars(select(Ticket).where(Ticket.state.in_(OPEN_STATES)))):
        events = sla.advance(policy, ticket, now)
        if not events:
            routine.append(ticket)
            continue
        _sla_effects(session, policy, ticket, events, now)
        if any(e.kind == "breach" for e in events):
            _escalate(session, policy, ticket, now)
            result.escalated.append(ticket.id)
        _flush(session, ticket.id, client_version=False)
    _store_clocks(session, routine)
    return result


# the routine SLA advance of this many tickets goes out as one executemany
CLOCK_BATCH = 500


def _store_clocks(session: Session, tickets: Sequence[Ticket]) -> None:
    """Write the routine advance of the SLA clocks without raising the tickets' versions.

    The version is the ETag clients hold for their next change; elapsed seconds growing every
    tick is not a change anyone acts on, so it goes out as a Core UPDATE (the ORM would bump
    the version), one executemany per ``CLOCK_BATCH`` tickets (a flood opens hundreds of
    tickets: one statement each, every tick, was most of the ticket round), and the ORM objects
    take the written values as their committed state. Each row's UPDATE applies only to the
    version its clocks were computed from: if someone changed a ticket meanwhile, its row
    matches nothing and the next tick advances from the new row.
    """
    table = cast(Table, Ticket.__table__)
    statement = (
        update(table)
        .where(table.c.id == bindparam("b_id"), table.c.version == bindparam("b_version"))
        .values({name: bindparam(f"b_{name}") for name in sla.CLOCK_COLUMNS})
    )
    for start in range(0, len(tickets), CLOCK_BATCH):
        batch = tickets[start : start + CLOCK_BATCH]
        rows = []
        for ticket in batch:
            values = {name: getattr(ticket, name) for name in sla.CLOCK_COLUMNS}
            for name, value in values.items():  # no longer pending for the ORM: a flush must not carry them
                set_committed_value(ticket, name, value)
            rows.append({"b_id": ticket.id, "b_version": ticket.version, **{f"b_{k}": v for k, v in values.items()}})
        written = session.connection().execute(statement, rows)
        if cast(CursorResult[Any], written).rowcount != len(rows):
            # some were changed by someone else since they were read: reload them before any further use
            for ticket in batch:
                session.expire(ticket)


def _alarms_on_open_tickets(session: Session) -> set[int]:
    """Ids of the alarms linked to an open ticket (root, child or a link's other end)."""
    query = select(TicketAlarm.alarm_id).join(Ticket, Ticket.id == TicketAlarm.ticket_id)
    return set(session.scalars(query.where(Ticket.state.in_(OPEN_STATES))))


def _ticket_of_link_peer(session: Session, alarm: AlarmRecord) -> Ticket | None:
    """The open ticket of an active alarm on the far end of the same inventory link, if any.

    The alarm engine keeps both ends of a failed link as two alarms (each end clears on its
    own); for the field they are one fault, so the second end joins the first end's ticket.
    """
    if not alarm.managed_object.startswith("interface:"):
        return None
    peer = inventory.link_peer(session, alarm.device, alarm.managed_object.removeprefix("interface:"))
    if peer is None:
        return None
    peer_alarms = alarm_queries.active_on(
        session, alarm_type=alarm.alarm_type, device=peer[0], managed_object=f"interface:{peer[1]}"
    )
    if not peer_alarms:
        return None
    return session.scalar(
        select(Ticket)
        .join(TicketAlarm, TicketAlarm.ticket_id == Ticket.id)
        .where(Ticket.state.in_(OPEN_STATES), TicketAlarm.alarm_id.in_(peer_alarms))
        .order_by(Ticket.id)
        .limit(1)
    )


def _escalate(session: Session, policy: Policy, ticket: Ticket, now: datetime) -> None:
    if check_allowed(ticket.state, "escalate"):
        try:
            with session.begin_nested():
                transition(session, policy=policy, ticket_id=ticket.id, action="escalate", actor=SYSTEM, now=now,
                           data={})  # fmt: skip
            return
        except Conflict:
            pass  # nobody of the next tier on shift: still raise the tier so the next dispatch picks higher
    ticket.tier += 1
    _record(session, ticket, actor=SYSTEM, action="tier_raised", now=now, tier=ticket.tier)


def check_allowed(state: str, action: str) -> bool:
    try:
        check(state, action, role="system")
        return True
    except (Conflict, Forbidden, InvalidInput):
        return False


def _keys_with_tickets(session: Session, keys: Sequence[str], closed_since: datetime) -> tuple[set[str], set[str]]:
    """Of these reduction keys: those a ticket holds as its active key, and those a ticket closed
    since ``closed_since`` had as its root key (500 keys per statement)."""
    held: set[str] = set()
    closed: set[str] = set()
    for at in range(0, len(keys), 500):
        part = keys[at : at + 500]
        held.update(session.scalars(select(Ticket.active_key).where(Ticket.active_key.in_(part))))
        closed.update(session.scalars(select(Ticket.root_key).where(
            Ticket.root_key.in_(part), Ticket.state == "closed", Ticket.closed_at >= closed_since
        )))  # fmt: skip
    return held, closed


def _recently_closed(session: Session, key: str, now: datetime, window_s: float) -> Ticket | None:
    return session.scalar(
        select(Ticket)
        .where(Ticket.root_key == key, Ticket.state == "closed", Ticket.closed_at >= now - timedelta(seconds=window_s))
        .order_by(Ticket.closed_at.desc())
        .limit(1)
    )


def _recurred(
    session: Session, policy: Policy, ticket: Ticket, alarm: AlarmRecord, now: datetime, window_s: float,
    result: TickResult,
) -> None:
    """A new alarm instance for the ticket's root cause: reopen a resolved/verified ticket."""
    if ticket.state in ("resolved", "verified"):
        transition(session, policy=policy, ticket_id=ticket.id, action="reopen", actor=SYSTEM, now=now,
                   data={"reason": f"root cause recurred (alarm {alarm.id})"}, reopen_window_s=window_s)  # fmt: skip
        result.reopened.append(ticket.id)


def on_alarm_changes(
    session: Session, changes: Sequence[AlarmChange], *, now: datetime, policy: Policy | None = None
) -> int:
    """Correlated children attach to their root's ticket; returns how many links were made. With the
    ``policy``, an open ticket whose alarms' service impact changed takes its new SLA class."""
    n = 0
    impacted = {c.alarm_id for c in changes if c.kind in ("impact", "correlated")}
    # A storm correlates thousands of children under one root: its ticket is looked up once per
    # round, and a child is read only when there is a ticket to attach it to (two queries per child
    # made a ticketing round of a 2,000-device storm take seconds, delaying the root's ticket).
    tickets_of: dict[int, int | None] = {}
    for change in changes:
        if change.kind != "correlated" or change.parent_id is None:
            continue
        if change.parent_id not in tickets_of:
            tickets_of[change.parent_id] = session.scalar(
                select(TicketAlarm.ticket_id).join(Ticket, Ticket.id == TicketAlarm.ticket_id)
                .where(TicketAlarm.alarm_id == change.parent_id, Ticket.state.in_(OPEN_STATES)).limit(1)
            )  # fmt: skip
        ticket_id = tickets_of[change.parent_id]
        if ticket_id is None:
            continue
        child = alarm_queries.alarm(session, change.alarm_id)
        if child is None:
            continue
        if attach(session, get(session, ticket_id), child, role="child", now=now):
            n += 1
    session.flush()
    if policy is not None and impacted:
        linked = select(TicketAlarm.ticket_id).where(TicketAlarm.alarm_id.in_(sorted(impacted)))
        query = (
            select(Ticket).where(Ticket.id.in_(linked), Ticket.state.in_(OPEN_STATES), Ticket.source == "alarm")
            .order_by(Ticket.id)
        )  # fmt: skip
        for ticket in list(session.scalars(query)):
            reclassify(session, policy, ticket, now=now)
    return n


def reclassify(session: Session, policy: Policy, ticket: Ticket, *, now: datetime) -> bool:
    """Priority and SLA targets from the highest SLA class among the services the ticket's alarms affect
    (the device rules when none); one timeline entry when they change. True if they did."""
    links = linked_alarms(session, ticket.id)
    alarms = alarm_queries.alarms(session, (link.alarm_id for link in links))
    service_class = policy.service_class(r.sla_class for r in alarm_queries.impact(session, alarms))
    if service_class is not None:
        priority, target, name = service_class.priority, service_class.target, service_class.name
    else:
        root = alarms.get(ticket.root_alarm_id or -1)
        role, site = _device_context(session, ticket.device)
        children = sum(1 for link in links if link.role == "child")
        priority = policy.priority(severity=root.severity if root else ticket.severity, role=role, site=site,
                                   impact=children)  # fmt: skip
        target, name = policy.target(priority), None
    if (name, priority) == (ticket.sla_class, ticket.priority):
        return False
    with session.no_autoflush:
        sla.advance(policy, ticket, now)  # time so far counts against the targets it ran under
        before = {"sla_class": ticket.sla_class, "priority": ticket.priority}
        ticket.sla_class, ticket.priority = name, priority
        ticket.response_target_s, ticket.restore_target_s = target.response_s, target.restore_s
        ticket.business_hours = target.business_hours
        ticket.updated_at = now
        detail: dict[str, Any] = {"from": before, "sla_class": name, "priority": priority,
                                  "response_target_s": target.response_s, "restore_target_s": target.restore_s}
        _record(session, ticket, actor=SYSTEM, action="sla_class_changed", now=now, **detail)  # fmt: skip
    _flush(session, ticket.id, client_version=False)
    return True


# ---- idempotency ---------------------------------------------------------------------------


def request_hash(method: str, path: str, body: Any) -> str:
    canonical = json.dumps({"m": method, "p": path, "b": body}, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def idempotency_claim(
    session: Session, *, user_id: int, key: str, digest: str, now: datetime
) -> tuple[IdempotencyKey, bool]:
    """Claim the key before the POST's effect, in the same transaction: (row, is_replay).

    A retry gets the stored row (replay). The key with another request body is 422. When a
    concurrent request with the key commits first, PostgreSQL makes this insert wait for it
    and then we replay its answer; on SQLite the loser gets a 409 "in progress".
    """
    if not key or len(key) > 200 or not key.isprintable():
        raise InvalidInput("Idempotency-Key: expected 1-200 printable characters", field="Idempotency-Key")

    def existing() -> IdempotencyKey | None:
        row = session.scalar(select(IdempotencyKey).where(IdempotencyKey.user_id == user_id, IdempotencyKey.key == key))
        if row is not None and row.request_hash != digest:
            raise InvalidInput(
                "Idempotency-Key: this key was used with a different request; use a new key",
                field="Idempotency-Key",
            )
        return row

    found = existing()
    if found is not None:
        return found, True
    row = IdempotencyKey(user_id=user_id, key=key, request_hash=digest, status_code=0, response={}, created_at=now)
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError:
        found = existing()
        if found is None or found.status_code == 0:
            raise IdempotencyInProgress("Idempotency-Key: a request with this key is in progress; retry") from None
        return found, True
    except OperationalError as exc:
        if database_locked(exc):
            raise DatabaseBusy("Idempotency-Key: a request with this key is in progress; retry") from None
        raise
    return row, False


def idempotency_complete(session: Session, row: IdempotencyKey, *, status_code: int, response: dict[str, Any]) -> None:
    row.status_code = status_code
    row.response = response
    session.flush()


def purge_idempotency(session: Session, *, older_than: datetime) -> int:
    rows = list(session.scalars(select(IdempotencyKey).where(IdempotencyKey.created_at < older_than)))
    for row in rows:
        session.delete(row)
    session.flush()
    return len(rows)


# ---- reports -------------------------------------------------------------------------------


def mttr_report(session: Session, *, by: str, since: datetime | None = None) -> list[dict[str, Any]]:
    """Per site, device or cause category: tickets, resolved, MTTR (created -> resolved) and recurrences."""
    column = {"site": Ticket.site, "device": Ticket.device, "cause": Ticket.cause_category}.get(by)
    if column is None:
        raise InvalidInput("by: expected site, device or cause", field="by")
    query = select(column, Ticket.created_at, Ticket.resolved_at, Ticket.reopen_count, Ticket.root_key,
                   Ticket.close_reason)  # fmt: skip
    if since is not None:
        query = query.where(Ticket.created_at >= since)
    groups: dict[str, dict[str, Any]] = defaultdict(
        lambda: {"tickets": 0, "resolved": 0, "restore_s": 0.0, "reopened": 0, "self_healed": 0,
                 "keys": defaultdict(int)}
    )  # fmt: skip
    for name, created, resolved, reopens, key, close_reason in session.execute(query):
        g = groups[name or ""]
        g["tickets"] += 1
        g["self_healed"] += close_reason == SELF_HEALED
        g["reopened"] += reopens
        if key:
            g["keys"][key] += 1
        if resolved is not None:
            g["resolved"] += 1
            g["restore_s"] += max(0.0, (resolved - created).total_seconds())
    out = []
    for name, g in sorted(groups.items()):
        repeats = sum(n - 1 for n in g["keys"].values() if n > 1)
        out.append({
            "key": name, "tickets": g["tickets"], "resolved": g["resolved"],
            "mttr_s": round(g["restore_s"] / g["resolved"], 1) if g["resolved"] else None,
            "recurrences": g["reopened"] + repeats, "cleared_before_dispatch": g["self_healed"],
        })  # fmt: skip
    return out
