"""TMF621 Trouble Ticket v4: faultloop's tickets as ``TroubleTicket`` resources.

A view of ``ticketing``: ``to_tmf`` maps one ticket (with its alarms, services, parties, timeline)
to the TMF representation; ``create`` and ``patch`` call ticketing's own service functions, so a
ticket made here enters the same state machine and a status change is one of its actions (refused
with a 409 listing the allowed actions, exactly as the JSON API refuses it). What the ticket has no
column for (``externalId``, ``ticketType``) is kept in ``northbound.ticket_models.TicketLink``.

Status (faultloop state -> TMF ``status``; the faultloop state is the ``faultloopState``
characteristic): new -> acknowledged; acknowledged, diagnosed, dispatched, accepted, en_route,
on_site -> inProgress; waiting -> pending; resolved, verified -> resolved; closed -> closed;
cancelled -> cancelled, or rejected when it was cancelled before anyone took it on (never acknowledged, never reopened).
``held`` is never reported (faultloop has no such state).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, false, func, not_, or_, select
from sqlalchemy.orm import Session

from alarms import queries as alarm_queries
from faultloop.accounts.models import User
from faultloop.errors import IllegalTransition, InvalidInput, NotFound
from northbound import hub
from northbound.query import Attribute, Filter, Kind, ListQuery, Resource, TmfQueryError, project
from northbound.ticket_models import TicketLink
from ticketing import service
from ticketing.errors import StaleVersion
from ticketing.models import FaultReport, Ticket, TicketEvent
from ticketing.policy import PRIORITIES, SLA_STOPPED_STATES, Policy, allowed_actions

BASE = "/tmf-api/troubleTicket/v4"
PATH = f"{BASE}/troubleTicket"
ALARM_PATH = "/tmf-api/alarmManagement/v4/alarm"
SERVICE_PATH = "/tmf-api/serviceInventory/v4/service"

STATUSES = ("acknowledged", "rejected", "pending", "held", "inProgress", "cancelled", "closed", "resolved")
STATE_STATUS: dict[str, str] = {
    "new": "acknowledged",
    "acknowledged": "inProgress",
    "diagnosed": "inProgress",
    "dispatched": "inProgress",
    "accepted": "inProgress",
    "en_route": "inProgress",
    "on_site": "inProgress",
    "waiting": "pending",
    "resolved": "resolved",
    "verified": "resolved",
    "closed": "closed",
    "cancelled": "cancelled",
}
IN_PROGRESS = tuple(s for s, status in STATE_STATUS.items() if status == "inProgress")

CREATE_EVENT = "TroubleTicketCreateEvent"
STATUS_EVENT = "TroubleTicketStatusChangeEvent"
CHANGE_EVENT = "TroubleTicketAttributeValueChangeEvent"

FILTERS: dict[str, Attribute] = {
    "id": Attribute(Kind.text),
    "status": Attribute(Kind.text, frozenset(STATUSES)),
    "severity": Attribute(Kind.text),
    "priority": Attribute(Kind.text),
    "ticketType": Attribute(Kind.text),
    "externalId": Attribute(Kind.text),
    "creationDate": Attribute(Kind.datetime),
    "lastUpdate": Attribute(Kind.datetime),
}
FIELDS = frozenset({
    "id", "href", "name", "description", "severity", "priority", "ticketType", "status", "statusChangeDate",
    "statusChangeReason", "creationDate", "lastUpdate", "expectedResolutionDate", "resolutionDate", "externalId",
    "relatedEntity", "relatedParty", "note", "statusChange", "troubleTicketCharacteristic", "@type", "@baseType",
})  # fmt: skip
RESOURCE = Resource(name="troubleTicket", fields=FIELDS, filters=FILTERS)
API = hub.HubApi(
    name="troubleTicket", resource_key="troubleTicket",
    event_types=frozenset({CREATE_EVENT, STATUS_EVENT, CHANGE_EVENT}), filters=FILTERS,
)  # fmt: skip

# PATCH: what a client may change, what is faultloop's own (400 naming it)
WRITABLE = frozenset({"status", "statusChangeReason", "note", "externalId", "ticketType",
                      "troubleTicketCharacteristic", "@type"})  # fmt: skip
READ_ONLY = frozenset({
    "id", "href", "name", "description", "severity", "priority", "statusChangeDate", "creationDate", "lastUpdate",
    "expectedResolutionDate", "resolutionDate", "relatedEntity", "relatedParty", "statusChange",
    "statusChangeHistory", "requestedResolutionDate", "attachment", "channel", "troubleTicketRelationship",
    "@baseType", "@schemaLocation",
})  # fmt: skip
CREATE_FIELDS = frozenset({"name", "description", "severity", "priority", "ticketType", "externalId",
                           "relatedEntity", "note", "status", "@type", "@baseType"})  # fmt: skip
# the characteristics a status change may carry: the fields of the action it becomes
ACTION_FIELDS = frozenset({"cause_category", "action_taken", "notes", "parts_used", "rating"})
MAX_NOTES = 20
MAX_TEXT = 4000


def never_taken(ticket: Ticket) -> bool:
    """Nobody ever took it on: never acknowledged, never reopened (a ticket cancelled so is rejected)."""
    return ticket.acknowledged_at is None and not ticket.reopen_count


def tmf_status(state: str, *, never_taken: bool) -> str:
    if state == "cancelled" and never_taken:
        return "rejected"
    return STATE_STATUS[state]


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


# ---- reading ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TicketView:
    """One ticket and what its TMF representation shows, read in one place (``gather``)."""

    ticket: Ticket
    assignee: str | None
    alarms: tuple[tuple[int, str, str], ...]  # (alarm id, role, reduction key)
    services: tuple[tuple[int, str], ...]  # (service id, customer)
    timeline: tuple[TicketEvent, ...]
    link: TicketLink | None


def gather(session: Session, ticket: Ticket) -> TicketView:
    links = service.linked_alarms(session, ticket.id)
    services: dict[int, str] = {}
    for record in alarm_queries.impact(session, [link.alarm_id for link in links]):
        services.setdefault(record.service_id, record.customer)
    reports = session.execute(select(FaultReport.service_id, FaultReport.customer).where(
        FaultReport.ticket_id == ticket.id))  # fmt: skip
    for service_id, customer in reports:
        services.setdefault(service_id, customer)
    assignee = None
    if ticket.assignee_id is not None:
        assignee = session.scalar(select(User.username).where(User.id == ticket.assignee_id))
    return TicketView(
        ticket=ticket,
        assignee=assignee,
        alarms=tuple((link.alarm_id, link.role, link.reduction_key) for link in links),
        services=tuple(sorted(services.items())),
        timeline=tuple(service.timeline(session, ticket.id)),
        link=session.get(TicketLink, ticket.id),
    )


def _changes(view: TicketView) -> list[dict[str, Any]]:
    out = []
    for e in view.timeline:
        if e.to_state is None:
            continue
        status = "rejected" if e.to_state == "cancelled" and e.from_state == "new" else STATE_STATUS[e.to_state]
        reason = str(e.detail.get("reason") or e.detail.get("how") or "")
        out.append({"status": status, "changeDate": e.at.isoformat(),
                    "changeReason": f"{e.action}: {reason}" if reason else e.action,
                    "@type": "StatusChange"})  # fmt: skip
    return out


def _expected_resolution(t: Ticket) -> str | None:
    """When the restore clock's target runs out, if the clock runs on as it does (24x7 wall time; a
    business-hours target or a pause moves it, as a later read shows)."""
    if t.state in SLA_STOPPED_STATES:
        return None
    left = max(0.0, t.restore_target_s - t.restore_elapsed_s)
    return _iso(t.sla_checked_at + timedelta(seconds=left))


def to_tmf(view: TicketView) -> dict[str, Any]:
    """The TMF621 v4 ``TroubleTicket`` of one ticket."""
    t = view.ticket
    ticket_id = str(t.id)
    status = tmf_status(t.state, never_taken=never_taken(t))
    changes = _changes(view)
    entities: list[dict[str, Any]] = [
        {"id": str(alarm_id), "href": f"{ALARM_PATH}/{alarm_id}", "name": key,
         "role": "rootAlarm" if role == "root" else f"{role}Alarm", "@referredType": "Alarm",
         "@type": "RelatedEntity"}
        for alarm_id, role, key in view.alarms
    ]  # fmt: skip
    entities += [
        {"id": str(sid), "href": f"{SERVICE_PATH}/{sid}", "role": "affectedService", "@referredType": "Service",
         "@type": "RelatedEntity"}
        for sid, _customer in view.services
    ]  # fmt: skip
    if t.device:
        entities.append({"id": t.device, "name": t.device, "role": "device", "@referredType": "Resource",
                         "@type": "RelatedEntity"})  # fmt: skip
    parties: list[dict[str, Any]] = [{"id": t.created_by, "name": t.created_by, "role": "originator",
                                      "@referredType": "Individual", "@type": "RelatedParty"}]  # fmt: skip
    for customer in sorted({c for _sid, c in view.services if c}):
        parties.append({"id": customer, "name": customer, "role": "customer", "@referredType": "Organization",
                        "@type": "RelatedParty"})  # fmt: skip
    if view.assignee:
        parties.append({"id": view.assignee, "name": view.assignee, "role": "technician",
                        "@referredType": "Individual", "@type": "RelatedParty"})  # fmt: skip
    if t.team:
        parties.append({"id": t.team, "name": t.team, "role": "team", "@referredType": "Organization",
                        "@type": "RelatedParty"})  # fmt: skip
    notes = [
        {"id": str(e.id), "author": e.actor, "date": e.at.isoformat(), "text": str(e.detail.get("text", "")),
         "@type": "Note"}
        for e in view.timeline if e.action == "note"
    ]  # fmt: skip
    characteristics: list[dict[str, Any]] = [{"name": "faultloopState", "value": t.state, "valueType": "string"},
                       {"name": "source", "value": t.source, "valueType": "string"},
                       {"name": "version", "value": t.version, "valueType": "integer"},
                       {"name": "responseSlaBreached", "value": t.response_breached, "valueType": "boolean"},
                       {"name": "restoreSlaBreached", "value": t.restore_breached, "valueType": "boolean"}]  # fmt: skip
    if t.sla_class:
        characteristics.append({"name": "slaClass", "value": t.sla_class, "valueType": "string"})
    if t.state == "waiting" or (t.state == "cancelled" and t.cancel_reason):
        last = next((e for e in reversed(view.timeline) if e.to_state == t.state), None)
        if last is not None and last.detail.get("reason"):
            characteristics.append({"name": "reason", "value": str(last.detail["reason"]), "valueType": "string"})
    for c in characteristics:
        c["@type"] = "Characteristic"
    doc: dict[str, Any] = {
        "id": ticket_id,
        "href": f"{PATH}/{ticket_id}",
        "name": t.title,
        "description": t.description or t.title,
        "severity": t.severity,
        "priority": t.priority,
        "ticketType": (view.link.ticket_type if view.link and view.link.ticket_type else t.source),
        "status": status,
        "statusChangeDate": changes[-1]["changeDate"] if changes else t.created_at.isoformat(),
        "creationDate": t.created_at.isoformat(),
        "lastUpdate": t.updated_at.isoformat(),
        "relatedEntity": entities,
        "relatedParty": parties,
        "note": notes,
        "statusChange": changes,
        "troubleTicketCharacteristic": characteristics,
        "@type": "TroubleTicket",
        "@baseType": "TroubleTicket",
    }
    if changes:
        doc["statusChangeReason"] = changes[-1]["changeReason"]
    expected = _expected_resolution(t)
    if expected is not None:
        doc["expectedResolutionDate"] = expected
    if t.resolved_at is not None:
        doc["resolutionDate"] = t.resolved_at.isoformat()
    if view.link is not None and view.link.external_id:
        doc["externalId"] = view.link.external_id
    return doc


def _status_condition(status: str) -> ColumnElement[bool]:
    if status == "rejected":
        return and_(Ticket.state == "cancelled", Ticket.acknowledged_at.is_(None), Ticket.reopen_count == 0)
    if status == "cancelled":
        return and_(Ticket.state == "cancelled", or_(Ticket.acknowledged_at.is_not(None), Ticket.reopen_count > 0))
    states = [s for s, st in STATE_STATUS.items() if st == status]
    return Ticket.state.in_(states) if states else false()


def _compare(column: Any, f: Filter) -> ColumnElement[bool]:
    out: ColumnElement[bool]
    if f.op == "eq":
        out = column.in_(f.values) if len(f.values) > 1 else column == f.values[0]
    elif f.op == "ne":
        out = column.not_in(f.values)
    else:
        value = f.values[0]
        out = {"gt": column > value, "gte": column >= value, "lt": column < value, "lte": column <= value}[f.op]
    return out


def _condition(f: Filter) -> ColumnElement[bool]:
    if f.path == "status":
        if f.op not in ("eq", "ne"):
            raise TmfQueryError(f"filter status: operator {f.op} does not apply; use status= or status.ne=",
                                field="status")  # fmt: skip
        either = or_(*(_status_condition(v) for v in f.values))
        return either if f.op == "eq" else not_(either)
    if f.path == "id":
        ids = [int(v) for v in f.values if v.isascii() and v.isdigit() and len(v) < 12]
        if f.op in ("eq", "ne"):
            found = Ticket.id.in_(ids) if ids else false()
            return found if f.op == "eq" else not_(found)
        if len(ids) != 1:
            raise TmfQueryError(f"filter id.{f.op}: expected a ticket number", field="id")
        return _compare(Ticket.id, Filter("id", f.op, (ids[0],)))
    column: Any = {
        "severity": Ticket.severity, "priority": Ticket.priority, "creationDate": Ticket.created_at,
        "lastUpdate": Ticket.updated_at, "externalId": TicketLink.external_id, "ticketType": TicketLink.ticket_type,
    }[f.path]  # fmt: skip
    if f.path == "ticketType":  # a ticket without its own type shows its source
        column = func.coalesce(func.nullif(TicketLink.ticket_type, ""), Ticket.source)
    return _compare(column, f)


def list_tickets(session: Session, query: ListQuery) -> tuple[list[dict[str, Any]], int]:
    """The page of tickets the query selects (newest first), projected to its fields, and the total."""
    where = [_condition(f) for f in query.filters]
    base = select(Ticket.id).outerjoin(TicketLink, TicketLink.ticket_id == Ticket.id).where(*where)
    total = int(session.scalar(select(func.count()).select_from(base.subquery())) or 0)
    ids = list(session.scalars(base.order_by(Ticket.id.desc()).offset(query.offset).limit(query.limit)))
    docs = [project(to_tmf(gather(session, service.get(session, i))), query.fields) for i in ids]
    return docs, total


def _ticket_id(raw: str) -> int:
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 12:
        raise NotFound(f"trouble ticket {raw[:40]!r} not found", field="id")
    return int(raw)


def get(session: Session, raw_id: str) -> dict[str, Any]:
    return to_tmf(gather(session, service.get(session, _ticket_id(raw_id))))


# ---- writing ---------------------------------------------------------------------------------------


def _bad(message: str, field: str) -> TmfQueryError:
    return TmfQueryError(message, field=field)


def _string(body: Mapping[str, Any], key: str, *, max_len: int, required: bool = False) -> str | None:
    value = body.get(key)
    if value is None:
        if required:
            raise _bad(f"{key}: required", key)
        return None
    if not isinstance(value, str) or (required and not value.strip()):
        raise _bad(f"{key}: expected {'non-empty ' if required else ''}text", key)
    if len(value) > max_len:
        raise _bad(f"{key}: expected at most {max_len} characters", key)
    return value.strip()


def _type(body: Mapping[str, Any]) -> None:
    for key in ("@type", "@baseType"):
        if key in body and body[key] != "TroubleTicket":
            raise _bad(f"{key}: expected TroubleTicket", key)


def _notes(body: Mapping[str, Any], existing: Sequence[TicketEvent] = ()) -> list[str]:
    """The texts of the notes to add: a note with the id of one the ticket has is already there;
    any other note needs a text."""
    raw = body.get("note")
    if raw is None:
        return []
    if not isinstance(raw, list) or len(raw) > MAX_NOTES + len(existing):
        raise _bad(f"note: expected a list of at most {MAX_NOTES} new notes", "note")
    known = {str(e.id) for e in existing if e.action == "note"}
    out = []
    for index, item in enumerate(raw):
        where = f"note[{index}]"
        if not isinstance(item, dict):
            raise _bad(f"{where}: expected an object with text", where)
        unknown = sorted(set(item) - {"id", "text", "author", "date", "@type"})
        if unknown:
            raise _bad(f"{where}.{unknown[0]}: unknown attribute of a note (id, text, author, date)", where)
        if "id" in item:
            if str(item["id"]) not in known:
                raise _bad(f"{where}.id: this ticket has no note {str(item['id'])[:20]!r}; send a new note without id",
                           f"{where}.id")  # fmt: skip
            continue
        text = item.get("text")
        if not isinstance(text, str) or not text.strip() or len(text) > MAX_TEXT:
            raise _bad(f"{where}.text: expected text of 1-{MAX_TEXT} characters", f"{where}.text")
        out.append(text.strip())
    if len(out) > MAX_NOTES:
        raise _bad(f"note: expected at most {MAX_NOTES} new notes", "note")
    return out


def _device(body: Mapping[str, Any]) -> str:
    """The device a created ticket is about: a relatedEntity of @referredType Resource (or Device,
    PhysicalResource) whose id or name is an inventory hostname (checked by ticketing)."""
    raw = body.get("relatedEntity")
    if raw is None:
        return ""
    if not isinstance(raw, list) or len(raw) > 10:
        raise _bad("relatedEntity: expected a list (at most 10)", "relatedEntity")
    devices = []
    for index, item in enumerate(raw):
        where = f"relatedEntity[{index}]"
        if not isinstance(item, dict):
            raise _bad(f"{where}: expected an object", where)
        kind = item.get("@referredType")
        if kind not in ("Resource", "PhysicalResource", "Device", "LogicalResource"):
            raise _bad(f"{where}.@referredType: expected Resource (the device the trouble is on); "
                       "alarms and services are linked by faultloop itself", f"{where}.@referredType")  # fmt: skip
        name = item.get("name") or item.get("id")
        if not isinstance(name, str) or not name or len(name) > 255:
            raise _bad(f"{where}.id: expected the device's hostname", f"{where}.id")
        devices.append(name)
    if len(devices) > 1:
        raise _bad("relatedEntity: expected at most one device", "relatedEntity")
    return devices[0] if devices else ""


def _external_id(body: Mapping[str, Any]) -> str | None:
    value = body.get("externalId")
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > 200 or not value.isprintable():
        raise _bad("externalId: expected 1-200 printable characters", "externalId")
    return value


def _ticket_type(body: Mapping[str, Any]) -> str | None:
    value = _string(body, "ticketType", max_len=100)
    if value is not None and not value:
        raise _bad("ticketType: expected non-empty text", "ticketType")
    return value


def _link(session: Session, ticket: Ticket) -> TicketLink:
    link = session.get(TicketLink, ticket.id)
    if link is None:
        link = TicketLink(ticket_id=ticket.id, external_id=None, ticket_type="", owner="", created_at=ticket.created_at)
        session.add(link)
    return link


def _service_input(exc: InvalidInput) -> TmfQueryError:
    """ticketing's validation (422 in the JSON API) is a TMF 400, naming the same field."""
    return TmfQueryError(exc.detail, field=exc.field)


