"""TMF642 Alarm Management v4: faultloop's alarms as TMF ``Alarm`` resources, the task resources
(``ackAlarms``, ``unAckAlarms``, ``clearAlarms``, ``commentAlarms``) and the hub events.

``to_tmf`` maps an alarm row (with what ``documents`` reads alongside it: journal, correlated
children, service impact) to the v4 representation. Every filterable attribute is also an SQL
condition (``conditions``), so a list pages and counts in the database; ``matches`` over ``to_tmf``
gives the same answer (a test holds both to it). The tasks select alarms by ``alarmPattern`` and run
the alarm domain's own operations (``alarms.service``: same checks, journal, audit).

Events: ``AlarmCreateEvent`` (raised), ``AlarmStateChangeEvent`` (cleared, acknowledged,
unacknowledged), ``AlarmAttributeValueChangeEvent`` (every other change: severity, correlation,
root cause, maintenance, flapping, service impact, comments). ``engine_outbox`` writes them for the
engine's changes, ``operator_outbox`` for operator actions, both inside the transaction of the change.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, case, false, func, literal, not_, or_, select, true, type_coerce
from sqlalchemy.orm import Session, aliased

from alarms import service as alarms
from alarms.models import Alarm, AlarmJournal, AlarmServiceImpact
from faultloop import clock
from faultloop.db import UTCDateTime
from faultloop.errors import NotFound
from faultloop.events import AlarmChange, after_commit
from northbound import hub
from northbound.query import Attribute, Filter, Kind, ListQuery, Resource, TmfQueryError, parse_datetime

BASE = "/tmf-api/alarmManagement/v4"
SYSTEM = "faultloop"
MAX_TASK_ALARMS = 1000  # alarms one task may change: a broader pattern is refused, not half done
MAX_PATTERNS = 100

SEVERITIES = ("critical", "major", "minor", "warning", "indeterminate")
# X.733 8.1.1 / 3GPP TS 32.111-2 Annex A event types, derived from faultloop's alarm type by the
# first rule whose word occurs in it (lower case); everything else is a communications alarm.
ALARM_TYPES = (
    "communicationsAlarm", "processingErrorAlarm", "environmentalAlarm", "qualityOfServiceAlarm",
    "equipmentAlarm", "integrityViolation", "operationalViolation", "physicalViolation",
    "securityServiceOrMechanismViolation", "timeDomainViolation",
)  # fmt: skip
ALARM_TYPE_RULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("environmentalAlarm", ("temp", "fan", "power", "psu", "humidity", "environment")),
    ("equipmentAlarm", ("reboot", "coldstart", "warmstart", "hardware", "module", "equipment", "disk")),
    ("securityServiceOrMechanismViolation", ("auth", "security", "intrusion", "login")),
    ("operationalViolation", ("config",)),
    ("qualityOfServiceAlarm", ("cpu", "mem", "util", "latency", "loss", "jitter", "threshold", "error",
                               "discard", "high", "slow")),
    ("processingErrorAlarm", ("process", "software", "crash")),
)  # fmt: skip
DEFAULT_ALARM_TYPE = "communicationsAlarm"

STATE_EVENTS = frozenset({"cleared", "acknowledged", "unacknowledged"})  # journal actions / change kinds
EVENT_TYPES = frozenset({"AlarmCreateEvent", "AlarmStateChangeEvent", "AlarmAttributeValueChangeEvent"})

_ENUMS: dict[str, frozenset[str]] = {
    "state": frozenset({"raised", "updated", "cleared"}),
    "perceivedSeverity": frozenset({*SEVERITIES, "cleared"}),
    "alarmType": frozenset(ALARM_TYPES),
    "ackState": frozenset({"acknowledged", "unacknowledged"}),
    "plannedOutageIndicator": frozenset({"InService", "OutOfService"}),
}
FILTERS: dict[str, Attribute] = {
    "id": Attribute(Kind.text),
    "state": Attribute(Kind.text, _ENUMS["state"]),
    "perceivedSeverity": Attribute(Kind.text, _ENUMS["perceivedSeverity"]),
    "alarmType": Attribute(Kind.text, _ENUMS["alarmType"]),
    "ackState": Attribute(Kind.text, _ENUMS["ackState"]),
    "plannedOutageIndicator": Attribute(Kind.text, _ENUMS["plannedOutageIndicator"]),
    "alarmedObject.id": Attribute(Kind.text),
    "isRootCause": Attribute(Kind.boolean),
    "serviceAffecting": Attribute(Kind.boolean),
    "probableCause": Attribute(Kind.text),
    "specificProblem": Attribute(Kind.text),
    "sourceSystemId": Attribute(Kind.text),
    "externalAlarmId": Attribute(Kind.text),
    "alarmRaisedTime": Attribute(Kind.datetime),
    "alarmChangedTime": Attribute(Kind.datetime),
    "alarmClearedTime": Attribute(Kind.datetime),
    "parentAlarm.id": Attribute(Kind.text),
    "correlatedAlarm.id": Attribute(Kind.text),
    "affectedService.id": Attribute(Kind.text),
}
FIELDS = frozenset({
    "id", "href", "@type", "alarmType", "perceivedSeverity", "probableCause", "specificProblem", "state",
    "ackState", "ackUserId", "ackSystemId", "alarmRaisedTime", "alarmReportingTime", "alarmChangedTime",
    "alarmClearedTime", "clearUserId", "clearSystemId", "alarmedObject", "alarmedObjectType", "isRootCause",
    "parentAlarm", "correlatedAlarm", "plannedOutageIndicator", "serviceAffecting", "affectedService", "comment",
    "sourceSystemId", "reportingSystemId", "externalAlarmId", "alarmDetails", "alarmEscalation",
})  # fmt: skip
RESOURCE = Resource(name="alarm", fields=FIELDS, filters=FILTERS)
API = hub.HubApi(name="alarmManagement", resource_key="alarm", event_types=EVENT_TYPES, filters=FILTERS)

SEVERITY_RANK = {"critical": 5, "major": 4, "minor": 3, "warning": 2, "indeterminate": 1}


# ---- the mapping -----------------------------------------------------------------------------------


def alarm_type_of(faultloop_type: str) -> str:
    lowered = faultloop_type.lower()
    for category, words in ALARM_TYPE_RULES:
        if any(w in lowered for w in words):
            return category
    return DEFAULT_ALARM_TYPE


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def href(alarm_id: int | str) -> str:
    return f"{BASE}/alarm/{alarm_id}"


def ref(alarm_id: int) -> dict[str, Any]:
    return {"id": str(alarm_id), "href": href(alarm_id), "@referredType": "Alarm"}


def _in_maintenance(alarm: Alarm) -> bool:
    return bool(alarm.muted) and (alarm.suppression_reason or "").startswith("maintenance")


def _state(alarm: Alarm) -> str:
    if alarm.state != "active":
        return "cleared"
    return "updated" if alarm.count > 1 or alarm.severity != alarm.original_severity else "raised"


class Extras:
    """What an alarm's document needs besides its row, read for many alarms at once."""

    def __init__(self) -> None:
        self.journal: dict[int, list[AlarmJournal]] = {}
        self.children: dict[int, list[int]] = {}
        self.services: dict[int, list[int]] = {}
        self.changed: dict[int, datetime] = {}


