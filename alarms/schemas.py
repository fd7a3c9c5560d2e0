"""Pydantic shapes of the alarm API: event ingest, Alertmanager webhook, alarms, maintenance windows."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from alarms.rules import AlarmSeverity

EventSeverity = Literal["critical", "major", "minor", "warning", "indeterminate", "cleared"]


# An event's ``raw`` is stored with it: bounded so that one request cannot fill the database.
RAW_MAX_BYTES = 65_536
# Alertmanager alerts: Prometheus label names are short; values and annotations bounded so that
# labels and annotations together (an event's raw) stay well inside RAW_MAX_BYTES.
ALERT_LABELS_MAX, ALERT_LABEL_VALUE_MAX = 64, 1024
ALERT_ANNOTATIONS_MAX, ALERT_ANNOTATION_VALUE_MAX = 32, 4096
ALERT_TEXT_MAX_BYTES = 32_768
LabelName = Annotated[str, StringConstraints(min_length=1, max_length=128)]


def _json_size(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str).encode())


def _aware(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        raise ValueError("expected a timezone-aware time (e.g. 2026-01-01T00:00:00Z)")
    return value


class EventIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    source: Literal["poll", "trap", "syslog", "api", "alertmanager"] = "api"
    device: str = Field("", max_length=255)
    event_type: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.:\-/]+$")
    severity: EventSeverity
    time: datetime | None = None  # default: when received
    managed_object: str = Field("", max_length=255)
    probable_cause: str = Field("", max_length=100)
    specific_problem: str = Field("", max_length=255)
    description: str = Field("", max_length=4000)
    raw: dict[str, Any] = Field({}, description=f"Anything the source sent, at most {RAW_MAX_BYTES} bytes as JSON")

    _tz = field_validator("time")(classmethod(lambda cls, v: _aware(v)))

    @field_validator("raw")
    @classmethod
    def _raw_size(cls, value: dict[str, Any]) -> dict[str, Any]:
        size = _json_size(value)
        if size > RAW_MAX_BYTES:
            raise ValueError(f"expected at most {RAW_MAX_BYTES} bytes as JSON, got {size}")
        return value


class EventBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    events: list[EventIn] = Field(min_length=1, max_length=10_000)


class IngestResult(BaseModel):
    accepted: int
    first_id: int
    last_id: int


class AlertmanagerAlert(BaseModel):
    model_config = ConfigDict(extra="allow")
    status: Literal["firing", "resolved"]
    labels: dict[LabelName, Annotated[str, StringConstraints(max_length=ALERT_LABEL_VALUE_MAX)]] = Field(
        max_length=ALERT_LABELS_MAX
    )
    annotations: dict[LabelName, Annotated[str, StringConstraints(max_length=ALERT_ANNOTATION_VALUE_MAX)]] = Field(
        {}, max_length=ALERT_ANNOTATIONS_MAX
    )
    startsAt: datetime | None = None  # noqa: N815 - Alertmanager's field names
    endsAt: datetime | None = None  # noqa: N815
    fingerprint: str = Field("", max_length=64)

    @field_validator("labels")
    @classmethod
    def _alertname(cls, value: dict[str, str]) -> dict[str, str]:
        if not value.get("alertname"):
            raise ValueError("expected an 'alertname' label")
        return value

    @model_validator(mode="after")
    def _text_size(self) -> AlertmanagerAlert:
        size = _json_size(self.labels) + _json_size(self.annotations)
        if size > ALERT_TEXT_MAX_BYTES:
            raise ValueError(
                f"labels and annotations: expected at most {ALERT_TEXT_MAX_BYTES} bytes together, got {size}"
            )
        return self


class AlertmanagerPayload(BaseModel):
    """Alertmanager webhook payload, version 4 (the only version Alertmanager has sent so far)."""

    model_config = ConfigDict(extra="allow")
    version: Literal["4"]
    status: Literal["firing", "resolved"]
    receiver: str = Field("", max_length=1024)
    groupKey: str = Field("", max_length=8192)  # noqa: N815
    alerts: list[AlertmanagerAlert] = Field(max_length=10_000)


class AlarmOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    reduction_key: str
    alarm_type: str
    rule: str
    source: str
    device: str
    managed_object: str
    probable_cause: str
    specific_problem: str
    description: str
    first_occurrence: datetime
    last_occurrence: datetime
    cleared_at: datetime | None
    count: int
    original_severity: str
    severity: str
    state: str
    flapping: bool
    acknowledged: bool
    ack_by: str | None
    ack_at: datetime | None
    root_cause: bool
    parent_id: int | None
    correlation_reason: str | None
    muted: bool
    suppression_reason: str | None
    ticket_id: int | None
    services_affected: int = 0  # customer services it affects (a root cause: with its children's)
    customers_affected: int = 0


class AffectedServiceOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    service_id: int
    customer: str
    service_type: str
    sla_class: str | None
    how: str  # direct (on the alarmed interface/VLAN/device), topology (reachable only through it), child
    level: str  # down or degraded


class JournalOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    at: datetime
    actor: str
    action: str
    detail: dict[str, Any]


class AlarmDetail(AlarmOut):
    journal: list[JournalOut]
    children: list[int]
    affected_services: list[AffectedServiceOut] = []


class AlarmPage(BaseModel):
    items: list[AlarmOut]
    total: int
    limit: int
    offset: int


class CommentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(min_length=1, max_length=4000)


class ClearIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field("manual clear", min_length=1, max_length=500)


class SeverityIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    severity: AlarmSeverity


def _given(name: str, kind: str) -> dict[str, Any]:
    """``name`` is present and counts: a string that is not empty (the model reads "" as not given)."""
    return {
        "required": [name],
        "properties": {name: {"type": kind, "minLength": 1} if kind == "string" else {"type": kind}},
    }


# _consistent's rules, written into the document (JSON Schema 2020-12, as OpenAPI 3.1 reads it): a
# scope, rrule or cron but not both, duration_s for a recurring window and ends_at for a one-off.
# What a schema cannot say (ends_at after starts_at, a bounded recurrence) stays a 422 naming the field.
_MAINTENANCE_RULES: dict[str, Any] = {
    "allOf": [
        {
            "anyOf": [
                {"required": [name], "properties": {name: {"minItems": 1}}}
                for name in ("devices", "sites", "tags", "interfaces")
            ]
        },
        {"not": {"allOf": [_given("rrule", "string"), _given("cron", "string")]}},
        {
            "if": {"anyOf": [_given("rrule", "string"), _given("cron", "string")]},
            "then": _given("duration_s", "integer"),
            "else": _given("ends_at", "string"),
        },
    ]
}


class MaintenanceIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra=_MAINTENANCE_RULES)
    name: str = Field(min_length=1, max_length=200)
    starts_at: datetime
    ends_at: datetime | None = None
    rrule: str | None = Field(None, max_length=500, description="RFC 5545 RRULE, e.g. FREQ=WEEKLY;BYDAY=SU")
    cron: str | None = Field(None, max_length=100, description="cron expression (UTC), e.g. '0 2 * * 0'")
    duration_s: int | None = Field(None, ge=60, le=7 * 86400, description="length of each recurring occurrence")
    devices: list[str] = []
    sites: list[str] = []
    tags: list[str] = []
    interfaces: list[str] = Field(
        [], description="hostname:interface", json_schema_extra={"items": {"type": "string", "pattern": ":"}}
    )
    reason: str = Field("", max_length=500)

    _tz = field_validator("starts_at", "ends_at")(classmethod(lambda cls, v: _aware(v)))

    @model_validator(mode="after")
    def _consistent(self) -> MaintenanceIn:
        if not (self.devices or self.sites or self.tags or self.interfaces):
            raise ValueError("give at least one of devices, sites, tags, interfaces")
        if self.rrule and self.cron:
            raise ValueError("give rrule or cron, not both")
        recurring = bool(self.rrule or self.cron)
        if recurring and self.duration_s is None:
            raise ValueError("duration_s is required for a recurring window")
        if not recurring and self.ends_at is None:
            raise ValueError("ends_at is required for a one-off window")
        if self.ends_at is not None and self.ends_at <= self.starts_at:
            raise ValueError("ends_at must be after starts_at")
        for item in self.interfaces:
            if ":" not in item:
                raise ValueError(f"interfaces: expected hostname:interface, got {item!r}")
        return self


class MaintenanceOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    name: str
    starts_at: datetime
    ends_at: datetime | None
    rrule: str | None
    cron: str | None
    duration_s: int | None
    devices: list[str]
    sites: list[str]
    tags: list[str]
    interfaces: list[str]
    reason: str
    created_by: str
    created_at: datetime
    active_now: bool = False