def create(session: Session, body: Any, *, policy: Policy, actor: service.Actor, now: datetime) -> dict[str, Any]:
    """POST: a manual ticket through ``ticketing.service.create_manual`` (state ``new``, TMF
    ``acknowledged``), its externalId and ticketType, its notes; one TroubleTicketCreateEvent."""
    if not isinstance(body, dict):
        raise _bad("expected a TroubleTicket object", "body")
    unknown = sorted(set(body) - CREATE_FIELDS)
    if unknown:
        what = "read-only" if unknown[0] in READ_ONLY else "unknown"
        raise _bad(f"{unknown[0]}: {what} attribute of a TroubleTicket to create", unknown[0])
    _type(body)
    description = _string(body, "description", max_len=MAX_TEXT, required=True) or ""
    severity = (_string(body, "severity", max_len=20, required=True) or "").lower()
    ticket_type = _ticket_type(body)
    if ticket_type is None:
        raise _bad("ticketType: required", "ticketType")
    name = _string(body, "name", max_len=300) or description.splitlines()[0][:300]
    priority = _string(body, "priority", max_len=20)
    if priority is not None and priority not in PRIORITIES:
        raise _bad(f"priority: expected one of {', '.join(PRIORITIES)}", "priority")
    status = body.get("status")
    if status is not None and status != "acknowledged":
        raise _bad("status: a new trouble ticket is acknowledged; leave status out or send acknowledged", "status")
    external_id = _external_id(body)
    device = _device(body)
    notes = _notes(body)
    session.info[_CREATING] = True  # the create event goes out below, with the link and notes in it
    try:
        ticket = service.create_manual(session, policy=policy, actor=actor, title=name, description=description,
                                       severity=severity, priority=priority, device=device, now=now)  # fmt: skip
        link = _link(session, ticket)
        link.external_id, link.ticket_type = external_id, ticket_type
        session.flush()
        for text in notes:
            service.add_note(session, ticket_id=ticket.id, actor=actor, text=text, expected_version=None, now=now)
    except InvalidInput as exc:
        raise _service_input(exc) from None
    finally:
        session.info.pop(_CREATING, None)
    doc = to_tmf(gather(session, ticket))
    hub.publish(session, API, CREATE_EVENT, doc, at=now)
    return doc