def _chunks(ids: Sequence[int], size: int = 500) -> Iterable[Sequence[int]]:
    for start in range(0, len(ids), size):
        yield ids[start : start + size]


def extras(session: Session, alarm_ids: Sequence[int]) -> Extras:
    out = Extras()
    ids = sorted(set(alarm_ids))
    for part in _chunks(ids):
        for row in session.scalars(
            select(AlarmJournal).where(AlarmJournal.alarm_id.in_(part)).order_by(AlarmJournal.id)
        ):
            out.changed[row.alarm_id] = max(out.changed.get(row.alarm_id, row.at), row.at)
            if row.action in ("comment", "acknowledged", "unacknowledged", "cleared"):
                out.journal.setdefault(row.alarm_id, []).append(row)
        for child, parent in session.execute(
            select(Alarm.id, Alarm.parent_id).where(Alarm.parent_id.in_(part)).order_by(Alarm.id)
        ):
            if parent is not None:
                out.children.setdefault(parent, []).append(child)
        for alarm_id, service_id in session.execute(
            select(AlarmServiceImpact.alarm_id, AlarmServiceImpact.service_id)
            .where(AlarmServiceImpact.alarm_id.in_(part))
            .order_by(AlarmServiceImpact.service_id)
        ):
            out.services.setdefault(alarm_id, []).append(service_id)
    return out