def _characteristics(body: Mapping[str, Any]) -> dict[str, Any]:
    raw = body.get("troubleTicketCharacteristic")
    if raw is None:
        return {}
    if not isinstance(raw, list) or len(raw) > 10:
        raise _bad("troubleTicketCharacteristic: expected a list (at most 10)", "troubleTicketCharacteristic")
    out: dict[str, Any] = {}
    for index, item in enumerate(raw):
        where = f"troubleTicketCharacteristic[{index}]"
        if not isinstance(item, dict) or "name" not in item or "value" not in item:
            raise _bad(f"{where}: expected an object with name and value", where)
        name = item["name"]
        if name not in ACTION_FIELDS:
            raise _bad(f"{where}.name: expected one of {', '.join(sorted(ACTION_FIELDS))} (the fields of a status "
                       "change); the others are faultloop's", f"{where}.name")  # fmt: skip
        out[name] = item["value"]
    return out


_NO_ACTION = ""  # no action of the state machine reaches the status from here


def _action_for(ticket: Ticket, wanted: str, actor: service.Actor) -> str | None:
    """The action to TMF status ``wanted``; None when the ticket is there, ``_NO_ACTION`` when no action goes there."""
    if wanted == tmf_status(ticket.state, never_taken=never_taken(ticket)):
        return None
    state = ticket.state
    if wanted == "inProgress":
        if state in ("resolved", "verified", "closed"):
            return "reopen"
        return {"new": "acknowledge", "waiting": "resume"}.get(state, _NO_ACTION)
    if wanted == "rejected":
        return "cancel" if state == "new" else _NO_ACTION
    fixed = {"pending": "wait", "closed": "close", "cancelled": "cancel",
             "resolved": "resolve_external" if actor.role == "oss" else "resolve"}  # fmt: skip
    return fixed.get(wanted, _NO_ACTION)


def status_action(ticket: Ticket, wanted: str, *, actor: service.Actor) -> str | None:
    """The state machine action that takes ``ticket`` to TMF status ``wanted``; None when it is
    there already. A status no action reaches from here is a 409 listing what this actor may do."""
    action = _action_for(ticket, wanted, actor)
    if action == _NO_ACTION:
        current = tmf_status(ticket.state, never_taken=never_taken(ticket))
        raise IllegalTransition(
            f"status: a {current} ticket (faultloop state {ticket.state!r}) cannot become {wanted}; "
            f"reachable: {', '.join(_reachable(ticket, actor)) or 'none'}",
            allowed=allowed_actions(ticket.state, role=actor.role),
        )
    return action


def _reachable(ticket: Ticket, actor: service.Actor) -> list[str]:
    """The TMF statuses this actor can move the ticket to now."""
    allowed = allowed_actions(ticket.state, role=actor.role)
    return [s for s in STATUSES if (a := _action_for(ticket, s, actor)) and a in allowed]


def _action_data(action: str, reason: str | None, extra: dict[str, Any]) -> dict[str, Any]:
    data = dict(extra)
    if reason:
        if action in ("wait", "resume", "reopen", "cancel"):
            data.setdefault("reason", reason)
        elif action in ("resolve", "resolve_external"):
            data.setdefault("action_taken", reason)
        else:
            data.setdefault("how", reason)
    if action == "reopen" and not data.get("reason"):
        data["reason"] = "reopened through TMF621"
    return data