def to_tmf(alarm: Alarm, extra: Extras) -> dict[str, Any]:
    """The TMF642 v4 ``Alarm`` of one faultloop alarm (``extra``: from ``extras`` for it)."""
    journal = extra.journal.get(alarm.id, [])
    cleared = alarm.state != "active"
    doc: dict[str, Any] = {
        "id": str(alarm.id),
        "href": href(alarm.id),
        "@type": "Alarm",
        "externalAlarmId": alarm.reduction_key,
        "alarmType": alarm_type_of(alarm.alarm_type),
        "perceivedSeverity": "cleared" if cleared else alarm.severity,
        "probableCause": alarm.probable_cause or alarm.alarm_type,
        "specificProblem": alarm.specific_problem or alarm.alarm_type,
        "alarmDetails": alarm.description,
        "state": _state(alarm),
        "ackState": "acknowledged" if alarm.acknowledged else "unacknowledged",
        "alarmRaisedTime": alarm.first_occurrence.isoformat(),
        "alarmReportingTime": alarm.first_occurrence.isoformat(),
        "alarmChangedTime": max(alarm.last_occurrence, extra.changed.get(alarm.id, alarm.last_occurrence)).isoformat(),
        "alarmEscalation": SEVERITY_RANK.get(alarm.severity, 0) > SEVERITY_RANK.get(alarm.original_severity, 0),
        "alarmedObject": {"id": alarm.device or alarm.managed_object, "@referredType": "Resource"},
        "alarmedObjectType": (alarm.managed_object.split(":", 1)[0] if alarm.managed_object else "device"),
        "isRootCause": bool(alarm.root_cause),
        "parentAlarm": [ref(alarm.parent_id)] if alarm.parent_id is not None else [],
        "correlatedAlarm": [ref(c) for c in extra.children.get(alarm.id, [])],
        "plannedOutageIndicator": "OutOfService" if _in_maintenance(alarm) else "InService",
        "serviceAffecting": alarm.services_affected > 0,
        "affectedService": [
            {"id": str(s), "href": f"/tmf-api/serviceInventory/v4/service/{s}", "@referredType": "Service"}
            for s in extra.services.get(alarm.id, [])
        ],
        "comment": [
            {
                "comment": str(j.detail.get("text", "")),
                "userId": j.actor,
                "systemId": SYSTEM,
                "time": j.at.isoformat(),
                "@type": "Comment",
            }
            for j in journal
            if j.action == "comment"
        ],  # fmt: skip
        "sourceSystemId": f"{SYSTEM}/{alarm.source}",
        "reportingSystemId": SYSTEM,
    }
    acks = [j for j in journal if j.action in ("acknowledged", "unacknowledged")]
    if alarm.acknowledged and alarm.ack_by:
        doc["ackUserId"], doc["ackSystemId"] = alarm.ack_by, SYSTEM
    elif acks:
        doc["ackUserId"], doc["ackSystemId"] = acks[-1].actor, SYSTEM
    if cleared:
        doc["alarmClearedTime"] = _iso(alarm.cleared_at or alarm.last_occurrence)
        manual = [j for j in journal if j.action == "cleared"]
        if manual:
            doc["clearUserId"], doc["clearSystemId"] = manual[-1].actor, SYSTEM
    return doc


def documents(session: Session, rows: Sequence[Alarm]) -> list[dict[str, Any]]:
    extra = extras(session, [a.id for a in rows])
    return [to_tmf(a, extra) for a in rows]


# ---- filters as SQL -------------------------------------------------------------------------------