def patch(session: Session, raw_id: str, body: Any, *, policy: Policy, actor: service.Actor, now: datetime,
          reopen_window_s: float, expected_version: int | None = None) -> dict[str, Any]:  # fmt: skip
    """PATCH (merge patch): ``status`` becomes the state machine's action, notes are added,
    ``externalId`` / ``ticketType`` are stored; everything else is faultloop's (400 naming it)."""
    ticket = service.get(session, _ticket_id(raw_id))
    if not isinstance(body, dict) or not body:
        raise _bad("expected a TroubleTicket object with the attributes to change", "body")
    for key in sorted(body):
        if key in READ_ONLY:
            raise _bad(f"{key}: read-only attribute of a TroubleTicket; writable: {', '.join(sorted(WRITABLE))}", key)
        if key not in WRITABLE:
            raise _bad(f"{key}: unknown attribute of a TroubleTicket; writable: {', '.join(sorted(WRITABLE))}", key)
    _type(body)
    status = body.get("status")
    if status is not None and (not isinstance(status, str) or status not in STATUSES or status == "held"):
        raise _bad(f"status: expected one of {', '.join(s for s in STATUSES if s != 'held')}", "status")
    reason = _string(body, "statusChangeReason", max_len=500)
    extra = _characteristics(body)
    if extra and status is None:
        raise _bad("troubleTicketCharacteristic: only with a status change (its fields)", "troubleTicketCharacteristic")
    if reason is not None and status is None:
        raise _bad("statusChangeReason: only with a status change", "statusChangeReason")
    external_id = _external_id(body)
    ticket_type = _ticket_type(body)
    notes = _notes(body, service.timeline(session, ticket.id))
    if expected_version is not None and expected_version != ticket.version:
        raise StaleVersion(f"ticket {ticket.id} is at version {ticket.version}, not {expected_version}; "
                                   "reload it and retry")  # fmt: skip
    before = to_tmf(gather(session, ticket))
    try:
        action = status_action(ticket, status, actor=actor) if status is not None else None
        if action is not None:
            session.info[_QUIET] = True  # this PATCH publishes one event for all it changed
            try:
                service.transition(session, policy=policy, ticket_id=ticket.id, action=action, actor=actor,
                                   data=_action_data(action, reason, extra), now=now,
                                   reopen_window_s=reopen_window_s)  # fmt: skip
            finally:
                session.info.pop(_QUIET, None)
        session.info[_QUIET] = True
        try:
            for text in notes:
                service.add_note(session, ticket_id=ticket.id, actor=actor, text=text, expected_version=None, now=now)
        finally:
            session.info.pop(_QUIET, None)
    except InvalidInput as exc:
        raise _service_input(exc) from None
    except IllegalTransition as exc:  # the state machine's refusal, said in TMF terms, with its allowed actions
        current = before["status"]
        raise IllegalTransition(f"status: a {current} ticket cannot become {status}: {exc.detail}",
                                allowed=exc.allowed) from None  # fmt: skip
    if external_id is not None or ticket_type is not None:
        link = _link(session, ticket)
        if external_id is not None:
            link.external_id = external_id
        if ticket_type is not None:
            link.ticket_type = ticket_type
        session.flush()
    after = to_tmf(gather(session, ticket))
    _publish_change(session, before, after, now)
    return after