def _alarm_type_expr() -> ColumnElement[Any]:
    lowered = func.lower(Alarm.alarm_type)
    whens = [(or_(*(lowered.like(f"%{w}%") for w in words)), literal(category))
             for category, words in ALARM_TYPE_RULES]  # fmt: skip
    return case(*whens, else_=literal(DEFAULT_ALARM_TYPE))


def _changed_expr() -> ColumnElement[Any]:
    last = select(func.max(AlarmJournal.at)).where(AlarmJournal.alarm_id == Alarm.id).scalar_subquery()
    return type_coerce(case((last > Alarm.last_occurrence, last), else_=Alarm.last_occurrence), UTCDateTime())


def _int_ids(values: Iterable[Any]) -> list[int]:
    return [int(v) for v in values if isinstance(v, str) and v.isdigit() and len(v) <= 10 and int(v) < 2**31]


def _compare(expr: Any, f: Filter) -> ColumnElement[bool]:
    """``expr`` (a value each alarm has, maybe NULL) against ``f``: the semantics of ``query.matches``."""
    if f.op == "eq":
        return or_(false(), expr.in_(list(f.values)))
    if f.op == "ne":
        return or_(expr.is_(None), expr.not_in(list(f.values)))
    if f.op not in ("gt", "gte", "lt", "lte") or not isinstance(f.values[0], datetime):
        raise TmfQueryError(f"filter {f.path}: operator {f.op} applies to date-times only", field=f.path)
    value = f.values[0]
    result: ColumnElement[bool] = {"gt": expr > value, "gte": expr >= value, "lt": expr < value,
                                   "lte": expr <= value}[f.op]  # fmt: skip
    return and_(expr.is_not(None), result)


def _membership(f: Filter, selected: Callable[[list[int]], ColumnElement[bool]]) -> ColumnElement[bool]:
    if f.op not in ("eq", "ne"):
        raise TmfQueryError(f"filter {f.path}: operator {f.op} applies to date-times only", field=f.path)
    ids = _int_ids(f.values)
    hit = selected(ids) if ids else false()
    return hit if f.op == "eq" else not_(hit)


def _state_cond(value: str) -> ColumnElement[bool]:
    if value == "cleared":
        return Alarm.state != "active"
    updated = or_(Alarm.count > 1, Alarm.severity != Alarm.original_severity)
    return and_(Alarm.state == "active", updated if value == "updated" else not_(updated))


def _severity_cond(value: str) -> ColumnElement[bool]:
    if value == "cleared":
        return Alarm.state != "active"
    return and_(Alarm.state == "active", Alarm.severity == value)


def _derived(f: Filter, cond: Callable[[Any], ColumnElement[bool]]) -> ColumnElement[bool]:
    if f.op not in ("eq", "ne"):
        raise TmfQueryError(f"filter {f.path}: operator {f.op} applies to date-times only", field=f.path)
    hit = or_(false(), *(cond(v) for v in f.values))
    return hit if f.op == "eq" else not_(hit)


def condition(f: Filter) -> ColumnElement[bool]:
    """One parsed filter as an SQL condition on ``Alarm``."""
    p = f.path
    if p == "id":
        return _membership(f, lambda ids: Alarm.id.in_(ids))
    if p == "state":
        return _derived(f, _state_cond)
    if p == "perceivedSeverity":
        return _derived(f, _severity_cond)
    if p == "ackState":
        return _derived(f, lambda v: Alarm.acknowledged.is_(v == "acknowledged"))
    if p == "isRootCause":
        return _derived(f, lambda v: Alarm.root_cause.is_(bool(v)))
    if p == "serviceAffecting":
        return _derived(f, lambda v: (Alarm.services_affected > 0) if v else (Alarm.services_affected <= 0))
    if p == "plannedOutageIndicator":
        maintenance = and_(Alarm.muted.is_(True), Alarm.suppression_reason.like("maintenance%"))
        return _derived(f, lambda v: maintenance if v == "OutOfService" else not_(maintenance))
    if p == "alarmType":
        return _compare(_alarm_type_expr(), f)
    if p == "alarmedObject.id":
        return _compare(case((Alarm.device != "", Alarm.device), else_=Alarm.managed_object), f)
    if p == "probableCause":
        return _compare(case((Alarm.probable_cause != "", Alarm.probable_cause), else_=Alarm.alarm_type), f)
    if p == "specificProblem":
        return _compare(case((Alarm.specific_problem != "", Alarm.specific_problem), else_=Alarm.alarm_type), f)
    if p == "sourceSystemId":
        return _compare(literal(f"{SYSTEM}/") + Alarm.source, f)
    if p == "externalAlarmId":
        return _compare(Alarm.reduction_key, f)
    if p == "alarmRaisedTime":
        return _compare(Alarm.first_occurrence, f)
    if p == "alarmClearedTime":
        cleared_at = case((Alarm.state != "active", func.coalesce(Alarm.cleared_at, Alarm.last_occurrence)))
        return _compare(type_coerce(cleared_at, UTCDateTime()), f)
    if p == "alarmChangedTime":
        return _compare(_changed_expr(), f)
    if p == "parentAlarm.id":
        # NULL IN (...) is NULL, and NOT NULL too: a lone alarm must pass parentAlarm.id.ne
        return _membership(f, lambda ids: and_(Alarm.parent_id.is_not(None), Alarm.parent_id.in_(ids)))
    if p == "correlatedAlarm.id":
        child = aliased(Alarm)
        return _membership(f, lambda ids: Alarm.id.in_(select(child.parent_id).where(child.id.in_(ids))))
    if p == "affectedService.id":
        return _membership(f, lambda ids: Alarm.id.in_(
            select(AlarmServiceImpact.alarm_id).where(AlarmServiceImpact.service_id.in_(ids))))  # fmt: skip
    raise TmfQueryError(f"unknown filter attribute {p!r} for alarm", field=p)  # parse_filters refuses it first


def conditions(filters: Iterable[Filter]) -> list[ColumnElement[bool]]:
    return [condition(f) for f in filters]


# ---- list and get ---------------------------------------------------------------------------------


def list_alarms(session: Session, query: ListQuery) -> tuple[list[dict[str, Any]], int]:
    """One page (newest change first, then id) and the number of every match."""
    where = conditions(query.filters)
    total = session.scalar(select(func.count()).select_from(Alarm).where(*where)) or 0
    rows = list(session.scalars(
        select(Alarm).where(*where).order_by(Alarm.last_occurrence.desc(), Alarm.id.desc())
        .limit(query.limit).offset(query.offset)
    ))  # fmt: skip
    return documents(session, rows), total


def get_alarm(session: Session, alarm_id: str) -> dict[str, Any]:
    ids = _int_ids([alarm_id])
    row = session.get(Alarm, ids[0]) if ids else None
    if row is None:
        raise NotFound(f"alarm {alarm_id[:40]!r} not found", field="id")
    return documents(session, [row])[0]


# ---- alarmPattern and the task resources -------------------------------------------------------------

_META = frozenset({"@type", "@baseType", "@schemaLocation", "@referredType", "href"})


def _pattern_value(where: str, attribute: Attribute, value: Any) -> Any:
    if attribute.kind is Kind.boolean:
        if not isinstance(value, bool):
            raise TmfQueryError(f"{where}: expected true or false", field=where)
        return value
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise TmfQueryError(f"{where}: expected a string", field=where)
    raw = str(value)
    if len(raw) > 500:
        raise TmfQueryError(f"{where}: longer than 500 characters", field=where)
    if attribute.kind is Kind.datetime:
        return parse_datetime(raw, where)
    if attribute.values is not None and raw not in attribute.values:
        raise TmfQueryError(f"{where}: expected one of {', '.join(sorted(attribute.values))}", field=where)
    return raw


def _flatten(where: str, prefix: str, obj: Mapping[str, Any], out: list[Filter], depth: int = 0) -> None:
    if depth > 2:
        raise TmfQueryError(f"{where}: nested deeper than an alarm's attributes", field=where)
    for key, value in obj.items():
        if not isinstance(key, str) or key in _META:
            continue
        path = f"{prefix}{key}"
        here = f"{where}.{path}"
        if isinstance(value, Mapping):
            _flatten(where, f"{path}.", value, out, depth + 1)
            continue
        if isinstance(value, list) and path not in FILTERS:
            for item in value[:MAX_PATTERNS]:
                if not isinstance(item, Mapping):
                    raise TmfQueryError(f"{here}: expected a list of objects", field=here)
                _flatten(where, f"{path}.", item, out, depth + 1)
            continue
        attribute = FILTERS.get(path)
        if attribute is None:
            known = ", ".join(sorted(FILTERS))
            raise TmfQueryError(f"{here}: not an attribute an alarmPattern can match; matchable: {known}", field=here)
        out.append(Filter(path, "eq", (_pattern_value(here, attribute, value),)))