# ---- events ----------------------------------------------------------------------------------------

_CREATING = "tmf621.creating"  # session.info: a TMF create publishes its own event
_QUIET = "tmf621.quiet"  # session.info: a TMF PATCH publishes one event for all it did


def _publish_change(session: Session, before: Mapping[str, Any], after: Mapping[str, Any], at: datetime) -> None:
    if before.get("status") != after.get("status"):
        hub.publish(session, API, STATUS_EVENT, after, at=at)
    elif _differs(before, after):
        hub.publish(session, API, CHANGE_EVENT, after, at=at)


def _differs(before: Mapping[str, Any], after: Mapping[str, Any]) -> bool:
    ignore = {"expectedResolutionDate", "lastUpdate"}
    return any(before.get(k) != after.get(k) for k in set(before) | set(after) if k not in ignore)


def on_ticket_change(session: Session, ticket: Ticket, change: str, detail: dict[str, Any]) -> None:
    """``ticketing.service.CHANGES["tmf-hub"]``: the hub events of a ticket change made anywhere
    (the engine, the JSON API, the dashboard, a technician), in its transaction."""
    if session.info.get(_QUIET) or session.info.get(_CREATING) or not hub.listened(session, API):
        return
    doc = to_tmf(gather(session, ticket))
    if change == "created":
        hub.publish(session, API, CREATE_EVENT, doc)
        return
    from_state, to_state = detail.get("from_state"), detail.get("to_state")
    if from_state is not None and to_state is not None:
        if STATE_STATUS[from_state] != doc["status"]:  # (cancelled is terminal: never a from-state)
            hub.publish(session, API, STATUS_EVENT, doc)
            return
    hub.publish(session, API, CHANGE_EVENT, doc)


def on_ticket_outbox(session: Session, ticket: Ticket, event: str, detail: dict[str, Any]) -> None:
    """``ticketing.service.OUTBOX["tmf-hub"]``: an SLA breach (not a state change, which
    ``on_ticket_change`` sees) changes what a listener shows (``restoreSlaBreached``...): an
    attribute value change."""
    if event != "sla_breach" or session.info.get(_QUIET):
        return
    # in the middle of the SLA round's change of the ticket (its tier is raised next): reading must not
    # flush it, or the one change would raise the ticket's version (its ETag) twice
    with session.no_autoflush:
        if hub.listened(session, API):
            hub.publish(session, API, CHANGE_EVENT, to_tmf(gather(session, ticket)))