def parse_patterns(raw: Any) -> list[tuple[Filter, ...]]:
    """``alarmPattern``: a list of partial alarms; an alarm matches when every attribute of one of
    them equals the alarm's. Anything else is a 400 naming the pattern and attribute."""
    if not isinstance(raw, list) or not raw:
        raise TmfQueryError("alarmPattern: expected a non-empty list of partial alarm objects", field="alarmPattern")
    if len(raw) > MAX_PATTERNS:
        raise TmfQueryError(f"alarmPattern: more than {MAX_PATTERNS} patterns", field="alarmPattern")
    out: list[tuple[Filter, ...]] = []
    for i, pattern in enumerate(raw):
        where = f"alarmPattern[{i}]"
        if not isinstance(pattern, Mapping):
            raise TmfQueryError(f"{where}: expected an object (a partial alarm)", field=where)
        filters: list[Filter] = []
        _flatten(where, "", pattern, filters)
        if not filters:
            raise TmfQueryError(f"{where}: names no attribute; it would match every alarm", field=where)
        out.append(tuple(filters))
    return out


def select_alarms(session: Session, patterns: Sequence[tuple[Filter, ...]], *,
                  extra: ColumnElement[bool] | None = None) -> list[Alarm]:  # fmt: skip
    """The alarms matching any pattern (and ``extra``), at most ``MAX_TASK_ALARMS`` (more: 400)."""
    where = or_(*(and_(true(), *conditions(p)) for p in patterns))
    if extra is not None:
        where = and_(where, extra)
    rows = list(session.scalars(select(Alarm).where(where).order_by(Alarm.id).limit(MAX_TASK_ALARMS + 1)))
    if len(rows) > MAX_TASK_ALARMS:
        raise TmfQueryError(
            f"alarmPattern selects more than {MAX_TASK_ALARMS} alarms; narrow it (one task changes at most "
            f"{MAX_TASK_ALARMS})", field="alarmPattern",
        )  # fmt: skip
    return rows


def _task(kind: str, changed_key: str, rows: Sequence[Alarm], pattern: Any, **fields: Any) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "@type": kind,
        "state": "done",
        "alarmPattern": pattern,
        changed_key: [ref(a.id) for a in rows],
        **{k: v for k, v in fields.items() if v is not None},
    }


@dataclass(frozen=True)
class _StateTask:
    """What differs between the ack, unack and clear tasks: the resource's type, the key of the alarms
    it changed and the names of its who / which system / when attributes."""

    kind: str
    changed_key: str
    user_key: str
    system_key: str
    time_key: str


_ACK = _StateTask("AckAlarms", "ackedAlarm", "ackUserId", "ackSystemId", "ackTime")
_UNACK = _StateTask("UnAckAlarms", "unAckedAlarm", "ackUserId", "ackSystemId", "ackTime")
_CLEAR = _StateTask("ClearAlarms", "clearedAlarm", "clearUserId", "clearSystemId", "alarmClearedTime")


def _state_task(session: Session, task: _StateTask, pattern: Any, *, selected: ColumnElement[bool],
                act: Callable[[int], object], user: str, system: str | None) -> dict[str, Any]:  # fmt: skip
    """Run ``act`` on each alarm the pattern selects among ``selected`` (those the action changes)
    and answer with the task resource."""
    rows = select_alarms(session, parse_patterns(pattern), extra=selected)
    for a in rows:
        act(a.id)
    stamps = {task.user_key: user, task.system_key: system or SYSTEM, task.time_key: clock.now().isoformat()}
    return _task(task.kind, task.changed_key, rows, pattern, **stamps)


def ack_alarms(session: Session, pattern: Any, *, actor: str, ack_user: str | None,
               ack_system: str | None) -> dict[str, Any]:  # fmt: skip
    return _state_task(session, _ACK, pattern, selected=Alarm.acknowledged.is_(False),
                       act=lambda alarm_id: alarms.acknowledge(session, alarm_id, actor=actor),
                       user=ack_user or actor, system=ack_system)  # fmt: skip


def unack_alarms(session: Session, pattern: Any, *, actor: str, ack_user: str | None,
                 ack_system: str | None) -> dict[str, Any]:  # fmt: skip
    return _state_task(session, _UNACK, pattern, selected=Alarm.acknowledged.is_(True),
                       act=lambda alarm_id: alarms.unacknowledge(session, alarm_id, actor=actor),
                       user=ack_user or actor, system=ack_system)  # fmt: skip


def clear_alarms(session: Session, pattern: Any, *, actor: str, clear_user: str | None,
                 clear_system: str | None, reason: str) -> dict[str, Any]:  # fmt: skip
    return _state_task(session, _CLEAR, pattern, selected=Alarm.state == "active",
                       act=lambda alarm_id: alarms.clear(session, alarm_id, actor=actor, reason=reason),
                       user=clear_user or actor, system=clear_system)  # fmt: skip


def comment_alarms(session: Session, pattern: Any, *, actor: str, text: str,
                   comment: Mapping[str, Any]) -> dict[str, Any]:  # fmt: skip
    rows = select_alarms(session, parse_patterns(pattern))
    for a in rows:
        alarms.comment(session, a.id, actor=actor, text=text)
    echoed = {
        "comment": text,
        "userId": comment.get("userId") or actor,
        "systemId": comment.get("systemId") or SYSTEM,
        "time": clock.now().isoformat(),
        "@type": "Comment",
    }
    return _task("CommentAlarms", "commentedAlarm", rows, pattern, comment=echoed)


# ---- events -------------------------------------------------------------------------------------------


def event_type(change: str) -> str:
    """The TMF event of an engine change kind or an operator's journal action."""
    if change == "raised":
        return "AlarmCreateEvent"
    if change in STATE_EVENTS:
        return "AlarmStateChangeEvent"
    return "AlarmAttributeValueChangeEvent"


def publish_changes(session: Session, changes: Sequence[AlarmChange]) -> int:
    """The engine's changes as hub events, in its transaction; operator changes (``actor`` not the
    engine) were published by ``operator_outbox`` in their own transaction and are skipped."""
    mine = [c for c in changes if c.actor == "engine"]
    if not mine or not hub.listened(session, API):
        return 0
    ids = sorted({c.alarm_id for c in mine})
    rows: dict[int, Alarm] = {}
    for part in _chunks(ids):
        for a in session.scalars(select(Alarm).where(Alarm.id.in_(part)).execution_options(populate_existing=True)):
            rows[a.id] = a
    docs = {int(d["id"]): d for d in documents(session, list(rows.values()))}
    events: list[tuple[str, Mapping[str, Any], datetime | None]] = []
    sent: set[tuple[int, str]] = set()
    for c in mine:
        kind = event_type(c.kind)
        if c.alarm_id not in docs or (c.alarm_id, kind) in sent:
            continue
        sent.add((c.alarm_id, kind))
        events.append((kind, docs[c.alarm_id], c.at))
    return hub.publish_many(session, API, events)


def engine_outbox(on_written: Callable[[], None] | None = None) -> Callable[[Session, Sequence[AlarmChange]], None]:
    """For ``AlarmEngine.add_outbox``: ``on_written`` runs after the commit of a batch that wrote events."""

    def write(session: Session, changes: Sequence[AlarmChange]) -> None:
        if publish_changes(session, changes) and on_written is not None:
            after_commit(session, on_written)

    return write


def publish_action(session: Session, alarm: Alarm, action: str) -> int:
    """One operator action (``alarms.service`` journal action) as a hub event, in its transaction."""
    if not hub.listened(session, API):
        return 0
    return hub.publish(session, API, event_type(action), documents(session, [alarm])[0])


def operator_outbox(on_written: Callable[[], None] | None = None) -> Callable[[Session, Alarm, str], None]:
    """For ``alarms.service.OUTBOX``: ``on_written`` runs after the commit of an action that wrote events."""

    def write(session: Session, alarm: Alarm, action: str) -> None:
        if publish_action(session, alarm, action) and on_written is not None:
            after_commit(session, on_written)

    return write


# ---- PATCH /alarm/{id} --------------------------------------------------------------------------------

PATCHABLE = frozenset({"ackState", "ackUserId", "ackSystemId", "perceivedSeverity", "state", "clearUserId",
                       "clearSystemId", "comment"})  # fmt: skip
_IGNORED = frozenset({"@type", "@baseType", "@schemaLocation"})


def _patch_text(name: str, value: Any, allowed: Iterable[str]) -> str:
    choices = sorted(allowed)
    if not isinstance(value, str) or value not in choices:
        raise TmfQueryError(f"{name}: expected one of {', '.join(choices)}", field=name)
    return value


def patch_alarm(session: Session, alarm_id: str, patch: Any, *, actor: str) -> dict[str, Any]:
    """A merge patch of one alarm through the alarm domain's own operations: ``ackState``
    (acknowledge / unacknowledge), ``perceivedSeverity`` (a severity, or ``cleared``), ``state``
    (``cleared`` only), ``comment`` (each item given is added). A read-only or unknown attribute is a
    400 naming it, checked before anything changes; the acting user is the token's."""
    if not isinstance(patch, Mapping) or not patch:
        raise TmfQueryError("expected a JSON object with the attributes to change", field="body")
    for name in patch:
        if name in _IGNORED or name in PATCHABLE:
            continue
        if name in FIELDS:
            raise TmfQueryError(f"{name} is read-only; patchable: {', '.join(sorted(PATCHABLE))}", field=name)
        raise TmfQueryError(f"{name!s:.60} is not an alarm attribute", field=str(name)[:60])
    ids = _int_ids([alarm_id])
    row = session.get(Alarm, ids[0]) if ids else None
    if row is None:
        raise NotFound(f"alarm {alarm_id[:40]!r} not found", field="id")
    for name in ("ackUserId", "ackSystemId", "clearUserId", "clearSystemId"):
        if name in patch and (not isinstance(patch[name], str) or len(patch[name]) > 100):
            raise TmfQueryError(f"{name}: expected a string of at most 100 characters", field=name)
    ack = _patch_text("ackState", patch["ackState"], _ENUMS["ackState"]) if "ackState" in patch else None
    severity = (_patch_text("perceivedSeverity", patch["perceivedSeverity"], _ENUMS["perceivedSeverity"])
                if "perceivedSeverity" in patch else None)  # fmt: skip
    state = _patch_text("state", patch["state"], {"cleared"}) if "state" in patch else None
    comments: list[str] = []
    if "comment" in patch:
        raw = patch["comment"]
        if not isinstance(raw, list) or len(raw) > 20:
            raise TmfQueryError("comment: expected a list of at most 20 Comment objects", field="comment")
        for i, item in enumerate(raw):
            text = item.get("comment") if isinstance(item, Mapping) else None
            if not isinstance(text, str) or not text.strip() or len(text) > 4000:
                raise TmfQueryError(f"comment[{i}].comment: expected text of 1 to 4000 characters",
                                    field=f"comment[{i}].comment")  # fmt: skip
            comments.append(text)
    for text in comments:
        alarms.comment(session, row.id, actor=actor, text=text)
    if severity is not None and severity != "cleared" and severity != row.severity:
        alarms.set_severity(session, row.id, actor=actor, severity=severity)
    if ack == "acknowledged" and not row.acknowledged:
        alarms.acknowledge(session, row.id, actor=actor)
    elif ack == "unacknowledged" and row.acknowledged:
        alarms.unacknowledge(session, row.id, actor=actor)
    if (state == "cleared" or severity == "cleared") and row.state == "active":
        alarms.clear(session, row.id, actor=actor, reason=f"cleared through TMF642 PATCH by {actor}")
    return documents(session, [row])[0]
